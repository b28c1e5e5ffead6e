/** Jest runs the TypeScript sources directly (SWC strips types), as native ESM. */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'es6' } },
    ],
  },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testTimeout: 60000,
  // On 2 cores jest runs every file in its main process (in band): one handle a test leaves
  // open (a socket, a timer) would keep it from exiting, and CI would wait for nothing.
  forceExit: true,
};

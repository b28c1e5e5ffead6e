export * from './types.js';
export * from './byte-string.js';
export * from './aterm.js';
export * from './json.js';
export * from './hash-modulo.js';
export * from './paths.js';

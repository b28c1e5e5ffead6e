import { jobName, nixBuildName, parseDrvPath } from '../../operator/names.js';
import { OperatorError, OperatorErrorCode } from '../../operator/errors.js';

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as OperatorError).code;
  }
  return undefined;
}
import { DRV, HASH } from './fixtures.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

describe('NixBuild names from the .drv path', () => {
  // The name vectors themselves are in test/k8s/names.test.ts (shared with the gateway).
  test('the same derivation always meets on the same name; different hashes never do', () => {
    expect(nixBuildName(DRV)).toBe(nixBuildName(DRV));
    const other = `/nix/store/${HASH.replace(/^0/, '1')}-hello-2.12.1.drv`;
    expect(nixBuildName(other)).not.toBe(nixBuildName(DRV));
  });

  test('Job names: the NixBuild name first, -retryN after; all within a DNS label', () => {
    const nb = nixBuildName(`/nix/store/${HASH}-a-very-long-derivation-name-that-goes-on-and-on.drv`);
    expect(jobName(nb, 1)).toBe(nb);
    expect(jobName(nb, 2)).toBe(`${nb}-retry1`);
    expect(jobName(nb, 99).length).toBeLessThanOrEqual(63);
    expect(jobName(nb, 99)).toMatch(DNS_LABEL);
  });

  test.each([
    ['/nix/store/short-hello.drv'],
    [`/nix/store/${HASH}-hello`],
    [`/tmp/${HASH}-hello.drv`],
    [`/nix/store/${HASH.replace('c', 'e')}-hello.drv`],
    [`/nix/store/${HASH}-.drv`],
  ])('refuses %s', (drv) => {
    expect(() => parseDrvPath(drv)).toThrow(OperatorError);
    expect(codeOf(() => parseDrvPath(drv))).toBe(OperatorErrorCode.DRV_PATH_INVALID);
  });
});

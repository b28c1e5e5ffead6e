/** The shared NixBuild name rule: the same vectors as test/operator/names.test.ts. */
import { checkBuildName, MAX_NAME_LENGTH, nixBuildName } from '../../k8s/names.js';
import { nixBuildName as operatorName } from '../../operator/names.js';
import { DRV, HASH } from '../operator/fixtures.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

test.each([
  [DRV, `${HASH}-hello-2-12-1`],
  [`/nix/store/${HASH}-Python3.11-numpy_1.26+cuda.drv`, `${HASH}-python3-11-numpy-1`],
  [`/nix/store/${HASH}-source.drv`, `${HASH}-source`],
  [`/nix/store/${HASH}-a-very-long-derivation-name-that-goes-on-and-on.drv`, `${HASH}-a-very-long-derivat`],
  [`/nix/store/${HASH}-x--------------------y.drv`, `${HASH}-x-y`],
  [`/nix/store/${HASH}-abcdefghijklmnopqr-stuv.drv`, `${HASH}-abcdefghijklmnopqr`],
  [`/nix/store/${HASH}-.+_.drv`, HASH],
])('%s → %s (gateway and operator agree)', (drv, name) => {
  expect(nixBuildName(drv)).toBe(name);
  expect(operatorName(drv)).toBe(name);
  expect(name.length).toBeLessThanOrEqual(MAX_NAME_LENGTH);
  expect(name).toMatch(DNS_LABEL);
});

test('not a derivation: an Error', () => {
  expect(() => nixBuildName(`/nix/store/${HASH}-hello`)).toThrow(/not a derivation/);
  expect(() => nixBuildName('/tmp/x.drv')).toThrow();
});

test('check builds: one name per request, never the build’s own, within the NixBuild limit', () => {
  const name = checkBuildName(DRV, '0a1b2c3d');
  expect(name).toBe(`${HASH}-check-0a1b2c3d`);
  expect(name).not.toBe(nixBuildName(DRV));
  expect(checkBuildName(DRV, 'ffffffff')).not.toBe(name);
  expect(name.length).toBeLessThanOrEqual(MAX_NAME_LENGTH);
  expect(() => checkBuildName(DRV, 'XYZ')).toThrow(/bad check token/);
  expect(() => checkBuildName(`/nix/store/${HASH}-hello`, '0a1b2c3d')).toThrow(/not a derivation/);
});

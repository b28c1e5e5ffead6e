import { describe, expect, test } from '@jest/globals';
import { Hash, hashOf } from '../../nix/hash.js';
import {
  makeFixedOutputPath,
  makeStorePath,
  makeTextPath,
  parseStorePath,
  storePathNameProblem,
} from '../../nix/store-path.js';
import { contentAddressedPath, parseContentAddress, printContentAddress } from '../../nix/content-address.js';
import { ErrorCode } from '../../nix/errors.js';

// Vectors from protocol/README.md §11, checked against the recorded store.
describe('store path computation', () => {
  test('source path of the busybox tree', () => {
    const narHash = new Hash(
      'sha256',
      Buffer.from('494cdad037cf7d0a75ee816fc060b92663de1309602aff43c2f9ce55dade4c40', 'hex'),
    );
    expect(makeStorePath('source', narHash, 'busybox')).toBe(
      '/nix/store/71fc7s32zl20dc955bhghy5dvalm7ndz-busybox',
    );
    expect(makeFixedOutputPath('busybox', { method: 'recursive', hash: narHash })).toBe(
      '/nix/store/71fc7s32zl20dc955bhghy5dvalm7ndz-busybox',
    );
  });

  test('flat fixed output', () => {
    expect(makeFixedOutputPath('fixed-hello', { method: 'flat', hash: hashOf('sha256', 'hello') })).toBe(
      '/nix/store/p5v2cagqczh89szhhm6qq5xjl4spyk61-fixed-hello',
    );
  });

  test('recorded AddToStore of file.txt (fixed:r:sha256)', () => {
    const ca = parseContentAddress('fixed:r:sha256:0kwwwhvq6li1877ivrfwgiln87182s2wz4b77c3wv8gh4a04a0r8');
    expect(contentAddressedPath('file.txt', ca)).toBe('/nix/store/acby209j93nknjrv1qj6lz4qd8n7j76s-file.txt');
    expect(printContentAddress(ca)).toBe(
      'fixed:r:sha256:0kwwwhvq6li1877ivrfwgiln87182s2wz4b77c3wv8gh4a04a0r8',
    );
  });

  test('text paths sort and deduplicate references', () => {
    const h = hashOf('sha256', 'x');
    expect(makeTextPath('a', h, ['/nix/store/b', '/nix/store/a'])).toBe(
      makeTextPath('a', h, ['/nix/store/a', '/nix/store/b', '/nix/store/a']),
    );
  });

  test('non-sha256 recursive and flat hashes cannot carry references', () => {
    expect(() =>
      makeFixedOutputPath('x', { method: 'flat', hash: hashOf('sha256', ''), references: ['/nix/store/a'] }),
    ).toThrow(expect.objectContaining({ code: ErrorCode.CONTENT_ADDRESS_INVALID }));
  });
});

describe('parseStorePath', () => {
  test('accepts a valid path', () => {
    expect(parseStorePath('/nix/store/71fc7s32zl20dc955bhghy5dvalm7ndz-busybox')).toEqual({
      hashPart: '71fc7s32zl20dc955bhghy5dvalm7ndz',
      name: 'busybox',
    });
  });

  test.each([
    ['/nix/store/71fc7s32zl20dc955bhghy5dvalm7ndz-busybox/bin', ErrorCode.STORE_PATH_INVALID],
    ['/tmp/71fc7s32zl20dc955bhghy5dvalm7ndz-busybox', ErrorCode.STORE_PATH_NOT_IN_STORE],
    ['/nix/store/71fc7s32zl20dc955bhghy5dvalm7ndE-busybox', ErrorCode.STORE_PATH_INVALID],
    ['/nix/store/71fc7s32zl20dc955bhghy5dvalm7nd-busybox', ErrorCode.STORE_PATH_INVALID],
    ['/nix/store/71fc7s32zl20dc955bhghy5dvalm7ndz-', ErrorCode.STORE_PATH_INVALID],
    ['/nix/store/71fc7s32zl20dc955bhghy5dvalm7ndz-a b', ErrorCode.STORE_PATH_BAD_NAME],
    [`/nix/store/71fc7s32zl20dc955bhghy5dvalm7ndz-${'a'.repeat(212)}`, ErrorCode.STORE_PATH_BAD_NAME],
  ])('rejects %s', (path, code) => {
    expect(() => parseStorePath(path)).toThrow(expect.objectContaining({ code }));
  });

  test('name rules', () => {
    expect(storePathNameProblem('a'.repeat(211))).toBeUndefined();
    expect(storePathNameProblem('foo-1.0+x?=_')).toBeUndefined();
    expect(storePathNameProblem('..')).toBeDefined();
    expect(storePathNameProblem('é')).toBeDefined();
  });
});

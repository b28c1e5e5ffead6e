import { describe, expect, test } from '@jest/globals';
import {
  compressHash,
  decodeNixBase32,
  encodeNixBase32,
  Hash,
  hashOf,
  HASH_ALGOS,
  HASH_SIZE,
  parseHash,
} from '../../nix/hash.js';
import { isNixFormatError, ErrorCode } from '../../nix/errors.js';
import fc from 'fast-check';

// Vector from the recorded build-dag session (protocol/README.md §11).
const BUSYBOX_HEX = '494cdad037cf7d0a75ee816fc060b92663de1309602aff43c2f9ce55dade4c40';
const BUSYBOX_B32 = '0h2cvvd5bkprq91zyak0149xwqr6p5hc0vw1xrshlzfg6z8dlk29';

describe('Nix base32', () => {
  test('encodes the recorded busybox NAR hash as Nix prints it', () => {
    expect(encodeNixBase32(Buffer.from(BUSYBOX_HEX, 'hex'))).toBe(BUSYBOX_B32);
  });

  test('decodes back', () => {
    expect(Buffer.from(decodeNixBase32(BUSYBOX_B32, 32)).toString('hex')).toBe(BUSYBOX_HEX);
  });

  test.each([
    ['contains e', BUSYBOX_B32.replace(/.$/, 'e'), ErrorCode.HASH_BAD_ENCODING],
    ['too short', BUSYBOX_B32.slice(1), ErrorCode.HASH_BAD_LENGTH],
    ['overflow bits', 'z' + BUSYBOX_B32.slice(1), ErrorCode.HASH_BAD_ENCODING],
  ])('rejects a string that %s', (_why, text, code) => {
    expect(() => decodeNixBase32(text, 32)).toThrow(expect.objectContaining({ code }));
  });

  test('round-trips every size Nix uses (property, seed printed)', () => {
    const seed = Date.now();
    console.log(`base32 property seed ${seed}`);
    fc.assert(
      fc.property(fc.constantFrom(16, 20, 32, 64), fc.integer({ min: 0, max: 2 ** 31 }), (size, s) => {
        const bytes = new Uint8Array(size).map((_, i) => (s * (i + 7) * 2654435761) >>> 24);
        return Buffer.from(decodeNixBase32(encodeNixBase32(bytes), size)).equals(bytes);
      }),
      { seed, numRuns: 2000 },
    );
  });
});

describe('parseHash', () => {
  const h = new Hash('sha256', Buffer.from(BUSYBOX_HEX, 'hex'));
  test.each([`sha256:${BUSYBOX_HEX}`, `sha256:${BUSYBOX_B32}`, `sha256:${h.toBase64()}`, h.toSri()])(
    'accepts %s',
    (text) => {
      expect(parseHash(text).equals(h)).toBe(true);
    },
  );

  test('accepts bare digests when the algorithm is known', () => {
    expect(parseHash(BUSYBOX_HEX, 'sha256').equals(h)).toBe(true);
    expect(parseHash(BUSYBOX_B32, 'sha256').equals(h)).toBe(true);
  });

  test.each(['sha256:abc', 'md4:' + BUSYBOX_HEX, BUSYBOX_HEX, 'sha1:' + BUSYBOX_HEX, 'sha256-!!!!'])(
    'rejects %s with a typed error',
    (text) => {
      let caught: unknown;
      try {
        parseHash(text);
      } catch (err) {
        caught = err;
      }
      expect(isNixFormatError(caught)).toBe(true);
    },
  );

  test('prints every algorithm in every encoding and parses it back', () => {
    for (const algo of HASH_ALGOS) {
      const x = hashOf(algo, 'hello');
      expect(x.bytes.length).toBe(HASH_SIZE[algo]);
      for (const enc of ['base16', 'base32', 'base64'] as const) {
        expect(parseHash(x.toTyped(enc)).equals(x)).toBe(true);
      }
      expect(parseHash(x.toSri()).equals(x)).toBe(true);
    }
  });
});

test('compressHash XOR-folds', () => {
  const input = Uint8Array.from({ length: 32 }, (_, i) => i);
  const out = compressHash(input, 20);
  expect(out[0]).toBe(0 ^ 20);
  expect(out[11]).toBe(11 ^ 31);
  expect(out[12]).toBe(12);
});

/** ReferenceScanner: finds hash parts anywhere, across every chunk split, and nothing else. */
import { NixFormatError } from '../../nix/errors.js';
import { ReferenceScanner } from '../../nix/references.js';
import { createRng, testSeed } from '../support/rng.js';

const ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';
const rng = createRng(testSeed());
const randomHash = (): string => Array.from({ length: 32 }, () => rng.pick([...ALPHABET])).join('');

function scan(hashes: string[], chunks: Uint8Array[]): string[] {
  const scanner = new ReferenceScanner(hashes);
  for (const c of chunks) scanner.update(c);
  return [...scanner.found()].sort();
}

const h1 = randomHash();
const h2 = randomHash();
const h3 = randomHash();
const text = Buffer.from(`#!/bin/sh\nexec /nix/store/${h1}-bash/bin/bash\n\0\xff${h2}`, 'latin1');

test('finds hashes in one chunk and ignores absent ones', () => {
  expect(scan([h1, h2, h3], [text])).toEqual([h1, h2].sort());
});

test('finds hashes split at every offset into two and three chunks', () => {
  const expected = [h1, h2].sort();
  for (let i = 0; i <= text.length; i++) {
    expect(scan([h1, h2, h3], [text.subarray(0, i), text.subarray(i)])).toEqual(expected);
    for (let j = i; j <= text.length; j += 5) {
      expect(scan([h1, h2, h3], [text.subarray(0, i), text.subarray(i, j), text.subarray(j)])).toEqual(
        expected,
      );
    }
  }
});

test('byte-by-byte chunks', () => {
  const chunks = Array.from(text, (b) => Uint8Array.of(b));
  expect(scan([h1, h2, h3], chunks)).toEqual([h1, h2].sort());
});

test('a hash inside a longer base32 run is found (Nix matches any 32-byte window)', () => {
  expect(scan([h1], [Buffer.from(`aaaa${h1}zzzz`)])).toEqual([h1]);
});

test('no false positives: near misses and random data', () => {
  const nearMisses = [
    h1.slice(0, 31), // too short
    h1.slice(0, 31) + '-' + h1.slice(31), // broken by a non-base32 byte
    h1.toUpperCase(),
    h1.slice(0, 16) + 'e' + h1.slice(17), // 'e' is not in the alphabet
  ];
  // Each on its own: chunks are one stream, so two near misses side by side can make a real
  // match across their boundary (that is the cross-chunk matching the scanner must do).
  for (const s of nearMisses) expect(scan([h1], [Buffer.from(s)])).toEqual([]);
  expect(scan([h1], [Buffer.from(nearMisses.join('\n'))])).toEqual([]);
  const random = Buffer.from(Array.from({ length: 200_000 }, () => rng.pick([...ALPHABET]).charCodeAt(0)));
  expect(scan([h1, h2, h3], [random.subarray(0, 77_777), random.subarray(77_777)])).toEqual([]);
});

test('rejects strings that are not hash parts', () => {
  expect(() => new ReferenceScanner(['short'])).toThrow(NixFormatError);
  expect(() => new ReferenceScanner(['e'.repeat(32)])).toThrow(NixFormatError);
});

test('scans 16 MiB of base32-heavy data quickly', () => {
  const block = Buffer.from(Array.from({ length: 1 << 16 }, (_, i) => (i % 97 === 0 ? 10 : 0x61 + (i % 3))));
  const hashes = Array.from({ length: 1000 }, randomHash);
  const scanner = new ReferenceScanner(hashes);
  const start = Date.now();
  for (let i = 0; i < 256; i++) scanner.update(block);
  expect(scanner.found().size).toBe(0);
  expect(Date.now() - start).toBeLessThan(15_000);
});

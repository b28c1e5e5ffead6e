/**
 * NarParser on its own: the same events whatever the chunking, push/consumed/done with
 * trailing bytes, a table of invalid and malicious archives, limits enforced before
 * allocation, and a time-boxed property test that only NixFormatError ever escapes.
 */
import fc from 'fast-check';
import { mkdtemp, mkdir, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, NixFormatError, isNixFormatError } from '../../nix/errors.js';
import { encodeToken } from '../../nix/nar/format.js';
import { NarParser, dumpPath, narOfBytes, parseNarStream, type NarEvent } from '../../nix/nar/index.js';
import { testSeed } from '../support/rng.js';

type Tok = string | Uint8Array | { raw: Uint8Array };

/** A NAR from tokens: strings/bytes are encoded as tokens, `{ raw }` is inserted verbatim. */
function nar(...tokens: Tok[]): Buffer {
  return Buffer.concat(
    tokens.map((t) =>
      typeof t === 'string' ? encodeToken(Buffer.from(t)) : 'raw' in t ? t.raw : encodeToken(t),
    ),
  );
}
const u64 = (n: bigint): { raw: Uint8Array } => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return { raw: b };
};
const file = (contents: string, executable = false): Tok[] => [
  '(',
  'type',
  'regular',
  ...(executable ? ['executable', ''] : []),
  'contents',
  contents,
  ')',
];
const entry = (name: Tok, node: Tok[]): Tok[] => ['entry', '(', 'name', name, 'node', ...node, ')'];
const dir = (...entries: Tok[][]): Tok[] => ['(', 'type', 'directory', ...entries.flat(), ')'];
const symlinkNode = (target: string): Tok[] => ['(', 'type', 'symlink', 'target', target, ')'];

/** Events with consecutive `data` merged, paths and bytes as strings: comparable across chunkings. */
function normalise(events: readonly NarEvent[]): unknown[] {
  const out: unknown[] = [];
  const str = (b: Uint8Array): string => Buffer.from(b).toString('hex');
  for (const e of events) {
    const last = out[out.length - 1] as { type: string; hex: string } | undefined;
    if (e.type === 'data') {
      if (last?.type === 'data') last.hex += str(e.chunk);
      else out.push({ type: 'data', hex: str(e.chunk) });
    } else if (e.type === 'symlink') {
      out.push({ type: e.type, path: e.path.map(str), target: str(e.target) });
    } else {
      out.push({ ...e, path: e.path.map(str) });
    }
  }
  return out;
}

function parseAll(bytes: Uint8Array, splits: number[] = []): NarEvent[] {
  const parser = new NarParser();
  const events: NarEvent[] = [];
  let start = 0;
  for (const end of [...splits, bytes.length]) {
    const { events: e, consumed } = parser.push(bytes.subarray(start, end));
    if (consumed !== end - start) throw new Error(`consumed ${consumed} of ${end - start} bytes`);
    events.push(...e);
    start = end;
  }
  parser.end();
  expect(parser.done).toBe(true);
  expect(parser.offset).toBe(bytes.length);
  return events;
}

/** The code of the error `fn` throws (undefined if it does not throw). */
function thrownCode(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err instanceof NixFormatError ? err.code : err;
  }
  return undefined;
}

function parseError(bytes: Uint8Array, limits = {}): NixFormatError {
  const parser = new NarParser(limits);
  try {
    parser.push(bytes);
    parser.end();
  } catch (err) {
    if (err instanceof NixFormatError) return err;
    throw err;
  }
  throw new Error('expected the NAR to be rejected');
}

const SMALL_NARS: Record<string, Uint8Array> = {
  'empty file': narOfBytes(new Uint8Array()),
  'executable file': narOfBytes(Buffer.from('#!/bin/sh\necho hi\n'), true),
  '8-byte file': narOfBytes(Buffer.from('12345678')),
  symlink: nar('nix-archive-1', ...symlinkNode('/nix/store/x')),
  'empty directory': nar('nix-archive-1', ...dir()),
  'nested directory': nar(
    'nix-archive-1',
    ...dir(
      entry('a', file('hello')),
      entry('b', dir(entry('c', file('', true)), entry('d', symlinkNode('../a')))),
      entry('e', dir()),
    ),
  ),
};

describe('NarParser chunking', () => {
  test.each(Object.entries(SMALL_NARS))(
    '%s: same events for every split point and byte by byte',
    (_name, bytes) => {
      const reference = normalise(parseAll(bytes));
      for (let k = 0; k <= bytes.length; k++) expect(normalise(parseAll(bytes, [k]))).toEqual(reference);
      const everyByte = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
      expect(normalise(parseAll(bytes, everyByte))).toEqual(reference);
    },
  );

  test('events of a nested directory', () => {
    const events = normalise(parseAll(SMALL_NARS['nested directory']!));
    const hex = (s: string): string => Buffer.from(s).toString('hex');
    expect(events).toEqual([
      { type: 'directory', path: [] },
      { type: 'file', path: [hex('a')], size: 5, executable: false },
      { type: 'data', hex: hex('hello') },
      { type: 'fileEnd', path: [hex('a')] },
      { type: 'directory', path: [hex('b')] },
      { type: 'file', path: [hex('b'), hex('c')], size: 0, executable: true },
      { type: 'fileEnd', path: [hex('b'), hex('c')] },
      { type: 'symlink', path: [hex('b'), hex('d')], target: hex('../a') },
      { type: 'directoryEnd', path: [hex('b')] },
      { type: 'directory', path: [hex('e')] },
      { type: 'directoryEnd', path: [hex('e')] },
      { type: 'directoryEnd', path: [] },
    ]);
  });

  test('data events are zero-copy views of the pushed chunk', () => {
    const bytes = narOfBytes(Buffer.alloc(1000, 7));
    const { events } = new NarParser().push(bytes);
    const data = events.find((e) => e.type === 'data');
    expect(data?.type === 'data' && data.chunk.buffer === bytes.buffer).toBe(true);
  });

  test('a NAR of a real tree with a large file, in chunks of every size class', async () => {
    const dirPath = await mkdtemp(join(tmpdir(), 'nar-parser-'));
    try {
      await mkdir(join(dirPath, 'sub'));
      await writeFile(join(dirPath, 'big'), Buffer.alloc(300_000, 0xab));
      await writeFile(join(dirPath, 'sub', 'x'), 'x');
      await chmod(join(dirPath, 'sub', 'x'), 0o755);
      await symlink('/dangling', join(dirPath, 'link'));
      const parts: Uint8Array[] = [];
      for await (const c of dumpPath(dirPath)) parts.push(c);
      const bytes = Buffer.concat(parts);
      const reference = normalise(parseAll(bytes));
      for (const step of [5, 8, 13, 4096, 65536]) {
        const splits: number[] = [];
        for (let i = step; i < bytes.length; i += step) splits.push(i);
        expect(normalise(parseAll(bytes, splits))).toEqual(reference);
      }
    } finally {
      await rm(dirPath, { recursive: true, force: true });
    }
  });
});

describe('NarParser push/consumed/done', () => {
  test('stops at the end of the NAR and leaves trailing bytes to the caller', () => {
    const bytes = SMALL_NARS['nested directory']!;
    const trailing = Buffer.from('NEXT MESSAGE');
    const parser = new NarParser();
    const { consumed } = parser.push(Buffer.concat([bytes, trailing]));
    expect(consumed).toBe(bytes.length);
    expect(parser.done).toBe(true);
    expect(parser.push(trailing)).toEqual({ events: [], consumed: 0 });
    expect(() => parser.end()).not.toThrow();
  });

  test('done only after the padding of the final ")"', () => {
    const bytes = SMALL_NARS['empty file']!;
    const parser = new NarParser();
    parser.push(bytes.subarray(0, bytes.length - 1));
    expect(parser.done).toBe(false);
    expect(thrownCode(() => new NarParser().end())).toBe(ErrorCode.NAR_TRUNCATED);
    expect(parser.push(bytes.subarray(bytes.length - 1)).consumed).toBe(1);
    expect(parser.done).toBe(true);
  });

  test('a dead parser rethrows its error', () => {
    const parser = new NarParser();
    expect(() => parser.push(nar('nix-archive-2'))).toThrow(NixFormatError);
    expect(thrownCode(() => parser.push(new Uint8Array(8)))).toBe(ErrorCode.NAR_BAD_MAGIC);
    expect(thrownCode(() => parser.end())).toBe(ErrorCode.NAR_BAD_MAGIC);
  });

  test('parseNarStream rejects trailing data and truncation', async () => {
    const collect = async (chunks: Uint8Array[]): Promise<NarEvent[]> => {
      const out: NarEvent[] = [];
      for await (const e of parseNarStream(chunks)) out.push(e);
      return out;
    };
    const bytes = SMALL_NARS.symlink!;
    await expect(collect([bytes])).resolves.toHaveLength(1);
    await expect(collect([bytes, new Uint8Array(1)])).rejects.toMatchObject({
      code: ErrorCode.NAR_TRAILING_DATA,
    });
    await expect(collect([Buffer.concat([bytes, Buffer.from('x')])])).rejects.toMatchObject({
      code: ErrorCode.NAR_TRAILING_DATA,
    });
    await expect(collect([bytes.subarray(0, 50)])).rejects.toMatchObject({ code: ErrorCode.NAR_TRUNCATED });
  });
});

describe('invalid and malicious NARs', () => {
  const M = 'nix-archive-1';
  const badPadding = Buffer.from(nar(M, ...file('abc')));
  badPadding[badPadding.length - 20] = 1; // a padding byte of the contents 'abc'
  const cases: [string, Buffer, ErrorCode, object?][] = [
    ['bad magic', nar('nix-archive-2', ...file('')), ErrorCode.NAR_BAD_MAGIC],
    ['bad magic length', nar('nix-archive-10', ...file('')), ErrorCode.NAR_BAD_MAGIC],
    ['empty input', Buffer.alloc(0), ErrorCode.NAR_TRUNCATED],
    ['unknown type', nar(M, '(', 'type', 'fifo', ')'), ErrorCode.NAR_UNEXPECTED_TOKEN],
    ['unknown attribute', nar(M, '(', 'type', 'regular', 'mtime', '0', ')'), ErrorCode.NAR_UNEXPECTED_TOKEN],
    [
      'executable with a value',
      nar(M, '(', 'type', 'regular', 'executable', '1'),
      ErrorCode.NAR_UNEXPECTED_TOKEN,
    ],
    ['regular without contents', nar(M, '(', 'type', 'regular', ')'), ErrorCode.NAR_UNEXPECTED_TOKEN],
    ['missing "("', nar(M, 'type', 'regular'), ErrorCode.NAR_UNEXPECTED_TOKEN],
    [
      'unsorted entries',
      nar(M, ...dir(entry('b', file('')), entry('a', file('')))),
      ErrorCode.NAR_UNSORTED_ENTRIES,
    ],
    [
      'duplicate entries',
      nar(M, ...dir(entry('a', file('')), entry('a', dir()))),
      ErrorCode.NAR_UNSORTED_ENTRIES,
    ],
    ['name "."', nar(M, ...dir(entry('.', file('')))), ErrorCode.NAR_BAD_ENTRY_NAME],
    ['name ".."', nar(M, ...dir(entry('..', dir()))), ErrorCode.NAR_BAD_ENTRY_NAME],
    ['name with "/"', nar(M, ...dir(entry('a/b', file('')))), ErrorCode.NAR_BAD_ENTRY_NAME],
    ['name "/"', nar(M, ...dir(entry('/', file('')))), ErrorCode.NAR_BAD_ENTRY_NAME],
    ['name with NUL', nar(M, ...dir(entry('a\0b', file('')))), ErrorCode.NAR_BAD_ENTRY_NAME],
    ['empty name', nar(M, ...dir(entry('', file('')))), ErrorCode.NAR_BAD_ENTRY_NAME],
    [
      'entry missing "name"',
      nar(M, '(', 'type', 'directory', 'entry', '(', 'node'),
      ErrorCode.NAR_UNEXPECTED_TOKEN,
    ],
    ['non-zero padding', badPadding, ErrorCode.NAR_NONZERO_PADDING],
    [
      'non-zero token padding',
      nar(M, { raw: Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0x28, 1, 0, 0, 0, 0, 0, 0]) }),
      ErrorCode.NAR_NONZERO_PADDING,
    ],
    [
      'file size 2^62',
      nar(M, '(', 'type', 'regular', 'contents', u64(2n ** 62n)),
      ErrorCode.NAR_LENGTH_LIMIT,
      { field: 'maxFileSize' },
    ],
    [
      'file size 2^64-1',
      nar(M, '(', 'type', 'regular', 'contents', u64(2n ** 64n - 1n)),
      ErrorCode.NAR_LENGTH_LIMIT,
    ],
    [
      'name length 2^62',
      nar(M, '(', 'type', 'directory', 'entry', '(', 'name', u64(2n ** 62n)),
      ErrorCode.NAR_LENGTH_LIMIT,
      { field: 'maxNameLength' },
    ],
    ['name of 256 bytes', nar(M, ...dir(entry('n'.repeat(256), file('')))), ErrorCode.NAR_LENGTH_LIMIT],
    [
      'target length 2^62',
      nar(M, '(', 'type', 'symlink', 'target', u64(2n ** 62n)),
      ErrorCode.NAR_LENGTH_LIMIT,
      { field: 'maxTargetLength' },
    ],
    ['keyword length 2^62', nar(M, '(', u64(2n ** 62n)), ErrorCode.NAR_UNEXPECTED_TOKEN],
    ['magic length 2^63', nar(u64(2n ** 63n)), ErrorCode.NAR_BAD_MAGIC],
    [
      'truncated in contents',
      nar(M, '(', 'type', 'regular', 'contents', u64(100n), { raw: Buffer.alloc(50) }),
      ErrorCode.NAR_TRUNCATED,
    ],
    ['truncated in a length', nar(M, { raw: Buffer.alloc(3) }), ErrorCode.NAR_TRUNCATED],
    ['truncated in a directory', nar(M, '(', 'type', 'directory'), ErrorCode.NAR_TRUNCATED],
  ];

  const table = cases.map(([name, bytes, code, context]) => [name, bytes, code, context ?? {}] as const);
  test.each(table)('%s', (_name, bytes, code, context) => {
    const err = parseError(bytes);
    expect(err.code).toBe(code);
    expect(err.context).toMatchObject(context);
    expect(typeof err.context.offset).toBe('number');
  });

  test('content after the root node is trailing data for parseNarStream', async () => {
    const bytes = nar(M, ...file('x'), 'executable', '');
    const parser = new NarParser();
    expect(parser.push(bytes).consumed).toBe(nar(M, ...file('x')).length);
    await expect(
      (async () => {
        for await (const _ of parseNarStream([bytes]));
      })(),
    ).rejects.toMatchObject({ code: ErrorCode.NAR_TRAILING_DATA });
  });

  test('errors name the path and offset', () => {
    const err = parseError(nar(M, ...dir(entry('sub', dir(entry('b', file('')), entry('a', file('')))))));
    expect(err.context).toMatchObject({ path: '/sub', name: 'a' });
    expect(err.message).toContain('/sub');
  });

  test('a huge declared file is streamed, not allocated', () => {
    const parser = new NarParser();
    const { events } = parser.push(
      nar(M, '(', 'type', 'regular', 'contents', u64(2n ** 50n), { raw: Buffer.alloc(10) }),
    );
    expect(events.map((e) => e.type)).toEqual(['file', 'data']);
    expect(events[0]).toMatchObject({ size: 2 ** 50 });
    expect(thrownCode(() => parser.end())).toBe(ErrorCode.NAR_TRUNCATED);
  });

  test('limits: depth, name length, target length, file size, entries', () => {
    let node: Tok[] = file('');
    for (let i = 0; i < 5; i++) node = dir(entry('d', node));
    const deep = nar(M, ...node);
    expect(() => parseAll(deep)).not.toThrow();
    expect(parseError(deep, { maxDepth: 4 }).code).toBe(ErrorCode.NAR_TOO_DEEP);
    expect(() => new NarParser({ maxDepth: 5 }).push(deep)).not.toThrow();
    expect(parseError(nar(M, ...dir(entry('abcd', file('')))), { maxNameLength: 3 }).code).toBe(
      ErrorCode.NAR_LENGTH_LIMIT,
    );
    expect(parseError(nar(M, ...symlinkNode('abcd')), { maxTargetLength: 3 }).code).toBe(
      ErrorCode.NAR_LENGTH_LIMIT,
    );
    expect(parseError(nar(M, ...file('abcd')), { maxFileSize: 3 }).code).toBe(ErrorCode.NAR_LENGTH_LIMIT);
    const three = nar(M, ...dir(entry('a', file('')), entry('b', file('')), entry('c', file(''))));
    expect(parseError(three, { maxEntriesPerDirectory: 2 }).code).toBe(ErrorCode.NAR_LENGTH_LIMIT);
  });
});

describe('property: the parser only ever throws NixFormatError', () => {
  const seed = testSeed();
  const valid = Object.values(SMALL_NARS);

  function check(bytes: Uint8Array, splits: number[]): void {
    const parser = new NarParser({ maxDepth: 8 });
    try {
      let start = 0;
      for (const end of [...splits.filter((s) => s < bytes.length).sort((a, b) => a - b), bytes.length]) {
        parser.push(bytes.subarray(start, end));
        start = end;
      }
      parser.end();
    } catch (err) {
      if (!isNixFormatError(err)) throw err;
    }
  }

  test(`random bytes (seed ${seed})`, () => {
    const magicPrefixed = fc
      .uint8Array({ maxLength: 300 })
      .map((tail) => Buffer.concat([nar('nix-archive-1'), tail]));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), magicPrefixed), fc.array(fc.nat(400)), (b, s) =>
        check(b, s),
      ),
      { seed, interruptAfterTimeLimit: 3000, numRuns: 1_000_000 },
    );
  });

  test(`mutated valid NARs (seed ${seed})`, () => {
    const mutation = fc.record({
      which: fc.nat(valid.length - 1),
      edits: fc.array(
        fc.record({
          kind: fc.constantFrom('flip', 'set', 'delete', 'insert', 'truncate'),
          at: fc.nat(),
          value: fc.integer({ min: 0, max: 255 }),
        }),
        { minLength: 1, maxLength: 4 },
      ),
      splits: fc.array(fc.nat(400)),
    });
    fc.assert(
      fc.property(mutation, ({ which, edits, splits }) => {
        let b = Buffer.from(valid[which]!);
        for (const e of edits) {
          const at = b.length === 0 ? 0 : e.at % b.length;
          if (e.kind === 'flip' && b.length > 0) b[at] = b[at]! ^ (1 << (e.value % 8));
          else if (e.kind === 'set' && b.length > 0) b[at] = e.value;
          else if (e.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
          else if (e.kind === 'insert')
            b = Buffer.concat([b.subarray(0, at), Buffer.from([e.value]), b.subarray(at)]);
          else b = b.subarray(0, at);
        }
        check(b, splits);
      }),
      { seed, interruptAfterTimeLimit: 3000, numRuns: 1_000_000 },
    );
  });
});

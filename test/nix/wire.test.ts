import { PassThrough, Writable } from 'node:stream';
import { ErrorCode, NixFormatError } from '../../nix/errors.js';
import {
  DEFAULT_WIRE_LIMITS,
  FramedSink,
  WireBuilder,
  WireReader,
  WireWriter,
  drainFramed,
  encodeBytes,
  encodeFramed,
  encodeString,
  encodeU64,
  readFramed,
} from '../../nix/wire/index.js';
import { splitAt } from '../support/fixtures.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

async function rejectsWith(p: Promise<unknown>, code: string): Promise<NixFormatError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(NixFormatError);
    expect((err as NixFormatError).code).toBe(code);
    return err as NixFormatError;
  }
  throw new Error(`expected ${code}`);
}

/** A source that yields the given chunks and fails the test if pulled beyond them. */
function* strictSource(chunks: Uint8Array[]): Generator<Uint8Array> {
  yield* chunks;
  throw new Error('source pulled beyond the bytes the reader needed');
}

/** One message exercising every primitive. */
function sample(): Uint8Array {
  return new WireBuilder()
    .u64(0x0123456789abcdefn)
    .bool(true)
    .u64(7) // read as bool: any non-zero is true
    .u64(0)
    .string('')
    .string('a')
    .string('1234567')
    .string('12345678')
    .string('123456789')
    .string('2.8.0')
    .strings(['x', 'yy', ''])
    .stringMap(
      new Map([
        ['k', 'v'],
        ['key2', 'value two'],
      ]),
    )
    .u64(Number.MAX_SAFE_INTEGER)
    .finish();
}

async function decodeSample(r: WireReader): Promise<unknown[]> {
  return [
    await r.readU64(),
    await r.readBool(),
    await r.readBool(),
    await r.readBool(),
    await r.readString(),
    await r.readString(),
    await r.readString(),
    await r.readString(),
    Buffer.from(await r.readBytes()).toString(),
    await r.readString(),
    await r.readStringList(),
    await r.readStringMap(),
    await r.readInt(),
    await r.atEof(),
    r.offset,
  ];
}

describe('WireReader', () => {
  it('decodes the 2.8 daemon version string (store-ping bytes)', async () => {
    const r = new WireReader([hex('05000000 00000000 322e382e 30000000')]);
    expect(await r.readString()).toBe('2.8.0');
    expect(await r.atEof()).toBe(true);
  });

  it('gives the same result for every split of the input (one cut, two cuts, byte by byte)', async () => {
    const data = sample();
    const expected = await decodeSample(new WireReader([data]));
    expect(expected.at(-2)).toBe(true);
    expect(expected.at(-1)).toBe(data.length);
    for (let i = 0; i <= data.length; i++) {
      expect(await decodeSample(new WireReader(splitAt(data, i)))).toEqual(expected);
      for (let j = i + 1; j < data.length; j += 5) {
        expect(await decodeSample(new WireReader(splitAt(data, i, j)))).toEqual(expected);
      }
    }
    const bytes = [...data].map((b) => Uint8Array.of(b));
    expect(await decodeSample(new WireReader(bytes))).toEqual(expected);
  });

  it('reads an async source (a Node stream)', async () => {
    const s = new PassThrough();
    s.end(Buffer.from(sample()));
    expect(await decodeSample(new WireReader(s))).toEqual(await decodeSample(new WireReader([sample()])));
  });

  it('rejects a length of 2^62 before reading or allocating anything', async () => {
    const r = new WireReader(strictSource([encodeU64(1n << 62n)]));
    const err = await rejectsWith(r.readBytes(), ErrorCode.WIRE_LENGTH_LIMIT);
    expect(err.context).toMatchObject({ offset: 0, limit: DEFAULT_WIRE_LIMITS.maxString, length: 1n << 62n });
  });

  it('enforces string, list, map and integer limits', async () => {
    const limits = { maxString: 4, maxListCount: 2 };
    await rejectsWith(
      new WireReader([encodeString('hello')], limits).readString(),
      ErrorCode.WIRE_LENGTH_LIMIT,
    );
    expect(await new WireReader([encodeString('hell')], limits).readString()).toBe('hell');
    await rejectsWith(
      new WireReader(strictSource([encodeU64(3)]), limits).readStringList(),
      ErrorCode.WIRE_LENGTH_LIMIT,
    );
    await rejectsWith(
      new WireReader(strictSource([encodeU64(3)]), limits).readStringMap(),
      ErrorCode.WIRE_LENGTH_LIMIT,
    );
    await rejectsWith(new WireReader([encodeU64(256)]).readInt(255), ErrorCode.WIRE_INTEGER_RANGE);
    await rejectsWith(new WireReader([encodeU64(1n << 53n)]).readInt(), ErrorCode.WIRE_INTEGER_RANGE);
    expect(await new WireReader([encodeU64(255)]).readInt(255)).toBe(255);
  });

  it('rejects non-zero padding', async () => {
    const bytes = Uint8Array.from(encodeString('abc'));
    bytes[8 + 5] = 1;
    const err = await rejectsWith(new WireReader([bytes]).readString(), ErrorCode.WIRE_NONZERO_PADDING);
    expect(err.context['offset']).toBe(11);
  });

  it('rejects invalid UTF-8 in strict strings and accepts it as bytes or lossy text', async () => {
    const bad = encodeBytes(Uint8Array.of(0xff, 0x41));
    await rejectsWith(new WireReader([bad]).readString(), ErrorCode.WIRE_BAD_UTF8);
    expect(await new WireReader([bad]).readBytes()).toEqual(Uint8Array.of(0xff, 0x41));
    expect(await new WireReader([bad]).readString(100, 'log', true)).toBe('\ufffdA');
  });

  it('reports EOF mid-message but a clean EOF at a boundary', async () => {
    const r = new WireReader([encodeU64(5), encodeString('ab')]);
    expect(await r.atEof()).toBe(false);
    expect(await r.readU64()).toBe(5n);
    expect(await r.readString()).toBe('ab');
    expect(await r.atEof()).toBe(true);
    expect(await r.peekEof()).toBe(true);
    const err = await rejectsWith(
      new WireReader([hex('0500000000')]).readU64('x'),
      ErrorCode.WIRE_UNEXPECTED_EOF,
    );
    expect(err.context).toMatchObject({ offset: 5, needed: 3, field: 'x' });
    await rejectsWith(
      new WireReader([encodeU64(10), hex('6162')]).readString(),
      ErrorCode.WIRE_UNEXPECTED_EOF,
    );
    await rejectsWith(new WireReader([]).readChunk(10), ErrorCode.WIRE_UNEXPECTED_EOF);
  });

  it('pulls a source chunk only when the buffered bytes are used up', async () => {
    let pulls = 0;
    async function* counted(): AsyncGenerator<Uint8Array> {
      for (const c of [encodeU64(1), encodeU64(2), encodeU64(3)]) {
        pulls++;
        yield await Promise.resolve(c);
      }
    }
    const r = new WireReader(counted());
    expect(await r.readU64()).toBe(1n);
    expect(pulls).toBe(1);
    expect(await r.readU64()).toBe(2n);
    expect(pulls).toBe(2);
  });

  it('readChunk returns buffered bytes up to max; unread gives bytes back', async () => {
    const r = new WireReader([hex('0102030405'), hex('0607')]);
    const a = await r.readChunk(3);
    expect([...a]).toEqual([1, 2, 3]);
    const b = await r.readChunk(100);
    expect([...b]).toEqual([4, 5]);
    expect(r.offset).toBe(5);
    r.unread(b.subarray(1)); // the tail of the current chunk: no copy
    expect(r.offset).toBe(4);
    r.unread(Uint8Array.of(9)); // foreign bytes
    expect(r.offset).toBe(3);
    expect([...(await r.readExact(4))]).toEqual([9, 5, 6, 7]);
    expect(await r.atEof()).toBe(true);
  });

  it('skips empty source chunks', async () => {
    const r = new WireReader([new Uint8Array(0), encodeU64(42), new Uint8Array(0)]);
    expect(await r.readU64()).toBe(42n);
    expect(await r.atEof()).toBe(true);
  });
});

describe('encoders', () => {
  it('encode u64, bool, strings with padding', () => {
    expect(encodeU64(0x122)).toEqual(hex('2201000000000000'));
    expect(encodeString('2.8.0')).toEqual(hex('0500000000000000 322e382e30000000'));
    expect(encodeString('')).toEqual(hex('0000000000000000'));
    expect(encodeString('12345678').length).toBe(16);
    expect(() => encodeU64(-1)).toThrow(NixFormatError);
    expect(() => encodeU64(1.5)).toThrow(NixFormatError);
    expect(() => encodeU64(1n << 64n)).toThrow(NixFormatError);
    expect(encodeU64((1n << 64n) - 1n)).toEqual(hex('ffffffffffffffff'));
  });

  it('WireBuilder grows past its initial size', () => {
    const b = new WireBuilder(8);
    for (let i = 0; i < 100; i++) b.string('x'.repeat(i));
    const r = new WireReader([b.finish()]);
    return (async () => {
      for (let i = 0; i < 100; i++) expect(await r.readString()).toBe('x'.repeat(i));
    })();
  });
});

describe('framed streams', () => {
  const payload = Uint8Array.from({ length: 100 }, (_, i) => i);
  const framed = encodeFramed([payload.subarray(0, 30), payload.subarray(30, 31), payload.subarray(31)]);
  const after = encodeU64(0xabcdn);
  const whole = Buffer.concat([framed, after]);

  it('yields the payload, frame by frame, at every split of the input', async () => {
    for (let i = 0; i <= whole.length; i++) {
      const r = new WireReader(splitAt(whole, i));
      const src = readFramed(r);
      const pieces: Uint8Array[] = [];
      for await (const c of src) pieces.push(Buffer.from(c));
      expect(Buffer.concat(pieces)).toEqual(Buffer.from(payload));
      expect(src.done).toBe(true);
      expect(src.frames).toBe(3);
      expect(await r.readU64()).toBe(0xabcdn);
    }
  });

  it('drains to the terminator after the consumer stopped early', async () => {
    const r = new WireReader(splitAt(whole, 12, 50));
    const src = readFramed(r);
    let first = 0;
    for await (const c of src) {
      first = c.length;
      break;
    }
    expect(first).toBeGreaterThan(0);
    expect(src.done).toBe(false);
    const skipped = await drainFramed(src);
    expect(skipped).toBe(100 - first);
    expect(src.done).toBe(true);
    expect(src.payloadBytes).toBe(100);
    expect(await r.readU64()).toBe(0xabcdn);
  });

  it('rejects a frame over the limit without reading it', async () => {
    const r = new WireReader(strictSource([encodeU64(1n << 40n)]), { maxFrame: 1024 });
    await rejectsWith(readFramed(r).next(), ErrorCode.WIRE_LENGTH_LIMIT);
  });

  it('reports EOF inside a frame', async () => {
    const r = new WireReader([framed.subarray(0, 20)]);
    await rejectsWith(readFramed(r).drain(), ErrorCode.WIRE_UNEXPECTED_EOF);
  });

  it('FramedSink writes frames of at most frameSize and a terminator', async () => {
    const out = new PassThrough();
    const sink = new FramedSink(new WireWriter(out), 40);
    await sink.write(payload);
    await sink.end();
    out.end();
    const r = new WireReader(out);
    const lens: number[] = [];
    for (;;) {
      const n = await r.readInt();
      if (n === 0) break;
      lens.push(n);
      await r.readExact(n);
    }
    expect(lens).toEqual([40, 40, 20]);
    expect(await r.atEof()).toBe(true);
  });
});

describe('WireWriter', () => {
  it('awaits drain under back-pressure and delivers all bytes in order', async () => {
    const received: Buffer[] = [];
    const slow = new Writable({
      highWaterMark: 16,
      write(chunk: Buffer, _enc, cb) {
        received.push(chunk);
        setTimeout(cb, 1);
      },
    });
    const w = new WireWriter(slow);
    const expected: Buffer[] = [];
    for (let i = 0; i < 50; i++) {
      const chunk = Buffer.alloc(10, i);
      expected.push(chunk);
      await w.write(chunk);
      // after an awaited write the stream is never far above its high-water mark
      expect(slow.writableLength).toBeLessThanOrEqual(16 + 10);
    }
    await w.end();
    expect(w.drainWaits).toBeGreaterThan(0);
    expect(w.bytesWritten).toBe(500);
    expect(Buffer.concat(received)).toEqual(Buffer.concat(expected));
  });

  it('rejects with WIRE_CLOSED when the stream fails while waiting for drain', async () => {
    const stuck = new Writable({ highWaterMark: 4, write: () => undefined });
    stuck.on('error', () => undefined);
    const w = new WireWriter(stuck);
    const p = w.write(Buffer.alloc(8));
    stuck.destroy(new Error('peer went away'));
    await rejectsWith(p, ErrorCode.WIRE_CLOSED);
    await rejectsWith(w.write(Buffer.alloc(1)), ErrorCode.WIRE_CLOSED);
  });

  it('message() builds and writes one chunk', async () => {
    const out = new PassThrough();
    const w = new WireWriter(out);
    await w.message((b) => b.u64(1).string('hi'));
    out.end();
    const r = new WireReader(out);
    expect(await r.readU64()).toBe(1n);
    expect(await r.readString()).toBe('hi');
  });
});

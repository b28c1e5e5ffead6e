import { ErrorCode, NixFormatError } from '../errors.js';

const utf8 = new TextEncoder();
const U64_MAX = (1n << 64n) - 1n;
const ZEROS = new Uint8Array(8);

function checkU64(n: number | bigint, field?: string): bigint {
  if (typeof n === 'number' && (!Number.isInteger(n) || n < 0 || !Number.isSafeInteger(n))) {
    throw new NixFormatError(ErrorCode.WIRE_INTEGER_RANGE, `cannot encode ${n} as u64`, { field });
  }
  const v = BigInt(n);
  if (v < 0n || v > U64_MAX) {
    throw new NixFormatError(ErrorCode.WIRE_INTEGER_RANGE, `cannot encode ${v} as u64`, { field });
  }
  return v;
}

export function encodeU64(n: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, checkU64(n), true);
  return out;
}

export function encodeBool(b: boolean): Uint8Array {
  return encodeU64(b ? 1 : 0);
}

/** u64 length + bytes + zero padding to 8. */
export function encodeBytes(data: Uint8Array | string): Uint8Array {
  return new WireBuilder().bytes(data).finish();
}

export const encodeString = encodeBytes;

export function encodeStringList(items: Iterable<string>): Uint8Array {
  return new WireBuilder().strings(items).finish();
}

export function encodeStringMap(map: ReadonlyMap<string, string>): Uint8Array {
  return new WireBuilder().stringMap(map).finish();
}

/**
 * Accumulates a small message into one growing buffer (one `write` per message instead
 * of one per field). Not for NARs: stream those.
 */
export class WireBuilder {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;

  constructor(initial = 256) {
    this.#buf = new Uint8Array(initial);
    this.#view = new DataView(this.#buf.buffer);
  }

  get length(): number {
    return this.#len;
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  u64(n: number | bigint, field?: string): this {
    const v = checkU64(n, field);
    this.#reserve(8);
    this.#view.setBigUint64(this.#len, v, true);
    this.#len += 8;
    return this;
  }

  bool(b: boolean): this {
    return this.u64(b ? 1 : 0);
  }

  /** Raw bytes, no length, no padding. */
  raw(data: Uint8Array): this {
    this.#reserve(data.length);
    this.#buf.set(data, this.#len);
    this.#len += data.length;
    return this;
  }

  /** A wire string: u64 length, bytes, zero padding. Strings are encoded as UTF-8. */
  bytes(data: Uint8Array | string): this {
    const b = typeof data === 'string' ? utf8.encode(data) : data;
    this.u64(b.length);
    this.raw(b);
    const pad = (8 - (b.length % 8)) % 8;
    if (pad > 0) this.raw(ZEROS.subarray(0, pad));
    return this;
  }

  string(s: string | Uint8Array): this {
    return this.bytes(s);
  }

  strings(items: Iterable<string>): this {
    const arr = [...items];
    this.u64(arr.length);
    for (const s of arr) this.bytes(s);
    return this;
  }

  stringMap(map: ReadonlyMap<string, string>): this {
    this.u64(map.size);
    for (const [k, v] of map) this.bytes(k).bytes(v);
    return this;
  }

  /** The bytes written so far (a copy-free view). */
  finish(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }
}

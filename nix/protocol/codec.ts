/**
 * Small codec combinators: each message layout is written once as data and gives both
 * the decoder (from a WireReader) and the encoder (into a WireBuilder). Every codec also
 * carries a `shape`, a plain description that tests walk to generate values.
 */
import { ErrorCode, NixFormatError } from '../errors.js';
import type { WireBuilder } from '../wire/encode.js';
import type { WireLimits } from '../wire/limits.js';
import type { WireReader } from '../wire/reader.js';

/** Negotiated protocol state a layout depends on. */
export interface Ctx {
  /** Negotiated minor version (worker 1.x or serve 2.x). */
  readonly minor: number;
  readonly limits: WireLimits;
  /** Negotiated features (worker ≥1.38). */
  readonly features?: ReadonlySet<string>;
}

export type StrKind = 'path' | 'short' | 'long';

export type Shape =
  | { readonly kind: 'u64' }
  | { readonly kind: 'int'; readonly max: number }
  | { readonly kind: 'bool' }
  | { readonly kind: 'str'; readonly size: StrKind }
  | { readonly kind: 'list'; readonly of: Shape }
  | { readonly kind: 'map'; readonly key: Shape; readonly value: Shape }
  | { readonly kind: 'struct'; readonly fields: ReadonlyArray<readonly [string, Shape]> }
  | { readonly kind: 'since'; readonly minor: number; readonly of: Shape; readonly absent: unknown }
  | { readonly kind: 'byVersion'; readonly minor: number; readonly newer: Shape; readonly older: Shape }
  | { readonly kind: 'optional'; readonly of: Shape }
  | { readonly kind: 'atMinor'; readonly minor: number; readonly of: Shape }
  | { readonly kind: 'custom'; readonly name: string };

export interface Codec<T> {
  read(r: WireReader, c: Ctx): Promise<T>;
  write(b: WireBuilder, v: T, c: Ctx): void;
  readonly shape: Shape;
}

export type Infer<C> = C extends Codec<infer T> ? T : never;

export const u64: Codec<bigint> = {
  read: (r) => r.readU64(),
  write: (b, v) => void b.u64(v),
  shape: { kind: 'u64' },
};

/** A u64 read as a number, range-checked. */
export function int(max: number = Number.MAX_SAFE_INTEGER): Codec<number> {
  return {
    read: (r) => r.readInt(max),
    write: (b, v) => void b.u64(v),
    shape: { kind: 'int', max },
  };
}

export const bool: Codec<boolean> = {
  read: (r) => r.readBool(),
  write: (b, v) => void b.bool(v),
  shape: { kind: 'bool' },
};

function strLimit(l: WireLimits, size: StrKind): number {
  return size === 'path' ? l.maxPath : size === 'short' ? l.maxShortString : l.maxString;
}

/** A UTF-8 string with the limit of its kind; `lossy` for log text. */
export function str(size: StrKind = 'long', lossy = false): Codec<string> {
  return {
    read: (r, c) => r.readString(strLimit(c.limits, size), undefined, lossy),
    write: (b, v) => void b.string(v),
    shape: { kind: 'str', size },
  };
}

/** A store path (full path; "" means absent where the layout allows it). */
export const path = str('path');
export const shortStr = str('short');
export const longStr = str('long');

export function list<T>(of: Codec<T>): Codec<T[]> {
  return {
    async read(r, c) {
      const n = await r.readLength(c.limits.maxListCount, 'list count');
      const out: T[] = [];
      for (let i = 0; i < n; i++) out.push(await of.read(r, c));
      return out;
    },
    write(b, v, c) {
      b.u64(v.length);
      for (const x of v) of.write(b, x, c);
    },
    shape: { kind: 'list', of: of.shape },
  };
}

export const paths = list(path);
export const strings = list(shortStr);

export function map<K, V>(key: Codec<K>, value: Codec<V>): Codec<Map<K, V>> {
  return {
    async read(r, c) {
      const n = await r.readLength(c.limits.maxListCount, 'map count');
      const out = new Map<K, V>();
      for (let i = 0; i < n; i++) {
        const k = await key.read(r, c);
        out.set(k, await value.read(r, c));
      }
      return out;
    },
    write(b, v, c) {
      b.u64(v.size);
      for (const [k, x] of v) {
        key.write(b, k, c);
        value.write(b, x, c);
      }
    },
    shape: { kind: 'map', key: key.shape, value: value.shape },
  };
}

type Fields = Record<string, Codec<unknown>>;
export type StructOf<F extends Fields> = { -readonly [K in keyof F]: Infer<F[K]> };

/** Fields in order. */
export function struct<F extends Fields>(fields: F): Codec<StructOf<F>> {
  const entries = Object.entries(fields);
  return {
    async read(r, c) {
      const out: Record<string, unknown> = {};
      for (const [k, f] of entries) out[k] = await f.read(r, c);
      return out as StructOf<F>;
    },
    write(b, v, c) {
      const rec = v as Record<string, unknown>;
      for (const [k, f] of entries) f.write(b, rec[k], c);
    },
    shape: { kind: 'struct', fields: entries.map(([k, f]) => [k, f.shape] as const) },
  };
}

/** A field that exists from minor version `minor` on; below it reads as `absent` and is not written. */
export function since<T>(minor: number, of: Codec<T>, absent: T): Codec<T> {
  return {
    read: (r, c) => (c.minor >= minor ? of.read(r, c) : Promise.resolve(absent)),
    write: (b, v, c) => {
      if (c.minor >= minor) of.write(b, v, c);
    },
    shape: { kind: 'since', minor, of: of.shape, absent },
  };
}

/** Two different layouts, split at minor version `minor`. */
export function byVersion<N, O>(minor: number, newer: Codec<N>, older: Codec<O>): Codec<N | O> {
  return {
    read: (r, c) => (c.minor >= minor ? newer.read(r, c) : older.read(r, c)),
    write: (b, v, c) => (c.minor >= minor ? newer.write(b, v as N, c) : older.write(b, v as O, c)),
    shape: { kind: 'byVersion', minor, newer: newer.shape, older: older.shape },
  };
}

/** `u64` tag 0 (absent → null) or 1 followed by the value; other tags are malformed. */
export function optional<T>(of: Codec<T>): Codec<T | null> {
  return {
    async read(r, c) {
      const at = r.offset;
      const tag = await r.readU64('optional tag');
      if (tag === 0n) return null;
      if (tag !== 1n) throw malformed(`optional tag ${tag} is neither 0 nor 1`, at);
      return of.read(r, c);
    },
    write(b, v, c) {
      if (v === null) b.u64(0);
      else {
        b.u64(1);
        of.write(b, v, c);
      }
    },
    shape: { kind: 'optional', of: of.shape },
  };
}

/** A codec written by hand; tests supply values for it by `name`. */
export function custom<T>(name: string, read: Codec<T>['read'], write: Codec<T>['write']): Codec<T> {
  return { read, write, shape: { kind: 'custom', name } };
}

export const none: Codec<Record<string, never>> = struct({});

export function malformed(message: string, offset?: number, field?: string): NixFormatError {
  return new NixFormatError(ErrorCode.PROTO_MALFORMED, message, { offset, field });
}

/** `bool` flag (any non-zero = present) followed by the value when present; absent → null. */
export function flagged<T>(of: Codec<T>): Codec<T | null> {
  return {
    async read(r, c) {
      return (await r.readBool('present flag')) ? of.read(r, c) : null;
    },
    write(b, v, c) {
      b.bool(v !== null);
      if (v !== null) of.write(b, v, c);
    },
    shape: { kind: 'optional', of: of.shape },
  };
}

/**
 * Byte strings as JS strings. Nix strings are byte strings: a .drv may hold any bytes in
 * its env, and we must round-trip them exactly. We decode UTF-8 and map each byte that is
 * not part of a valid UTF-8 sequence to the lone surrogate U+DC80…U+DCFF (Python's
 * "surrogateescape", PEP 383). Valid UTF-8 never decodes to a lone surrogate, so the
 * mapping is a bijection: `encodeByteString(decodeByteString(b))` equals `b` for every `b`,
 * and ordinary text stays ordinary text for callers.
 */
import { ErrorCode, NixFormatError } from '../errors.js';

// eslint-disable-next-line no-control-regex
const ASCII_RE = /^[\x00-\x7f]*$/;
const SURROGATE_RE = /[\ud800-\udfff]/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes bytes (UTF-8, invalid bytes escaped as U+DC80…U+DCFF). */
export function decodeByteString(bytes: Uint8Array): string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const latin1 = buf.toString('latin1');
  if (ASCII_RE.test(latin1)) return latin1;
  try {
    return utf8.decode(bytes);
  } catch {
    return decodeSlow(bytes);
  }
}

function decodeSlow(b: Uint8Array): string {
  const parts: string[] = [];
  let i = 0;
  const n = b.length;
  while (i < n) {
    const c = b[i] ?? 0;
    let need = 0;
    let cp = 0;
    let min = 0;
    if (c < 0x80) {
      parts.push(String.fromCharCode(c));
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      cp = c & 0x1f;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      cp = c & 0x0f;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      cp = c & 0x07;
      min = 0x10000;
    }
    let ok = need > 0 && i + need < n;
    if (ok) {
      for (let k = 1; k <= need; k++) {
        const cc = b[i + k];
        if (cc === undefined || (cc & 0xc0) !== 0x80) {
          ok = false;
          break;
        }
        cp = (cp << 6) | (cc & 0x3f);
      }
    }
    if (ok && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))) ok = false;
    if (ok) {
      parts.push(String.fromCodePoint(cp));
      i += need + 1;
    } else {
      parts.push(String.fromCharCode(0xdc00 + c));
      i++;
    }
  }
  return parts.join('');
}

/** Encodes a byte string back to bytes; throws on lone surrogates that are not escapes. */
export function encodeByteString(s: string, field = 'string'): Buffer {
  if (!SURROGATE_RE.test(s)) return Buffer.from(s, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const u = s.charCodeAt(i);
    if (u >= 0xd800 && u <= 0xdbff) {
      const lo = s.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        const cp = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        out.push(
          0xf0 | (cp >> 18),
          0x80 | ((cp >> 12) & 0x3f),
          0x80 | ((cp >> 6) & 0x3f),
          0x80 | (cp & 0x3f),
        );
        i++;
        continue;
      }
    }
    if (u >= 0xdc80 && u <= 0xdcff) {
      out.push(u - 0xdc00);
    } else if (u >= 0xd800 && u <= 0xdfff) {
      throw new NixFormatError(
        ErrorCode.DRV_INVALID,
        `${field} contains the lone surrogate U+${u.toString(16).toUpperCase()}, which is no byte`,
        { field, offset: i },
      );
    } else {
      out.push(...Buffer.from(String.fromCharCode(u), 'utf8'));
    }
  }
  return Buffer.from(out);
}

/** Orders byte strings as Nix's std::map<std::string> does: bytewise, unsigned. */
export function compareByteStrings(a: string, b: string): number {
  if (ASCII_RE.test(a) && ASCII_RE.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(encodeByteString(a), encodeByteString(b));
}

/**
 * The stderr / logging channel (reference §4): messages the server sends between reading
 * a request and replying, ending with STDERR_LAST (reply follows) or STDERR_ERROR.
 */
import { ErrorCode, NixFormatError } from '../errors.js';
import { WireBuilder } from '../wire/encode.js';
import type { WireReader } from '../wire/reader.js';
import { type Ctx, malformed } from './codec.js';
import { Since } from './versions.js';
import { Stderr } from './worker.js';

/** Activity / result field: kind 0 = integer, kind 1 = string. */
export type ActivityField = bigint | string;

/** STDERR_ERROR payload. <1.26 carries only message + exitStatus; ≥1.26 level, name, traces. */
export interface StderrError {
  level: number;
  name: string;
  message: string;
  traces: string[];
  exitStatus: number;
}

export type StderrMessage =
  | { type: 'next'; text: string }
  | { type: 'read'; maxLen: number }
  | { type: 'write'; data: Uint8Array }
  | { type: 'last' }
  | ({ type: 'error' } & StderrError)
  | {
      type: 'startActivity';
      id: bigint;
      level: number;
      activityType: number;
      text: string;
      fields: ActivityField[];
      parent: bigint;
    }
  | { type: 'stopActivity'; id: bigint }
  | { type: 'result'; id: bigint; resultType: number; fields: ActivityField[] };

async function readFields(r: WireReader): Promise<ActivityField[]> {
  const n = await r.readLength(r.limits.maxListCount, 'fields');
  const out: ActivityField[] = [];
  for (let i = 0; i < n; i++) {
    const at = r.offset;
    const kind = await r.readU64('field kind');
    if (kind === 0n) out.push(await r.readU64('field'));
    else if (kind === 1n) out.push(await r.readString(r.limits.maxString, 'field', true));
    else throw malformed(`unknown activity field kind ${kind}`, at, 'field kind');
  }
  return out;
}

function writeFields(b: WireBuilder, fields: readonly ActivityField[]): void {
  b.u64(fields.length);
  for (const f of fields) {
    if (typeof f === 'bigint') b.u64(0).u64(f);
    else b.u64(1).string(f);
  }
}

async function readError(r: WireReader, c: Ctx): Promise<StderrError> {
  const L = r.limits;
  if (c.minor < Since.structuredError) {
    const message = await r.readString(L.maxString, 'error message', true);
    const exitStatus = await r.readInt(0xffffffff, 'exit status');
    return { level: 0, name: 'Error', message, traces: [], exitStatus };
  }
  const at = r.offset;
  const type = await r.readString(L.maxShortString, 'error type');
  if (type !== 'Error') throw malformed(`unsupported error type "${type}"`, at, 'error type');
  const level = await r.readInt(0xff, 'error level');
  const name = await r.readString(L.maxShortString, 'error name');
  const message = await r.readString(L.maxString, 'error message', true);
  const posAt = r.offset;
  if ((await r.readU64('havePos')) !== 0n)
    throw malformed('error positions are not supported', posAt, 'havePos');
  const n = await r.readLength(L.maxListCount, 'traces');
  const traces: string[] = [];
  for (let i = 0; i < n; i++) {
    const tAt = r.offset;
    if ((await r.readU64('havePos')) !== 0n)
      throw malformed('trace positions are not supported', tAt, 'havePos');
    traces.push(await r.readString(L.maxString, 'trace', true));
  }
  return { level, name, message, traces, exitStatus: 1 };
}

function writeError(b: WireBuilder, e: StderrError, c: Ctx): void {
  if (c.minor < Since.structuredError) {
    b.string(e.message).u64(e.exitStatus);
    return;
  }
  b.string('Error').u64(e.level).string(e.name).string(e.message).u64(0).u64(e.traces.length);
  for (const t of e.traces) b.u64(0).string(t);
}

/** Reads one stderr message (code + payload). Unknown codes are PROTO_UNKNOWN_STDERR. */
export async function readStderrMessage(r: WireReader, c: Ctx): Promise<StderrMessage> {
  const at = r.offset;
  const code = await r.readU64('stderr code');
  const L = r.limits;
  switch (code) {
    case BigInt(Stderr.NEXT):
      return { type: 'next', text: await r.readString(L.maxString, 'log text', true) };
    case BigInt(Stderr.READ):
      return { type: 'read', maxLen: await r.readInt(Number.MAX_SAFE_INTEGER, 'maxLen') };
    case BigInt(Stderr.WRITE):
      return { type: 'write', data: await r.readBytes(L.maxString, 'data') };
    case BigInt(Stderr.LAST):
      return { type: 'last' };
    case BigInt(Stderr.ERROR):
      return { type: 'error', ...(await readError(r, c)) };
    case BigInt(Stderr.START_ACTIVITY): {
      const id = await r.readU64('activity id');
      const level = await r.readInt(0xff, 'level');
      const activityType = await r.readInt(0xffff, 'activity type');
      const text = await r.readString(L.maxString, 'activity text', true);
      const fields = await readFields(r);
      const parent = await r.readU64('parent id');
      return { type: 'startActivity', id, level, activityType, text, fields, parent };
    }
    case BigInt(Stderr.STOP_ACTIVITY):
      return { type: 'stopActivity', id: await r.readU64('activity id') };
    case BigInt(Stderr.RESULT): {
      const id = await r.readU64('activity id');
      const resultType = await r.readInt(0xffff, 'result type');
      return { type: 'result', id, resultType, fields: await readFields(r) };
    }
    default:
      throw new NixFormatError(
        ErrorCode.PROTO_UNKNOWN_STDERR,
        `unknown stderr message 0x${code.toString(16)}`,
        {
          offset: at,
          value: code,
        },
      );
  }
}

/**
 * Encodes a stderr message for a client at `c.minor`. Clients < 1.20 have no activities:
 * a START becomes a NEXT with `text + "..."` (as the 2.8 daemon does), STOP and RESULT
 * are dropped (empty output).
 */
export function writeStderrMessage(b: WireBuilder, m: StderrMessage, c: Ctx): void {
  switch (m.type) {
    case 'next':
      b.u64(Stderr.NEXT).string(m.text);
      return;
    case 'read':
      b.u64(Stderr.READ).u64(m.maxLen);
      return;
    case 'write':
      b.u64(Stderr.WRITE).bytes(m.data);
      return;
    case 'last':
      b.u64(Stderr.LAST);
      return;
    case 'error':
      b.u64(Stderr.ERROR);
      writeError(b, m, c);
      return;
    case 'startActivity':
      if (c.minor < Since.activities) {
        if (m.text !== '') b.u64(Stderr.NEXT).string(`${m.text}...`);
        return;
      }
      b.u64(Stderr.START_ACTIVITY).u64(m.id).u64(m.level).u64(m.activityType).string(m.text);
      writeFields(b, m.fields);
      b.u64(m.parent);
      return;
    case 'stopActivity':
      if (c.minor >= Since.activities) b.u64(Stderr.STOP_ACTIVITY).u64(m.id);
      return;
    case 'result':
      if (c.minor < Since.activities) return;
      b.u64(Stderr.RESULT).u64(m.id).u64(m.resultType);
      writeFields(b, m.fields);
      return;
  }
}

export function encodeStderrMessage(m: StderrMessage, c: Ctx): Uint8Array {
  const b = new WireBuilder();
  writeStderrMessage(b, m, c);
  return b.finish();
}

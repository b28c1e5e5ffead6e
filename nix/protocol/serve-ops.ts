/**
 * Serve protocol commands and replies (reference §8), one table each. Every reply comes
 * after the work is done; there is no stderr channel.
 */
import { ErrorCode, NixFormatError } from '../errors.js';
import { WireBuilder } from '../wire/encode.js';
import type { WireReader } from '../wire/reader.js';
import {
  type Codec,
  type Ctx,
  type Infer,
  bool,
  custom,
  int,
  list,
  longStr,
  none,
  path,
  paths,
  shortStr,
  strings,
  struct,
} from './codec.js';
import { BasicDerivation, ServeBuildOptions, ServeBuildResult, ServePathInfo } from './types.js';
import { ServeCommand, type ServeCommandName, serveCommandName } from './serve.js';

export const ServeRequests = {
  QueryValidPaths: struct({ lock: bool, substitute: bool, paths }),
  QueryPathInfos: struct({ paths }),
  DumpStorePath: struct({ path }),
  /** The export stream (§9.3) follows. */
  ImportPaths: none,
  ExportPaths: struct({ sign: int(), paths }),
  BuildPaths: struct({ paths: list(longStr), options: ServeBuildOptions }),
  QueryClosure: struct({ includeOutputs: bool, paths }),
  BuildDerivation: struct({ drvPath: path, drv: BasicDerivation, options: ServeBuildOptions }),
  /** Exactly narSize bytes of raw NAR follow. */
  AddToStoreNar: struct({
    path,
    deriver: path,
    narHash: shortStr,
    references: paths,
    registrationTime: int(),
    narSize: int(),
    ultimate: bool,
    sigs: strings,
    ca: shortStr,
  }),
} satisfies Record<ServeCommandName, Codec<unknown>>;

export type ServePathInfoEntry = { path: string } & ServePathInfo;

/** QueryPathInfos reply: entries for valid paths only, terminated by an empty path. */
const pathInfosReply = custom<ServePathInfoEntry[]>(
  'servePathInfos',
  async (r, c) => {
    const out: ServePathInfoEntry[] = [];
    for (;;) {
      const p = await r.readString(c.limits.maxPath, 'path');
      if (p === '') return out;
      if (out.length >= c.limits.maxListCount) {
        throw new NixFormatError(ErrorCode.WIRE_LENGTH_LIMIT, 'too many path infos', {
          offset: r.offset,
          limit: c.limits.maxListCount,
        });
      }
      out.push({ path: p, ...(await ServePathInfo.read(r, c)) });
    }
  },
  (b, v, c) => {
    for (const { path: p, ...info } of v) {
      b.string(p);
      ServePathInfo.write(b, info, c);
    }
    b.string('');
  },
);

/** BuildPaths reply: `u64 status`, and `str errorMsg` only when status ≠ 0. */
const buildPathsReply = custom<{ status: number; errorMsg: string }>(
  'serveBuildPathsReply',
  async (r, c) => {
    const status = await r.readInt();
    const errorMsg = status !== 0 ? await r.readString(c.limits.maxString, 'errorMsg', true) : '';
    return { status, errorMsg };
  },
  (b, v) => {
    b.u64(v.status);
    if (v.status !== 0) b.string(v.errorMsg);
  },
);

export const ServeReplies = {
  QueryValidPaths: paths,
  QueryPathInfos: pathInfosReply,
  /** The raw NAR is the whole reply (replyPayload = 'nar'). */
  DumpStorePath: none,
  ImportPaths: int(),
  /** The export stream is the whole reply. */
  ExportPaths: none,
  BuildPaths: buildPathsReply,
  QueryClosure: paths,
  BuildDerivation: ServeBuildResult,
  AddToStoreNar: int(),
} satisfies Record<ServeCommandName, Codec<unknown>>;

export type ServeRequestArgs<K extends ServeCommandName> = Infer<(typeof ServeRequests)[K]>;
export type ServeReply<K extends ServeCommandName> = Infer<(typeof ServeReplies)[K]>;
export type ServeRequest = {
  [K in ServeCommandName]: { cmd: K; args: ServeRequestArgs<K> };
}[ServeCommandName];

/** What follows a serve command on the client → server stream. */
export function serveRequestPayload(cmd: ServeCommandName): 'none' | 'nar' | 'export' {
  return cmd === 'AddToStoreNar' ? 'nar' : cmd === 'ImportPaths' ? 'export' : 'none';
}

/** What the serve reply consists of besides its codec. */
export function serveReplyPayload(cmd: ServeCommandName): 'none' | 'nar' | 'export' {
  return cmd === 'DumpStorePath' ? 'nar' : cmd === 'ExportPaths' ? 'export' : 'none';
}

export async function readServeRequest(r: WireReader, c: Ctx): Promise<ServeRequest> {
  const at = r.offset;
  const code = await r.readU64('command');
  const name = code <= 0xffffn ? serveCommandName(Number(code)) : undefined;
  if (name === undefined) {
    throw new NixFormatError(ErrorCode.PROTO_UNKNOWN_OP, `unknown serve command ${code}`, {
      offset: at,
      value: code,
    });
  }
  const args = await (ServeRequests[name] as Codec<unknown>).read(r, c);
  return { cmd: name, args } as ServeRequest;
}

export function encodeServeRequest(req: ServeRequest, c: Ctx): Uint8Array {
  const b = new WireBuilder();
  b.u64(ServeCommand[req.cmd]);
  (ServeRequests[req.cmd] as Codec<unknown>).write(b, req.args, c);
  return b.finish();
}

export function readServeReply<K extends ServeCommandName>(
  r: WireReader,
  cmd: K,
  c: Ctx,
): Promise<ServeReply<K>> {
  return (ServeReplies[cmd] as Codec<ServeReply<K>>).read(r, c);
}

export function encodeServeReply<K extends ServeCommandName>(
  cmd: K,
  reply: ServeReply<K>,
  c: Ctx,
): Uint8Array {
  const b = new WireBuilder();
  (ServeReplies[cmd] as Codec<ServeReply<K>>).write(b, reply, c);
  return b.finish();
}

/**
 * Reading both directions of a recorded (or replayed) session at message level: the
 * handshakes and the stderr channel, shared by the fixture decoder and the replay tests.
 */
import type { Ctx } from '../../nix/protocol/codec.js';
import {
  readFeatures,
  readServeClientHello,
  readServeServerHello,
  readWorkerClientMagic,
  readWorkerClientOptions,
  readWorkerClientVersion,
  readWorkerServerHello,
  readWorkerServerInfo,
  type WorkerServerInfo,
} from '../../nix/protocol/handshake.js';
import { readStderrMessage, type StderrMessage } from '../../nix/protocol/stderr.js';
import { minorOf, Since } from '../../nix/protocol/versions.js';
import { DEFAULT_WIRE_LIMITS } from '../../nix/wire/limits.js';
import type { WireReader } from '../../nix/wire/reader.js';

/** Bytes left after the last message (0 when every byte was accounted for). */
export async function leftover(r: WireReader): Promise<number> {
  let n = 0;
  while (!(await r.atEof())) n += (await r.readChunk(1 << 20)).length;
  return n;
}

/** Stderr messages up to and including STDERR_LAST or STDERR_ERROR. */
export async function readStderrUntilEnd(s2c: WireReader, ctx: Ctx): Promise<StderrMessage[]> {
  const out: StderrMessage[] = [];
  for (;;) {
    const m = await readStderrMessage(s2c, ctx);
    out.push(m);
    if (m.type === 'last' || m.type === 'error') return out;
  }
}

export interface WorkerHandshake {
  readonly version: number;
  readonly ctx: Ctx;
  readonly server: WorkerServerInfo;
  /** The startup stderr messages, ending with LAST (or ERROR). */
  readonly startup: StderrMessage[];
}

/** Both sides of the worker handshake (reference §3). */
export async function readWorkerHandshake(c2s: WireReader, s2c: WireReader): Promise<WorkerHandshake> {
  await readWorkerClientMagic(c2s);
  const serverVersion = await readWorkerServerHello(s2c);
  const clientVersion = await readWorkerClientVersion(c2s);
  const version = Math.min(clientVersion, serverVersion);
  const ctx: Ctx = { minor: minorOf(version), limits: DEFAULT_WIRE_LIMITS };
  if (ctx.minor >= Since.features) {
    await readFeatures(c2s);
    await readFeatures(s2c);
  }
  await readWorkerClientOptions(c2s, ctx.minor);
  const server = await readWorkerServerInfo(s2c, ctx.minor);
  const startup = await readStderrUntilEnd(s2c, ctx);
  return { version, ctx, server, startup };
}

/** Both sides of the serve handshake (reference §8). */
export async function readServeHandshake(
  c2s: WireReader,
  s2c: WireReader,
): Promise<{ version: number; ctx: Ctx }> {
  const clientVersion = await readServeClientHello(c2s);
  const serverVersion = await readServeServerHello(s2c);
  const version = Math.min(clientVersion, serverVersion);
  return { version, ctx: { minor: minorOf(version), limits: DEFAULT_WIRE_LIMITS } };
}

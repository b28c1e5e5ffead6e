/**
 * Handshakes (reference §3 worker, §8 serve), step by step in wire order so that a server
 * can interleave them with its writes:
 *
 * worker: C→S magic1 · S→C magic2+version · C→S version · (≥1.38 C→S features, S→C features)
 *         · C→S cpuAffinity (≥1.14), reserveSpace (≥1.11) · S→C daemonVersion (≥1.33),
 *         trusted (≥1.35) · S→C stderr messages up to STDERR_LAST (see stderr.ts).
 * serve:  C→S magic1+version · S→C magic2+version.
 */
import { ErrorCode, NixFormatError } from '../errors.js';
import { WireBuilder } from '../wire/encode.js';
import type { WireReader } from '../wire/reader.js';
import { SERVE_MAGIC_1, SERVE_MAGIC_2 } from './serve.js';
import { Since, majorOf, minorOf, protocolVersion } from './versions.js';
import { WORKER_MAGIC_1, WORKER_MAGIC_2 } from './worker.js';

async function expectMagic(r: WireReader, magic: number, name: string): Promise<void> {
  const at = r.offset;
  const v = await r.readU64(name);
  if (v !== BigInt(magic)) {
    throw new NixFormatError(ErrorCode.PROTO_BAD_MAGIC, `bad ${name}: 0x${v.toString(16)}`, {
      offset: at,
      field: name,
      value: v,
    });
  }
}

async function readVersion(r: WireReader, field: string): Promise<number> {
  const at = r.offset;
  const v = await r.readU64(field);
  if (v > 0xffffn) {
    throw new NixFormatError(
      ErrorCode.PROTO_UNSUPPORTED_VERSION,
      `invalid protocol version 0x${v.toString(16)}`,
      {
        offset: at,
        field,
        value: v,
      },
    );
  }
  return Number(v);
}

/**
 * The negotiated version `min(client, server)`; throws PROTO_UNSUPPORTED_VERSION if the
 * majors differ or the result is below `minMinor`.
 */
export function negotiateVersion(client: number, server: number, minMinor: number): number {
  const v = Math.min(client, server);
  if (majorOf(client) !== majorOf(server) || minorOf(v) < minMinor) {
    throw new NixFormatError(
      ErrorCode.PROTO_UNSUPPORTED_VERSION,
      `unsupported protocol version ${majorOf(client)}.${minorOf(client)} (server ${majorOf(server)}.${minorOf(server)})`,
      { field: 'version', value: client, limit: minMinor },
    );
  }
  return v;
}

// ---- worker ----------------------------------------------------------------

export function readWorkerClientMagic(r: WireReader): Promise<void> {
  return expectMagic(r, WORKER_MAGIC_1, 'WORKER_MAGIC_1');
}

export function encodeWorkerClientMagic(): Uint8Array {
  return new WireBuilder(8).u64(WORKER_MAGIC_1).finish();
}

export function encodeWorkerServerHello(version: number): Uint8Array {
  return new WireBuilder(16).u64(WORKER_MAGIC_2).u64(version).finish();
}

/** Client side: magic2 + server version. */
export async function readWorkerServerHello(r: WireReader): Promise<number> {
  await expectMagic(r, WORKER_MAGIC_2, 'WORKER_MAGIC_2');
  return readVersion(r, 'server version');
}

export function readWorkerClientVersion(r: WireReader): Promise<number> {
  return readVersion(r, 'client version');
}

export function encodeWorkerClientVersion(version: number): Uint8Array {
  return new WireBuilder(8).u64(version).finish();
}

/** ≥1.38 feature list (either direction). */
export function readFeatures(r: WireReader): Promise<string[]> {
  return r.readStringList(r.limits.maxShortString, r.limits.maxListCount, 'features');
}

export function encodeFeatures(features: Iterable<string>): Uint8Array {
  return new WireBuilder().strings(features).finish();
}

export interface WorkerClientOptions {
  /** null = no affinity (flag 0); obsolete, clients send 0. */
  cpuAffinity: number | null;
  /** Obsolete, clients send 0. */
  reserveSpace: boolean;
}

export async function readWorkerClientOptions(r: WireReader, minor: number): Promise<WorkerClientOptions> {
  let cpuAffinity: number | null = null;
  let reserveSpace = false;
  if (minor >= Since.cpuAffinity && (await r.readBool('cpuAffinity flag'))) {
    cpuAffinity = await r.readInt(Number.MAX_SAFE_INTEGER, 'cpuAffinity');
  }
  if (minor >= Since.reserveSpace) reserveSpace = await r.readBool('reserveSpace');
  return { cpuAffinity, reserveSpace };
}

export function encodeWorkerClientOptions(minor: number, o: WorkerClientOptions): Uint8Array {
  const b = new WireBuilder(24);
  if (minor >= Since.cpuAffinity) {
    if (o.cpuAffinity === null) b.u64(0);
    else b.u64(1).u64(o.cpuAffinity);
  }
  if (minor >= Since.reserveSpace) b.bool(o.reserveSpace);
  return b.finish();
}

export interface WorkerServerInfo {
  /** ≥1.33; null below. */
  daemonVersion: string | null;
  /** ≥1.35: TrustedFlag (0 unknown, 1 trusted, 2 not trusted); null below. */
  trusted: number | null;
}

export async function readWorkerServerInfo(r: WireReader, minor: number): Promise<WorkerServerInfo> {
  const daemonVersion =
    minor >= Since.daemonNixVersion ? await r.readString(r.limits.maxShortString, 'daemon version') : null;
  const trusted = minor >= Since.trustedFlag ? await r.readInt(2, 'trusted') : null;
  return { daemonVersion, trusted };
}

export function encodeWorkerServerInfo(minor: number, info: WorkerServerInfo): Uint8Array {
  const b = new WireBuilder(64);
  if (minor >= Since.daemonNixVersion) b.string(info.daemonVersion ?? '');
  if (minor >= Since.trustedFlag) b.u64(info.trusted ?? 0);
  return b.finish();
}

// ---- serve -----------------------------------------------------------------

export async function readServeClientHello(r: WireReader): Promise<number> {
  await expectMagic(r, SERVE_MAGIC_1, 'SERVE_MAGIC_1');
  return readVersion(r, 'client version');
}

export function encodeServeClientHello(version: number): Uint8Array {
  return new WireBuilder(16).u64(SERVE_MAGIC_1).u64(version).finish();
}

export async function readServeServerHello(r: WireReader): Promise<number> {
  await expectMagic(r, SERVE_MAGIC_2, 'SERVE_MAGIC_2');
  return readVersion(r, 'server version');
}

export function encodeServeServerHello(version: number): Uint8Array {
  return new WireBuilder(16).u64(SERVE_MAGIC_2).u64(version).finish();
}

export { protocolVersion };

/**
 * The export format (reference §9.3), carried by worker ImportPaths/ExportPath (obsolete)
 * and serve ImportPaths/ExportPaths: repeated `u64 1`, NAR, `u64 "NIXE"`, `str path`,
 * `paths references`, `str deriver`, `u64 hasSig` (+ `str sig`); ended by `u64 0`.
 * The NAR comes before the metadata, so it is streamed to `onNar` as it is parsed.
 */
import { WireBuilder } from '../wire/encode.js';
import type { WireReader } from '../wire/reader.js';
import { type Ctx, malformed, paths } from './codec.js';
import { type NarFromWireOptions, readNarFromWire } from './nar-stream.js';

export const EXPORT_MAGIC = 0x4558494e; // "NIXE"

export interface ExportEntry {
  narSize: number;
  path: string;
  references: string[];
  /** "" = none. */
  deriver: string;
  /** Legacy signature (never produced by current Nix), null if absent. */
  signature: string | null;
}

/** Reads one entry, or null at the end marker. `onNar` receives the NAR bytes in order. */
export async function readExportEntry(
  r: WireReader,
  c: Ctx,
  onNar?: (chunk: Uint8Array) => void | Promise<void>,
  narOptions?: NarFromWireOptions,
): Promise<ExportEntry | null> {
  const at = r.offset;
  const more = await r.readU64('export marker');
  if (more === 0n) return null;
  if (more !== 1n) throw malformed(`bad export marker ${more}`, at, 'export marker');
  let narSize = 0;
  for await (const chunk of readNarFromWire(r, narOptions)) {
    narSize += chunk.length;
    if (onNar !== undefined) await onNar(chunk);
  }
  const magicAt = r.offset;
  if ((await r.readU64('export magic')) !== BigInt(EXPORT_MAGIC)) {
    throw malformed('missing NIXE after an exported NAR', magicAt, 'export magic');
  }
  const path = await r.readString(c.limits.maxPath, 'path');
  const references = await paths.read(r, c);
  const deriver = await r.readString(c.limits.maxPath, 'deriver');
  const sigAt = r.offset;
  const hasSig = await r.readU64('hasSignature');
  if (hasSig > 1n) throw malformed(`bad signature flag ${hasSig}`, sigAt, 'hasSignature');
  const signature = hasSig === 1n ? await r.readString(c.limits.maxShortString, 'signature') : null;
  return { narSize, path, references, deriver, signature };
}

/** Bytes before an entry's NAR. */
export function encodeExportEntryStart(): Uint8Array {
  return new WireBuilder(8).u64(1).finish();
}

/** Bytes after an entry's NAR. */
export function encodeExportEntryEnd(e: Omit<ExportEntry, 'narSize'>, c: Ctx): Uint8Array {
  const b = new WireBuilder().u64(EXPORT_MAGIC).string(e.path);
  paths.write(b, e.references, c);
  b.string(e.deriver);
  if (e.signature === null) b.u64(0);
  else b.u64(1).string(e.signature);
  return b.finish();
}

/** The end marker. */
export function encodeExportEnd(): Uint8Array {
  return new WireBuilder(8).u64(0).finish();
}

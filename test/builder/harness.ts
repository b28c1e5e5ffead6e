/**
 * Harness of the builder tests: instantiates the corpus (test/fixtures/builds) with the
 * real Nix 2.8, imports the .drv closures into a fresh LocalStore, builds with our
 * runner (inputs first) and with real `nix-store -r` (sandbox = true), and reads back
 * what real Nix registered.
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, cp, mkdir, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDerivation } from '../../nix/derivation/index.js';
import { LocalStore } from '../../store/local-store.js';
import { nixEnv } from '../support/nix-cli.js';
import { buildDerivation, type BuildOutcome, type BuildSettings } from '../../builder-image/runner/index.js';

export const CORPUS_DIR = fileURLToPath(new URL('../fixtures/builds', import.meta.url));
export const SALT = 'nixyard-builder-1';

export function run(
  cmd: string,
  args: readonly string[],
  allowFail = false,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env: nixEnv(), maxBuffer: 256 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      if (err && !allowFail)
        reject(new Error(`${cmd} ${args.slice(0, 3).join(' ')}…: exit ${String(err.code)}\n${stderr}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

/** A work dir with the corpus and `bbdir/bin/busybox`. */
export async function corpusCopy(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nixyard-builds-'));
  await cp(CORPUS_DIR, dir, { recursive: true });
  await mkdir(join(dir, 'bbdir', 'bin'), { recursive: true });
  await copyFile('/bin/busybox', join(dir, 'bbdir', 'bin', 'busybox'));
  await chmod(join(dir, 'bbdir', 'bin', 'busybox'), 0o555);
  return dir;
}

/** attr name → .drv path of `<dir>/<file>`. */
export async function instantiate(dir: string, file: string): Promise<Map<string, string>> {
  const expr = `builtins.mapAttrs (n: d: d.drvPath) (import ${join(dir, file)} { bbdir = ${join(dir, 'bbdir')}; salt = "${SALT}"; })`;
  const { stdout } = await run('nix-instantiate', [
    '--eval',
    '--read-write-mode',
    '--strict',
    '--json',
    '-E',
    expr,
  ]);
  return new Map(Object.entries(JSON.parse(stdout) as Record<string, string>));
}

interface NixPathInfo {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
  deriver?: string;
  ca?: string;
}

/** `nix-store --dump-db PATHS` (registration format with hash and size); no CA field. */
export async function pathInfos(paths: readonly string[]): Promise<Map<string, NixPathInfo>> {
  const out = new Map<string, NixPathInfo>();
  if (paths.length === 0) return out;
  const lines = (await run('nix-store', ['--dump-db', ...paths])).stdout.split('\n');
  let i = 0;
  while (i < lines.length && lines[i] !== '') {
    const path = lines[i++]!;
    const narHash = `sha256:${lines[i++]!}`;
    const narSize = Number(lines[i++]);
    const deriver = lines[i++] || undefined;
    const n = Number(lines[i++]);
    const references = lines.slice(i, i + n);
    i += n;
    out.set(path, { path, narHash, narSize, references, deriver });
  }
  return out;
}

/** Copies the closure of `drvPaths` (the .drvs and sources) from /nix/store into `store`. */
export async function importClosure(store: LocalStore, drvPaths: readonly string[]): Promise<void> {
  const { stdout } = await run('nix-store', ['-qR', ...drvPaths]);
  const paths = stdout.split('\n').filter((l) => l !== '');
  const infos = await pathInfos(paths);
  // dump-db has no content addresses: ask `nix path-info` for the sources (not for .drvs,
  // which it would build).
  const sources = paths.filter((p) => !p.endsWith('.drv'));
  if (sources.length > 0) {
    const { stdout: json } = await run('nix', ['path-info', '--json', ...sources]);
    for (const j of JSON.parse(json) as NixPathInfo[]) {
      const i = infos.get(j.path);
      if (i && j.ca !== undefined) infos.set(j.path, { ...i, ca: j.ca });
    }
  }
  async function* items(): AsyncGenerator<{
    claim: Parameters<LocalStore['importNar']>[0];
    nar: AsyncIterable<Uint8Array>;
  }> {
    for (const p of paths) {
      const i = infos.get(p)!;
      const nar = Buffer.from(
        await new Promise<Buffer>((res, rej) =>
          execFile(
            'nix-store',
            ['--dump', p],
            { encoding: 'buffer', maxBuffer: 256 << 20, env: nixEnv() },
            (e, out) => (e ? rej(new Error(e.message)) : res(out)),
          ),
        ),
      );
      yield {
        claim: {
          path: p,
          narHash: i.narHash,
          narSize: i.narSize,
          references: i.references,
          ca: i.ca,
          deriver: i.deriver,
        },
        // eslint-disable-next-line @typescript-eslint/require-await
        nar: (async function* () {
          yield nar;
        })(),
      };
    }
  }
  await store.importBatch(items());
}

export async function openStore(): Promise<{ store: LocalStore; dataDir: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'nixyard-build-data-'));
  return { store: await LocalStore.open({ dataDir }), dataDir };
}

/** Builds `drvPath` with our runner, building its input derivations first (memoised). */
export function makeBuilder(
  store: LocalStore,
  settings: Partial<BuildSettings> = {},
): (drvPath: string, logs?: string[]) => Promise<BuildOutcome> {
  const memo = new Map<string, Promise<BuildOutcome>>();
  const build = (drvPath: string, logs?: string[]): Promise<BuildOutcome> => {
    let p = memo.get(drvPath);
    if (!p) {
      p = (async () => {
        const drv = parseDerivation(await readFile(store.layout.contentPath(drvPath)));
        for (const dep of drv.inputDrvs.keys()) await build(dep);
        return buildDerivation({ store, drvPath, settings, onLogLine: (l) => logs?.push(l) });
      })();
      memo.set(drvPath, p);
    }
    return p;
  };
  return build;
}

/** Output name → path of a .drv in /nix/store. */
export async function drvOutputs(drvPath: string): Promise<Map<string, string>> {
  const drv = parseDerivation(await readFile(drvPath));
  const out = new Map<string, string>();
  for (const [n, o] of drv.outputs) if (o.kind === 'inputAddressed' || o.kind === 'fixed') out.set(n, o.path);
  return out;
}

/** Real Nix: `nix-store -r --keep-going` with the sandbox; returns its stderr. */
export async function nixRealise(drvPaths: readonly string[]): Promise<string> {
  const { stderr } = await run(
    'nix-store',
    [
      '-r',
      '--keep-going',
      '--option',
      'sandbox',
      'true',
      '--option',
      'sandbox-fallback',
      'false',
      '--no-gc-warning',
      ...drvPaths,
    ],
    true,
  );
  return stderr;
}

export async function validPaths(paths: readonly string[]): Promise<Set<string>> {
  if (paths.length === 0) return new Set();
  const { stdout } = await run('nix-store', ['--check-validity', '--print-invalid', ...paths], true);
  const invalid = new Set(stdout.split('\n').filter((l) => l !== ''));
  return new Set(paths.filter((p) => !invalid.has(p)));
}

/** `error: …` as nix-build prints our message (continuation lines indented by 7). */
export function asNixPrints(plain: string): string {
  return `error: ${plain.replaceAll('\n', '\n       ')}`;
}

/** Loads the recorded Nix 2.8 protocol sessions under /work/shared/fixtures/nix-2.8. */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export const FIXTURE_ROOT = process.env['NIXYARD_FIXTURES'] ?? '/work/shared/fixtures/nix-2.8';

export type Transport = 'ssh-ng' | 'ssh' | 'unix';

export interface FixtureSession {
  /** e.g. "misc-ops/12-add-path-ssh-ng" (the key used in SUMMARY.txt). */
  readonly id: string;
  readonly scenario: string;
  readonly name: string;
  readonly transport: Transport;
  readonly dir: string;
}

const SESSION_RE = /^\d\d-.*-(ssh-ng|ssh|unix)$/;

/** Every session directory `<scenario>/NN-<label>-<transport>`, sorted. */
export function listSessions(root: string = FIXTURE_ROOT): FixtureSession[] {
  const out: FixtureSession[] = [];
  for (const scenario of readdirSync(root).sort()) {
    const sdir = join(root, scenario);
    if (!statSync(sdir).isDirectory()) continue;
    for (const name of readdirSync(sdir).sort()) {
      const m = SESSION_RE.exec(name);
      const dir = join(sdir, name);
      if (m === null || !statSync(dir).isDirectory()) continue;
      out.push({ id: `${scenario}/${name}`, scenario, name, transport: m[1] as Transport, dir });
    }
  }
  return out;
}

/** The bytes of one direction, gunzipped if stored as `.bin.gz`. */
export function loadStream(session: FixtureSession, direction: 'c2s' | 's2c'): Buffer {
  const plain = join(session.dir, `${direction}.bin`);
  if (existsSync(plain)) return readFileSync(plain);
  return gunzipSync(readFileSync(`${plain}.gz`));
}

export interface SummaryEntry {
  /** Op names in order, counts expanded ("QueryPathInfo(26) x4" → 4 entries). */
  readonly ops: { name: string; code: number }[];
  readonly stderrError: boolean;
}

/** Parses SUMMARY.txt: `<scenario>/<session>: Op(n), Op(n) x3, … [(STDERR_ERROR)]`. */
export function loadSummary(root: string = FIXTURE_ROOT): Map<string, SummaryEntry> {
  const out = new Map<string, SummaryEntry>();
  for (const line of readFileSync(join(root, 'SUMMARY.txt'), 'utf8').split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const colon = line.indexOf(':');
    const id = line.slice(0, colon);
    let rest = line.slice(colon + 1).trim();
    const stderrError = rest.endsWith('(STDERR_ERROR)');
    if (stderrError) rest = rest.slice(0, -'(STDERR_ERROR)'.length).trim();
    const ops: { name: string; code: number }[] = [];
    for (const item of rest.split(',').map((s) => s.trim())) {
      if (item === '') continue;
      const m = /^(\w+)\((\d+)\)(?: x(\d+))?$/.exec(item);
      if (m === null) throw new Error(`cannot parse SUMMARY item "${item}" in ${id}`);
      const n = m[3] === undefined ? 1 : Number(m[3]);
      for (let i = 0; i < n; i++) ops.push({ name: m[1] ?? '', code: Number(m[2]) });
    }
    out.set(id, { ops, stderrError });
  }
  return out;
}

/** Splits `data` into chunks at the given offsets (for split-at-every-offset tests). */
export function splitAt(data: Uint8Array, ...offsets: number[]): Uint8Array[] {
  const cuts = [0, ...offsets.filter((o) => o > 0 && o < data.length).sort((a, b) => a - b), data.length];
  const out: Uint8Array[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) out.push(data.subarray(cuts[i], cuts[i + 1]));
  return out;
}

/**
 * Replays the commands recorded in a Nix 2.8 fixture scenario (`client-output.txt`)
 * against our gateway, and gives back what the real daemon answered so a test can
 * compare. Output is stdout and stderr interleaved (`2>&1`), as the recording has it.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GatewayHarness } from './gateway-harness.js';

export const FIXTURES = '/work/shared/fixtures/nix-2.8';

/** The recorded store URLs (with the recorder's remote-program) and what nix printed for them. */
const RECORDED_NG = 'ssh-ng://root@127.0.0.1?remote-program=/tmp/capdir/bin/tee-daemon';
const RECORDED_LEGACY = 'ssh://root@127.0.0.1?remote-program=/tmp/capdir/bin/tee-serve';
const RECORDED_WORK = '/tmp/capdir/work';
/** Where the recording kept the signing key; ours lives in `<work>/keys`. */
const RECORDED_KEYS = '/tmp/capdir/keys';

export interface RecordedCommand {
  readonly label: string;
  /** argv as recorded (URLs and work dir not yet replaced). */
  readonly argv: readonly string[];
  readonly output: string;
  readonly exit: number;
}

export interface CommandResult {
  readonly output: string;
  readonly exit: number;
}

/** Every `### [label] $ …` command of a scenario, with its recorded output and exit code. */
export async function recordedCommands(scenario: string): Promise<RecordedCommand[]> {
  const text = await readFile(join(FIXTURES, scenario, 'client-output.txt'), 'utf8');
  const commands: RecordedCommand[] = [];
  const header = /^### \[([^\]]+)\] \$ (.*)\n/gm;
  // Not anchored: output without a final newline runs into the exit line (path-info --json).
  const exit = /### \[exit (\d+)\]\n/g;
  for (let m = header.exec(text); m !== null; m = header.exec(text)) {
    exit.lastIndex = header.lastIndex;
    const e = exit.exec(text);
    if (e === null) throw new Error(`${scenario}: no exit line after [${m[1]}]`);
    commands.push({
      label: m[1] ?? '',
      // Recorded commands have no quoting except the one `sh -c` line, which we do not replay.
      argv: (m[2] ?? '').split(' '),
      output: text.slice(header.lastIndex, e.index),
      exit: Number(e[1]),
    });
    header.lastIndex = exit.lastIndex;
  }
  return commands;
}

export async function recordedCommand(scenario: string, label: string): Promise<RecordedCommand> {
  const found = (await recordedCommands(scenario)).find((c) => c.label === label);
  if (found === undefined) throw new Error(`${scenario}: no command [${label}]`);
  return found;
}

/** Replaces the recorded store URLs by the harness's, in a command line or in output. */
export function localise(
  text: string,
  h: Pick<GatewayHarness, 'storeUrl' | 'legacyUrl'>,
  work: string,
): string {
  return text
    .replaceAll(RECORDED_NG, h.storeUrl)
    .replaceAll(RECORDED_LEGACY, h.legacyUrl)
    .replaceAll('ssh-ng://root@127.0.0.1', h.storeUrl)
    .replaceAll('ssh://root@127.0.0.1', h.legacyUrl)
    .replaceAll(RECORDED_WORK, work)
    .replaceAll(RECORDED_KEYS, join(work, 'keys'));
}

/** Runs argv with stdout and stderr interleaved into one text, as the recorder saw them. */
export function runCommand(
  argv: readonly string[],
  options: { env: NodeJS.ProcessEnv; cwd: string },
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', 'exec "$@" 2>&1', 'sh', ...argv], {
      env: options.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({ output: Buffer.concat(chunks).toString('utf8'), exit: code ?? -1 }),
    );
  });
}

/** Runs a command and rejects unless it exits 0; gives its output. */
export async function runOk(
  argv: readonly string[],
  options: { env: NodeJS.ProcessEnv; cwd: string },
): Promise<string> {
  const r = await runCommand(argv, options);
  if (r.exit !== 0) throw new Error(`${argv.join(' ')} exited ${r.exit}:\n${r.output}`);
  return r.output;
}

/**
 * A work directory like the recorder's: `dag.nix`, `bbdir/bin/busybox` (the same static
 * busybox, so every store path equals the fixture's) and `file.txt`.
 */
export async function makeWorkDir(): Promise<string> {
  const work = await mkdtemp(join(tmpdir(), 'nixyard-work-'));
  await mkdir(join(work, 'bbdir', 'bin'), { recursive: true });
  await copyFile('/bin/busybox', join(work, 'bbdir', 'bin', 'busybox'));
  await copyFile(join(FIXTURES, 'dag.nix'), join(work, 'dag.nix'));
  await writeFile(join(work, 'file.txt'), 'some file contents\n');
  return work;
}

/**
 * `nix-build dag.nix -A attr --argstr salt salt --no-out-link` in the local /nix/store,
 * giving the output path. `--repair` because that store is shared with other work on
 * the machine and registered paths have been seen to vanish from disk; repair checks
 * the closure's contents and rebuilds only what is missing or corrupt (it is cheap).
 */
export async function buildLocally(
  options: { env: NodeJS.ProcessEnv; cwd: string },
  attr: string,
  salt: string,
): Promise<string> {
  const out = await runOk(
    ['nix-build', 'dag.nix', '-A', attr, '--argstr', 'salt', salt, '--no-out-link', '--repair', '--quiet'],
    options,
  );
  return out.trim().split('\n').at(-1) ?? '';
}

/** A replayed command next to what the real daemon answered, both normalised. */
export interface Replay {
  readonly expected: CommandResult;
  readonly actual: CommandResult;
}

export interface ReplayOptions {
  /** Applied to both outputs, for lines that legitimately differ (e.g. registration times). */
  readonly normalise?: (output: string) => string;
  readonly env?: NodeJS.ProcessEnv;
  /** The command to run instead of the recorded one (whose quoting the recording lost). */
  readonly argv?: readonly string[];
}

/**
 * Replays `[label]` of `scenario` against the harness and returns both sides with the
 * store URLs made equal.
 */
export async function replay(
  h: GatewayHarness,
  work: string,
  scenario: string,
  label: string,
  options: ReplayOptions = {},
): Promise<Replay> {
  const normalise = options.normalise ?? ((o: string): string => o);
  const recorded = await recordedCommand(scenario, label);
  const argv = options.argv ?? recorded.argv.map((a) => localise(a, h, work));
  const actual = await runCommand(argv, { env: options.env ?? h.env, cwd: work });
  return {
    expected: { output: normalise(localise(recorded.output, h, work)), exit: recorded.exit },
    actual: { output: normalise(actual.output), exit: actual.exit },
  };
}

export interface PathFacts {
  readonly path: string;
  readonly narHash: string;
  readonly narSize: number;
  readonly references: readonly string[];
}

/** narHash, narSize and references of the closure of `paths` (`nix path-info -r --json`), sorted. */
export async function closureFacts(
  paths: readonly string[],
  options: { env: NodeJS.ProcessEnv; cwd: string },
  store?: string,
): Promise<PathFacts[]> {
  const argv = ['nix', 'path-info', '-r', '--json', ...(store ? ['--store', store] : []), ...paths];
  const infos = JSON.parse(await runOk(argv, options)) as PathFacts[];
  return infos
    .map(({ path, narHash, narSize, references }) => ({
      path,
      narHash,
      narSize,
      references: [...references].sort(),
    }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Deletes from the local store those of `paths` that are valid there (as if never built here). */
export async function forgetLocally(
  paths: readonly string[],
  options: { env: NodeJS.ProcessEnv; cwd: string },
): Promise<void> {
  const invalid = (await runCommand(['nix-store', '--check-validity', '--print-invalid', ...paths], options))
    .output;
  const present = paths.filter((p) => !invalid.includes(p));
  if (present.length > 0) await runOk(['nix-store', '--delete', ...present], options);
}

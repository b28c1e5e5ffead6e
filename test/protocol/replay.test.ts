/**
 * Replays the recorded Nix 2.8 sessions that do not build against our gateway, in-process:
 * the recorded client bytes go into `runWorkerSession` / `runServeSession`, and every
 * reply is compared field by field with what the real daemon answered. The sessions of
 * a scenario run in order against one store, so uploads in the replayed bytes recreate
 * the recorded remote's state. Each scenario runs twice: fed in the recorder's read
 * chunks, and in one write.
 *
 * Ignored, because it must differ: registrationTime, the daemon version string,
 * `ultimate`, activities (ids, timing), GC/verify progress lines, "hard linking" notes.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Permission } from '../../gateway/authorized-keys.js';
import { SERVE_COMMAND_PERMISSION, WORKER_OP_PERMISSION } from '../../gateway/permissions.js';
import { LocalStore } from '../../store/local-store.js';
import { type FixtureSession, listSessions } from '../support/fixtures.js';
import { comparable, type Decoded, replaySession } from '../support/replay.js';

/** Scenarios and the sessions replayed, in order. Sessions not listed: see SKIPPED. */
const SCENARIOS: Record<string, string[]> = {
  'store-ping': ['01-ping-ssh-ng'],
  'copy-to': [
    '01-copy-to-sigs-required-ssh-ng',
    '02-copy-to-ssh-ng',
    '03-copy-to-again-ssh-ng',
    '04-copy-to-substitute-on-destination-ssh-ng',
  ],
  'legacy-ssh-store': [
    '01-ping-ssh',
    '02-copy-to-ssh',
    '03-path-info-r-ssh',
    '04-copy-from-ssh',
    '05-copy-drv-ssh',
    '06-realise-ssh',
    '07-nix-build-eval-store-auto-ssh',
  ],
  'misc-ops': [
    '01-setup-copy-ssh-ng',
    '02-setup-copy-drv-ssh-ng',
    '03-query-referrers-ssh-ng',
    '04-query-roots-ssh-ng',
    '05-query-deriver-ssh-ng',
    '06-query-hash-ssh-ng',
    '07-query-outputs-ssh-ng',
    '08-query-requisites-include-outputs-ssh-ng',
    '09-path-info-all-ssh-ng',
    '10-store-ls-ssh-ng',
    '11-store-cat-ssh-ng',
    '12-add-path-ssh-ng',
    '13-add-fixed-flat-ssh-ng',
    '14-add-fixed-recursive-sha1-ssh-ng',
    '15-store-add-file-ssh-ng',
    '16-sign-ssh-ng',
    '17-path-info-sigs-ssh-ng',
    '18-verify-store-ssh-ng',
    '19-verify-store-check-contents-ssh-ng',
    '20-store-verify-path-ssh-ng',
    '21-optimise-ssh-ng',
    // 22-realise-check and 23-build-rebuild rebuild `top` (check mode): skipped, and
    // their one lasting effect on the remote, the output of fixed-hello, is seeded.
    '24-copy-log-from-ssh-ng',
    '25-nix-instantiate-remote-ssh-ng',
    '26-eval-tofile-ssh-ng',
    '27-nix-env-qa-status-ssh-ng',
    '28-gc-dry-run-ssh-ng',
    '29-store-delete-ssh-ng',
    '30-store-delete-alive-ssh-ng',
    '31-gc-ssh-ng',
  ],
  'nix-log': ['02-copy-log-ssh-ng'],
  'nix-store-realise': ['01-copy-drv-ssh-ng'],
  'unix-socket-daemon': ['01-ping-unix'],
};

/**
 * Left in the recorded remote's store directory by the check-mode build of misc-ops/22
 * (a lock file and the check build's output, which never became valid): Nix's GC lists
 * directory entries, ours lists paths.
 */
const CHECK_BUILD_RESIDUE = new Set([
  '/nix/store/23zalzc83lcxm26bjx2jhg2s3zqhk67y-top.lock',
  '/nix/store/r6wblmx0xn416cymjmv9zynnvmmhfrxc-top',
]);

/** Progress lines of VerifyStore (Nix prints its phases; we verify without them). */
const VERIFY_PROGRESS =
  /^(reading the Nix store|checking path existence|checking link hashes|checking store hashes)\.\.\.\n$/;
/** OptimiseStore's report: we do not hard-link. */
const OPTIMISE_NOTE = /freed by hard-linking/;

const sessions = new Map(listSessions().map((s) => [s.id, s]));

/** The least permissions the recorded session needs (admin when it says --no-check-sigs). */
function permissionsFor(recorded: Decoded): Permission[] {
  const need = new Set<Permission>();
  for (const { request } of recorded.exchanges) {
    if ('op' in request) {
      need.add(WORKER_OP_PERMISSION[request.op]);
      if ('dontCheckSigs' in request.args && request.args.dontCheckSigs) need.add('admin');
    } else need.add(SERVE_COMMAND_PERMISSION[request.cmd]);
  }
  return [...need];
}

function view(d: Decoded, id: string): unknown[] {
  const out = comparable(d) as { stderr: { type: string; text?: string }[]; reply: unknown }[];
  for (const ex of out) {
    ex.stderr = ex.stderr.filter(
      (m) => m.type !== 'next' || !(VERIFY_PROGRESS.test(m.text ?? '') || OPTIMISE_NOTE.test(m.text ?? '')),
    );
  }
  if (id === 'misc-ops/28-gc-dry-run-ssh-ng') {
    const reply = out[0]?.reply as { paths: string[] };
    reply.paths = reply.paths.filter((p) => !CHECK_BUILD_RESIDUE.has(p));
  }
  if (id === 'misc-ops/31-gc-ssh-ng') {
    // `nix store gc --max 1` deletes the first dead path in an order Nix randomises.
    const ex = out[0] as { reply: { paths: string[]; bytesFreed: bigint }; stderr: { text?: string }[] };
    ex.reply = { ...ex.reply, paths: ex.reply.paths.map(() => '<one dead path>'), bytesFreed: 0n };
    ex.stderr = ex.stderr.map((m) =>
      m.text?.startsWith("deleting '/") === true ? { ...m, text: "deleting '<one dead path>'\n" } : m,
    );
  }
  return out;
}

function deadBefore31(d: Decoded): string[] {
  return ((d.exchanges[0]?.reply as { paths: string[] } | undefined)?.paths ?? []).filter(
    (p) => !CHECK_BUILD_RESIDUE.has(p),
  );
}

describe.each([
  ['recorded read chunks', false],
  ['one write', true],
])('replay (%s)', (_how, allAtOnce) => {
  describe.each(Object.entries(SCENARIOS))('%s', (scenario, names) => {
    let store: LocalStore;
    let dataDir: string;
    let deadAt28: string[] = [];
    beforeAll(async () => {
      dataDir = await mkdtemp(join(tmpdir(), `nixyard-replay-${scenario}-`));
      store = await LocalStore.open({ dataDir });
    });
    afterAll(async () => {
      await rm(dataDir, { recursive: true, force: true });
    });

    it.each(names)('%s', async (name) => {
      const id = `${scenario}/${name}`;
      const session = sessions.get(id) as FixtureSession;
      expect(session).toBeDefined();
      if (id === 'misc-ops/24-copy-log-from-ssh-ng') {
        // Seed what misc-ops/22's build left valid on the remote: fixed-hello's output, a
        // flat fixed-output whose content dag.nix gives (`printf hello`).
        const fixed = await store.addToStore(
          { name: 'fixed-hello', method: 'fixed:sha256', references: [] },
          (async function* () {
            yield await Promise.resolve(Buffer.from('hello'));
          })(),
        );
        expect(fixed.path).toBe('/nix/store/p5v2cagqczh89szhhm6qq5xjl4spyk61-fixed-hello');
      }
      const r = await replaySession(session, { store, allAtOnce, permissions: permissionsFor });
      expect(r.sessionError).toBeUndefined();
      expect(r.stderrText).toBe('');
      expect(r.ours.c2sLeft).toBe(0);
      expect(r.ours.s2cLeft).toBe(0);
      expect(r.recorded.s2cLeft).toBe(0);
      expect(r.ours.version).toBe(r.recorded.version);
      expect(r.ours.startup).toEqual(r.recorded.startup);
      expect(r.ours.server?.trusted).toEqual(r.recorded.server?.trusted);
      expect(r.ours.exchanges.length).toBe(r.recorded.exchanges.length);
      expect(view(r.ours, id)).toEqual(view(r.recorded, id));
      if (id === 'misc-ops/28-gc-dry-run-ssh-ng') deadAt28 = deadBefore31(r.ours);
      if (id === 'misc-ops/31-gc-ssh-ng') {
        const reply = r.ours.exchanges[0]?.reply as { paths: string[]; bytesFreed: bigint };
        expect(reply.paths).toHaveLength(1);
        expect(deadAt28).toContain(reply.paths[0]);
        expect(reply.bytesFreed).toBeGreaterThan(1n);
      }
      // Uploads leave nothing behind in staging, whatever the outcome.
      expect(await readdir(store.layout.stagingDir)).toEqual([]);
    });
  });
});

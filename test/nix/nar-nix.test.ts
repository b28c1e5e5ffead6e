/**
 * The NAR writer, parser, restorer and listing against the real Nix 2.8 on random
 * trees: our bytes must equal `nix-store --dump`, a restore of Nix's NAR must dump back
 * to the same bytes, and our listing must equal `nix nar ls -lR`.
 * Replay a failure with the printed TEST_SEED (tree i uses seed TEST_SEED + i).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dumpPath, narListing, parseNarStream, restoreNar } from '../../nix/nar/index.js';
import { makeRandomTree } from '../support/random-tree.js';
import { nixNarLs, nixStoreDump } from '../support/nix-cli.js';
import { createRng, testSeed, type Rng } from '../support/rng.js';

const TREES = Number(process.env.NAR_TREES ?? 200);
const CONCURRENCY = 4;
const seed = testSeed();

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nar-nix-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of source) parts.push(chunk);
  return Buffer.concat(parts);
}

/** `bytes` in random-sized chunks (1 byte to 100 KB), to cross every kind of boundary. */
function* randomChunks(bytes: Buffer, rng: Rng): Generator<Uint8Array> {
  for (let i = 0; i < bytes.length;) {
    const n = rng.bool(0.3) ? rng.int(1, 20) : rng.int(1, 100_000);
    yield bytes.subarray(i, i + n);
    i += n;
  }
}

async function forEachLimited(
  count: number,
  limit: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

test(`dumpPath, restoreNar and narListing match Nix on ${TREES} random trees`, async () => {
  const failures: string[] = [];
  const kinds = { dir: 0, file: 0, symlink: 0 };
  await forEachLimited(TREES, CONCURRENCY, async (i) => {
    const treeSeed = (seed + i) >>> 0;
    const rng = createRng(treeSeed);
    const src = join(work, `src-${i}`);
    const dest = join(work, `dest-${i}`);
    const where = `tree ${i} (TEST_SEED=${seed}, tree seed ${treeSeed})`;
    try {
      await makeRandomTree(src, rng);
      const expected = await nixStoreDump(src);
      const ours = await collect(dumpPath(src));
      if (!ours.equals(expected)) failures.push(`${where}: dumpPath differs from nix-store --dump`);

      const result = await restoreNar(randomChunks(expected, rng), dest);
      const sha = createHash('sha256').update(expected).digest();
      if (!Buffer.from(result.narHash).equals(sha)) failures.push(`${where}: narHash differs`);
      if (result.narSize !== expected.length) failures.push(`${where}: narSize ${result.narSize}`);
      if (!(await nixStoreDump(dest)).equals(expected))
        failures.push(`${where}: restored tree dumps differently`);

      if (i % 5 === 0) {
        const narFile = join(work, `nar-${i}.nar`);
        await writeFile(narFile, expected);
        const listing = await collect(narListing(parseNarStream(randomChunks(expected, rng))));
        if (!listing.equals(await nixNarLs(narFile)))
          failures.push(`${where}: listing differs from nix nar ls -lR`);
        await rm(narFile);
      }
      const type = expected.subarray(64, 80).toString('latin1');
      if (type.startsWith('directory')) kinds.dir++;
      else if (type.startsWith('regular')) kinds.file++;
      else kinds.symlink++;
    } catch (err) {
      failures.push(`${where}: ${String(err)}`);
    } finally {
      await rm(src, { recursive: true, force: true });
      await rm(dest, { recursive: true, force: true });
    }
  });
  expect(failures).toEqual([]);
  // The generator must really produce all three kinds of root.
  expect(kinds.dir).toBeGreaterThan(0);
  if (TREES >= 200) expect(Math.min(kinds.file, kinds.symlink)).toBeGreaterThan(0);
}, 180_000);

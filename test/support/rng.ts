/**
 * A seeded pseudo-random generator for tests (mulberry32: small, fast, good enough).
 *
 * `testSeed()` takes the seed from `TEST_SEED` (decimal) or picks a random one, and
 * prints it once so a failure can be replayed with `TEST_SEED=<seed> npm run jest …`.
 */
export interface Rng {
  readonly seed: number;
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [min, max). */
  int(min: number, max: number): number;
  /** True with probability p. */
  bool(p?: number): boolean;
  pick<T>(items: readonly T[]): T;
  bytes(n: number): Buffer;
}

let printedSeed: number | undefined;

/** The seed for this test run: `TEST_SEED` or a random one, printed once. */
export function testSeed(): number {
  if (printedSeed !== undefined) return printedSeed;
  const fromEnv = process.env.TEST_SEED;
  const seed =
    fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
  printedSeed = seed;
  process.stderr.write(`test seed: TEST_SEED=${seed}\n`);
  return seed;
}

export function createRng(seed: number = testSeed()): Rng {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min));
  return {
    seed,
    next,
    int,
    bool: (p = 0.5) => next() < p,
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[int(0, items.length)]!;
    },
    bytes: (n: number) => {
      const out = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) out[i] = int(0, 256);
      return out;
    },
  };
}

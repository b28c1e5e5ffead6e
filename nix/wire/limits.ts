/**
 * Limits for every length read from the wire. A length over its limit is rejected
 * with WIRE_LENGTH_LIMIT *before* anything is allocated or read, so a peer cannot make
 * us allocate by announcing a huge string, list or frame.
 *
 * Defaults (chosen from what real Nix sends, with a wide margin):
 * - `maxString` 64 MiB: generic strings/bytes (error messages, log lines, drv env values,
 *   realisation JSON). Nix has no limit; the largest legitimate strings are env values.
 * - `maxPath` 4 KiB: store paths (≤ 211 chars after the store dir) and absolute paths
 *   such as GC roots (PATH_MAX = 4096).
 * - `maxShortString` 64 KiB: names, hashes, content addresses, signatures, output names.
 * - `maxListCount` 1 Mi entries: lists, sets and maps (a closure of 1M paths is extreme).
 * - `maxFrame` 16 MiB: one frame of a framed stream (Nix writes ≤ 32 KiB frames).
 */
export interface WireLimits {
  readonly maxString: number;
  readonly maxShortString: number;
  readonly maxPath: number;
  readonly maxListCount: number;
  readonly maxFrame: number;
}

export const DEFAULT_WIRE_LIMITS: WireLimits = Object.freeze({
  maxString: 64 * 1024 * 1024,
  maxShortString: 64 * 1024,
  maxPath: 4096,
  maxListCount: 1024 * 1024,
  maxFrame: 16 * 1024 * 1024,
});

export function wireLimits(overrides: Partial<WireLimits> = {}): WireLimits {
  return Object.freeze({ ...DEFAULT_WIRE_LIMITS, ...overrides });
}

/**
 * The one registry of error codes for the store. Every error the store throws on
 * purpose is a `StoreError` with one of these codes; its message is in Nix's terms
 * (what a Nix user sees relayed by the gateway), its context names the path and the
 * values that disagreed.
 *
 * Add a code in the section of its concept; never reuse or rename one.
 */
export const StoreErrorCode = {
  // claims and paths
  PATH_INVALID: 'ERR_STORE_PATH_INVALID',
  NOT_FOUND: 'ERR_STORE_NOT_FOUND',
  CLAIM_INVALID: 'ERR_STORE_CLAIM_INVALID',

  // import verification
  NAR_HASH_MISMATCH: 'ERR_STORE_NAR_HASH_MISMATCH',
  NAR_SIZE_MISMATCH: 'ERR_STORE_NAR_SIZE_MISMATCH',
  NAR_INVALID: 'ERR_STORE_NAR_INVALID',
  NAR_TRUNCATED: 'ERR_STORE_NAR_TRUNCATED',
  CA_MISMATCH: 'ERR_STORE_CA_MISMATCH',
  REFERENCE_INVALID: 'ERR_STORE_REFERENCE_INVALID',

  // records and the volume
  CORRUPT_RECORD: 'ERR_STORE_CORRUPT_RECORD',
  PATH_IN_USE: 'ERR_STORE_PATH_IN_USE',

  // the shared index and registry (Redis; redis.ts, redis-registry.ts)
  REDIS_UNAVAILABLE: 'ERR_STORE_REDIS_UNAVAILABLE',
  REDIS_URL_INVALID: 'ERR_STORE_REDIS_URL_INVALID',
  LOCK_TIMEOUT: 'ERR_STORE_LOCK_TIMEOUT',
  SESSION_EXPIRED: 'ERR_STORE_SESSION_EXPIRED',

  // signatures and keys
  KEY_INVALID: 'ERR_STORE_KEY_INVALID',
  SIGNATURE_INVALID: 'ERR_STORE_SIGNATURE_INVALID',
} as const;

export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

export type StoreErrorContext = Readonly<Record<string, string | number | bigint | boolean | undefined>>;

export class StoreError extends Error {
  override readonly name = 'StoreError';

  constructor(
    readonly code: StoreErrorCode,
    message: string,
    readonly context: StoreErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  return err instanceof StoreError && (code === undefined || err.code === code);
}

/** `path '/nix/store/…' is not valid` (Nix's InvalidPath message). */
export function notValid(path: string): StoreError {
  return new StoreError(StoreErrorCode.NOT_FOUND, `path '${path}' is not valid`, { path });
}

/**
 * The one registry of error codes for Nix formats (wire, NAR, hashes, store paths,
 * derivations, protocol framing). Every error the `nix/` library throws is a
 * `NixFormatError` with one of these codes, so callers and property tests can tell
 * our own typed errors from bugs.
 *
 * Add a code in the section of its concept; never reuse or renumber one.
 */
export const ErrorCode = {
  // wire primitives (nix/wire)
  WIRE_UNEXPECTED_EOF: 'ERR_NIX_WIRE_UNEXPECTED_EOF',
  WIRE_LENGTH_LIMIT: 'ERR_NIX_WIRE_LENGTH_LIMIT',
  WIRE_NONZERO_PADDING: 'ERR_NIX_WIRE_NONZERO_PADDING',
  WIRE_INTEGER_RANGE: 'ERR_NIX_WIRE_INTEGER_RANGE',
  WIRE_BAD_BOOL: 'ERR_NIX_WIRE_BAD_BOOL',
  WIRE_BAD_UTF8: 'ERR_NIX_WIRE_BAD_UTF8',
  WIRE_FRAMING: 'ERR_NIX_WIRE_FRAMING',
  WIRE_CLOSED: 'ERR_NIX_WIRE_CLOSED',

  // worker / serve protocol messages (nix/protocol)
  PROTO_BAD_MAGIC: 'ERR_NIX_PROTO_BAD_MAGIC',
  PROTO_UNSUPPORTED_VERSION: 'ERR_NIX_PROTO_UNSUPPORTED_VERSION',
  PROTO_UNKNOWN_OP: 'ERR_NIX_PROTO_UNKNOWN_OP',
  PROTO_UNKNOWN_STDERR: 'ERR_NIX_PROTO_UNKNOWN_STDERR',
  PROTO_MALFORMED: 'ERR_NIX_PROTO_MALFORMED',

  // hashes (nix/hash)
  HASH_UNKNOWN_ALGO: 'ERR_NIX_HASH_UNKNOWN_ALGO',
  HASH_BAD_ENCODING: 'ERR_NIX_HASH_BAD_ENCODING',
  HASH_BAD_LENGTH: 'ERR_NIX_HASH_BAD_LENGTH',

  // store paths and content addresses (nix/store-path, nix/content-address)
  STORE_PATH_INVALID: 'ERR_NIX_STORE_PATH_INVALID',
  STORE_PATH_BAD_NAME: 'ERR_NIX_STORE_PATH_BAD_NAME',
  STORE_PATH_NOT_IN_STORE: 'ERR_NIX_STORE_PATH_NOT_IN_STORE',
  CONTENT_ADDRESS_INVALID: 'ERR_NIX_CONTENT_ADDRESS_INVALID',

  // NAR archives (nix/nar)
  NAR_BAD_MAGIC: 'ERR_NIX_NAR_BAD_MAGIC',
  NAR_UNEXPECTED_TOKEN: 'ERR_NIX_NAR_UNEXPECTED_TOKEN',
  NAR_BAD_ENTRY_NAME: 'ERR_NIX_NAR_BAD_ENTRY_NAME',
  NAR_UNSORTED_ENTRIES: 'ERR_NIX_NAR_UNSORTED_ENTRIES',
  NAR_LENGTH_LIMIT: 'ERR_NIX_NAR_LENGTH_LIMIT',
  NAR_NONZERO_PADDING: 'ERR_NIX_NAR_NONZERO_PADDING',
  NAR_TRUNCATED: 'ERR_NIX_NAR_TRUNCATED',
  NAR_TRAILING_DATA: 'ERR_NIX_NAR_TRAILING_DATA',
  NAR_TOO_DEEP: 'ERR_NIX_NAR_TOO_DEEP',
  NAR_UNSUPPORTED_FILE_TYPE: 'ERR_NIX_NAR_UNSUPPORTED_FILE_TYPE',
  NAR_UNSAFE_RESTORE: 'ERR_NIX_NAR_UNSAFE_RESTORE',
  NAR_FILE_CHANGED: 'ERR_NIX_NAR_FILE_CHANGED',

  // derivations (nix/derivation)
  DRV_PARSE: 'ERR_NIX_DRV_PARSE',
  DRV_INVALID: 'ERR_NIX_DRV_INVALID',
  DRV_OUTPUT_MISMATCH: 'ERR_NIX_DRV_OUTPUT_MISMATCH',
  DRV_INPUT_MISSING: 'ERR_NIX_DRV_INPUT_MISSING',
  DRV_UNSUPPORTED: 'ERR_NIX_DRV_UNSUPPORTED', // e.g. DrvWithVersion (dynamic derivations)
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Context that helps a user find the problem: byte offset, field, path, limit… */
export type ErrorContext = Readonly<Record<string, string | number | bigint | boolean | undefined>>;

export class NixFormatError extends Error {
  override readonly name = 'NixFormatError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly context: ErrorContext = {},
  ) {
    super(message);
  }
}

export function isNixFormatError(err: unknown, code?: ErrorCode): err is NixFormatError {
  return err instanceof NixFormatError && (code === undefined || err.code === code);
}

export { StoreError, StoreErrorCode, isStoreError, notValid } from './errors.js';
export type { StoreErrorContext } from './errors.js';
export { StoreLayout } from './layout.js';
export { fingerprint, sortPaths } from './path-info.js';
export type { PathInfo } from './path-info.js';
export { parseRecord, readRecord, serializeRecord, RECORD_VERSION } from './records.js';
export type { PathIndex } from './path-index.js';
export { MemoryPathIndex } from './memory-index.js';
export { canonicalisePath, CANONICAL_MTIME } from './canonicalise.js';
export type { AddToStoreRequest, NarClaim, Staged } from './staging.js';
export type { BatchItem } from './import.js';
export { TempRoots } from './temp-roots.js';
export { memoryCoordination } from './coordination.js';
export type { Coordination, PathLocks, SessionHandle, SessionInfo } from './coordination.js';
export {
  countValidSignatures,
  parsePublicKey,
  parsePublicKeys,
  parseSecretKey,
  signDetached,
  signPathInfo,
  verifyDetached,
} from './signatures.js';
export type { PublicKey, SecretKey } from './signatures.js';
export type {
  ReindexReport,
  VerifyOptions,
  VerifyProblem,
  VerifyProblemKind,
  VerifyReport,
} from './verify.js';
export { LocalStore } from './local-store.js';
export type { LocalStoreOptions } from './local-store.js';

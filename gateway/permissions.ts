/**
 * Which permission each operation needs. A key's permissions come from its line in
 * authorized_keys (authorized-keys.ts). `admin` is Nix's "trusted user".
 */
import type { OpName } from '../nix/protocol/worker.js';
import type { ServeCommandName } from '../nix/protocol/serve.js';
import type { Permission } from './authorized-keys.js';
import { GatewayError, GatewayErrorCode } from './errors.js';

export const WORKER_OP_PERMISSION: Readonly<Record<OpName, Permission>> = {
  IsValidPath: 'read',
  HasSubstitutes: 'read',
  QueryPathHash: 'read',
  QueryReferences: 'read',
  QueryReferrers: 'read',
  AddToStore: 'write',
  AddTextToStore: 'write',
  BuildPaths: 'build',
  EnsurePath: 'read',
  AddTempRoot: 'read',
  AddIndirectRoot: 'write',
  SyncWithGC: 'read',
  FindRoots: 'admin',
  ExportPath: 'read',
  QueryDeriver: 'read',
  SetOptions: 'read',
  CollectGarbage: 'admin',
  QuerySubstitutablePathInfo: 'read',
  QueryDerivationOutputs: 'read',
  QueryAllValidPaths: 'read',
  QueryPathInfo: 'read',
  ImportPaths: 'write',
  QueryDerivationOutputNames: 'read',
  QueryPathFromHashPart: 'read',
  QuerySubstitutablePathInfos: 'read',
  QueryValidPaths: 'read',
  QuerySubstitutablePaths: 'read',
  QueryValidDerivers: 'read',
  OptimiseStore: 'admin',
  VerifyStore: 'admin',
  BuildDerivation: 'build',
  AddSignatures: 'admin',
  NarFromPath: 'read',
  AddToStoreNar: 'write',
  QueryMissing: 'read',
  QueryDerivationOutputMap: 'read',
  RegisterDrvOutput: 'write',
  QueryRealisation: 'read',
  AddMultipleToStore: 'write',
  AddBuildLog: 'write',
  BuildPathsWithResults: 'build',
  AddPermRoot: 'admin',
};

export const SERVE_COMMAND_PERMISSION: Readonly<Record<ServeCommandName, Permission>> = {
  QueryValidPaths: 'read',
  QueryPathInfos: 'read',
  DumpStorePath: 'read',
  ImportPaths: 'write',
  ExportPaths: 'read',
  BuildPaths: 'build',
  QueryClosure: 'read',
  BuildDerivation: 'build',
  AddToStoreNar: 'write',
};

/** Throws the error a Nix client prints when the key lacks `needed`. */
export function requirePermission(has: ReadonlySet<Permission>, needed: Permission, what: string): void {
  if (has.has(needed)) return;
  throw new GatewayError(
    GatewayErrorCode.PERMISSION_DENIED,
    `Nixyard: this SSH key lacks the '${needed}' permission needed for ${what}; ask the gateway's administrator to add it in authorized_keys`,
    { permission: needed, operation: what },
  );
}

/**
 * Error texts a Nix user reads, worded as Nix's own daemon words them (paths in the
 * same colour escapes `hintfmt` uses), so scripts and eyes that know Nix know ours.
 */
export function magenta(path: string): string {
  return `\u001b[35;1m${path}\u001b[0m`;
}

export const NixMessages = {
  lacksSignature: (path: string) => `cannot add path '${magenta(path)}' because it lacks a valid signature`,
  stillAlive: (path: string) =>
    `Cannot delete path '${magenta(path)}' since it is still alive. To find out why, use: nix-store --query --roots`,
  notValid: (path: string) => `path '${magenta(path)}' is not valid`,
  noSubstituter: (path: string) =>
    `path '${magenta(path)}' is required, but there is no substituter that can build it`,
  buildsNotYet: (path: string) =>
    `Nixyard cannot build '${magenta(path)}' yet: building arrives in a later release of this gateway`,
  /** OptimiseStore's summary; our store does not hard-link files, so it frees nothing. */
  optimised: (bytesFreed: number, filesLinked: number) =>
    `${mib(bytesFreed)} freed by hard-linking ${filesLinked} files`,
  /** Closing note of a deleting CollectGarbage, after "deleting unused links...". */
  hardLinkSavings: (bytes: number) => `note: currently hard linking saves ${mib(bytes)}`,
} as const;

/** Nix's `showBytes`: MiB with two decimals. */
function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;
}

/** The phases `nix-store --verify` reports, in the order LocalStore::verifyStore prints them. */
export const VerifyPhases = {
  start: ['reading the Nix store...', 'checking path existence...'],
  contents: ['checking link hashes...', 'checking store hashes...'],
} as const;

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
} as const;

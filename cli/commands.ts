/**
 * Every `nixyard` subcommand, in the order `nixyard --help` lists them. Modules load only
 * when their command runs: a build pod's `nixyard build-drv` must not pay for the
 * gateway's SSH stack or the operator's Kubernetes client at every start.
 */
import type { Command } from './command.js';

export interface CommandEntry {
  readonly name: string;
  /** One line for `nixyard --help`. */
  readonly summary: string;
  load(): Promise<Command>;
}

export const commands: readonly CommandEntry[] = [
  {
    name: 'gateway',
    summary: 'run the SSH gateway that Nix clients use as a remote store',
    load: async () => (await import('./commands/gateway.js')).gatewayCommand,
  },
  {
    name: 'operator',
    summary: 'run the Kubernetes operator that builds NixBuild resources as Jobs',
    load: async () => (await import('./commands/operator.js')).operatorCommand,
  },
  {
    name: 'store',
    summary: 'verify a store data directory or rebuild its index',
    load: async () => (await import('./commands/store.js')).storeCommand,
  },
  {
    name: 'build-drv',
    summary: 'build one derivation in the sandbox, like nix-build',
    load: async () => (await import('./commands/build-drv.js')).buildDrvCommand,
  },
  {
    name: 'log',
    summary: 'print the stored build log of a derivation or of an output path',
    load: async () => (await import('./commands/log.js')).logCommand,
  },
  {
    name: 'nar',
    summary: "pack, unpack and list NAR archives like 'nix-store --dump/--restore'",
    load: async () => (await import('./commands/nar.js')).narCommand,
  },
  {
    name: 'hash',
    summary: "hash a path's NAR or a file's contents like 'nix hash path|file'",
    load: async () => (await import('./commands/hash.js')).hashCommand,
  },
  {
    name: 'store-path',
    summary: "compute the store path 'nix-store --add[-fixed]' would give a file or tree",
    load: async () => (await import('./commands/store-path.js')).storePathCommand,
  },
  {
    name: 'drv',
    summary: 'show derivations as JSON (like nix show-derivation) or check their store paths',
    load: async () => (await import('./commands/drv.js')).drvCommand,
  },
];

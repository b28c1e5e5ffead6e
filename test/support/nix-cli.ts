/**
 * Run the real Nix (2.8, `nix-store` / `nix`) from tests: local store, no daemon, no
 * substituters, `nix-command` enabled. Output is returned as Buffers, never decoded.
 */
import { execFile } from 'node:child_process';

export interface NixResult {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

/** The environment every test runs real nix with: local store, no daemon, no substituters. */
export function nixEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NIX_CONFIG: 'substituters =\nexperimental-features = nix-command',
  };
  delete env.NIX_REMOTE;
  return env;
}

/** Run `command args…` with optional stdin; rejects (with stderr in the message) on a non-zero exit. */
export function runNix(
  command: string,
  args: readonly string[],
  input?: Uint8Array,
  env: NodeJS.ProcessEnv = nixEnv(),
): Promise<NixResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { encoding: 'buffer', maxBuffer: 1024 * 1024 * 1024, env },
      (err, stdout, stderr) => {
        if (err)
          reject(new Error(`${command} ${args.join(' ')} failed: ${err.message}\n${stderr.toString()}`));
        else resolve({ stdout, stderr });
      },
    );
    child.stdin?.end(input);
  });
}

/** `nix-store --dump PATH`: the NAR of a file system path. */
export async function nixStoreDump(path: string): Promise<Buffer> {
  return (await runNix('nix-store', ['--dump', path])).stdout;
}

/** `nix-store --restore DEST < nar`. */
export async function nixStoreRestore(dest: string, nar: Uint8Array): Promise<void> {
  await runNix('nix-store', ['--restore', dest], nar);
}

/** `nix nar ls -lR NARFILE /`: the listing of a NAR file, as bytes. */
export async function nixNarLs(narFile: string): Promise<Buffer> {
  return (await runNix('nix', ['nar', 'ls', '-lR', narFile, '/'])).stdout;
}

/** `nix-hash --type sha256 PATH`: the NAR hash of a path, base16. */
export async function nixHashPath(path: string): Promise<string> {
  return (await runNix('nix-hash', ['--type', 'sha256', path])).stdout.toString().trim();
}

/**
 * What the client asked to run. Nix clients send a single command string:
 * ssh-ng → `<remote-program> --stdio [--store X]` (remote-program defaults to nix-daemon),
 * ssh://  → `<remote-program> --serve --write [--store X]` (defaults to nix-store).
 * We accept any program path whose base name is right, and ignore `--store`.
 */
export type ExecRequest =
  | { readonly kind: 'worker' }
  | { readonly kind: 'serve'; readonly write: boolean }
  | { readonly kind: 'other'; readonly command: string };

export function parseExecCommand(command: string): ExecRequest {
  const words = command.trim().split(/\s+/);
  const program = (words[0] ?? '').split('/').pop() ?? '';
  const args = words.slice(1);
  const storeIndex = args.indexOf('--store');
  const flags = storeIndex >= 0 ? [...args.slice(0, storeIndex), ...args.slice(storeIndex + 2)] : args;
  if (program === 'nix-daemon' && flags.length === 1 && flags[0] === '--stdio') return { kind: 'worker' };
  if (
    program === 'nix-store' &&
    flags.includes('--serve') &&
    flags.every((f) => f === '--serve' || f === '--write')
  ) {
    return { kind: 'serve', write: flags.includes('--write') };
  }
  return { kind: 'other', command };
}

/**
 * Shown to anyone who opens a shell or runs another command: what this is and how to
 * use it. `hostHint` is `host` or `host:port`; Nix 2.8 takes no port in store URLs, so a
 * port goes into NIX_SSHOPTS.
 */
export function welcomeText(hostHint: string): string {
  const m = /^(.*):(\d+)$/.exec(hostHint);
  const host = m ? (m[1] ?? hostHint) : hostHint;
  const env = m ? `NIX_SSHOPTS='-p ${m[2]}' ` : '';
  return [
    'This is a Nixyard gateway: a remote Nix store and builder, not a shell.',
    'Use it from Nix, for example:',
    `  ${env}nix store ping --store ssh-ng://${host}`,
    `  ${env}nix build --eval-store auto --store ssh-ng://${host} .#default`,
    `  ${env}nix copy --to ssh-ng://${host} ./result`,
    '(legacy ssh:// works too). See the Nixyard README for setup.',
    '',
  ].join('\r\n');
}

/**
 * First start on a fresh data directory: create `authorized_keys` with the public keys
 * of the user running the gateway (`~/.ssh/*.pub`), so a newcomer's own key works with
 * no other setup. An existing file is never touched.
 */
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseAuthorizedKeys } from './authorized-keys.js';

const HEADER = `# Nixyard authorized keys: OpenSSH format, one key per line.
# Permissions go in the options field: read, write, build, admin (admin implies all).
#   permissions="read,write,build" ssh-ed25519 AAAA... ci-runner
# A key without the option gets read,write,build.
`;

/** Returns the number of keys written, or undefined if the file already existed. */
export async function seedAuthorizedKeys(
  file: string,
  sshDir = join(homedir(), '.ssh'),
): Promise<number | undefined> {
  const userKeys: string[] = [];
  try {
    for (const name of (await readdir(sshDir)).sort()) {
      if (!name.endsWith('.pub')) continue;
      const text = (await readFile(join(sshDir, name), 'utf8')).trim();
      try {
        if (parseAuthorizedKeys(text).length === 1)
          userKeys.push(`permissions="read,write,build,admin" ${text}`);
      } catch {
        // Not a public key we understand: skip it.
      }
    }
  } catch {
    // No ~/.ssh: start with an empty file.
  }
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  try {
    await writeFile(file, HEADER + userKeys.map((k) => `${k}\n`).join(''), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw err;
  }
  return userKeys.length;
}

/** The gateway's SSH host key: generated on first start (ed25519, OpenSSH format) and kept. */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import ssh2 from 'ssh2';
import { GatewayError, GatewayErrorCode } from './errors.js';

export interface HostKey {
  readonly privateKey: Buffer;
  readonly publicKey: string;
  readonly generated: boolean;
}

export async function loadOrCreateHostKey(file: string): Promise<HostKey> {
  let generated = false;
  let privateKey = await readIfExists(file);
  if (privateKey === undefined) {
    const pair = newKeyPair();
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    // Replicas sharing the volume may start together: the key appears whole (written
    // aside, then hard-linked, which fails if it exists) and the first one wins.
    const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(temp, pair.private, { mode: 0o600 });
      await link(temp, file);
      generated = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await rm(temp, { force: true });
    }
    if (generated) await writeFile(`${file}.pub`, `${pair.public}\n`, { mode: 0o644 });
    privateKey = await readFile(file);
  }
  const parsed = parsePrivateKey(privateKey);
  if (!parsed) {
    throw new GatewayError(
      GatewayErrorCode.HOST_KEY_INVALID,
      `host key ${file} is not an unencrypted private key`,
      {
        file,
      },
    );
  }
  const blob = parsed.getPublicSSH();
  return { privateKey, publicKey: `${parsed.type} ${blob.toString('base64')}`, generated };
}

type PrivateKey = Exclude<ReturnType<typeof ssh2.utils.parseKey>, Error | unknown[]>;

function parsePrivateKey(key: Buffer): PrivateKey | undefined {
  const parsed = ssh2.utils.parseKey(key);
  return parsed instanceof Error || Array.isArray(parsed) || !parsed.isPrivateKey() ? undefined : parsed;
}

/**
 * A new ed25519 pair that ssh2 can read back: about 1 in 300 of the keys ssh2 generates
 * its own parser calls "Malformed OpenSSH private key" (measured: 11 of 3,000), and such a
 * key would stop the gateway at its first start.
 */
function newKeyPair(): { private: string; public: string } {
  for (let i = 0; i < 20; i++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'nixyard gateway host key' });
    if (parsePrivateKey(Buffer.from(pair.private))) return pair;
  }
  throw new GatewayError(
    GatewayErrorCode.HOST_KEY_INVALID,
    'cannot generate a host key that ssh2 can read',
    {},
  );
}

async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return undefined;
  }
}

/** The gateway's SSH host key: generated on first start (ed25519, OpenSSH format) and kept. */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import ssh2 from 'ssh2';
import { GatewayError, GatewayErrorCode } from './errors.js';

export interface HostKey {
  readonly privateKey: Buffer;
  readonly publicKey: string;
  readonly generated: boolean;
}

export async function loadOrCreateHostKey(file: string): Promise<HostKey> {
  let privateKey: Buffer;
  let generated = false;
  try {
    privateKey = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'nixyard gateway host key' });
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    // 'wx': never overwrite a key another process created meanwhile.
    await writeFile(file, pair.private, { mode: 0o600, flag: 'wx' });
    await writeFile(`${file}.pub`, `${pair.public}\n`, { mode: 0o644 });
    privateKey = Buffer.from(pair.private);
    generated = true;
  }
  const parsed = ssh2.utils.parseKey(privateKey);
  if (parsed instanceof Error || Array.isArray(parsed) || !parsed.isPrivateKey()) {
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

/**
 * The gateway's `authorized_keys`: OpenSSH format, one key per line, with Nixyard's
 * permissions in the options field:
 *
 *     permissions="read,write,build" ssh-ed25519 AAAA… alice@laptop
 *     permissions="admin" ssh-ed25519 AAAA… ops
 *     ssh-ed25519 AAAA… ci                       # no option: read,write,build
 *
 * `admin` implies every other permission. The flag `keep-builds-running` keeps the
 * builds a key's sessions started running when the client goes away (by default they
 * are cancelled once no session wants them):
 *
 *     keep-builds-running,permissions="read,write,build" ssh-ed25519 AAAA… ci
 *
 * Other OpenSSH options are accepted and ignored.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import ssh2 from 'ssh2';
import { GatewayError, GatewayErrorCode } from './errors.js';

export const PERMISSIONS = ['read', 'write', 'build', 'admin'] as const;
export type Permission = (typeof PERMISSIONS)[number];

export const DEFAULT_PERMISSIONS: ReadonlySet<Permission> = new Set(['read', 'write', 'build']);

export interface AuthorizedKey {
  readonly algo: string;
  /** The key blob in SSH wire format, compared byte for byte at authentication. */
  readonly blob: Buffer;
  readonly comment: string;
  readonly permissions: ReadonlySet<Permission>;
  /** Builds continue after the client leaves (option `keep-builds-running`). */
  readonly keepBuildsRunning?: boolean;
  /** SHA256 fingerprint as `ssh-keygen -l` prints it: who the client is, in logs. */
  readonly fingerprint: string;
  readonly key: ssh2.ParsedKey;
  readonly line: number;
}

const KEY_TYPE_RE =
  /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;

/** Splits the options field (`a,b="x,y",c`) respecting quotes, returning it and the rest of the line. */
function splitOptions(line: string): { options: string[]; rest: string } {
  const options: string[] = [];
  let current = '';
  let quoted = false;
  let i = 0;
  for (; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && quoted && i + 1 < line.length) {
      current += line[++i];
    } else if (c === '"') {
      quoted = !quoted;
    } else if (c === ',' && !quoted) {
      options.push(current);
      current = '';
    } else if ((c === ' ' || c === '\t') && !quoted) {
      break;
    } else {
      current += c;
    }
  }
  options.push(current);
  return { options, rest: line.slice(i).trim() };
}

function parsePermissions(value: string, lineNo: number): Set<Permission> {
  const perms = new Set<Permission>();
  for (const raw of value.split(',')) {
    const p = raw.trim();
    if (p === '') continue;
    if (!(PERMISSIONS as readonly string[]).includes(p)) {
      throw new GatewayError(
        GatewayErrorCode.AUTHORIZED_KEYS_INVALID,
        `authorized_keys line ${lineNo}: unknown permission '${p}' (known: ${PERMISSIONS.join(', ')})`,
        { line: lineNo },
      );
    }
    perms.add(p as Permission);
  }
  if (perms.has('admin')) PERMISSIONS.forEach((x) => perms.add(x));
  return perms;
}

/** `SHA256:<base64, unpadded>` like `ssh-keygen -l`. */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

export function parseAuthorizedKeys(text: string): AuthorizedKey[] {
  const keys: AuthorizedKey[] = [];
  text.split('\n').forEach((rawLine, index) => {
    const lineNo = index + 1;
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) return;
    const firstWord = line.split(/\s+/, 1)[0] ?? '';
    const { options, rest } = KEY_TYPE_RE.test(firstWord) ? { options: [], rest: line } : splitOptions(line);
    const [algo, base64, ...commentWords] = rest.split(/\s+/);
    if (algo === undefined || base64 === undefined || !KEY_TYPE_RE.test(algo)) {
      throw new GatewayError(
        GatewayErrorCode.AUTHORIZED_KEYS_INVALID,
        `authorized_keys line ${lineNo}: not a public key`,
        {
          line: lineNo,
        },
      );
    }
    const parsed = ssh2.utils.parseKey(`${algo} ${base64}`);
    if (parsed instanceof Error || Array.isArray(parsed)) {
      throw new GatewayError(
        GatewayErrorCode.AUTHORIZED_KEYS_INVALID,
        `authorized_keys line ${lineNo}: cannot parse the ${algo} key${parsed instanceof Error ? `: ${parsed.message}` : ''}`,
        { line: lineNo },
      );
    }
    let permissions: ReadonlySet<Permission> = DEFAULT_PERMISSIONS;
    const keepBuildsRunning = options.includes('keep-builds-running');
    for (const opt of options) {
      const eq = opt.indexOf('=');
      if (eq > 0 && opt.slice(0, eq) === 'permissions')
        permissions = parsePermissions(opt.slice(eq + 1), lineNo);
    }
    const blob = parsed.getPublicSSH();
    keys.push({
      algo,
      blob,
      comment: commentWords.join(' '),
      permissions,
      keepBuildsRunning,
      fingerprint: fingerprintOf(blob),
      key: parsed,
      line: lineNo,
    });
  });
  return keys;
}

export async function loadAuthorizedKeys(file: string): Promise<AuthorizedKey[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return parseAuthorizedKeys(text);
}

export function findKey(
  keys: readonly AuthorizedKey[],
  algo: string,
  blob: Buffer,
): AuthorizedKey | undefined {
  return keys.find((k) => k.algo === algo && k.blob.equals(blob));
}

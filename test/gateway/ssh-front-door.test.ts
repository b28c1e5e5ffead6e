import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProtocolHandlers } from '../../gateway/ssh-server.js';
import { makeClientKey, startGatewayHarness, type GatewayHarness } from '../support/gateway-harness.js';

interface SshResult {
  code: number;
  stdout: string;
  stderr: string;
}

function ssh(h: GatewayHarness, args: string[]): Promise<SshResult> {
  return new Promise((resolve) => {
    const child = execFile('ssh', ['-F', h.sshConfig, ...args], { env: h.env }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    child.stdin?.end();
  });
}

const seen: string[] = [];
const handlers: ProtocolHandlers = {
  worker: (channel, who) => {
    seen.push(`worker ${who.key.comment} ${[...who.key.permissions].join(',')}`);
    channel.write('worker here\n');
    return Promise.resolve();
  },
  serve: (channel, _who, write) => {
    seen.push(`serve write=${write}`);
    channel.write('serve here\n');
    return Promise.resolve();
  },
};

let h: GatewayHarness;
beforeAll(async () => {
  h = await startGatewayHarness(handlers);
});
afterAll(() => h.stop());

describe('the SSH front door', () => {
  test('a shell gets a polite text and a non-zero exit', async () => {
    const r = await ssh(h, ['-T', 'gateway']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('This is a Nixyard gateway');
    expect(r.stdout).toContain('nix store ping --store ssh-ng://');
  });

  test('any other command too', async () => {
    const r = await ssh(h, ['gateway', 'ls', '-la']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('not a shell');
  });

  test('nix-daemon --stdio reaches the worker protocol with the key identity', async () => {
    const r = await ssh(h, ['gateway', 'nix-daemon', '--stdio']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('worker here\n');
    expect(seen).toContain('worker client read,write,build,admin');
  });

  test('nix-store --serve --write reaches the serve protocol', async () => {
    const r = await ssh(h, ['gateway', '/run/current-system/sw/bin/nix-store --serve --write']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('serve here\n');
    expect(seen).toContain('serve write=true');
  });

  test('an unknown key is refused', async () => {
    const stranger = await makeClientKey(h.dir, 'stranger');
    const cfg = join(h.dir, 'stranger_config');
    await writeFile(
      cfg,
      `Host x\n HostName 127.0.0.1\n Port ${h.gateway.port}\n IdentityFile ${stranger.privateKeyFile}\n IdentitiesOnly yes\n StrictHostKeyChecking no\n UserKnownHostsFile /dev/null\n BatchMode yes\n`,
    );
    const r = await new Promise<SshResult>((resolve) => {
      execFile('ssh', ['-F', cfg, 'x', 'nix-daemon', '--stdio'], (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr }),
      );
    });
    expect(r.code).toBe(255);
    expect(r.stderr).toContain('Permission denied');
  });

  test('keys are re-read: a key added later gets in with its permissions', async () => {
    await h.addKey('reader', 'read');
    const r = await ssh(h, ['reader', 'nix-daemon', '--stdio']);
    expect(r.code).toBe(0);
    expect(seen).toContain('worker reader read');
  });
});

/**
 * The SSH front door: authenticates clients by public key against `authorized_keys`
 * (any user name; the key decides who the client is), then hands each exec channel to
 * the worker or serve protocol, and answers everything else with a short welcome text.
 */
import type { Logger } from 'pino';
// ssh2 is CommonJS: its classes come through the default export.
import ssh2, { type Connection, type ServerChannel } from 'ssh2';
import { findKey, type AuthorizedKey } from './authorized-keys.js';
import type { GatewayMetrics } from './metrics.js';
import { parseExecCommand, welcomeText } from './exec-command.js';

export interface ClientIdentity {
  readonly user: string;
  readonly key: AuthorizedKey;
  readonly remoteAddress: string;
}

export interface ProtocolHandlers {
  worker(channel: ServerChannel, who: ClientIdentity, log: Logger): Promise<void>;
  serve(channel: ServerChannel, who: ClientIdentity, write: boolean, log: Logger): Promise<void>;
}

export interface SshServerOptions {
  readonly hostKey: Buffer;
  /** Read at every authentication, so edits to the file apply without a restart. */
  readonly authorizedKeys: () => Promise<readonly AuthorizedKey[]>;
  readonly handlers: ProtocolHandlers;
  readonly log: Logger;
  /** How the welcome text tells people to reach us. */
  readonly hostHint: string;
  readonly maxSessionsPerKey: number;
  readonly metrics?: GatewayMetrics | undefined;
}

export function createSshServer(opts: SshServerOptions): ssh2.Server {
  const sessionsPerKey = new Map<string, number>();
  return new ssh2.Server({ hostKeys: [opts.hostKey] }, (client: Connection, info) => {
    const remoteAddress = `${info.ip}:${info.port}`;
    // Replies are small and the client waits for each one: without this, Nagle holds a
    // reply's last packet until the client's delayed ACK, ~40 ms per op (bench/README.md).
    // (ssh2 has it on server-side connections too; its typings only declare it for clients.)
    (client as Connection & { setNoDelay(noDelay: boolean): void }).setNoDelay(true);
    let who: ClientIdentity | undefined;
    const log = opts.log.child({ remote: remoteAddress });

    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') {
        ctx.reject(['publickey']);
        return;
      }
      opts
        .authorizedKeys()
        .then((keys) => {
          const key = findKey(keys, ctx.key.algo, ctx.key.data);
          if (!key) {
            log.info({ user: ctx.username, algo: ctx.key.algo }, 'public key not authorized');
            ctx.reject(['publickey']);
            return;
          }
          // Without a signature the client only asks whether the key would do.
          if (ctx.signature === undefined) {
            ctx.accept();
            return;
          }
          if (ctx.blob === undefined || key.key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) {
            log.warn({ user: ctx.username, key: key.fingerprint }, 'bad public key signature');
            ctx.reject(['publickey']);
            return;
          }
          who = { user: ctx.username, key, remoteAddress };
          ctx.accept();
        })
        .catch((err: unknown) => {
          log.error({ err }, 'cannot read authorized keys');
          ctx.reject(['publickey']);
        });
    });

    client.on('ready', () => {
      if (!who) return client.end();
      const identity = who;
      const clog = log.child({
        user: identity.user,
        key: identity.key.fingerprint,
        keyComment: identity.key.comment,
      });
      clog.info('client authenticated');
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('pty', (accept) => accept?.());
        session.on('env', (accept) => accept?.());
        session.on('shell', (accept) => {
          const channel = accept();
          refuse(channel, opts.hostHint);
        });
        session.on('exec', (accept, _reject, req) => {
          const channel = accept();
          const request = parseExecCommand(req.command);
          if (request.kind === 'other') {
            clog.info({ command: req.command }, 'refused a command that is not a Nix protocol');
            refuse(channel, opts.hostHint);
            return;
          }
          const fp = identity.key.fingerprint;
          const open = sessionsPerKey.get(fp) ?? 0;
          if (open >= opts.maxSessionsPerKey) {
            clog.warn({ open }, 'too many sessions for this key');
            channel.stderr.write(
              `error: too many open Nixyard sessions for this key (limit ${opts.maxSessionsPerKey})\n`,
            );
            channel.exit(1);
            channel.end();
            return;
          }
          sessionsPerKey.set(fp, open + 1);
          opts.metrics?.sessionsTotal.inc({ protocol: request.kind });
          opts.metrics?.sessionsActive.inc({ protocol: request.kind });
          const started = Date.now();
          const slog = clog.child({ protocol: request.kind });
          slog.info({ command: req.command }, 'session started');
          const run =
            request.kind === 'worker'
              ? opts.handlers.worker(channel, identity, slog)
              : opts.handlers.serve(channel, identity, request.write, slog);
          run
            .then(
              () => finish(channel, 0),
              (err: unknown) => {
                slog.error({ err }, 'session failed');
                finish(channel, 1);
              },
            )
            .finally(() => {
              sessionsPerKey.set(fp, (sessionsPerKey.get(fp) ?? 1) - 1);
              opts.metrics?.sessionsActive.dec({ protocol: request.kind });
              slog.info({ ms: Date.now() - started }, 'session ended');
            });
        });
      });
    });

    client.on('error', (err) => log.info({ err: err.message }, 'connection error'));
    client.on('close', () => log.debug('connection closed'));
  });
}

function refuse(channel: ServerChannel, hostHint: string): void {
  channel.write(welcomeText(hostHint));
  channel.exit(1);
  channel.end();
}

function finish(channel: ServerChannel, code: number): void {
  if (channel.destroyed) return;
  channel.exit(code);
  channel.end();
}

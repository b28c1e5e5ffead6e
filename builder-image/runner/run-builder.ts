/**
 * Runs the sandboxed builder: spawns the command in its own process group, feeds its
 * output (one stream: the pty, or a pipe for both stdout and stderr) to the log
 * splitter as it arrives, and enforces `timeout`, `max-silent-time` and cancellation by
 * killing the whole process group with SIGKILL. The sandbox (`--die-with-parent`, a PID
 * namespace whose init is the builder) takes every process of the build with it.
 */
import { spawn } from 'node:child_process';
import { LogLineSplitter, type LogSink } from './log.js';

export interface RunOptions {
  readonly argv: readonly string[];
  /** Seconds; 0 = none. */
  readonly timeout: number;
  readonly maxSilentTime: number;
  readonly signal?: AbortSignal | undefined;
  readonly sink: LogSink;
  readonly logLines: number;
  /** Raw output bytes (for callers that want them), in order. */
  readonly onData?: (chunk: Uint8Array) => void;
}

export type RunOutcome =
  | { readonly kind: 'exited'; readonly code: number }
  | { readonly kind: 'signalled'; readonly signal: string }
  | { readonly kind: 'timedOut'; readonly silence: boolean }
  | { readonly kind: 'cancelled' };

export interface RunResult {
  readonly outcome: RunOutcome;
  /** The last `logLines` log lines. */
  readonly tail: readonly string[];
  readonly lines: number;
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

export function runBuilder(opts: RunOptions): Promise<RunResult> {
  const splitter = new LogLineSplitter(opts.sink, opts.logLines);
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = opts.argv;
    const child = spawn(cmd!, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { PATH: '/usr/bin:/bin', SHELL: '/bin/sh' },
    });
    let ending: RunOutcome | undefined;
    let silenceTimer: NodeJS.Timeout | undefined;
    const stop = (why: RunOutcome): void => {
      if (ending) return;
      ending = why;
      killGroup(child.pid);
    };
    const armSilence = (): void => {
      if (opts.maxSilentTime <= 0) return;
      clearTimeout(silenceTimer);
      silenceTimer = setTimeout(() => stop({ kind: 'timedOut', silence: true }), opts.maxSilentTime * 1000);
    };
    const hardTimer =
      opts.timeout > 0
        ? setTimeout(() => stop({ kind: 'timedOut', silence: false }), opts.timeout * 1000)
        : undefined;
    armSilence();
    const onAbort = (): void => stop({ kind: 'cancelled' });
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort);
    const onData = (chunk: Buffer): void => {
      if (ending) return;
      armSilence();
      opts.onData?.(chunk);
      splitter.push(chunk);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => {
      cleanup();
      reject(err);
    });
    const cleanup = (): void => {
      clearTimeout(silenceTimer);
      clearTimeout(hardTimer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    child.on('close', (code, signal) => {
      cleanup();
      // Whatever is left of the group (nothing, normally) goes too.
      killGroup(child.pid);
      if (!ending) splitter.flush();
      const outcome: RunOutcome =
        ending ??
        (code !== null ? { kind: 'exited', code } : { kind: 'signalled', signal: signal ?? 'SIGKILL' });
      resolve({ outcome, tail: [...splitter.tail], lines: splitter.lines });
    });
  });
}

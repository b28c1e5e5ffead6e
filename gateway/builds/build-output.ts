/**
 * What one running build says, shared by every requester that follows it: its builder's
 * log lines, and the runner's notices. Nix shows the two apart: `waiting for lock on …`
 * (another builder holds an output) is its own message, not a line of the build's log.
 * Late followers get the recent past first.
 */

/** Lines kept for requesters who join a build late. */
const REPLAY_LINES = 1000;

/** `nixyard build-drv`'s words while another builder holds one of the outputs (Nix's own). */
const LOCK_WAIT = /^waiting for lock on '\/nix\/store\/[0-9a-df-np-sv-z]{32}-[^']+'$/;

export type LogListener = (line: string) => void;

interface Follower {
  readonly line: LogListener;
  readonly notice: LogListener | undefined;
}

/**
 * Tells the runner's notices from its builder's lines in one runner's output (a child
 * process, a pod): notices come before the builder starts, so once the builder has said
 * anything, nothing is taken for a notice.
 */
export class NoticeDetector {
  private builderSpoke = false;

  isNotice(line: string): boolean {
    const notice = !this.builderSpoke && LOCK_WAIT.test(line);
    if (!notice) this.builderSpoke = true;
    return notice;
  }
}

export class BuildOutput {
  private readonly recent: { readonly text: string; readonly notice: boolean }[] = [];
  private readonly followers = new Set<Follower>();

  /** A builder's line, or a runner's notice (see NoticeDetector). */
  push(text: string, notice = false): void {
    this.recent.push({ text, notice });
    if (this.recent.length > REPLAY_LINES) this.recent.shift();
    for (const f of this.followers) (notice ? f.notice : f.line)?.(text);
  }

  /** Replays the recent past to `line` (and `notice`), then follows; returns an unsubscribe. */
  follow(line: LogListener, notice?: LogListener): () => void {
    const follower = { line, notice };
    for (const r of this.recent) (r.notice ? notice : line)?.(r.text);
    this.followers.add(follower);
    return () => this.followers.delete(follower);
  }

  /** The build ended: nobody is told anything more. */
  close(): void {
    this.followers.clear();
  }
}

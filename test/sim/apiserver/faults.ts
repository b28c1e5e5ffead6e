/**
 * Fault injection for the HTTP layer: answer with an error (500, 429 with
 * Retry-After, 410…), delay, drop the connection, or hang without answering, for
 * requests that match. Watch-level faults (close, go silent, expire resourceVersions)
 * are methods of SimApiServer. Rules can be added in-process or through
 * `POST /__sim/faults` with the same JSON.
 */
export type FaultAction =
  | { type: 'status'; code: number; reason?: string; message?: string; retryAfterSeconds?: number }
  | { type: 'delay'; ms: number }
  | { type: 'drop' }
  | { type: 'hang' };

export interface FaultRule {
  /** HTTP method to match (any when absent). */
  method?: string;
  /** Regular expression source matched against the path (any when absent). */
  path?: string;
  /** Match only watch requests (true) or only non-watch requests (false). */
  watch?: boolean;
  /** Match this many requests, then retire (unlimited when absent). */
  times?: number;
  action: FaultAction;
}

interface ActiveRule extends FaultRule {
  id: number;
  hits: number;
  re?: RegExp;
}

export class Faults {
  private rules: ActiveRule[] = [];
  private nextId = 1;

  add(rule: FaultRule): number {
    const id = this.nextId++;
    this.rules.push({ ...rule, id, hits: 0, ...(rule.path ? { re: new RegExp(rule.path) } : {}) });
    return id;
  }

  remove(id: number): void {
    this.rules = this.rules.filter((r) => r.id !== id);
  }

  clear(): void {
    this.rules = [];
  }

  match(method: string, path: string, watch: boolean): FaultAction | undefined {
    for (const r of this.rules) {
      if (r.method && r.method.toUpperCase() !== method) continue;
      if (r.re && !r.re.test(path)) continue;
      if (r.watch !== undefined && r.watch !== watch) continue;
      r.hits++;
      if (r.times !== undefined && r.hits >= r.times) this.remove(r.id);
      return r.action;
    }
    return undefined;
  }
}

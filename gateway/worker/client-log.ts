/**
 * The stderr channel towards one worker-protocol client while an op is working: log
 * lines, activities and results, in the negotiated version's format. Nothing here ends
 * an op; the session sends STDERR_LAST or STDERR_ERROR.
 */
import type { StderrMessage, ActivityField } from '../../nix/protocol/stderr.js';
import { encodeStderrMessage } from '../../nix/protocol/stderr.js';
import type { Ctx } from '../../nix/protocol/codec.js';
import type { WireWriter } from '../../nix/wire/writer.js';

export class ClientLog {
  private nextActivity = 1n;
  // Activity ids are (pid << 32) + counter in Nix; any unique non-zero id will do.
  private readonly idBase = BigInt(process.pid) << 32n;

  constructor(
    private readonly writer: WireWriter,
    private readonly ctx: () => Ctx,
  ) {}

  send(message: StderrMessage): Promise<void> {
    return this.writer.write(encodeStderrMessage(message, this.ctx()));
  }

  /** A line the client prints as is (STDERR_NEXT). */
  line(text: string): Promise<void> {
    return this.send({ type: 'next', text: text.endsWith('\n') ? text : `${text}\n` });
  }

  async startActivity(
    activityType: number,
    text: string,
    fields: ActivityField[],
    level = 3,
  ): Promise<bigint> {
    const id = this.idBase + this.nextActivity++;
    await this.send({ type: 'startActivity', id, level, activityType, text, fields, parent: 0n });
    return id;
  }

  result(id: bigint, resultType: number, fields: ActivityField[]): Promise<void> {
    return this.send({ type: 'result', id, resultType, fields });
  }

  stopActivity(id: bigint): Promise<void> {
    return this.send({ type: 'stopActivity', id });
  }
}

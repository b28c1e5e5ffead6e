/**
 * Stored build logs: one gzip file per derivation, `<data dir>/logs/<drv base name>.gz`
 * (the place and format `AddBuildLog` uses, so `nix store copy-log --to` and our own
 * builds land in the same files). Files are written to a temporary name in the same
 * directory and renamed into place, so a reader never sees half a log, and a build that
 * is cancelled leaves nothing behind.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, type Gzip } from 'node:zlib';

export const LOGS_DIR = 'logs';

/** `<data dir>/logs/<base name>.gz` of a .drv path or base name. */
export function buildLogFile(dataDir: string, drvPath: string): string {
  const base = basename(drvPath);
  if (!base.endsWith('.drv') || base.startsWith('.')) throw new Error(`not a derivation: '${drvPath}'`);
  return join(dataDir, LOGS_DIR, `${base}.gz`);
}

/** A log being written: lines go through gzip to a temporary file until `commit`. */
export class BuildLogWriter {
  private constructor(
    private readonly gzip: Gzip,
    private readonly done: Promise<void>,
    private readonly tmp: string,
    private readonly file: string,
  ) {}

  static async open(dataDir: string, drvPath: string): Promise<BuildLogWriter> {
    const file = buildLogFile(dataDir, drvPath);
    await mkdir(join(dataDir, LOGS_DIR), { recursive: true });
    const tmp = join(dataDir, LOGS_DIR, `.${basename(file)}.${process.pid}.${Date.now()}.tmp`);
    const gzip = createGzip();
    const out: WriteStream = createWriteStream(tmp);
    const done = pipeline(gzip, out);
    done.catch(() => undefined);
    return new BuildLogWriter(gzip, done, tmp, file);
  }

  /** One log line (without its newline). Gzip buffers; no back-pressure is needed for logs. */
  line(text: string): void {
    this.gzip.write(`${text}\n`);
  }

  /** Finish the file and move it into place (replacing an older log of the derivation). */
  async commit(): Promise<void> {
    this.gzip.end();
    await this.done;
    await rename(this.tmp, this.file);
  }

  /** Drop what was written. */
  async abort(): Promise<void> {
    this.gzip.destroy();
    await this.done.catch(() => undefined);
    await rm(this.tmp, { force: true });
  }
}

/** The stored log of a derivation, or undefined when there is none. */
export async function readBuildLog(dataDir: string, drvPath: string): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  try {
    await pipeline(createReadStream(buildLogFile(dataDir, drvPath)), createGunzip(), async (source) => {
      for await (const c of source as AsyncIterable<Buffer>) chunks.push(c);
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return Buffer.concat(chunks);
}

/**
 * NAR parser: I/O-free and push-driven (`archive.cc parse`, protocol reference §10).
 *
 * Give it bytes with `push`; it returns the events completed so far and how many of
 * the bytes belonged to the NAR. It never holds a whole NAR or a whole file: file
 * contents come out as zero-copy `data` events (subarrays of the pushed chunk, valid
 * as long as the caller keeps that chunk unchanged). Every length is checked against
 * `NarLimits` before anything is allocated for it.
 *
 * It accepts only the canonical form Nix writes, so that a NAR has exactly one byte
 * sequence and one narHash: `executable` before `contents`, entries strictly sorted.
 * Nix 2.8's own parser is laxer (it accepts attributes in any order and, because of a
 * bug, unsorted entries); no Nix writes such archives.
 *
 * After an error the parser is dead: every later call rethrows that error.
 */
import { ErrorCode, NixFormatError, type ErrorContext } from '../errors.js';
import { Token, bytesEqual, compareBytes, describePath, paddingFor } from './format.js';

export interface NarLimits {
  /** Longest directory entry name, in bytes (Linux NAME_MAX). */
  readonly maxNameLength: number;
  /** Longest symlink target, in bytes (Linux PATH_MAX - 1). */
  readonly maxTargetLength: number;
  /** Most path components below the root (the root is depth 0). */
  readonly maxDepth: number;
  /** Largest file, in bytes; at most `Number.MAX_SAFE_INTEGER`. */
  readonly maxFileSize: number;
  readonly maxEntriesPerDirectory: number;
}

export const DEFAULT_NAR_LIMITS: NarLimits = {
  maxNameLength: 255,
  maxTargetLength: 4095,
  maxDepth: 1024,
  maxFileSize: Number.MAX_SAFE_INTEGER,
  maxEntriesPerDirectory: 1_000_000,
};

/** Entry names from the root; `[]` is the root itself. */
export type NarPath = readonly Uint8Array[];

export type NarEvent =
  | { readonly type: 'directory'; readonly path: NarPath }
  | { readonly type: 'directoryEnd'; readonly path: NarPath }
  | { readonly type: 'file'; readonly path: NarPath; readonly size: number; readonly executable: boolean }
  /** File contents, in order, between `file` and `fileEnd`. */
  | { readonly type: 'data'; readonly chunk: Uint8Array }
  | { readonly type: 'fileEnd'; readonly path: NarPath }
  | { readonly type: 'symlink'; readonly path: NarPath; readonly target: Uint8Array };

/** What the grammar expects next. Value states carry data; the others one keyword. */
const enum Expect {
  Magic,
  NodeOpen,
  TypeKeyword,
  TypeValue,
  RegularAttribute,
  ExecutableValue,
  ContentsKeyword,
  Contents,
  TargetKeyword,
  Target,
  NodeClose,
  DirectoryItem,
  EntryOpen,
  NameKeyword,
  Name,
  NodeKeyword,
  EntryClose,
}

const KEYWORDS: Partial<Record<Expect, readonly Uint8Array[]>> = {
  [Expect.Magic]: [Token.MAGIC],
  [Expect.NodeOpen]: [Token.OPEN],
  [Expect.TypeKeyword]: [Token.TYPE],
  [Expect.TypeValue]: [Token.REGULAR, Token.SYMLINK, Token.DIRECTORY],
  [Expect.RegularAttribute]: [Token.EXECUTABLE, Token.CONTENTS],
  [Expect.ExecutableValue]: [Token.EMPTY],
  [Expect.ContentsKeyword]: [Token.CONTENTS],
  [Expect.TargetKeyword]: [Token.TARGET],
  [Expect.NodeClose]: [Token.CLOSE],
  [Expect.DirectoryItem]: [Token.ENTRY, Token.CLOSE],
  [Expect.EntryOpen]: [Token.OPEN],
  [Expect.NameKeyword]: [Token.NAME],
  [Expect.NodeKeyword]: [Token.NODE],
  [Expect.EntryClose]: [Token.CLOSE],
};

const enum Phase {
  Length,
  Bytes,
  Contents,
  Padding,
}

const SLASH = 0x2f;
const DOT = 0x2e;

export class NarParser {
  private readonly limits: NarLimits;
  private expect = Expect.Magic;
  private phase = Phase.Length;
  private readonly lengthBytes = new Uint8Array(8);
  private lengthFill = 0;
  private token = new Uint8Array(0);
  private tokenFill = 0;
  private contentsLeft = 0;
  private paddingLeft = 0;
  private tokenStart = 0;
  private executable = false;
  /** Names from the root to the node being parsed. */
  private readonly path: Uint8Array[] = [];
  /** One frame per open directory: the previous entry name and the entry count. */
  private readonly directories: { previous: Uint8Array | undefined; entries: number }[] = [];
  private failure: NixFormatError | undefined;
  private position = 0;
  private finished = false;

  constructor(limits: Partial<NarLimits> = {}) {
    const merged = { ...DEFAULT_NAR_LIMITS, ...limits };
    // Sizes are numbers: keep them exact.
    this.limits = { ...merged, maxFileSize: Math.min(merged.maxFileSize, Number.MAX_SAFE_INTEGER) };
  }

  /** True once the root node's final `)` (and its padding) has been consumed. */
  get done(): boolean {
    return this.finished;
  }

  /** Bytes consumed so far: the NAR size once `done`. */
  get offset(): number {
    return this.position;
  }

  /**
   * Feed bytes. Returns the events completed so far and how many bytes of `chunk`
   * belonged to the NAR; once `done`, the rest of the chunk is left to the caller.
   */
  push(chunk: Uint8Array): { events: NarEvent[]; consumed: number } {
    if (this.failure) throw this.failure;
    const events: NarEvent[] = [];
    let pos = 0;
    try {
      while (!this.finished) {
        const available = chunk.length - pos;
        if (this.phase === Phase.Length) {
          if (available === 0) break;
          const n = Math.min(8 - this.lengthFill, available);
          this.lengthBytes.set(chunk.subarray(pos, pos + n), this.lengthFill);
          this.lengthFill += n;
          pos += n;
          this.position += n;
          if (this.lengthFill === 8) {
            this.lengthFill = 0;
            this.tokenStart = this.position - 8;
            this.onLength(readU64(this.lengthBytes), events);
          }
        } else if (this.phase === Phase.Bytes) {
          const n = Math.min(this.token.length - this.tokenFill, available);
          if (n === 0 && this.tokenFill < this.token.length) break;
          this.token.set(chunk.subarray(pos, pos + n), this.tokenFill);
          this.tokenFill += n;
          pos += n;
          this.position += n;
          if (this.tokenFill === this.token.length) {
            this.phase = Phase.Padding;
            this.paddingLeft = paddingFor(this.token.length);
          }
        } else if (this.phase === Phase.Contents) {
          const n = Math.min(this.contentsLeft, available);
          if (n === 0 && this.contentsLeft > 0) break;
          if (n > 0) events.push({ type: 'data', chunk: chunk.subarray(pos, pos + n) });
          this.contentsLeft -= n;
          pos += n;
          this.position += n;
          if (this.contentsLeft === 0) this.phase = Phase.Padding;
        } else {
          while (this.paddingLeft > 0 && pos < chunk.length) {
            if (chunk[pos] !== 0) {
              throw this.error(ErrorCode.NAR_NONZERO_PADDING, 'non-zero padding byte', {
                offset: this.position,
              });
            }
            this.paddingLeft--;
            pos++;
            this.position++;
          }
          if (this.paddingLeft > 0) break;
          this.phase = Phase.Length;
          this.onToken(events);
        }
      }
    } catch (err) {
      if (err instanceof NixFormatError) this.failure = err;
      throw err;
    }
    return { events, consumed: pos };
  }

  /** Call at the end of the input: throws `NAR_TRUNCATED` unless the NAR was complete. */
  end(): void {
    if (this.failure) throw this.failure;
    if (!this.finished) {
      this.failure = this.error(ErrorCode.NAR_TRUNCATED, 'NAR ends before its root node is closed', {
        offset: this.position,
      });
      throw this.failure;
    }
  }

  private onLength(length: bigint, events: NarEvent[]): void {
    const expect = this.expect;
    if (expect === Expect.Contents) {
      this.checkLimit(length, this.limits.maxFileSize, 'file size', 'maxFileSize');
      const size = Number(length);
      events.push({ type: 'file', path: this.path.slice(), size, executable: this.executable });
      this.phase = Phase.Contents;
      this.contentsLeft = size;
      this.paddingLeft = paddingFor(size);
      return;
    }
    if (expect === Expect.Name) {
      this.checkLimit(length, this.limits.maxNameLength, 'entry name', 'maxNameLength');
      if (length === 0n) throw this.error(ErrorCode.NAR_BAD_ENTRY_NAME, 'empty entry name');
    } else if (expect === Expect.Target) {
      this.checkLimit(length, this.limits.maxTargetLength, 'symlink target', 'maxTargetLength');
    } else if (!KEYWORDS[expect]!.some((k) => BigInt(k.length) === length)) {
      // No keyword has this length: reject it before reading (or allocating) anything.
      throw this.unexpected(expect, `a ${length}-byte string`);
    }
    this.token = new Uint8Array(Number(length));
    this.tokenFill = 0;
    this.phase = Phase.Bytes;
  }

  private onToken(events: NarEvent[]): void {
    const token = this.token;
    switch (this.expect) {
      case Expect.Contents:
        events.push({ type: 'fileEnd', path: this.path.slice() });
        this.expect = Expect.NodeClose;
        return;
      case Expect.Target:
        events.push({ type: 'symlink', path: this.path.slice(), target: token });
        this.expect = Expect.NodeClose;
        return;
      case Expect.Name:
        this.onName(token);
        this.expect = Expect.NodeKeyword;
        return;
      default:
        break;
    }
    const keyword = KEYWORDS[this.expect]!.find((k) => bytesEqual(k, token));
    if (keyword === undefined) throw this.unexpected(this.expect, `'${printable(token)}'`);
    switch (this.expect) {
      case Expect.Magic:
        this.expect = Expect.NodeOpen;
        break;
      case Expect.NodeOpen:
        this.expect = Expect.TypeKeyword;
        break;
      case Expect.TypeKeyword:
        this.expect = Expect.TypeValue;
        break;
      case Expect.TypeValue:
        if (keyword === Token.REGULAR) {
          this.executable = false;
          this.expect = Expect.RegularAttribute;
        } else if (keyword === Token.SYMLINK) {
          this.expect = Expect.TargetKeyword;
        } else {
          events.push({ type: 'directory', path: this.path.slice() });
          this.directories.push({ previous: undefined, entries: 0 });
          this.expect = Expect.DirectoryItem;
        }
        break;
      case Expect.RegularAttribute:
        this.expect = keyword === Token.EXECUTABLE ? Expect.ExecutableValue : Expect.Contents;
        break;
      case Expect.ExecutableValue:
        this.executable = true;
        this.expect = Expect.ContentsKeyword;
        break;
      case Expect.ContentsKeyword:
        this.expect = Expect.Contents;
        break;
      case Expect.TargetKeyword:
        this.expect = Expect.Target;
        break;
      case Expect.NodeClose:
        this.closeNode();
        break;
      case Expect.DirectoryItem:
        if (keyword === Token.ENTRY) {
          this.expect = Expect.EntryOpen;
        } else {
          this.directories.pop();
          events.push({ type: 'directoryEnd', path: this.path.slice() });
          this.closeNode();
        }
        break;
      case Expect.EntryOpen:
        this.expect = Expect.NameKeyword;
        break;
      case Expect.NameKeyword:
        this.expect = Expect.Name;
        break;
      case Expect.NodeKeyword:
        this.expect = Expect.NodeOpen;
        break;
      case Expect.EntryClose:
        this.path.pop();
        this.expect = Expect.DirectoryItem;
        break;
      default:
        throw new Error(`unreachable NAR parser state ${this.expect as number}`);
    }
  }

  /** The node at `path` is complete: the NAR ends, or its entry's `)` comes next. */
  private closeNode(): void {
    if (this.path.length === 0) {
      this.finished = true;
    } else {
      this.expect = Expect.EntryClose;
    }
  }

  private onName(name: Uint8Array): void {
    const context = { name: printable(name) };
    const isDots = (name.length === 1 || name.length === 2) && name.every((b) => b === DOT);
    if (isDots)
      throw this.error(ErrorCode.NAR_BAD_ENTRY_NAME, `invalid entry name '${printable(name)}'`, context);
    if (name.includes(SLASH) || name.includes(0)) {
      throw this.error(ErrorCode.NAR_BAD_ENTRY_NAME, `entry name contains '/' or NUL`, context);
    }
    const directory = this.directories[this.directories.length - 1]!;
    if (directory.previous !== undefined) {
      const order = compareBytes(directory.previous, name);
      if (order >= 0) {
        const what = order === 0 ? 'duplicate entry' : 'entries not sorted at';
        throw this.error(ErrorCode.NAR_UNSORTED_ENTRIES, `${what} '${printable(name)}'`, context);
      }
    }
    if (++directory.entries > this.limits.maxEntriesPerDirectory) {
      throw this.error(ErrorCode.NAR_LENGTH_LIMIT, 'too many directory entries', {
        limit: this.limits.maxEntriesPerDirectory,
        field: 'maxEntriesPerDirectory',
      });
    }
    if (this.path.length + 1 > this.limits.maxDepth) {
      throw this.error(ErrorCode.NAR_TOO_DEEP, 'NAR nests deeper than allowed', {
        limit: this.limits.maxDepth,
      });
    }
    directory.previous = name;
    this.path.push(name);
  }

  private checkLimit(length: bigint, limit: number, what: string, field: string): void {
    if (length > BigInt(limit)) {
      throw this.error(
        ErrorCode.NAR_LENGTH_LIMIT,
        `${what} of ${length} bytes exceeds the limit of ${limit}`,
        {
          length,
          limit,
          field,
        },
      );
    }
  }

  private unexpected(expect: Expect, got: string): NixFormatError {
    if (expect === Expect.Magic) return this.error(ErrorCode.NAR_BAD_MAGIC, 'not a NAR: bad magic');
    const wanted = KEYWORDS[expect]!.map((k) => `'${printable(k)}'`).join(' or ');
    return this.error(ErrorCode.NAR_UNEXPECTED_TOKEN, `expected ${wanted}, got ${got}`);
  }

  private error(code: ErrorCode, message: string, context: ErrorContext = {}): NixFormatError {
    const path = describePath(this.path);
    const offset = context.offset ?? this.tokenStart;
    return new NixFormatError(code, `${message} (NAR offset ${offset}, path ${path})`, {
      path,
      ...context,
      offset,
    });
  }
}

function readU64(bytes: Uint8Array): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
}

/** A short, printable rendering of untrusted bytes for messages. */
function printable(bytes: Uint8Array): string {
  const text = new TextDecoder().decode(bytes.subarray(0, 64));
  const safe = JSON.stringify(text)
    .slice(1, -1)
    .replace(/[\u007f-\u009f]/g, '?');
  return bytes.length > 64 ? `${safe}…` : safe;
}

/**
 * Parse a whole NAR from a byte stream, yielding its events. Throws `NAR_TRAILING_DATA`
 * if bytes follow the NAR and `NAR_TRUNCATED` if the stream ends early.
 */
export async function* parseNarStream(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  limits?: Partial<NarLimits>,
): AsyncGenerator<NarEvent, void, undefined> {
  const parser = new NarParser(limits);
  for await (const chunk of source) {
    if (chunk.length === 0) continue;
    const { events, consumed } = parser.push(chunk);
    yield* events;
    if (consumed < chunk.length) {
      throw new NixFormatError(
        ErrorCode.NAR_TRAILING_DATA,
        `data after the end of the NAR at offset ${parser.offset}`,
        {
          offset: parser.offset,
        },
      );
    }
  }
  parser.end();
}

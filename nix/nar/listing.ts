/**
 * A listing of a NAR in the format of `nix nar ls -lR FILE /` and `nix store ls -lR`
 * (Nix 2.8 `ls.cc`): one line per node, depth first in NAR order, the root directory
 * itself not shown and its children named `./name`:
 *
 *     -r--r--r--                    5 ./a
 *     dr-xr-xr-x                    0 ./d
 *     lrwxrwxrwx                    0 ./link -> target
 *
 * A NAR whose root is a file or symlink lists one line with an empty name. Names and
 * targets are raw bytes (Nix prints them unescaped), so lines are bytes, not strings.
 */
import type { NarEvent, NarPath } from './parser.js';

export interface ListingOptions {
  /** Mode and size columns and symlink targets, like `-l` (default true); else names only. */
  readonly long?: boolean;
}

/** Turns parser events into listing lines, each ending in `\n`. */
export async function* narListing(
  events: AsyncIterable<NarEvent>,
  options: ListingOptions = {},
): AsyncGenerator<Buffer, void, undefined> {
  const long = options.long ?? true;
  for await (const event of events) {
    switch (event.type) {
      case 'directory':
        if (event.path.length > 0) yield line(long, 'dr-xr-xr-x', 0, event.path);
        break;
      case 'file':
        yield line(long, event.executable ? '-r-xr-xr-x' : '-r--r--r--', event.size, event.path);
        break;
      case 'symlink':
        yield line(long, 'lrwxrwxrwx', 0, event.path, event.target);
        break;
      default:
        break;
    }
  }
}

function line(long: boolean, mode: string, size: number, path: NarPath, target?: Uint8Array): Buffer {
  const parts: Uint8Array[] = [];
  if (long) parts.push(Buffer.from(`${mode} ${String(size).padStart(20)} `));
  parts.push(relativeName(path));
  if (long && target) parts.push(Buffer.from(' -> '), target);
  parts.push(Buffer.from('\n'));
  return Buffer.concat(parts);
}

/** `.` joined with the names (`./a/b`), or empty for a root that is not a directory. */
function relativeName(path: NarPath): Buffer {
  if (path.length === 0) return Buffer.alloc(0);
  const parts: Uint8Array[] = [Buffer.from('.')];
  for (const name of path) parts.push(Buffer.from('/'), name);
  return Buffer.concat(parts);
}

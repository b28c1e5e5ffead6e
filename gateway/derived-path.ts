/**
 * DerivedPath strings on the wire (reference §6.3): an opaque store path, or
 * `<drv>!<out1>,<out2>` / `<drv>!*`. Older clients send the same syntax
 * (StorePathWithOutputs), so one parser serves every version.
 */
import { parseStorePath } from '../nix/store-path.js';

export type DerivedPath =
  | { readonly kind: 'opaque'; readonly path: string }
  | { readonly kind: 'built'; readonly drvPath: string; readonly outputs: 'all' | readonly string[] };

export function parseDerivedPath(text: string): DerivedPath {
  const bang = text.indexOf('!');
  if (bang < 0) {
    parseStorePath(text);
    return { kind: 'opaque', path: text };
  }
  const drvPath = text.slice(0, bang);
  parseStorePath(drvPath);
  const outs = text.slice(bang + 1);
  return { kind: 'built', drvPath, outputs: outs === '*' ? 'all' : outs.split(',').filter((o) => o !== '') };
}

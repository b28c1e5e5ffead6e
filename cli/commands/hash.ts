import { parseArgs } from 'node:util';
import { parseHashAlgo, type HashEncoding } from '../../nix/hash.js';
import { hashFile, hashPath } from '../../nix/path-hash.js';
import { UsageError, type Command } from '../command.js';

const usage = `Usage: nixyard hash path|file [--type ALGO] [--base16|--base32|--base64|--sri] PATH...

Prints the hash of each PATH as Nix computes it, one per line:
  path   hash of the NAR serialisation of PATH (like 'nix hash path')
  file   hash of the contents of the regular file PATH (like 'nix hash file')

Options:
  --type ALGO   md5, sha1, sha256 (default) or sha512
  --sri         print as SRI, <algo>-<base64> (default)
  --base16      print the bare digest in hexadecimal
  --base32      print the bare digest in Nix's base32
  --base64      print the bare digest in base64
`;

const ENCODINGS = ['base16', 'base32', 'base64', 'sri'] as const;

export function parseEncodingFlags(values: Partial<Record<HashEncoding, boolean | undefined>>): HashEncoding {
  const chosen = ENCODINGS.filter((e) => values[e] === true);
  if (chosen.length > 1) throw new UsageError(`choose one of --${chosen.join(', --')}`);
  return chosen[0] ?? 'sri';
}

export const hashCommand: Command = {
  name: 'hash',
  usage,
  async run(argv, io) {
    const { positionals, values } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        type: { type: 'string', default: 'sha256' },
        base16: { type: 'boolean' },
        base32: { type: 'boolean' },
        base64: { type: 'boolean' },
        sri: { type: 'boolean' },
      },
    });
    const [mode, ...paths] = positionals;
    if (mode !== 'path' && mode !== 'file') throw new UsageError("expected 'path' or 'file'");
    if (paths.length === 0) throw new UsageError('expected at least one PATH');
    const algo = parseHashAlgo(values.type);
    const encoding = parseEncodingFlags(values);
    for (const p of paths) {
      const { hash } = mode === 'path' ? await hashPath(p, algo) : await hashFile(p, algo);
      io.stdout.write(`${hash.encode(encoding)}\n`);
    }
    return 0;
  },
};

import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseHashAlgo } from '../../nix/hash.js';
import { hashFile, hashPath } from '../../nix/path-hash.js';
import { makeFixedOutputPath, STORE_DIR } from '../../nix/store-path.js';
import { UsageError, type Command } from '../command.js';

const usage = `Usage: nixyard store-path add PATH [--flat | --recursive] [--type ALGO] [--name NAME] [--store-dir DIR]

Prints the store path that adding PATH would give, without touching any store:
  (no flags)                 like 'nix-store --add PATH'            (recursive, sha256)
  --type ALGO                like 'nix-store --add-fixed ALGO PATH'  (flat)
  --recursive --type ALGO    like 'nix-store --add-fixed --recursive ALGO PATH'

Options:
  --flat          hash the file's contents (PATH must be a regular file)
  --recursive     hash the NAR serialisation of PATH
  --type ALGO     md5, sha1, sha256 (default) or sha512
  --name NAME     the store path name (default: the base name of PATH)
  --store-dir DIR the logical store directory (default: ${STORE_DIR})
`;

export const storePathCommand: Command = {
  name: 'store-path',
  usage,
  async run(argv, io) {
    const { positionals, values } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        flat: { type: 'boolean' },
        recursive: { type: 'boolean' },
        type: { type: 'string' },
        name: { type: 'string' },
        'store-dir': { type: 'string', default: STORE_DIR },
      },
    });
    const [action, path, ...extra] = positionals;
    if (action !== 'add') throw new UsageError("expected 'add'");
    if (path === undefined || extra.length > 0) throw new UsageError('expected exactly one PATH');
    if (values.flat && values.recursive) throw new UsageError('--flat and --recursive exclude each other');
    // Like nix-store: --add is recursive sha256; --add-fixed ALGO is flat unless --recursive.
    const method = values.recursive || (!values.flat && values.type === undefined) ? 'recursive' : 'flat';
    const algo = parseHashAlgo(values.type ?? 'sha256');
    const name = values.name ?? basename(resolve(path));
    const { hash } = method === 'recursive' ? await hashPath(path, algo) : await hashFile(path, algo);
    io.stdout.write(`${makeFixedOutputPath(name, { method, hash }, values['store-dir'])}\n`);
    return 0;
  },
};

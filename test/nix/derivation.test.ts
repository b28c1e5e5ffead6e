/** Unit tests of the derivation library: the §11/§12 vectors, escaping, strict parsing. */
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { ErrorCode, isNixFormatError, NixFormatError } from '../../nix/errors.js';
import { Hash, hashOf } from '../../nix/hash.js';
import {
  checkDerivation,
  compareByteStrings,
  decodeByteString,
  DerivationHasher,
  derivationOutputPaths,
  derivationStorePath,
  drvOutputId,
  encodeByteString,
  parseDerivation,
  printDerivation,
  printDerivationText,
  type Derivation,
} from '../../nix/derivation/index.js';

const FIXTURE = '/work/shared/fixtures/nix-2.8/build-dag/01-build-ssh-ng/c2s.bin.gz';

/** The .drv texts uploaded in AddMultipleToStore: NAR `contents` strings starting `Derive(`. */
function fixtureDrvs(): Buffer[] {
  const stream = gunzipSync(readFileSync(FIXTURE));
  const out: Buffer[] = [];
  for (let at = stream.indexOf('Derive('); at >= 0; at = stream.indexOf('Derive(', at + 1)) {
    const len = Number(stream.readBigUInt64LE(at - 8));
    out.push(stream.subarray(at, at + len));
  }
  return out;
}

describe('protocol/README.md §11 vectors (build-dag/01 upload)', () => {
  const texts = fixtureDrvs();
  const drvs = new Map<string, Derivation>();
  for (const t of texts) {
    const d = parseDerivation(t);
    drvs.set(derivationStorePath(d, t), d);
  }
  const hasher = new DerivationHasher((p) => {
    const d = drvs.get(p);
    return d ? Promise.resolve(d) : Promise.reject(new NixFormatError(ErrorCode.DRV_INPUT_MISSING, p));
  });
  const byName = (n: string): [string, Derivation] => {
    const e = [...drvs].find(([, d]) => d.name === n);
    if (!e) throw new Error(`no ${n} in the fixture`);
    return e;
  };

  test('five .drv files, each printed back byte for byte', () => {
    expect(texts.length).toBe(5);
    for (const t of texts) expect(printDerivation(parseDerivation(t)).equals(t)).toBe(true);
  });

  test('dep-a.drv and its output', async () => {
    const [path, d] = byName('dep-a');
    expect(path).toBe('/nix/store/bsp8nbk7szz3adz2zi929m3a3z0ivkwy-dep-a.drv');
    expect((await derivationOutputPaths(d, hasher)).get('out')).toBe(
      '/nix/store/338l9wqcr7xbivaa0y5ib4sj5i851vpm-dep-a',
    );
  });

  test('multi.drv: three outputs from one hashModulo', async () => {
    const [, d] = byName('multi');
    const masked = await hasher.hashModulo(d, true);
    expect(new Set([...masked.hashes.values()].map((h) => h.toBase16())).size).toBe(1);
    expect(masked.hashes.get('out')?.toBase16()).toMatch(/^74d8536a.*8a8d$/);
    const outs = await derivationOutputPaths(d, hasher);
    expect(outs.get('dev')).toMatch(/^\/nix\/store\/zy0lrvjw[a-z0-9]{24}-multi-dev$/);
    expect(outs.get('lib')).toMatch(/^\/nix\/store\/s00y7s98[a-z0-9]{24}-multi-lib$/);
    expect(outs.get('out')).toMatch(/^\/nix\/store\/2a5mnyc1[a-z0-9]{24}-multi$/);
  });

  test('top.drv: path, hashModulo, output, DrvOutput id; all checks pass', async () => {
    const [path, d] = byName('top');
    expect(path).toBe('/nix/store/i8wnk93fbqdgmacz5gzjqhn92p3jghww-top.drv');
    const masked = await hasher.hashModulo(d, true);
    const h = masked.hashes.get('out')!;
    expect(h.toBase16()).toBe('8ec59f0d8c36d904d24bc20d8994c6d841da841658660c30a3ff404b4631052a');
    expect(drvOutputId(h, 'out')).toBe(
      'sha256:8ec59f0d8c36d904d24bc20d8994c6d841da841658660c30a3ff404b4631052a!out',
    );
    expect((await derivationOutputPaths(d, hasher)).get('out')).toBe(
      '/nix/store/dczwm8rvskykby24x4nb8xkczxcrbzh9-top',
    );
    for (const [p, drv] of drvs) {
      expect((await checkDerivation(drv, hasher, { drvPath: p })).filter((c) => !c.ok)).toEqual([]);
    }
  });

  test('fixed-hello: the fixed-output path', async () => {
    const [, d] = byName('fixed-hello');
    expect((await derivationOutputPaths(d, hasher)).get('out')).toBe(
      '/nix/store/p5v2cagqczh89szhhm6qq5xjl4spyk61-fixed-hello',
    );
  });
});

const P = '/nix/store/00000000000000000000000000000000';
const base = (extra = ''): string =>
  `Derive([("out","${P}-x","","")],[],[],"sys","/bin/sh",[${extra}],[("name","x"),("out","${P}-x")])`;

describe('ATerm escaping', () => {
  test.each([
    ['quote', '"', '\\"'],
    ['backslash', '\\', '\\\\'],
    ['LF', '\n', '\\n'],
    ['CR', '\r', '\\r'],
    ['TAB', '\t', '\\t'],
    ['dollar and unicode verbatim', '$x ü ☃ 𝄞', '$x ü ☃ 𝄞'],
    ['other control bytes verbatim', '\x01\x1b\x7f', '\x01\x1b\x7f'],
  ])('%s', (_name, raw, written) => {
    const text = base(`"${written}"`);
    const d = parseDerivation(Buffer.from(text));
    expect(d.args).toEqual([raw]);
    expect(printDerivation(d).toString()).toBe(text);
  });

  test('invalid UTF-8 round-trips byte for byte', () => {
    const [head, tail] = base('"@"').split('@') as [string, string];
    const bytes = Buffer.concat([
      Buffer.from(head),
      Buffer.from([0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0x5c, 0x6e]),
      Buffer.from(tail),
    ]);
    const d = parseDerivation(bytes);
    expect(d.args).toEqual(['\udcff\udcc3(\udced\udca0\udc80\n']);
    expect(printDerivation(d).equals(bytes)).toBe(true);
  });

  test('byte strings: bijection and byte order', () => {
    const samples = [
      [],
      [0xff],
      [0xc3, 0xa9],
      [0xed, 0xa0, 0x80],
      [0xf0, 0x9d, 0x84, 0x9e],
      [0xf4, 0x90, 0x80, 0x80],
      [0xe2, 0x82],
    ];
    for (const s of samples) expect([...encodeByteString(decodeByteString(Buffer.from(s)))]).toEqual(s);
    expect(decodeByteString(Buffer.from([0xff]))).toBe('\udcff');
    expect(() => encodeByteString('\ud800')).toThrow(NixFormatError);
    // UTF-16 order would put U+FF5E before U+1D11E; bytes (UTF-8) do not.
    expect(compareByteStrings('\uff5e', '𝄞')).toBeLessThan(0);
    expect(compareByteStrings('a', '\udcff')).toBeLessThan(0);
  });
});

describe('strict parser', () => {
  const cases: [string, string, string, number | null][] = [
    ['empty', '', ErrorCode.DRV_PARSE, 0],
    ['not a derivation', 'Hello', ErrorCode.DRV_PARSE, 0],
    ['dynamic derivation', 'DrvWithVersion("xp-dyn-drv",[])', ErrorCode.DRV_UNSUPPORTED, 0],
    ['trailing newline', `${base()}\n`, ErrorCode.DRV_PARSE, base().length],
    ['truncated', base().slice(0, 40), ErrorCode.DRV_PARSE, 16],
    ['whitespace', base().replace('[],[]', '[], []'), ErrorCode.DRV_PARSE, null],
    ['leading comma', base().replace('[("out"', '[,("out"'), ErrorCode.DRV_PARSE, 8],
    ['unknown escape', base('"\\a"'), ErrorCode.DRV_PARSE, null],
    ['raw newline in env', base('"a\nb"'), ErrorCode.DRV_PARSE, null],
    ['escape in a path', base().replace(`${P}-x","",""`, `${P}-\\x","",""`), ErrorCode.DRV_PARSE, null],
    [
      'bad store path',
      base().replace(`("out","${P}-x"`, '("out","/nix/store/short-x"'),
      ErrorCode.DRV_PARSE,
      15,
    ],
    [
      'unsorted env',
      base().replace('("name","x"),("out"', '("out","y"),("name","x"),("zz"'),
      ErrorCode.DRV_PARSE,
      null,
    ],
    ['duplicate env', base().replace('("name","x")', '("name","x"),("name","y")'), ErrorCode.DRV_PARSE, null],
    ['hash without algo', base().replace(`${P}-x","",""`, `${P}-x","","ab"`), ErrorCode.DRV_PARSE, null],
    ['unknown algo', base().replace(`${P}-x","",""`, `${P}-x","sha3","ab"`), ErrorCode.DRV_PARSE, null],
    [
      'uppercase hash',
      base().replace(`${P}-x","",""`, `${P}-x","sha1","${'A'.repeat(40)}"`),
      ErrorCode.DRV_PARSE,
      null,
    ],
    ['short hash', base().replace(`${P}-x","",""`, `${P}-x","sha1","abcd"`), ErrorCode.DRV_PARSE, null],
    [
      'floating with path',
      base().replace(`${P}-x","",""`, `${P}-x","r:sha256",""`),
      ErrorCode.DRV_PARSE,
      null,
    ],
  ];
  test.each(cases)('%s', (_name, text, code, offset) => {
    let err: unknown;
    try {
      parseDerivation(Buffer.from(text));
    } catch (e) {
      err = e;
    }
    expect(isNixFormatError(err, code as never)).toBe(true);
    if (offset !== null) expect((err as NixFormatError).context['offset']).toBe(offset);
    expect((err as NixFormatError).message).toMatch(/derivation|dynamic/);
  });

  test('size limit', () => {
    expect(() => parseDerivation(Buffer.from(base()), { maxBytes: 10 })).toThrow(/limit of 10/);
  });

  test('every output kind parses and prints back', () => {
    const outputs = [
      `("a","","","")`,
      `("b","","r:sha256","")`,
      `("c","","sha1","impure")`,
      `("d","${P}-x-d","text:sha256","${'0'.repeat(64)}")`,
      `("out","${P}-x","","")`,
    ];
    const text = `Derive([${outputs.join(',')}],[],[],"","",[],[])`;
    const d = parseDerivation(Buffer.from(text));
    expect([...d.outputs.values()].map((o) => o.kind)).toEqual([
      'deferred',
      'floating',
      'impure',
      'fixed',
      'inputAddressed',
    ]);
    expect(printDerivation(d).toString()).toBe(text);
  });
});

describe('printer', () => {
  test('sorts outputs, inputs and env by bytes whatever the Map order', () => {
    const d: Derivation = {
      name: 'x',
      outputs: new Map([
        ['out', { kind: 'inputAddressed', path: `${P}-x` }],
        ['dev', { kind: 'inputAddressed', path: `${P}-x-dev` }],
      ]),
      inputDrvs: new Map([
        [`${P}-b.drv`, ['out', 'dev', 'out']],
        [`${P}-a.drv`, ['out']],
      ]),
      inputSrcs: [`${P}-s2`, `${P}-s1`],
      platform: 'p',
      builder: 'b',
      args: ['z', 'a'],
      env: new Map([
        ['é', '1'],
        ['z', '2'],
        ['A', '3'],
      ]),
    };
    expect(printDerivationText(d)).toBe(
      `Derive([("dev","${P}-x-dev","",""),("out","${P}-x","","")],[("${P}-a.drv",["out"]),("${P}-b.drv",["dev","out"])],` +
        `["${P}-s1","${P}-s2"],"p","b",["z","a"],[("A","3"),("z","2"),("é","1")])`,
    );
  });

  test('refuses what cannot be written unescaped', () => {
    const d = parseDerivation(Buffer.from(base()));
    expect(() => printDerivation({ ...d, platform: 'a"b' })).toThrow(NixFormatError);
  });

  test('masking blanks output paths and their env entries', () => {
    const d = parseDerivation(Buffer.from(base()));
    expect(printDerivationText(d, { maskOutputs: true })).toBe(
      'Derive([("out","","","")],[],[],"sys","/bin/sh",[],[("name","x"),("out","")])',
    );
  });
});

describe('hashDerivationModulo', () => {
  const fod = parseDerivation(
    Buffer.from(
      `Derive([("out","/nix/store/p5v2cagqczh89szhhm6qq5xjl4spyk61-fixed-hello","sha256","${hashOf('sha256', 'hello').toBase16()}")],[],[],"s","b",[],[("name","fixed-hello")])`,
    ),
  );

  test('fixed-output rule', async () => {
    const hasher = new DerivationHasher(() => Promise.reject(new Error('no inputs expected')));
    const h = await hasher.hashModulo(fod, true);
    expect(h.hashes.get('out')?.toBase16()).toBe(
      hashOf(
        'sha256',
        `fixed:out:sha256:${hashOf('sha256', 'hello').toBase16()}:/nix/store/p5v2cagqczh89szhhm6qq5xjl4spyk61-fixed-hello`,
      ).toBase16(),
    );
  });

  test('missing inputs and cycles are NixFormatErrors; inputs are loaded once', async () => {
    const self = `${P}-loop.drv`;
    const loop: Derivation = {
      ...parseDerivation(Buffer.from(base())),
      inputDrvs: new Map([[self, ['out']]]),
    };
    let loads = 0;
    const hasher = new DerivationHasher((p) => {
      loads++;
      return p === self
        ? Promise.resolve(loop)
        : Promise.reject(new NixFormatError(ErrorCode.DRV_INPUT_MISSING, p));
    });
    await expect(hasher.hashModulo(loop, true)).rejects.toThrow(/depends on itself/);
    const user: Derivation = { ...loop, inputDrvs: new Map([[`${P}-gone.drv`, ['out']]]) };
    await expect(hasher.hashModulo(user, true)).rejects.toMatchObject({ code: ErrorCode.DRV_INPUT_MISSING });
    expect(loads).toBe(2);
    const h = new Hash('sha256', new Uint8Array(32));
    expect(drvOutputId(h, 'dev')).toBe(`sha256:${'0'.repeat(64)}!dev`);
  });
});

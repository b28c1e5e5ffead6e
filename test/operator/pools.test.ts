import { archOfSystem, choosePool, parsePools } from '../../operator/pools.js';
import { OperatorError, OperatorErrorCode } from '../../operator/errors.js';

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as OperatorError).code;
  }
  return undefined;
}
import { DRV, pools } from './fixtures.js';

describe('pools', () => {
  test.each([
    ['x86_64-linux', 'amd64'],
    ['i686-linux', 'amd64'],
    ['aarch64-linux', 'arm64'],
    ['armv7l-linux', 'arm'],
    ['riscv64-linux', 'riscv64'],
    ['x86_64-darwin', undefined],
    ['builtin', undefined],
  ])('%s runs on kubernetes.io/arch=%s', (system, arch) => expect(archOfSystem(system)).toBe(arch));

  test('parsePools fills defaults and accepts {pools: [...]} or a list', () => {
    const parsed = parsePools({ pools: [{ name: 'small', systems: ['x86_64-linux'] }] });
    expect(parsed).toEqual([
      {
        name: 'small',
        systems: ['x86_64-linux'],
        features: [],
        nodeSelector: {},
        tolerations: [],
        resources: {},
        podLabels: {},
        podAnnotations: {},
      },
    ]);
    expect(parsePools(JSON.parse(JSON.stringify([pools.arm])))).toEqual([pools.arm]);
  });

  test.each([
    ['not a list', { pools: 3 }],
    ['a bad name', [{ name: 'Big Pool', systems: ['x86_64-linux'] }]],
    [
      'a duplicate name',
      [
        { name: 'a', systems: ['x86_64-linux'] },
        { name: 'a', systems: ['x86_64-linux'] },
      ],
    ],
    ['no systems', [{ name: 'a', systems: [] }]],
    ['a darwin system', [{ name: 'a', systems: ['aarch64-darwin'] }]],
    ['a typo in a field', [{ name: 'a', systems: ['x86_64-linux'], nodeSelecter: {} }]],
    ['a bad quantity', [{ name: 'a', systems: ['x86_64-linux'], resources: { limits: { memory: 'much' } } }]],
    [
      'an unsupported resource',
      [{ name: 'a', systems: ['x86_64-linux'], resources: { limits: { 'nvidia.com/gpu': 1 } } }],
    ],
    ['a non-string selector', [{ name: 'a', systems: ['x86_64-linux'], nodeSelector: { a: 1 } }]],
  ])('parsePools refuses %s', (_, doc) => {
    expect(() => parsePools(doc)).toThrow(OperatorError);
    expect(codeOf(() => parsePools(doc))).toBe(OperatorErrorCode.POOLS_INVALID);
  });

  test('choosePool: the first pool with the system and every feature', () => {
    const all = [pools.amd64, pools.arm, pools.kvm];
    expect(choosePool(all, DRV, 'x86_64-linux')).toMatchObject({
      ok: true,
      pool: { name: 'amd64' },
      arch: 'amd64',
    });
    expect(choosePool(all, DRV, 'x86_64-linux', ['kvm'])).toMatchObject({ ok: true, pool: { name: 'kvm' } });
    expect(choosePool(all, DRV, 'aarch64-linux', ['big-parallel'])).toMatchObject({
      ok: true,
      pool: { name: 'arm' },
    });
    expect(choosePool(all, DRV, 'aarch64-linux', ['kvm'])).toMatchObject({
      ok: false,
      reason: 'MissingSystemFeatures',
    });
    expect(choosePool(all, DRV, 'riscv64-linux')).toMatchObject({ ok: false, reason: 'NoPoolForSystem' });
    expect(choosePool([], DRV, 'x86_64-linux')).toMatchObject({
      ok: false,
      message: `a 'x86_64-linux' with features {} is required to build '${DRV}', but no Nixyard pool offers it; no pools are configured`,
    });
  });
});

/**
 * A classic-BPF seccomp filter (the format `bwrap --seccomp FD` reads) that makes
 * chmod/fchmod/fchmodat/fchmodat2 fail with EPERM when the mode has setuid or setgid,
 * like Nix 2.8's sandbox (`setupSeccomp`). x86-64 hosts (native, i386 and x32 ABIs);
 * on other hosts `seccompFilter` returns undefined and canonicalisation strips the bits.
 */
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JSET_K = 0x45;
const AND_K = 0x54;
const RET_K = 0x06;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const AUDIT_ARCH_I386 = 0x40000003;
const X32_BIT = 0x40000000;
const RET_ALLOW = 0x7fff0000;
const RET_EPERM = 0x00050000 | 1;
const SUID_SGID = 0o6000;
/** Offsets in `struct seccomp_data`: nr, arch, args[i] (low 32 bits, little-endian). */
const OFF_NR = 0;
const OFF_ARCH = 4;
const argOffset = (i: number): number => 16 + 8 * i;

type Insn = { code: number; k: number; jt?: string; jf?: string } | { label: string };

function assemble(prog: readonly Insn[]): Buffer {
  const labels = new Map<string, number>();
  const insns: { code: number; k: number; jt?: string; jf?: string }[] = [];
  for (const i of prog) {
    if ('label' in i) labels.set(i.label, insns.length);
    else insns.push(i);
  }
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((i, n) => {
    const rel = (l: string | undefined): number => {
      if (l === undefined) return 0;
      const d = labels.get(l)! - n - 1;
      if (d < 0 || d > 255) throw new Error(`bad jump to ${l}`);
      return d;
    };
    buf.writeUInt16LE(i.code, n * 8);
    buf.writeUInt8(rel(i.jt), n * 8 + 2);
    buf.writeUInt8(rel(i.jf), n * 8 + 3);
    buf.writeUInt32LE(i.k >>> 0, n * 8 + 4);
  });
  return buf;
}

/** Syscall numbers: [mode is arg 1, mode is arg 2]. */
const X86_64 = { modeArg1: [90, 91], modeArg2: [268, 452] };
const I386 = { modeArg1: [15, 94], modeArg2: [306, 452] };

export function seccompFilter(arch: string = process.arch): Buffer | undefined {
  if (arch !== 'x64') return undefined;
  const dispatch = (table: typeof X86_64): Insn[] => [
    ...table.modeArg1.map((nr) => ({ code: JEQ_K, k: nr, jt: 'arg1' })),
    ...table.modeArg2.map((nr) => ({ code: JEQ_K, k: nr, jt: 'arg2' })),
    { code: RET_K, k: RET_ALLOW },
  ];
  return assemble([
    { code: LD_W_ABS, k: OFF_ARCH },
    { code: JEQ_K, k: AUDIT_ARCH_X86_64, jf: 'i386' },
    { code: LD_W_ABS, k: OFF_NR },
    { code: AND_K, k: ~X32_BIT },
    ...dispatch(X86_64),
    { label: 'i386' },
    { code: JEQ_K, k: AUDIT_ARCH_I386, jf: 'allow' },
    { code: LD_W_ABS, k: OFF_NR },
    ...dispatch(I386),
    { label: 'arg1' },
    { code: LD_W_ABS, k: argOffset(1) },
    { code: JSET_K, k: SUID_SGID, jt: 'eperm', jf: 'allow' },
    { label: 'arg2' },
    { code: LD_W_ABS, k: argOffset(2) },
    { code: JSET_K, k: SUID_SGID, jt: 'eperm', jf: 'allow' },
    { label: 'allow' },
    { code: RET_K, k: RET_ALLOW },
    { label: 'eperm' },
    { code: RET_K, k: RET_EPERM },
  ]);
}

// The simulated kubelet's CPU emulation for Node processes (see "CPU architecture" in
// kubelet.ts). The kubelet puts this module in every container's NODE_OPTIONS
// (`--import`) and the node's architecture in SIM_NODE_ARCH (its kubernetes.io/arch
// label, a Go GOARCH name). On a node whose CPU is not this machine's, the process sees
// the node's, as a binary run by qemu-user through binfmt_misc sees the emulated CPU:
// process.arch, os.arch() and os.machine() report it. Nothing else changes — the
// instructions still run natively. No API call: the kubelet knows its node.
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';

/** GOARCH → [process.arch, uname -m]. */
const CPUS = {
  amd64: ['x64', 'x86_64'],
  arm64: ['arm64', 'aarch64'],
  arm: ['arm', 'armv7l'],
  386: ['ia32', 'i686'],
  ppc64le: ['ppc64', 'ppc64le'],
  s390x: ['s390x', 's390x'],
  riscv64: ['riscv64', 'riscv64'],
  loong64: ['loong64', 'loongarch64'],
};

const cpu = Object.hasOwn(CPUS, process.env.SIM_NODE_ARCH ?? '')
  ? CPUS[process.env.SIM_NODE_ARCH]
  : undefined;
if (cpu !== undefined && cpu[0] !== process.arch) {
  const [arch, machine] = cpu;
  Object.defineProperty(process, 'arch', { value: arch, enumerable: true, configurable: true });
  os.arch = () => arch;
  os.machine = () => machine;
  syncBuiltinESMExports();
}

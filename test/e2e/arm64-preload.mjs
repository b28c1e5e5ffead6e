// Preloaded (`node --import`) into the `nixyard` of every simulated build pod: on a node
// labelled kubernetes.io/arch=arm64, process.arch becomes 'arm64', so build-drv builds
// aarch64-linux derivations there (their builder is this machine's busybox: the
// simulated kubelet runs every pod on this machine). Elsewhere it changes nothing.
const api = process.env.NIXYARD_SIM_API;
const ns = process.env.NIXYARD_SIM_NAMESPACE;
const pod = process.env.HOSTNAME;
if (api && ns && pod) {
  try {
    const p = await (await fetch(`${api}/api/v1/namespaces/${ns}/pods/${pod}`)).json();
    const nodeName = p?.spec?.nodeName;
    if (nodeName) {
      const n = await (await fetch(`${api}/api/v1/nodes/${nodeName}`)).json();
      if (n?.metadata?.labels?.['kubernetes.io/arch'] === 'arm64')
        Object.defineProperty(process, 'arch', { value: 'arm64' });
    }
  } catch {
    // Not in the simulated cluster: leave the machine's arch.
  }
}

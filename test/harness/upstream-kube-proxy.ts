// Flags every run of upstream kube-proxy in tests and benches takes, beyond its settings under
// test: leave the host's conntrack sysctls (0 = as is) and the process's OOM score alone.
export const KUBE_PROXY_HOST_NEUTRAL_FLAGS: readonly string[] = [
  '--conntrack-max-per-core=0',
  '--conntrack-tcp-timeout-established=0',
  '--conntrack-tcp-timeout-close-wait=0',
  '--oom-score-adj=0',
];

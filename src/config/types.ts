// The agent's configuration after parsing: one precise, readonly value built once at startup from
// a KubeProxyConfiguration file, the environment and flags (see load.ts). Nothing downstream
// re-validates it.

/** pino's levels; kube-proxy's klog verbosity has no equivalent, so we take the pino name. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Which iptables binaries to drive; `auto` detects the host's backend from its existing rules. */
export const IPTABLES_BACKENDS = ['auto', 'nft', 'legacy'] as const;
export type IptablesBackendSetting = (typeof IPTABLES_BACKENDS)[number];

/** kube-proxy's `detectLocalMode`: how traffic from pods is told from other traffic. */
export const DETECT_LOCAL_MODES = ['ClusterCIDR', 'NodeCIDR', 'BridgeInterface', 'InterfaceNamePrefix'] as const;
export type DetectLocalMode = (typeof DETECT_LOCAL_MODES)[number];

/** `detectLocalMode` with what it needs; ClusterCIDR uses `clusterCIDR`, NodeCIDR the Node's podCIDRs. */
/** The proxy modes kube-proxy-ts implements (kube-proxy's `mode` values). */
export type ProxyMode = 'iptables' | 'nftables';

export type DetectLocal =
  | { readonly mode: 'ClusterCIDR' }
  | { readonly mode: 'NodeCIDR' }
  | { readonly mode: 'BridgeInterface'; readonly bridgeInterface: string }
  | { readonly mode: 'InterfaceNamePrefix'; readonly interfaceNamePrefix: string };

/**
 * kube-proxy's `nodePortAddresses`: unset means NodePorts answer on every local address;
 * `primary` means only on the node's primary IP(s) from the Node object; otherwise a CIDR list.
 */
export type NodePortAddresses =
  | { readonly kind: 'all' }
  | { readonly kind: 'primary' }
  /** Normalised CIDRs of either family (host bits cleared); never empty. Each proxier takes its
   * family's; a family with none matches all its addresses (kube-proxy's NewNodePortAddresses). */
  | { readonly kind: 'cidrs'; readonly cidrs: readonly string[] };

/** A `host:port` to listen on. `port` 0 asks the kernel for a free port (tests). */
export interface BindAddress {
  /** An IP literal (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
}

export interface AgentConfig {
  /** This node's name: `hostnameOverride`, else NODE_NAME, else the lowercased hostname. */
  readonly nodeName: string;
  /** Path to a kubeconfig; undefined = in-cluster config or $KUBECONFIG. */
  readonly kubeconfig: string | undefined;
  /** Normalised pod CIDRs (`clusterCIDR`: one, or a dual-stack pair), at most one per family; with
   * detectLocalMode ClusterCIDR, a family without one gets no "masquerade off-cluster traffic" rule. */
  readonly clusterCIDRs: readonly string[];
  /** How traffic from pods is told from other traffic (`detectLocalMode`, `detectLocal`). */
  readonly detectLocal: DetectLocal;
  /** `iptables.masqueradeAll`: masquerade all traffic to cluster IPs, not only what is not from a pod. */
  readonly masqueradeAll: boolean;
  /**
   * `iptables.localhostNodePorts`: NodePorts also answer on 127.0.0.1 (kube-proxy's default, true).
   * Only where nodePortAddresses covers the loopback, and only with net.ipv4.conf.all.route_localnet=1.
   */
  readonly localhostNodePorts: boolean;
  readonly nodePortAddresses: NodePortAddresses;
  /** How often a sync runs even without changes (kube-proxy `syncPeriod`). */
  readonly syncPeriodMs: number;
  /** The shortest gap between two syncs (kube-proxy `minSyncPeriod`); never above syncPeriodMs. */
  readonly minSyncPeriodMs: number;
  /** undefined = no metrics server (`metricsBindAddress: ""`). */
  readonly metricsBindAddress: BindAddress | undefined;
  /** undefined = no /healthz server (`healthzBindAddress: ""`). */
  readonly healthzBindAddress: BindAddress | undefined;
  /** kube-proxy's `mode`: which backend programs the node. */
  readonly mode: ProxyMode;
  /** `iptables.masqueradeBit`, 0..31 (default 14 -> mark 0x4000). */
  readonly masqueradeBit: number;
  readonly logLevel: LogLevel;
  /** Addresses, at most one per family, that override the node IPs of their family taken from the
   * Node object (`nodeIP`, or kube-proxy's `bindAddress`; `v4,v6` for both). */
  readonly nodeIPs: readonly string[];
  readonly iptablesBackend: IptablesBackendSetting;
  /** `/livez` fails once syncs have kept failing this long (kube-proxy-ts's own); 0 = never for this reason. */
  readonly livezSyncFailureTimeoutMs: number;
}

/** One invalid input: which field, the offending value as given, and where it came from. */
export interface ConfigError {
  /** The KubeProxyConfiguration-style field name, e.g. `iptables.masqueradeBit`, or `config` for the file itself. */
  readonly field: string;
  /** The bad value as the user wrote it. */
  readonly value: string;
  /** Where it came from: `--sync-period`, `KUBE_PROXY_TS_SYNC_PERIOD`, `config file /etc/kp.yaml`. */
  readonly source: string;
  /** A complete sentence naming field, value and source; what the CLI prints. */
  readonly message: string;
  /** What is wrong with the value alone (`must be true or false`), for a command that words its own message. */
  readonly reason?: string;
}

export type ConfigResult =
  /** `initOnly`: `--init-only` was given (set what needs privilege, then exit). */
  | { readonly kind: 'ok'; readonly config: AgentConfig; readonly warnings: readonly string[]; readonly initOnly: boolean }
  /** `--help` was given: print `text` and exit 0. */
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'invalid'; readonly errors: readonly ConfigError[] };

// Every command's command line, declared in one place: which configuration fields it takes (by
// their flags in fields.ts, so `render`, `run` and `cleanup` spell and validate them alike) and
// its own flags. A new command adds an entry here and calls readCommandLine (load.ts).

import type { FieldName } from './fields.js';
import { FIELDS } from './fields.js';
import type { CommandFlags } from './sources.js';

export interface CommandSpec extends CommandFlags {
  /** Reads $KUBE_PROXY_TS_* variables (and $KUBE_PROXY_TS_CONFIG when it takes --config). */
  readonly env: boolean;
}

/** The node-wide settings that shape the rules; what `render` (and an offline tool) takes. */
export const RULE_FIELDS: readonly FieldName[] = [
  'hostnameOverride',
  'nodeIP',
  'clusterCIDR',
  'detectLocalMode',
  'podBridgeInterface',
  'podInterfaceNamePrefix',
  'masqueradeAll',
  'localhostNodePorts',
  'nodePortAddresses',
  'masqueradeBit',
  'mode',
];

export const COMMANDS = {
  run: {
    fields: Object.keys(FIELDS) as FieldName[],
    own: {
      'init-only': {
        switch: true,
        help:
          'do what needs privilege (set net.ipv4.conf.all.route_localnet=1 for localhost NodePorts), then exit; the DaemonSet ' +
          'runs it in a privileged init container, so the agent itself needs only NET_ADMIN and NET_RAW',
      },
    },
    configFile: true,
    env: true,
  },
  render: {
    fields: RULE_FIELDS,
    own: {
      objects: { multiple: true, value: 'FILE', help: 'Services, EndpointSlices and Nodes (multi-document YAML or JSON); repeat for more files' },
      'ip-family': {
        value: 'IPv4|IPv6',
        help: "whose rules to print: IPv4 (default; for iptables-restore) or IPv6 (for ip6tables-restore); a dual-stack node takes both",
      },
    },
    configFile: false,
    env: false,
  },
  trace: {
    // The rule fields for --objects (rendered as `render` does); the apiserver and the iptables
    // variant for a live node.
    fields: [...RULE_FIELDS, 'kubeconfig', 'iptablesBackend'],
    own: {
      source: { value: 'IP', help: "the packet's source address (required)" },
      destination: { value: 'IP:PORT', help: 'where it is sent, [IP]:PORT for IPv6 (required)' },
      protocol: { value: 'tcp|udp|sctp', help: 'default tcp' },
      from: {
        value: 'pod|node|outside',
        help: "where it enters: a pod on this node, the node itself, or outside (default: node for the node's addresses, pod for --cluster-cidr or an endpoint on this node, else outside)",
      },
      'in-interface': { value: 'NAME', help: 'the interface it arrives on, for -i matches (default: unknown, explored both ways)' },
      'out-interface': { value: 'NAME', help: 'the interface it leaves by, for -o matches (default: unknown, explored both ways)' },
      output: { value: 'text|json', short: 'o', help: 'default text' },
      'iptables-save': { value: 'FILE', help: "read the rules from this iptables-save output instead of this node's" },
      objects: { multiple: true, value: 'FILE', help: 'render the rules from these objects (as render does) instead of reading them' },
    },
    configFile: false,
    env: true,
  },
  cleanup: {
    fields: ['iptablesBackend'],
    own: {},
    configFile: false,
    env: true,
  },
} as const satisfies Record<string, CommandSpec>;

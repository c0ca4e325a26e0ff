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
  cleanup: {
    fields: ['iptablesBackend'],
    own: {},
    configFile: false,
    env: true,
  },
} as const satisfies Record<string, CommandSpec>;

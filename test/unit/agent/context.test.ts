import { describe, expect, it } from 'vitest';
import { healthCheckAddresses, renderContextFor } from '../../../src/agent/context.js';
import { parseRunArgs, type AgentConfig } from '../../../src/config/index.js';

function config(argv: string[]): AgentConfig {
  const result = parseRunArgs(['--hostname-override', 'node1', ...argv], {}, () => '', 'host');
  if (result.kind !== 'ok') throw new Error(JSON.stringify(result));
  return result.config;
}

const node = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {} };

describe('renderContextFor', () => {
  it('uses the node IPs from the Node object unless nodeIP overrides them, and never localhost NodePorts', () => {
    expect(renderContextFor(config([]), node).nodeIPs).toEqual(['172.30.0.10']);
    expect(renderContextFor(config(['--node-ip', '192.0.2.7']), node).nodeIPs).toEqual(['192.0.2.7']);
    expect(renderContextFor(config([]), node).localhostNodePorts).toBe(false);
  });

  it('maps nodePortAddresses: all -> [], primary -> node IP /32, CIDRs as given', () => {
    expect(renderContextFor(config([]), node).nodePortAddresses).toEqual([]);
    expect(renderContextFor(config(['--nodeport-addresses', 'primary']), node).nodePortAddresses).toEqual(['172.30.0.10/32']);
    expect(renderContextFor(config(['--nodeport-addresses', '172.30.0.0/24']), node).nodePortAddresses).toEqual(['172.30.0.0/24']);
  });

  it('binds healthCheckNodePort servers to matching node IPs only when nodePortAddresses is set', () => {
    expect(healthCheckAddresses(config([]), node)).toEqual(['0.0.0.0']);
    expect(healthCheckAddresses(config(['--nodeport-addresses', '172.30.0.0/24']), node)).toEqual(['172.30.0.10']);
  });
});

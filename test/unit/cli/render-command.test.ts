// The `render` contract that tools outside the project rely on: exit 0 and only the payload on
// stdout for valid input; a non-zero exit and a message naming the file and the object for
// invalid input; usage and exit 2 for bad flags. renderCommand runs with an in-memory io.

import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { renderCommand } from '../../../src/cli/render-command.js';
import { memoryIO } from '../../support/memory-io.js';
import { FakeNetfilter } from '../../support/fake-netfilter.js';
import { describeOutcome, trace } from '../../../src/trace/tracer.js';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function render(argv: readonly string[], files: Readonly<Record<string, string>>): Promise<Run> {
  const memory = memoryIO(files);
  const code = await renderCommand(argv, memory.io);
  return { code, stdout: memory.stdout(), stderr: memory.stderr() };
}

const flags = ['--node-name', 'node1', '--node-ip', '192.168.0.2', '--cluster-cidr', '10.244.0.0/16'];

const webService = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { namespace: 'default', name: 'web' },
  spec: { type: 'ClusterIP', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }] },
};
const webSlice = {
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { namespace: 'default', name: 'web-abcde', labels: { 'kubernetes.io/service-name': 'web' } },
  addressType: 'IPv4',
  endpoints: [
    { addresses: ['10.244.1.11'], conditions: { ready: true }, nodeName: 'node1' },
    { addresses: ['10.244.2.12'], conditions: { ready: true }, nodeName: 'node2' },
  ],
  ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
};
// Not errors: kinds render does not read, Services kube-proxy does not proxy, IPv6 slices.
const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { namespace: 'default', name: 'web' }, spec: {} };
const externalName = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { namespace: 'default', name: 'alias' },
  spec: { type: 'ExternalName', externalName: 'example.com' },
};
const ipv6Slice = { ...webSlice, metadata: { ...webSlice.metadata, name: 'web-v6' }, addressType: 'IPv6', endpoints: [{ addresses: ['fd00::1'] }] };

const yamlDocuments = (objects: readonly unknown[]): string => objects.map((object) => stringify(object)).join('---\n');
const validYaml = yamlDocuments([webService, webSlice, deployment, externalName, ipv6Slice]);

describe('render: valid input', () => {
  it('exits 0 with a complete iptables-restore payload on stdout and nothing on stderr', async () => {
    const run = await render(['--objects', 'objects.yaml', ...flags], { 'objects.yaml': validYaml });
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/^\*filter\n[\s\S]*\nCOMMIT\n\*nat\n[\s\S]*\nCOMMIT\n$/);
    expect(run.stdout).toContain('-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 -j KUBE-SVC-');
    expect(run.stdout).toContain('! -s 10.244.0.0/16 -j KUBE-MARK-MASQ');
    expect(run.stdout).not.toContain('alias');
  });

  it.each([
    ['ClusterCIDR (default)', [], '! -s 10.244.0.0/16 -j KUBE-MARK-MASQ'],
    ['BridgeInterface', ['--detect-local-mode', 'BridgeInterface', '--pod-bridge-interface', 'cni0'], '! -i cni0 -j KUBE-MARK-MASQ'],
    ['InterfaceNamePrefix', ['--detect-local-mode', 'InterfaceNamePrefix', '--pod-interface-name-prefix', 'veth'], '! -i veth+ -j KUBE-MARK-MASQ'],
    ['--masquerade-all', ['--masquerade-all'], '--dport 80 -j KUBE-MARK-MASQ'],
  ] as const)('masquerades traffic to the cluster IP that is not from a pod as --detect-local-mode says: %s', async (_mode, extra, rule) => {
    const run = await render(['--objects', 'objects.yaml', ...flags, ...extra], { 'objects.yaml': validYaml });
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const masquerade = run.stdout.split('\n').filter((line) => line.includes('cluster IP" -m tcp') && line.includes('KUBE-MARK-MASQ'));
    expect(masquerade).toHaveLength(1);
    expect(masquerade[0]).toContain(rule);
  });

  it('the payload programs a fresh node: a pod reaching the cluster IP lands on either endpoint', async () => {
    const run = await render(['--objects', 'objects.yaml', ...flags], { 'objects.yaml': validYaml });
    const fake = new FakeNetfilter();
    expect(fake.restoreSync(run.stdout, { noFlush: false })).toEqual({ ok: true });
    const result = trace(fake.savedTables(), {
      source: '10.244.1.50',
      destination: '10.96.0.10',
      destinationPort: 80,
      protocol: 'TCP',
      origin: 'pod',
      localAddresses: ['192.168.0.2'],
    });
    expect(result.outcomes.map(describeOutcome).sort()).toEqual(['ACCEPT 10.244.1.11:8080', 'ACCEPT 10.244.2.12:8080']);
  });

  it('a JSON List, and the same objects split over several files, give the same payload as YAML', async () => {
    const yaml = await render(['--objects', 'objects.yaml', ...flags], { 'objects.yaml': validYaml });
    const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [webService, webSlice, deployment, externalName, ipv6Slice] });
    const json = await render(['--objects', 'objects.json', ...flags], { 'objects.json': list });
    const split = await render(['--objects', 'services.yaml', '--objects', 'slices.json', ...flags], {
      'services.yaml': yamlDocuments([webService]),
      'slices.json': JSON.stringify(webSlice),
    });
    expect(json).toEqual(yaml);
    expect(split).toEqual(yaml);
  });

  it('--node-port-addresses limits NodePorts to the node IPs in those CIDRs', async () => {
    const run = await render(['--objects', 'objects.yaml', ...flags, '--node-port-addresses', '192.168.0.0/24'], { 'objects.yaml': validYaml });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('-d 192.168.0.2 -j KUBE-NODEPORTS');
    expect(run.stdout).not.toContain('--dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS');
  });

  it('NodePorts answer on 127.0.0.1 as run does by default; --iptables-localhost-nodeports=false turns that off', async () => {
    const objects = { 'objects.yaml': yamlDocuments([{ ...webService, spec: { ...webService.spec, type: 'NodePort', ports: [{ ...webService.spec.ports[0], nodePort: 30080 }] } }, webSlice]) };
    const localnetDrop = '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP';
    for (const extra of [[], ['--iptables-localhost-nodeports'], ['--iptables-localhost-nodeports=true']]) {
      const on = await render(['--objects', 'objects.yaml', ...flags, ...extra], objects);
      expect(on.code, on.stderr).toBe(0);
      expect(on.stdout).toContain('-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS');
      expect(on.stdout).toContain(localnetDrop);
    }
    const off = await render(['--objects', 'objects.yaml', ...flags, '--iptables-localhost-nodeports=false'], objects);
    expect(off.code, off.stderr).toBe(0);
    expect(off.stdout).toContain('-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS');
    expect(off.stdout).not.toContain(localnetDrop);
    const bad = await render(['--objects', 'objects.yaml', ...flags, '--iptables-localhost-nodeports=maybe'], objects);
    expect(bad).toMatchObject({ code: 2, stdout: '' });
    expect(bad.stderr).toContain('--iptables-localhost-nodeports "maybe" must be true or false');
  });

  it('--help prints the usage on stdout and exits 0', async () => {
    const run = await render(['--help'], {});
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Usage: kube-proxy-ts render');
  });
});

describe('render: invalid input names the file and the object', () => {
  const badClusterIP = { ...webService, metadata: { namespace: 'default', name: 'bad-ip' }, spec: { ...webService.spec, clusterIP: '10.96.0.999', clusterIPs: ['10.96.0.999'] } };
  const oddSlice = { ...webSlice, metadata: { ...webSlice.metadata, name: 'web-odd' }, addressType: 'IPX', endpoints: [{ addresses: ['db.example.com'] }] };
  const badEndpoint = { ...webSlice, metadata: { ...webSlice.metadata, name: 'web-broken' }, endpoints: [{ addresses: ['10.244.1.300'] }] };
  const badPort = { ...webService, metadata: { namespace: 'shop', name: 'bad-port' }, spec: { ...webService.spec, ports: [{ name: 'http', protocol: 'TCP', port: 70000 }] } };
  const badProtocol = { ...webService, metadata: { namespace: 'shop', name: 'bad-protocol' }, spec: { ...webService.spec, ports: [{ name: 'http', protocol: 'ICMP', port: 80 }] } };
  const nameless = { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'default' }, spec: webService.spec };

  it.each([
    ['a Service with an invalid clusterIP', [webService, badClusterIP], ['bad.yaml', 'Service default/bad-ip', 'spec.clusterIPs[0]', '10.96.0.999']],
    ['an EndpointSlice of an unknown addressType', [webService, oddSlice], ['bad.yaml', 'EndpointSlice default/web-odd', 'unsupported-address-type', 'IPX']],
    ['an EndpointSlice with an invalid address', [webService, badEndpoint], ['bad.yaml', 'EndpointSlice default/web-broken', '10.244.1.300']],
    ['a Service port out of range', [badPort], ['bad.yaml', 'Service shop/bad-port', 'spec.ports[0].port', '70000']],
    ['a Service port with an unknown protocol', [badProtocol], ['bad.yaml', 'Service shop/bad-protocol', 'ICMP']],
    ['an object without metadata.name', [webService, nameless], ['bad.yaml', 'document 2', 'Service', 'metadata.name']],
  ] as const)('%s: exit 1, nothing on stdout', async (_case, objects, mentions) => {
    const run = await render(['--objects', 'good.yaml', '--objects', 'bad.yaml', ...flags], {
      'good.yaml': yamlDocuments([webSlice]),
      'bad.yaml': yamlDocuments(objects),
    });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    for (const mention of mentions) expect(run.stderr).toContain(mention);
    expect(run.stderr).not.toContain('good.yaml');
  });

  it('an FQDN EndpointSlice is ignored silently, as upstream: exit 0, the same payload, nothing on stderr', async () => {
    const fqdnSlice = { ...webSlice, metadata: { ...webSlice.metadata, name: 'web-fqdn' }, addressType: 'FQDN', endpoints: [{ addresses: ['db.example.com'] }] };
    const without = await render(['--objects', 'good.yaml', ...flags], { 'good.yaml': yamlDocuments([webService, webSlice]) });
    const withFqdn = await render(['--objects', 'good.yaml', ...flags], { 'good.yaml': yamlDocuments([webService, webSlice, fqdnSlice]) });
    expect(withFqdn).toEqual({ ...without, code: 0, stderr: '' });
  });

  it('an unreadable file: exit 1 naming it', async () => {
    const run = await render(['--objects', 'missing.yaml', ...flags], {});
    expect(run).toMatchObject({ code: 1, stdout: '' });
    expect(run.stderr).toContain('cannot read missing.yaml');
    expect(run.stderr).toContain('ENOENT');
  });

  it('a file that is not YAML: exit 1 naming it', async () => {
    const run = await render(['--objects', 'broken.yaml', ...flags], { 'broken.yaml': 'kind: Service\nmetadata: {name: web\n  spec: [' });
    expect(run).toMatchObject({ code: 1, stdout: '' });
    expect(run.stderr).toContain('broken.yaml');
    expect(run.stderr).toContain('cannot parse');
  });

  it('a document that is not an object: exit 1 naming file and document', async () => {
    const run = await render(['--objects', 'scalar.yaml', ...flags], { 'scalar.yaml': `${stringify(webService)}---\njust a string\n` });
    expect(run).toMatchObject({ code: 1, stdout: '' });
    expect(run.stderr).toMatch(/scalar\.yaml.*document 2/);
  });
});

describe('render: flags', () => {
  const file = { 'objects.yaml': validYaml };
  it.each([
    ['no flags at all', []],
    ['no --objects', ['--node-name', 'node1', '--node-ip', '192.168.0.2']],
    ['no --node-name', ['--objects', 'objects.yaml', '--node-ip', '192.168.0.2']],
    ['an empty --node-name', ['--objects', 'objects.yaml', '--node-name', '', '--node-ip', '192.168.0.2']],
    ['no --node-ip', ['--objects', 'objects.yaml', '--node-name', 'node1']],
    ['an unknown flag', ['--objects', 'objects.yaml', ...flags, '--proxy-everything']],
    ['a positional argument', ['objects.yaml', ...flags]],
  ] as const)('%s: usage on stderr, exit 2', async (_case, argv) => {
    const run = await render(argv, file);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('Usage: kube-proxy-ts render');
  });

  it.each([
    ['--node-ip', ['--objects', 'objects.yaml', '--node-name', 'node1', '--node-ip', '192.168.0.256'], '"192.168.0.256" has "192.168.0.256", which is not an IP address'],
    ['--node-ip (two IPv6)', ['--objects', 'objects.yaml', '--node-name', 'node1', '--node-ip', 'fd00::2,fd00::3'], '"fd00::2,fd00::3" holds two IPv6 addresses'],
    ['--cluster-cidr', ['--objects', 'objects.yaml', ...flags.slice(0, 4), '--cluster-cidr', '10.244.0.0/33'], '--cluster-cidr "10.244.0.0/33"'],
    ['--node-port-addresses', ['--objects', 'objects.yaml', ...flags, '--node-port-addresses', '192.168.0.0/24,nonsense'], 'entry "nonsense"'],
    ['--mode', ['--objects', 'objects.yaml', ...flags, '--mode', 'ipvs'], '--mode "ipvs" is not supported'],
    ['--detect-local-mode', ['--objects', 'objects.yaml', ...flags, '--detect-local-mode', 'PodIP'], '--detect-local-mode "PodIP" must be one of'],
    ['--pod-bridge-interface', ['--objects', 'objects.yaml', ...flags, '--pod-bridge-interface', 'a/b'], '--pod-bridge-interface "a/b" is not an interface name'],
    ['--detect-local-mode without its interface', ['--objects', 'objects.yaml', ...flags, '--detect-local-mode', 'BridgeInterface'], 'needs --pod-bridge-interface'],
  ] as const)('an invalid %s: exit 2 naming the value', async (_flag, argv, message) => {
    const run = await render(argv, file);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(message);
  });
});

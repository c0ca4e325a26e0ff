// The `trace` command with an in-memory io: --objects (rendered as `render` does, then traced),
// the live source (iptables-save text and the apiserver behind the io), -o json, and flag errors.

import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';

import { traceCommand, type TraceIO } from '../../../src/cli/trace-command.js';
import { renderCommand } from '../../../src/cli/render-command.js';
import type { DesiredState } from '../../../src/model/types.js';
import { buildDesiredState } from '../../../src/model/build.js';
import { memoryIO } from '../../support/memory-io.js';
import { endpointSliceObject, serviceObject } from '../../support/objects.js';

const service = serviceObject({
  namespace: 'default',
  name: 'web',
  type: 'NodePort',
  clusterIP: '10.96.0.10',
  ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30080 }],
  spec: { clusterIPs: ['10.96.0.10'] },
});
const slice = endpointSliceObject({
  namespace: 'default',
  serviceName: 'web',
  name: 'web-1',
  ports: [{ name: 'http', port: 8080 }],
  endpoints: [
    { address: '10.244.1.11', nodeName: 'node1' },
    { address: '10.244.2.12', nodeName: 'node2' },
    { address: '10.244.2.13', nodeName: 'node2', ready: false },
  ],
});
const files: Record<string, string> = { 'objects.yaml': [service, slice].map((object) => stringify(object)).join('---\n') };
const nodeFlags = ['--node-name', 'node1', '--node-ip', '192.168.0.2', '--cluster-cidr', '10.244.0.0/16'];

// The same Service dual-stack, with an IPv6 slice beside the IPv4 one.
const dualService = { ...service, spec: { ...service.spec, ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'], clusterIPs: ['10.96.0.10', 'fd00:96::10'] } };
const sliceV6 = endpointSliceObject({
  namespace: 'default',
  serviceName: 'web',
  name: 'web-v6',
  addressType: 'IPv6',
  ports: [{ name: 'http', port: 8080 }],
  endpoints: [
    { address: 'fd00:244:1::11', nodeName: 'node1' },
    { address: 'fd00:244:2::12', nodeName: 'node2', ready: false },
  ],
});
files['dual.yaml'] = [dualService, slice, sliceV6].map((object) => stringify(object)).join('---\n');
const dualNodeFlags = ['--node-name', 'node1', '--node-ip', '192.168.0.2,fd00:30::2', '--cluster-cidr', '10.244.0.0/16,fd00:244::/32'];

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function io(overrides: Partial<TraceIO> = {}): { io: TraceIO; output: (code: number) => Run } {
  const memory = memoryIO(files);
  const traceIO: TraceIO = {
    ...memory.io,
    saveTables: () => Promise.resolve({ ok: false, message: 'no iptables here' }),
    localAddresses: () => ['127.0.0.1', '192.168.0.2'],
    readApiModel: () => Promise.resolve({ ok: false, message: 'no API access (no kubeconfig)' }),
    hostname: () => 'node1',
    env: {},
    ...overrides,
  };
  return { io: traceIO, output: (code) => ({ code, stdout: memory.stdout(), stderr: memory.stderr() }) };
}

async function run(argv: readonly string[], overrides: Partial<TraceIO> = {}): Promise<Run> {
  const harness = io(overrides);
  return harness.output(await traceCommand(argv, harness.io));
}

/** render's payload for the same objects: what a node programmed by them holds. */
async function renderedPayload(): Promise<string> {
  const harness = io();
  expect(await renderCommand(['--objects', 'objects.yaml', ...nodeFlags], harness.io)).toBe(0);
  return harness.output(0).stdout;
}

interface JsonReport {
  rules: string;
  packet: { origin: string };
  service: { servicePortName: string; matchedBy: string; sessionAffinity: null | { timeoutSeconds: number } } | null;
  outcomes: { verdict: string; endpoint: string | null; masquerade: boolean; probability: number; reason: string | null; steps: { chain: string; comment: string | null }[] }[];
  excluded: { endpoint: string; reason: string }[] | null;
  notes: string[];
}

describe('kube-proxy-ts trace', () => {
  it('--objects -o json: the Service, both ready endpoints at 50%, the not-ready one excluded, every key present', async () => {
    const result = await run(['--objects', 'objects.yaml', ...nodeFlags, '--source', '10.244.1.50', '--destination', '10.96.0.10:80', '-o', 'json']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report.rules).toBe('rendered from objects.yaml for node node1');
    expect(report.packet.origin).toBe('pod');
    expect(report.service).toMatchObject({ servicePortName: 'default/web:http', matchedBy: 'cluster IP', sessionAffinity: null });
    expect(report.outcomes.map((outcome) => [outcome.verdict, outcome.endpoint, outcome.masquerade, outcome.probability])).toEqual([
      ['ACCEPT', '10.244.1.11:8080', false, 0.5],
      ['ACCEPT', '10.244.2.12:8080', false, 0.5],
    ]);
    expect(report.outcomes[0]?.reason).toBeNull();
    expect(report.outcomes[0]?.steps[1]).toMatchObject({ chain: 'KUBE-SERVICES', comment: 'default/web:http cluster IP' });
    expect(report.excluded).toEqual([{ endpoint: '10.244.2.13:8080', node: 'node2', reason: 'not ready' }]);
    expect(report.notes).toEqual(['entry point inferred: 10.244.1.50 is in the cluster CIDR 10.244.0.0/16 (set it with --from)']);
  });

  it('--objects, human-readable: the NodePort from outside is masqueraded and the rules are listed with comments', async () => {
    const result = await run(['--objects', 'objects.yaml', ...nodeFlags, '--source', '203.0.113.7', '--destination', '192.168.0.2:30080', '--from', 'outside']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Service:  default/web:http (TCP), matched by its node port; traffic policy internal Cluster, external Cluster');
    expect(result.stdout).toContain('50.0%  ACCEPT -> 10.244.1.11:8080 (node1) masqueraded');
    expect(result.stdout).toMatch(/masqueraded: nat KUBE-EXT-\w+ #1 "masquerade traffic for default\/web:http external destinations"/);
    expect(result.stdout).toContain('  10.244.2.13:8080 (node2): not ready');
    expect(result.stdout).toMatch(/nat KUBE-NODEPORTS #1 "default\/web:http" -> KUBE-EXT-/);
    expect(result.stdout).not.toContain('entry point inferred');
  });

  it('live: reads the node through iptables-save, works without API access and says what that costs', async () => {
    const payload = await renderedPayload();
    const result = await run(['--source', '192.168.0.2', '--destination', '10.96.0.10:80', '-o', 'json'], {
      saveTables: () => Promise.resolve({ ok: true, text: payload }),
    });
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report.rules).toBe('this node (iptables-save)');
    expect(report.packet.origin).toBe('node');
    expect(report.outcomes.map((outcome) => [outcome.endpoint, outcome.masquerade])).toEqual([
      ['10.244.1.11:8080', true],
      ['10.244.2.12:8080', true],
    ]);
    expect(report.excluded).toBeNull();
    expect(report.notes).toContain('Services not read from the apiserver, so no reasons for excluded endpoints: no API access (no kubeconfig)');
  });

  it('live with the apiserver: the model explains exclusions; --iptables-save FILE reads a saved dump', async () => {
    files['node1.save'] = await renderedPayload();
    let asked: string | undefined;
    const model: DesiredState = buildDesiredState({ services: [service], endpointSlices: [slice], node: { name: 'node1', ips: ['192.168.0.2'], zone: undefined, labels: {}, podCIDRs: [] } }).state;
    const result = await run(['--iptables-save', 'node1.save', '--source', '10.244.1.50', '--destination', '10.96.0.10:80', '--from', 'pod', '-o', 'json'], {
      readApiModel: (_kubeconfig, nodeName) => {
        asked = nodeName;
        return Promise.resolve({ ok: true, state: model });
      },
    });
    expect(result.code).toBe(0);
    expect(asked).toBe('node1');
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report.rules).toBe('saved in node1.save');
    expect(report.excluded).toEqual([{ endpoint: '10.244.2.13:8080', node: 'node2', reason: 'not ready' }]);
  });

  it('an IPv6 destination traces the IPv6 family: rendered from --objects, its endpoints, its clusterCIDR', async () => {
    const result = await run(['--objects', 'dual.yaml', ...dualNodeFlags, '--source', 'fd00:244:1::50', '--destination', '[fd00:96::10]:80', '-o', 'json']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report.service).toMatchObject({ servicePortName: 'default/web:http', matchedBy: 'cluster IP' });
    expect(report.outcomes.map((outcome) => [outcome.verdict, outcome.endpoint, outcome.masquerade, outcome.probability])).toEqual([['ACCEPT', '[fd00:244:1::11]:8080', false, 1]]);
    expect(report.excluded).toEqual([{ endpoint: '[fd00:244:2::12]:8080', node: 'node2', reason: 'not ready' }]);
    expect(report.notes).toEqual(['entry point inferred: fd00:244:1::50 is in the cluster CIDR fd00:244::/32 (set it with --from)']);
    // The IPv4 address of the same Service still traces the IPv4 family.
    const ipv4 = JSON.parse((await run(['--objects', 'dual.yaml', ...dualNodeFlags, '--source', '10.244.1.50', '--destination', '10.96.0.10:80', '-o', 'json'])).stdout) as JsonReport;
    expect(ipv4.outcomes.map((outcome) => outcome.endpoint)).toEqual(['10.244.1.11:8080', '10.244.2.12:8080']);
  });

  it('live, IPv6: reads ip6tables-save and the IPv6 model of the apiserver', async () => {
    const rendered = io();
    expect(await renderCommand(['--objects', 'dual.yaml', ...dualNodeFlags, '--ip-family', 'IPv6'], rendered.io)).toBe(0);
    const ip6Payload = rendered.output(0).stdout;
    const asked: string[] = [];
    const result = await run(['--node-ip', '192.168.0.2,fd00:30::2', '--source', 'fd00:30::2', '--destination', '[fd00:96::10]:80', '-o', 'json'], {
      saveTables: (_backend, family) => {
        asked.push(`save ${family}`);
        return Promise.resolve({ ok: true, text: ip6Payload });
      },
      localAddresses: () => ['127.0.0.1', '::1', '192.168.0.2', 'fd00:30::2'],
      readApiModel: (_kubeconfig, _nodeName, nodeIPs, family) => {
        asked.push(`model ${family} ${nodeIPs.join(',')}`);
        return Promise.resolve({ ok: false, message: 'no API access (no kubeconfig)' });
      },
    });
    expect(result.code, result.stderr).toBe(0);
    expect(asked).toEqual(['save IPv6', 'model IPv6 fd00:30::2']);
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report.rules).toBe('this node (ip6tables-save)');
    expect(report.packet.origin).toBe('node');
    expect(report.outcomes.map((outcome) => [outcome.endpoint, outcome.masquerade])).toEqual([['[fd00:244:1::11]:8080', true]]);
  });

  it.each([
    [['--source', '10.0.0.1', '--destination', '[fd00:96::10]:80'], '--source 10.0.0.1 and --destination fd00:96::10 are of different IP families'],
    [['--destination', '10.96.0.10:80'], '--source and --destination are required'],
    [['--source', '10.0.0.1', '--destination', '10.96.0.10'], '--destination "10.96.0.10" is not IP:PORT'],
    [['--source', 'x', '--destination', '10.96.0.10:80'], '--source "x" is not an IP address'],
    [['--source', '10.0.0.1', '--destination', '10.96.0.10:80', '--protocol', 'icmp'], '--protocol "icmp" must be tcp, udp or sctp'],
    [['--source', '10.0.0.1', '--destination', '10.96.0.10:80', '--from', 'mars'], '--from "mars" must be pod, node or outside'],
    [['--source', '10.0.0.1', '--destination', '10.96.0.10:80', '-o', 'yaml'], '-o "yaml" must be text or json'],
    [['--source', '10.0.0.1', '--destination', '10.96.0.10:80', '--bogus', 'x'], 'unknown flag --bogus'],
  ])('refuses %j with exit 2 and the usage', async (argv, message) => {
    const result = await run(argv);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
    expect(result.stderr).toContain('Usage: kube-proxy-ts trace');
  });

  it("checks the fields it shares with render and run as they do, and reads -o like --output", async () => {
    const invalid = await run(['--source', '10.0.0.1', '--destination', '10.96.0.10:80', '--iptables-backend', 'ipvs']);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/^trace: --iptables-backend "ipvs" must be/);
    const aliases = await run(['--objects', 'objects.yaml', '--hostname-override', 'node1', '--bind-address', '192.168.0.2', '--source', '10.244.1.50', '--destination', '10.96.0.10:80', '--output', 'json']);
    expect(aliases.code).toBe(0);
    expect((JSON.parse(aliases.stdout) as JsonReport).service?.servicePortName).toBe('default/web:http');
  });

  it('exits 1 when the rules cannot be read', async () => {
    const result = await run(['--source', '10.0.0.1', '--destination', '10.96.0.10:80']);
    expect(result).toMatchObject({ code: 1, stdout: '', stderr: 'trace: no iptables here\n' });
    const bad = await run(['--objects', 'objects.yaml', '--node-name', 'node1', '--source', '10.0.0.1', '--destination', '10.96.0.10:80']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('trace: --objects, --node-name and --node-ip are required');
  });
});

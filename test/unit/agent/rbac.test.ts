// The ClusterRole in manifests/ grants exactly what the agent does with the apiserver: every
// request the running agent makes maps to a grant, and every grant to a request (least privilege;
// the real node's test proves the same role is enough for a real pod).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { repoRoot } from '../../harness/versions.js';
import { waitFor } from '../k8s/http-apiserver.js';
import { startAgentOnStandIn, type AgentOnStandIn } from './agent-on-stand-in.js';

interface Rule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
}

let running: AgentOnStandIn | undefined;
afterAll(async () => running?.stop());

describe('the ClusterRole', () => {
  it('grants the verbs the agent uses on the resources it uses (nftables mode: also ServiceCIDRs), and nothing else', async () => {
    running = await startAgentOnStandIn(['--proxy-mode', 'nftables'], { nodes: [{ metadata: { name: 'node1', resourceVersion: '1' }, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.2' }] } }] });
    const apiserver = running.apiserver;
    // Listed and synced; then every watch is open.
    await waitFor(() => ['/api/v1/services', '/apis/discovery.k8s.io/v1/endpointslices', '/api/v1/nodes', '/apis/networking.k8s.io/v1/servicecidrs'].every((path) => apiserver.openWatches(path).length > 0));
    // /api/v1/services -> "/services", /apis/discovery.k8s.io/v1/endpointslices -> "discovery.k8s.io/endpointslices".
    const used = new Set(
      running.apiserver.requests.map((request) => {
        const core = /^\/api\/v1\/([a-z]+)$/.exec(request.path);
        const grouped = /^\/apis\/([^/]+)\/[^/]+\/([a-z]+)$/.exec(request.path);
        const resource = core ? `/${core[1]}` : grouped ? `${grouped[1]}/${grouped[2]}` : `unknown ${request.path}`;
        return `${resource}:${request.query['watch'] === 'true' ? 'watch' : 'list'}`;
      }),
    );
    const role = parseYaml(readFileSync(join(repoRoot, 'manifests', '20-clusterrole.yaml'), 'utf8')) as { rules: Rule[] };
    const granted = new Set(role.rules.flatMap((rule) => rule.apiGroups.flatMap((group) => rule.resources.flatMap((resource) => rule.verbs.map((verb) => `${group}/${resource}:${verb}`)))));
    expect([...used].sort()).toEqual([...granted].sort());
  });
});

// The install manifests against a real kube-apiserver (server-side dry run with strict field
// validation, so schema, defaulting, Pod Security and priority-class admission all have their say),
// plus the properties of the DaemonSet that a node proxy depends on, and the ConfigMap's config file
// through the agent's own configuration parser.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseRunArgs } from '../../src/config/index.js';
import { exec, run } from '../harness/exec.js';
import { deleteNamespace, kubeClients } from '../harness/kube.js';
import { kubeBinaries, repoRoot } from '../harness/versions.js';

const manifestsDir = join(repoRoot, 'manifests');
const namespace = 'kube-proxy-ts';

/** Loosely typed view of a parsed manifest: the assertions below say what they expect. */
type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [key: string]: any }; [key: string]: any };

function loadManifests(path: string): Manifest[] {
  const documents = parseAllDocuments(readFileSync(path, 'utf8'));
  return documents.map((document) => {
    if (document.errors.length > 0) throw new Error(`${path}: ${document.errors.map((error) => error.message).join('; ')}`);
    return document.toJS() as Manifest;
  }).filter((manifest) => manifest !== null);
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.yaml'))
    .sort()
    .map((name) => join(dir, name));
}

const manifestFiles = yamlFiles(manifestsDir);
const manifests = manifestFiles.flatMap(loadManifests);

function find(kind: string, name?: string): Manifest {
  const found = manifests.find((manifest) => manifest.kind === kind && (name === undefined || manifest.metadata.name === name));
  if (found === undefined) throw new Error(`no ${kind}${name === undefined ? '' : ` ${name}`} in manifests/`);
  return found;
}

/** How `kubectl apply` names an object: `daemonset.apps/x`, `configmap/x`. */
function kubectlName(manifest: Manifest): string {
  const slash = manifest.apiVersion.indexOf('/');
  const group = slash < 0 ? '' : manifest.apiVersion.slice(0, slash);
  return `${manifest.kind.toLowerCase()}${group === '' ? '' : `.${group}`}/${manifest.metadata.name}`;
}

describe('manifests/ on a real apiserver (server-side dry run)', () => {
  let kubectl: string;
  let kubeconfig: string;
  let createdNamespace = false;

  const kubectlRun = (...args: string[]) => exec(kubectl, ['--kubeconfig', kubeconfig, ...args], { timeoutMs: 60_000 });

  beforeAll(async () => {
    kubectl = (await kubeBinaries()).kubectl;
    kubeconfig = inject('kubeconfigPath');
    // A dry run creates nothing, so namespaced objects need their Namespace to exist for real.
    // Applying our own Namespace manifest also gives it the Pod Security labels the pods need.
    createdNamespace = (await kubectlRun('get', 'namespace', namespace)).code !== 0;
    await run(kubectl, ['--kubeconfig', kubeconfig, 'apply', '-f', join(manifestsDir, '00-namespace.yaml')]);
  });

  afterAll(async () => {
    if (createdNamespace && kubeconfig !== undefined) await deleteNamespace(kubeClients(kubeconfig), namespace);
  });

  it('accepts every object, with strict field validation', async () => {
    const result = await kubectlRun('apply', '--dry-run=server', '--validate=strict', '-f', manifestsDir);
    expect(result.stderr, result.stderr).toBe('');
    expect(result.code).toBe(0);
    const reported = result.stdout
      .trim()
      .split('\n')
      .map((line) => /^(\S+) (?:created|configured|unchanged) \(server dry run\)$/.exec(line)?.[1] ?? `unexpected: ${line}`);
    expect(reported.sort()).toEqual(manifests.map(kubectlName).sort());
    // A ClusterRole, its binding and the DaemonSet at least: guards against an empty directory.
    expect(manifests.length).toBeGreaterThanOrEqual(8);
  });

  it('keeps optional/ out of the default install and dry-runs it only where the CRDs exist', async () => {
    const optional = yamlFiles(join(manifestsDir, 'optional')).flatMap(loadManifests);
    // optional/prometheus/ holds a plain rules file: kubectl does not recurse into it.
    expect(optional.map((manifest) => manifest.kind).sort()).toEqual(['PodMonitor', 'PrometheusRule', 'ServiceMonitor']);
    for (const manifest of optional) {
      expect(manifest.apiVersion).toBe('monitoring.coreos.com/v1');
      expect(manifest.metadata.namespace).toBe(namespace);
    }
    const daemonSet = find('DaemonSet', 'kube-proxy-ts');
    const service = find('Service', 'kube-proxy-ts-metrics');
    const podMonitor = optional.find((manifest) => manifest.kind === 'PodMonitor') as Manifest;
    const serviceMonitor = optional.find((manifest) => manifest.kind === 'ServiceMonitor') as Manifest;
    // Each selector selects what it should, by the port name that exists there.
    expect(daemonSet.spec.template.metadata.labels).toMatchObject(podMonitor.spec.selector.matchLabels);
    expect(podMonitor.spec.podMetricsEndpoints[0].port).toBe('metrics');
    expect(daemonSet.spec.template.spec.containers[0].ports).toContainEqual(expect.objectContaining({ name: 'metrics', containerPort: 10249 }));
    expect(service.metadata.labels).toMatchObject(serviceMonitor.spec.selector.matchLabels);
    expect(serviceMonitor.spec.endpoints[0].port).toBe('metrics');

    expect(podMonitor.spec.jobLabel).toBe('app.kubernetes.io/name');
    expect(serviceMonitor.spec.jobLabel).toBe('app.kubernetes.io/name');
    const crds = await kubectlRun('get', 'crd', 'podmonitors.monitoring.coreos.com', 'servicemonitors.monitoring.coreos.com', 'prometheusrules.monitoring.coreos.com');
    if (crds.code === 0) {
      const result = await kubectlRun('apply', '--dry-run=server', '--validate=strict', '-f', join(manifestsDir, 'optional'));
      expect(result.code, result.stderr).toBe(0);
    }
  });
});

describe('the DaemonSet', () => {
  const daemonSet = find('DaemonSet', 'kube-proxy-ts');
  const pod = daemonSet.spec.template.spec;
  const container = pod.containers[0];

  it('runs in the host network namespace on every node, before anything else', () => {
    expect(pod.hostNetwork).toBe(true);
    // Not cluster DNS: CoreDNS sits behind a ClusterIP that only this agent makes reachable.
    expect(pod.dnsPolicy).toBe('Default');
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(daemonSet.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
    expect(pod.serviceAccountName).toBe(find('ServiceAccount').metadata.name);
  });

  it('gets NET_ADMIN and NET_RAW, not privilege, a read-only root filesystem and the runtime\'s seccomp profile', () => {
    expect(pod.containers).toHaveLength(1);
    expect(container.securityContext.privileged).toBe(false);
    expect(container.securityContext.allowPrivilegeEscalation).toBe(false);
    expect(container.securityContext.capabilities).toEqual({ drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] });
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(pod.initContainers[0].securityContext.readOnlyRootFilesystem).toBe(true);
    expect(pod.securityContext).toEqual({ seccompProfile: { type: 'RuntimeDefault' } });
  });

  it('sets route_localnet for localhost NodePorts in its one privileged part: an init container running `run --init-only` on the same config', () => {
    expect(pod.initContainers).toHaveLength(1);
    const init = pod.initContainers[0] as Manifest;
    expect(init.name).toBe('route-localnet');
    expect(init.securityContext).toEqual({ privileged: true, readOnlyRootFilesystem: true });
    // The agent's image, its CLI straight (no backend detection), the agent's config file.
    expect(init.image).toBe(container.image);
    expect(init.imagePullPolicy).toBe(container.imagePullPolicy);
    expect(init.command).toEqual(['node', '/app/dist/src/cli.js']);
    expect(init.args).toEqual(['run', '--init-only', '--config', '/etc/kube-proxy-ts/config.yaml']);
    expect(init.volumeMounts).toEqual(container.volumeMounts.filter((mount: Manifest) => mount.mountPath === '/etc/kube-proxy-ts'));
    expect(init.env).toEqual([{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }]);
    const configMap = find('ConfigMap', 'kube-proxy-ts-config');
    const parsed = parseRunArgs(init.args.slice(1), { NODE_NAME: 'kind-worker' }, (path) => {
      if (path !== '/etc/kube-proxy-ts/config.yaml') throw new Error(`ENOENT: ${path}`);
      return configMap.data['config.yaml'] as string;
    });
    if (parsed.kind !== 'ok') throw new Error(`init container's arguments rejected: ${JSON.stringify(parsed)}`);
    expect(parsed.initOnly).toBe(true);
    expect(parsed.config.localhostNodePorts).toBe(true);
    expect(parsed.warnings).toEqual([]);
  });

  it('shares the host xtables lock and reads the host kernel modules', () => {
    const volumes = new Map<string, Manifest>(pod.volumes.map((volume: Manifest) => [volume.name, volume]));
    const mounts = new Map<string, Manifest>(container.volumeMounts.map((mount: Manifest) => [mount.mountPath, mount]));
    const lock = mounts.get('/run/xtables.lock');
    expect(volumes.get(lock?.name)?.hostPath).toEqual({ path: '/run/xtables.lock', type: 'FileOrCreate' });
    expect(lock?.readOnly).toBeFalsy();
    const modules = mounts.get('/lib/modules');
    expect(volumes.get(modules?.name)?.hostPath).toMatchObject({ path: '/lib/modules' });
    expect(modules?.readOnly).toBe(true);
  });

  it('knows its node, probes /livez and /healthz on 10256, and is scraped on 10249', () => {
    const env = new Map<string, Manifest>(container.env.map((variable: Manifest) => [variable.name, variable]));
    expect(env.get('NODE_NAME')?.valueFrom).toEqual({ fieldRef: { fieldPath: 'spec.nodeName' } });
    expect(env.get('KUBE_PROXY_TS_IPTABLES_BACKEND')?.value).toBe('auto');
    expect(container.livenessProbe.httpGet).toEqual({ path: '/livez', port: 10256 });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/healthz', port: 10256 });
    expect(daemonSet.spec.template.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '10249' });
    expect(container.image).toBe('ghcr.io/kube-proxy-ts/kube-proxy-ts:0.1.0');
    expect(container.imagePullPolicy).toBe('IfNotPresent');
    expect(container.resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });
  });

  it('reaches the apiserver through the endpoint ConfigMap, not the kubernetes ClusterIP', () => {
    const endpoint = find('ConfigMap', 'kube-proxy-ts-apiserver');
    const env = new Map<string, Manifest>(container.env.map((variable: Manifest) => [variable.name, variable]));
    for (const [variable, key] of [['KUBERNETES_SERVICE_HOST', 'host'], ['KUBERNETES_SERVICE_PORT', 'port']] as const) {
      expect(env.get(variable)?.valueFrom.configMapKeyRef).toEqual({ name: endpoint.metadata.name, key, optional: true });
      expect(endpoint.data[key]).toMatch(/\S/);
    }
  });

  it('starts the agent with a config file that the agent parses as intended', () => {
    expect(container.args).toEqual(['run', '--config', '/etc/kube-proxy-ts/config.yaml']);
    const configMount = container.volumeMounts.find((mount: Manifest) => mount.mountPath === '/etc/kube-proxy-ts');
    const configVolume = pod.volumes.find((volume: Manifest) => volume.name === configMount?.name);
    const configMap = find('ConfigMap', configVolume?.configMap?.name);
    const files: Record<string, string> = { '/etc/kube-proxy-ts/config.yaml': configMap.data['config.yaml'] };

    // The pod's environment as the kubelet would build it for a node named kind-worker with the IP
    // 172.18.0.3 (a hostNetwork pod's IP is its node's), $(VAR) references expanded.
    const env: Record<string, string> = {};
    const fields: Record<string, string> = { 'spec.nodeName': 'kind-worker', 'status.podIP': '172.18.0.3' };
    for (const variable of container.env as Manifest[]) {
      if (variable.value !== undefined) env[variable.name] = (variable.value as string).replace(/\$\(([A-Z_]+)\)/g, (_, name: string) => env[name] ?? `$(${name})`);
      else if (variable.valueFrom?.fieldRef?.fieldPath in fields) env[variable.name] = fields[variable.valueFrom.fieldRef.fieldPath]!;
    }
    const result = parseRunArgs(container.args.slice(1), env, (path) => {
      const text = files[path];
      if (text === undefined) throw new Error(`ENOENT: ${path}`);
      return text;
    });
    if (result.kind !== 'ok') throw new Error(`config rejected: ${JSON.stringify(result)}`);
    expect(result.warnings).toEqual([]);
    expect(result.initOnly).toBe(false);
    expect(result.config).toMatchObject({
      nodeName: 'kind-worker',
      kubeconfig: undefined,
      clusterCIDRs: ['10.244.0.0/16'],
      detectLocal: { mode: 'ClusterCIDR' },
      masqueradeAll: false,
      localhostNodePorts: true,
      nodePortAddresses: { kind: 'all' },
      syncPeriodMs: 30_000,
      minSyncPeriodMs: 1_000,
      // Prometheus scrapes the node IP; the agent's own default would be 127.0.0.1.
      metricsBindAddress: { host: '172.18.0.3', port: 10249 },
      healthzBindAddress: { host: '0.0.0.0', port: 10256 },
      mode: 'iptables',
      masqueradeBit: 14,
      logLevel: 'info',
      iptablesBackend: 'auto',
    });
  });

  it('matches the kind reference cluster: no kube-proxy, the same pod CIDR', () => {
    const kindConfig = parseYaml(readFileSync(join(repoRoot, 'hack', 'kind-config.yaml'), 'utf8')) as Manifest;
    expect(kindConfig.networking.kubeProxyMode).toBe('none');
    const config = parseYaml(find('ConfigMap', 'kube-proxy-ts-config').data['config.yaml']) as Manifest;
    expect(config.clusterCIDR).toBe(kindConfig.networking.podSubnet);
  });

  it('is covered by a headless metrics Service on port 10249', () => {
    const service = find('Service', 'kube-proxy-ts-metrics');
    expect(service.spec.clusterIP).toBe('None');
    expect(service.spec.ports).toEqual([{ name: 'metrics', port: 10249, targetPort: 'metrics', protocol: 'TCP' }]);
    expect(daemonSet.spec.template.metadata.labels).toMatchObject(service.spec.selector);
  });
});

describe('the ClusterRole', () => {
  it('grants list and watch of Services, EndpointSlices, Nodes and ServiceCIDRs, nothing else (test/unit/agent/rbac.test.ts: what the agent uses)', () => {
    const rules = find('ClusterRole', 'kube-proxy-ts').rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    const grants = rules.flatMap((rule) =>
      rule.apiGroups.flatMap((group) => rule.resources.flatMap((resource) => rule.verbs.map((verb) => `${group}/${resource}:${verb}`))),
    );
    expect(grants.sort()).toEqual(
      [
        '/services:list',
        '/services:watch',
        'discovery.k8s.io/endpointslices:list',
        'discovery.k8s.io/endpointslices:watch',
        '/nodes:list',
        '/nodes:watch',
        'networking.k8s.io/servicecidrs:list',
        'networking.k8s.io/servicecidrs:watch',
      ].sort(),
    );
  });

  it('is bound to the DaemonSet service account', () => {
    const binding = find('ClusterRoleBinding', 'kube-proxy-ts');
    const serviceAccount = find('ServiceAccount');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kube-proxy-ts' });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: serviceAccount.metadata.name, namespace: serviceAccount.metadata.namespace }]);
  });
});

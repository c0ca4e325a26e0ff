#!/usr/bin/env bash
# Creates a kind cluster without kube-proxy, builds and loads the kube-proxy-ts image, installs
# manifests/, then proves ClusterIP and NodePort Services work from a pod and from a node.
# Usage: hack/kind-up.sh   (KIND_CLUSTER_NAME, default kube-proxy-ts; an existing cluster is reused)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cluster="${KIND_CLUSTER_NAME:-kube-proxy-ts}"
image="ghcr.io/kube-proxy-ts/kube-proxy-ts:0.1.0"
agnhost="registry.k8s.io/e2e-test-images/agnhost:2.53"
context="kind-${cluster}"

for tool in docker kind kubectl; do
  command -v "${tool}" >/dev/null || { echo "kind-up: ${tool} is required but not in PATH" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "kind-up: no Docker engine answers (is dockerd running?)" >&2; exit 1; }

k() { kubectl --context "${context}" "$@"; }
step() { echo; echo "==> $*"; }

if kind get clusters 2>/dev/null | grep -qx "${cluster}"; then
  step "reusing kind cluster ${cluster}"
else
  step "creating kind cluster ${cluster} (kubeProxyMode: none)"
  kind create cluster --name "${cluster}" --config "${root}/hack/kind-config.yaml"
fi

step "building ${image}"
docker build -t "${image}" "${root}"
kind load docker-image "${image}" --name "${cluster}"

step "installing manifests/"
k apply -f "${root}/manifests/00-namespace.yaml"
# The agent must reach the apiserver without a ClusterIP: point it at the control-plane node.
control_plane_ip="$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "${cluster}-control-plane")"
k -n kube-proxy-ts create configmap kube-proxy-ts-apiserver \
  --from-literal=host="${control_plane_ip}" --from-literal=port=6443 --dry-run=client -o yaml \
  | k apply -f -
# Apply everything but the endpoint ConfigMap, whose kind-"kind" defaults would undo the line above.
for manifest in "${root}"/manifests/*.yaml; do
  [[ "$(basename "${manifest}")" == 31-apiserver-endpoint.yaml ]] && continue
  k apply -f "${manifest}"
done
k -n kube-proxy-ts rollout restart ds/kube-proxy-ts
k -n kube-proxy-ts rollout status ds/kube-proxy-ts --timeout=180s

step "deploying the sample app (3 x agnhost netexec) with a ClusterIP and a NodePort Service"
k apply -f - <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: kube-proxy-ts-demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: netexec
  namespace: kube-proxy-ts-demo
spec:
  replicas: 3
  selector:
    matchLabels: {app: netexec}
  template:
    metadata:
      labels: {app: netexec}
    spec:
      containers:
        - name: netexec
          image: ${agnhost}
          args: ["netexec", "--http-port=8080"]
          ports: [{containerPort: 8080}]
          readinessProbe:
            tcpSocket: {port: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: netexec
  namespace: kube-proxy-ts-demo
spec:
  selector: {app: netexec}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: netexec-nodeport
  namespace: kube-proxy-ts-demo
spec:
  type: NodePort
  selector: {app: netexec}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: kube-proxy-ts-demo
spec:
  containers:
    - name: client
      image: ${agnhost}
      args: ["pause"]
YAML
k -n kube-proxy-ts-demo rollout status deploy/netexec --timeout=180s
k -n kube-proxy-ts-demo wait --for=condition=Ready pod/client --timeout=180s

cluster_ip="$(k -n kube-proxy-ts-demo get service netexec -o jsonpath='{.spec.clusterIP}')"
worker_ip="$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "${cluster}-worker")"
failures=0
# agnhost's /hostname names the pod that answered: several names mean load balancing works.
probe() {
  local label="$1"; shift
  local answers
  if answers="$(for _ in 1 2 3 4 5 6; do "$@" || exit 1; echo; done 2>&1)"; then
    echo "ok   ${label}: answered by $(sort -u <<<"${answers}" | tr '\n' ' ')"
  else
    echo "FAIL ${label}: ${answers}"
    failures=$((failures + 1))
  fi
}

step "probing Services"
probe "pod  -> ClusterIP ${cluster_ip}:80" \
  k -n kube-proxy-ts-demo exec client -- curl -fsS --max-time 5 "http://${cluster_ip}/hostname"
probe "pod  -> Service DNS netexec:80" \
  k -n kube-proxy-ts-demo exec client -- curl -fsS --max-time 5 "http://netexec/hostname"
probe "pod  -> NodePort ${worker_ip}:30080" \
  k -n kube-proxy-ts-demo exec client -- curl -fsS --max-time 5 "http://${worker_ip}:30080/hostname"
probe "node -> ClusterIP ${cluster_ip}:80" \
  docker exec "${cluster}-worker" curl -fsS --max-time 5 "http://${cluster_ip}/hostname"
probe "node -> NodePort ${worker_ip}:30080" \
  docker exec "${cluster}-control-plane" curl -fsS --max-time 5 "http://${worker_ip}:30080/hostname"
# The DaemonSet binds /metrics to the node's IP (the agent's own default is 127.0.0.1).
probe "node -> metrics ${worker_ip}:10249" \
  docker exec "${cluster}-worker" sh -c "curl -fsS --max-time 5 http://${worker_ip}:10249/metrics | grep -c '^kubeproxy_'"

if (( failures > 0 )); then
  echo; echo "kind-up: ${failures} probe(s) failed; logs: kubectl --context ${context} -n kube-proxy-ts logs ds/kube-proxy-ts" >&2
  exit 1
fi
echo; echo "kind-up: cluster ${cluster} is up and kube-proxy-ts serves Services (context ${context})"

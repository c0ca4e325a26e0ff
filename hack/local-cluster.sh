#!/usr/bin/env bash
# A real one-node Kubernetes cluster on this machine, without Docker and without kube-proxy:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd, kubelet, the bridge CNI
# and CoreDNS (kube-dns at 10.96.0.10), all of the pinned release (hack/versions.env). The cluster is
# dual-stack, IPv4 first: Services, pods and the node have an address of each family (an IPv4-only
# Service, the default, behaves as on a single-stack cluster).
#
#   hack/local-cluster.sh up                 install what is missing, start the cluster (idempotent)
#   hack/local-cluster.sh down               stop it and remove everything `up` made
#   hack/local-cluster.sh status             what runs, the node, the pods
#   hack/local-cluster.sh install-proxy kube-proxy-ts|kube-proxy [--mode iptables|nftables] [--takeover]
#                                            kube-proxy-ts: build the image from Dockerfile, import it,
#                                            `kubectl apply -f manifests/` (apiserver ConfigMap set to
#                                            this cluster); kube-proxy: the pinned binary on the node.
#                                            --mode: the proxy mode (default iptables); the same proxy
#                                            in the other mode is switched in place (kube-proxy-ts:
#                                            the ConfigMap's `mode:` and a DaemonSet restart).
#                                            --takeover: stop the installed proxy without removing its
#                                            rules (a live migration); the new one adopts them
#   hack/local-cluster.sh uninstall-proxy    remove whichever proxy is installed, and its rules
#   hack/local-cluster.sh proxy              which proxy is installed (none, kube-proxy-ts, kube-proxy)
#   hack/local-cluster.sh proxy-mode         the installed proxy's mode (none, iptables, nftables)
#   hack/local-cluster.sh prometheus start|stop   Prometheus scraping the cluster's pods (Kubernetes discovery)
#   hack/local-cluster.sh kubectl ARGS...    kubectl with the admin kubeconfig, inside the node
#   hack/local-cluster.sh exec CMD...        a command inside the node's network namespace
#   hack/local-cluster.sh env                shell assignments: KUBECONFIG, NETNS, NODE_IP, ...
#
# The node's network is the network namespace ${netns} (containerd, kubelet, the control plane and
# every pod live in it): the host's own netfilter tables are never touched, and the namespace has
# no route out, so a packet for a Service or pod address that no proxy translated is refused
# locally (this machine's outside network answers TCP to any address; a leaked packet would fake
# a success). Processes keep the host's mount and PID namespaces (nsenter --net only), so
# kubelet's volume mounts are the mounts containerd sees.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/.." && pwd)"
# shellcheck source=hack/versions.env
source "${here}/versions.env"
PATH="${PATH}:/usr/sbin:/sbin"
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH="${PATH}:/usr/local/go/bin"; fi
export PATH

netns="${KUBE_PROXY_TS_CLUSTER_NETNS:-kpts-node}"
state="${KUBE_PROXY_TS_CLUSTER_DIR:-/var/lib/kube-proxy-ts-cluster}"
run_dir=/run/kube-proxy-ts-cluster
ctr_sock="${run_dir}/containerd/containerd.sock"
node_name="${KUBE_PROXY_TS_CLUSTER_NODE:-kpts-node}"
node_ip=172.31.0.2
node_prefix=24
# The second family (unique local addresses: never routed beyond a site, and nothing here routes out).
node_ip6=fd00:172:31::2
node_prefix6=64
service_cidr=10.96.0.0/16
service_cidr6=fd00:10:96::/112
kubernetes_ip=10.96.0.1
dns_ip=10.96.0.10
cluster_cidr=10.244.0.0/16
cluster_cidr6=fd00:10:244::/56
cluster_domain=cluster.local
# Paths kubelet and the CNI plugins use whatever their configuration says.
kubelet_paths=(/var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni)
# Host-wide sysctls kubelet changes (restored by `down`).
kubelet_sysctls=(kernel.panic kernel.panic_on_oops vm.overcommit_memory kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

say() { echo "local-cluster: $*" >&2; }
die() { say "$*"; exit 1; }
[[ "${EUID}" -eq 0 ]] || die "run as root (it creates a network namespace, mounts and cgroups)"

in_node() { nsenter --net="/run/netns/${netns}" -- "$@"; }
pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }
pid_of() { cat "${state}/pids/$1.pid" 2>/dev/null || true; }
running() { pid_alive "$(pid_of "$1")"; }

bin_dir() { bash "${here}/k8s-binaries.sh" kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy | tail -n1; }
kubectl_() { "${k8s}/kubectl" --kubeconfig "${state}/admin.kubeconfig" "$@"; }
kubectl_node() { in_node "${k8s}/kubectl" --kubeconfig "${state}/admin.kubeconfig" "$@"; }

# start NAME CMD...: runs CMD in the node's network namespace, detached, logging to logs/NAME.log.
start() {
  local name="$1"
  shift
  if running "${name}"; then return; fi
  mkdir -p "${state}/pids" "${state}/logs"
  setsid nsenter --net="/run/netns/${netns}" -- "$@" >>"${state}/logs/${name}.log" 2>&1 </dev/null &
  echo $! >"${state}/pids/${name}.pid"
}

# wait_for WHAT SECONDS CMD...: polls CMD every second.
wait_for() {
  local what="$1" seconds="$2" i
  shift 2
  for ((i = 0; i < seconds; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  say "timed out after ${seconds}s waiting for ${what}"
  return 1
}

# stop NAME: SIGTERM, then SIGKILL after 15 s.
stop() {
  local pid i
  pid="$(pid_of "$1")"
  if pid_alive "${pid}"; then
    kill -TERM "${pid}" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do pid_alive "${pid}" || break; sleep 0.1; done
    if pid_alive "${pid}"; then kill -KILL "${pid}" 2>/dev/null || true; fi
    for ((i = 0; i < 50; i++)); do pid_alive "${pid}" || break; sleep 0.1; done
  fi
  rm -f "${state}/pids/$1.pid"
}

# remember KIND VALUE: what `down` must undo (only what `up` made, never what was already there).
remember() { grep -qxF "$1 $2" "${state}/made" 2>/dev/null || echo "$1 $2" >>"${state}/made"; }

ensure_packages() {
  local -A package_command=([containerd]=containerd [runc]=runc [containernetworking-plugins]=/usr/lib/cni/bridge
    [debootstrap]=debootstrap [buildah]=buildah [prometheus]=prometheus [openssl]=openssl [gcc]=gcc [curl]=curl)
  local missing=() p
  for p in "${!package_command[@]}"; do
    command -v "${package_command[${p}]}" >/dev/null || missing+=("${p}")
  done
  if ((${#missing[@]} > 0)); then
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

# ---------------------------------------------------------------------------------------------
# Certificates and kubeconfigs

pki() {
  local d="${state}/pki"
  [[ -f "${d}/done" ]] && return
  mkdir -p "${d}"
  (
    cd "${d}"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -keyout ca.key -out ca.crt -subj /CN=kube-proxy-ts-local-cluster-ca 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    leaf() { # NAME SUBJECT EXTENSIONS
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      printf '%s\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out "$1.crt" -extfile "$1.ext" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    local client='extendedKeyUsage=clientAuth'
    leaf apiserver /CN=kube-apiserver "extendedKeyUsage=serverAuth
subjectAltName=IP:${node_ip},IP:${kubernetes_ip},IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.${cluster_domain}"
    leaf kubelet-serving "/CN=system:node:${node_name}/O=system:nodes" "extendedKeyUsage=serverAuth
subjectAltName=IP:${node_ip},IP:${node_ip6},DNS:${node_name}"
    leaf admin /CN=kubernetes-admin/O=system:masters "${client}"
    leaf apiserver-kubelet-client /CN=kube-apiserver-kubelet-client/O=system:masters "${client}"
    leaf kubelet "/CN=system:node:${node_name}/O=system:nodes" "${client}"
    leaf controller-manager /CN=system:kube-controller-manager "${client}"
    leaf scheduler /CN=system:kube-scheduler "${client}"
    leaf kube-proxy /CN=system:kube-proxy "${client}"
    leaf prometheus /CN=prometheus/O=system:masters "${client}"
  )
  local who
  for who in admin kubelet controller-manager scheduler kube-proxy; do
    cat >"${state}/${who}.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    certificate-authority: ${d}/ca.crt
    server: https://${node_ip}:6443
users:
- name: ${who}
  user:
    client-certificate: ${d}/${who}.crt
    client-key: ${d}/${who}.key
contexts:
- name: local
  context: {cluster: local, user: ${who}}
current-context: local
EOF
  done
  touch "${d}/done"
}

# ---------------------------------------------------------------------------------------------
# The node's network namespace

network() {
  if ! ip netns list | grep -qw "${netns}"; then
    ip netns add "${netns}"
    remember netns "${netns}"
  fi
  ip -n "${netns}" link set lo up
  if ! ip -n "${netns}" link show eth0 >/dev/null 2>&1; then
    # A bridge without ports carries the node address (this kernel has no dummy devices): local
    # delivery works, and a packet sent out of it goes nowhere.
    ip -n "${netns}" link add eth0 type bridge
    ip -n "${netns}" addr add "${node_ip}/${node_prefix}" dev eth0
    # nodad: no neighbour answers on this bridge, so duplicate address detection would only delay.
    ip -n "${netns}" -6 addr add "${node_ip6}/${node_prefix6}" dev eth0 nodad
    ip -n "${netns}" link set eth0 up
    # A default route per family, so that the node's own processes can send to Service addresses
    # (the route lookup precedes the proxy's DNAT in OUTPUT); what would leave by it is refused
    # just below.
    ip -n "${netns}" route add default dev eth0
    ip -n "${netns}" -6 route add default dev eth0
  fi
  # Nothing leaves the node: a packet routed out of eth0 is one no proxy translated (an unused
  # ClusterIP, an external IP with no rule). Refuse it at once, as an unreachable network would,
  # instead of letting it vanish into the empty bridge (a slow timeout) or succeed.
  # In OUTPUT, `-o` is the device chosen before the proxy's DNAT (the hook's device does not follow
  # the re-route), so a node-local connection to a ClusterIP still "goes out" eth0 there: only what
  # conntrack did not DNAT is refused. FORWARD sees the device chosen after PREROUTING's DNAT.
  # The same guard for IPv6 (ip6tables): an IPv6 ClusterIP, pod or external address no proxy
  # translated is refused as well.
  local no_egress=(-o eth0 -m conntrack ! --ctstate DNAT -m comment --comment "local-cluster: no egress" -j REJECT)
  local tables
  for tables in iptables ip6tables; do
    if ! in_node "${tables}" -w -C OUTPUT "${no_egress[@]}" 2>/dev/null; then
      in_node "${tables}" -w -A OUTPUT "${no_egress[@]}"
      in_node "${tables}" -w -A FORWARD "${no_egress[@]}"
    fi
  done
  in_node sysctl -qw net.ipv4.ip_forward=1
  in_node sysctl -qw net.ipv6.conf.all.forwarding=1
  # Bridged pod-to-pod traffic must cross iptables and ip6tables (a pod reaching a Service backed by
  # a pod on the same bridge, or by itself).
  in_node sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || modprobe br_netfilter 2>/dev/null || true
  in_node sysctl -qw net.bridge.bridge-nf-call-iptables=1
  in_node sysctl -qw net.bridge.bridge-nf-call-ip6tables=1
}

# ---------------------------------------------------------------------------------------------
# Components

control_plane() {
  local etcd
  etcd="$(bash "${here}/etcd.sh" | tail -n1)"
  mkdir -p "${state}/etcd"
  start etcd "${etcd}" --name local --data-dir "${state}/etcd" --logger=zap --unsafe-no-fsync \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster local=http://127.0.0.1:2380
  wait_for etcd 60 in_node curl -fsS http://127.0.0.1:2379/health
  local p="${state}/pki"
  start kube-apiserver "${k8s}/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --secure-port=6443 --advertise-address="${node_ip}" \
    --service-cluster-ip-range="${service_cidr},${service_cidr6}" --service-node-port-range=30000-32767 \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true \
    --client-ca-file="${p}/ca.crt" --tls-cert-file="${p}/apiserver.crt" --tls-private-key-file="${p}/apiserver.key" \
    --kubelet-client-certificate="${p}/apiserver-kubelet-client.crt" --kubelet-client-key="${p}/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="${p}/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.${cluster_domain} \
    --service-account-key-file="${p}/sa.pub" --service-account-signing-key-file="${p}/sa.key" \
    --api-audiences=https://kubernetes.default.svc.${cluster_domain} \
    --endpoint-reconciler-type=lease --profiling=false --v=1
  wait_for kube-apiserver 120 kubectl_node get --raw /readyz
  start kube-controller-manager "${k8s}/kube-controller-manager" --kubeconfig="${state}/controller-manager.kubeconfig" \
    --authentication-kubeconfig="${state}/controller-manager.kubeconfig" \
    --authorization-kubeconfig="${state}/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials \
    --root-ca-file="${p}/ca.crt" --service-account-private-key-file="${p}/sa.key" \
    --cluster-signing-cert-file="${p}/ca.crt" --cluster-signing-key-file="${p}/ca.key" \
    --allocate-node-cidrs --cluster-cidr="${cluster_cidr},${cluster_cidr6}" \
    --node-cidr-mask-size-ipv4=24 --node-cidr-mask-size-ipv6=64 \
    --service-cluster-ip-range="${service_cidr},${service_cidr6}" --controllers='*,-cloud-node-lifecycle' --v=1
  start kube-scheduler "${k8s}/kube-scheduler" --kubeconfig="${state}/scheduler.kubeconfig" \
    --authentication-kubeconfig="${state}/scheduler.kubeconfig" --authorization-kubeconfig="${state}/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --v=1
}

containerd_() {
  local d="${state}/containerd"
  mkdir -p "${d}/root" "${state}/cni/net.d" "${run_dir}"
  if [[ ! -f "${d}/config.toml" ]]; then
    # containerd's defaults, with its own root/state/socket (a host containerd is never touched),
    # runc without oom_score_adj below 0 (this VM lacks CAP_SYS_RESOURCE), local images only.
    containerd config default |
      sed -e "s#^root = .*#root = \"${d}/root\"#" \
        -e "s#^state = .*#state = \"${run_dir}/containerd/state\"#" \
        -e "s#^\(\s*\)address = \"/run/containerd/containerd.sock\"#\1address = \"${ctr_sock}\"#" \
        -e "s#restrict_oom_score_adj = false#restrict_oom_score_adj = true#" \
        -e "s#sandbox_image = .*#sandbox_image = \"registry.k8s.io/pause:3.10\"#" \
        -e "s#bin_dir = .*#bin_dir = \"/usr/lib/cni\"#" \
        -e "s#conf_dir = .*#conf_dir = \"${state}/cni/net.d\"#" \
        -e "s#^\(\s*\)address = \"\"#\1address = \"\"#" >"${d}/config.toml"
    grep -q "${ctr_sock}" "${d}/config.toml" || die "containerd config: could not set the socket address"
    grep -q 'restrict_oom_score_adj = true' "${d}/config.toml" || die "containerd config: restrict_oom_score_adj not set"
  fi
  start containerd containerd --config "${d}/config.toml"
  wait_for containerd 60 ctr --address "${ctr_sock}" version
}

import_image() { # TARBALL
  # hack/images.sh replaces a tarball only when it rebuilt it: path, size and mtime tell a new one
  # without reading hundreds of megabytes on every `up` and install.
  local stamp
  stamp="$(stat -c '%n %s %Y' "$1")"
  grep -qxF "${stamp}" "${state}/imported" 2>/dev/null && return
  ctr --address "${ctr_sock}" -n k8s.io images import --no-unpack "$1" >/dev/null
  echo "${stamp}" >>"${state}/imported"
}

kubelet_() {
  local d="${state}/kubelet" s v
  mkdir -p "${d}"
  if [[ ! -f "${state}/sysctls" ]]; then
    for s in "${kubelet_sysctls[@]}"; do
      v="$(sysctl -n "${s}" 2>/dev/null)" && echo "${s}=${v}" >>"${state}/sysctls"
    done
  fi
  # Pods with dnsPolicy Default get this: a loopback resolver, refused at once, never the host's.
  echo "nameserver 127.0.0.1" >"${d}/resolv.conf"
  cat >"${d}/config.yaml" <<EOF
kind: KubeletConfiguration
apiVersion: kubelet.config.k8s.io/v1beta1
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://${ctr_sock}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${state}/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: ${state}/pki/kubelet-serving.crt
tlsPrivateKeyFile: ${state}/pki/kubelet-serving.key
clusterDomain: ${cluster_domain}
clusterDNS: [${dns_ip}]
resolvConf: ${d}/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 98
imageGCLowThresholdPercent: 95
readOnlyPort: 0
serializeImagePulls: false
EOF
  start kubelet "${k8s}/kubelet" --config="${d}/config.yaml" --kubeconfig="${state}/kubelet.kubeconfig" \
    --hostname-override="${node_name}" --node-ip="${node_ip},${node_ip6}" --v=1
  wait_for "node ${node_name} to register" 120 kubectl_node get node "${node_name}"
  # One pod CIDR per family, IPv4 first: "10.244.0.0/24 fd00:10:244::/64".
  local pod_cidrs="" pod_cidr pod_cidr6
  for _ in $(seq 60); do
    pod_cidrs="$(kubectl_node get node "${node_name}" -o jsonpath='{.spec.podCIDRs[*]}' 2>/dev/null || true)"
    [[ "${pod_cidrs}" == *:* ]] && break
    sleep 1
  done
  read -r pod_cidr pod_cidr6 <<<"${pod_cidrs}"
  [[ -n "${pod_cidr}" && "${pod_cidr6:-}" == *:* ]] || die "the controller-manager allocated no pod CIDR of each family to ${node_name} (${pod_cidrs})"
  cat >"${state}/cni/net.d/10-kpts.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "kpts",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "${pod_cidr}"}], [{"subnet": "${pod_cidr6}"}]],
              "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  wait_for "node ${node_name} to be Ready" 120 kubectl_node wait --for=condition=Ready "node/${node_name}" --timeout=1s
}

coredns() {
  sed -e "s#@DNS_IP@#${dns_ip}#g" -e "s#@DOMAIN@#${cluster_domain}#g" "${here}/local-cluster/coredns.yaml" |
    kubectl_node apply -f - >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Commands

cmd_up() {
  local started
  started=$(date +%s)
  bash "${here}/deps.sh"
  ensure_packages
  k8s="$(bin_dir)"
  mkdir -p "${state}"
  # Directories kubelet, containerd and the CNI plugins create on their own: removed by `down` only
  # when they did not exist before the first `up`.
  local path
  for path in "${kubelet_paths[@]}"; do [[ -e "${path}" ]] || remember path "${path}"; done
  pki
  network
  control_plane
  containerd_
  local images
  images="$(bash "${here}/images.sh" cluster | tail -n1)"
  import_image "${images}/pause.tar"
  import_image "${images}/coredns.tar"
  import_image "${images}/agnhost.tar"
  kubelet_
  coredns
  say "up in $(( $(date +%s) - started ))s: node ${node_name} (${node_ip}) Ready; proxy: $(proxy_installed)"
  say "kubectl: hack/local-cluster.sh kubectl get pods -A   (KUBECONFIG=${state}/admin.kubeconfig inside ${netns})"
}

proxy_installed() {
  if running kube-proxy; then echo kube-proxy; return; fi
  if [[ -n "${k8s:-}" ]] && kubectl_node get daemonset -n kube-proxy-ts kube-proxy-ts >/dev/null 2>&1; then
    echo kube-proxy-ts
    return
  fi
  echo none
}

# The installed proxy's mode: kube-proxy-ts's from its ConfigMap, kube-proxy's as install-proxy started it.
proxy_mode() {
  case "$(proxy_installed)" in
    kube-proxy) cat "${state}/kube-proxy.mode" 2>/dev/null || echo iptables ;;
    kube-proxy-ts)
      local mode
      mode="$(kubectl_node -n kube-proxy-ts get configmap kube-proxy-ts-config -o jsonpath='{.data.config\.yaml}' | sed -n 's/^mode: *//p')"
      echo "${mode:-iptables}"
      ;;
    none) echo none ;;
  esac
}

cmd_install_proxy() {
  k8s="$(bin_dir)"
  local usage="install-proxy kube-proxy-ts|kube-proxy [--mode iptables|nftables] [--takeover]"
  local which="${1:-}" takeover="" mode=iptables current restart=""
  [[ $# -gt 0 ]] && shift
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --takeover) takeover=--takeover ;;
      --mode) mode="${2:-}"; shift ;;
      --mode=*) mode="${1#--mode=}" ;;
      *) die "${usage}" ;;
    esac
    shift
  done
  [[ "${mode}" == iptables || "${mode}" == nftables ]] || die "${usage}"
  current="$(proxy_installed)"
  if [[ "${current}" == "${which}" ]]; then
    [[ "$(proxy_mode)" == "${mode}" ]] && { say "${which} already installed (${mode} mode)"; return; }
    # The same proxy in the other mode: kube-proxy-ts switches in place (the agent removes the other
    # mode's rules when it starts); kube-proxy is removed with its rules and started again.
    if [[ "${which}" == kube-proxy-ts ]]; then restart=yes; else cmd_uninstall_proxy; current=none; fi
  fi
  case "${which}" in
    kube-proxy-ts)
      local image manifests
      # Everything slow first (the image build), so a takeover leaves the node without a running
      # proxy only for the time the DaemonSet takes to start.
      image="$(bash "${here}/images.sh" proxy | tail -n1)"
      import_image "${image}"
      # What the README tells users: apply manifests/, with the apiserver endpoint set to this
      # cluster's (31-apiserver-endpoint.yaml). Nothing else differs from the repository's files.
      manifests="$(mktemp -d)"
      cp -r "${root}/manifests/." "${manifests}/"
      rm -rf "${manifests}/optional"
      sed -i -e "s#^  host: .*#  host: \"${node_ip}\"#" -e 's#^  port: .*#  port: "6443"#' "${manifests}/31-apiserver-endpoint.yaml"
      # And the pod CIDR, as 30-configmap.yaml asks users to set theirs: this cluster's pair.
      sed -i -e "s#^    clusterCIDR: .*#    clusterCIDR: ${cluster_cidr},${cluster_cidr6}#" "${manifests}/30-configmap.yaml"
      grep -qF "clusterCIDR: ${cluster_cidr},${cluster_cidr6}" "${manifests}/30-configmap.yaml" || die "30-configmap.yaml: could not set clusterCIDR"
      # And the mode, the one line 30-configmap.yaml documents for it.
      sed -i -e "s#^    mode: .*#    mode: ${mode}#" "${manifests}/30-configmap.yaml"
      grep -qxF "    mode: ${mode}" "${manifests}/30-configmap.yaml" || die "30-configmap.yaml: could not set mode"
      [[ -n "${restart}" ]] || remove_proxy "${current}" "${takeover}"
      kubectl_node apply -f "${manifests}/" >/dev/null
      rm -rf "${manifests}"
      # A changed ConfigMap reaches a running agent only through a new pod.
      [[ -z "${restart}" ]] || kubectl_node -n kube-proxy-ts rollout restart ds/kube-proxy-ts >/dev/null
      kubectl_node -n kube-proxy-ts rollout status ds/kube-proxy-ts --timeout=180s >&2
      ;;
    kube-proxy)
      remove_proxy "${current}" "${takeover}"
      # --conntrack-max-per-core=0: nf_conntrack_max is host-wide, writable only from the host's
      # network namespace (kube-proxy exits on "permission denied" otherwise); it stays as it is.
      start kube-proxy "${k8s}/kube-proxy" --kubeconfig="${state}/kube-proxy.kubeconfig" \
        --hostname-override="${node_name}" --cluster-cidr="${cluster_cidr},${cluster_cidr6}" --proxy-mode="${mode}" \
        --metrics-bind-address=0.0.0.0:10249 --healthz-bind-address=0.0.0.0:10256 \
        --conntrack-max-per-core=0 --v=1
      echo "${mode}" >"${state}/kube-proxy.mode"
      wait_for "kube-proxy /healthz" 60 in_node curl -fsS http://127.0.0.1:10256/healthz
      ;;
    *) die "${usage}" ;;
  esac
  say "proxy: ${which} (${mode} mode)"
}

# remove_proxy CURRENT [--takeover]: the installed proxy goes; with --takeover its rules stay.
remove_proxy() {
  case "$1" in
    none) ;;
    kube-proxy) if [[ "${2:-}" == --takeover ]]; then stop kube-proxy; else cmd_uninstall_proxy; fi ;;
    kube-proxy-ts)
      if [[ "${2:-}" == --takeover ]]; then
        # SIGTERM: the agent exits and leaves its rules in place.
        kubectl_node delete -f "${root}/manifests/" --ignore-not-found --wait=true --timeout=120s >/dev/null 2>&1 || true
      else
        cmd_uninstall_proxy
      fi
      ;;
  esac
}

cmd_uninstall_proxy() {
  k8s="$(bin_dir)"
  case "$(proxy_installed)" in
    kube-proxy-ts)
      # The README's uninstall; deleting the namespace waits for the pods to be gone.
      kubectl_node delete -f "${root}/manifests/" --ignore-not-found --wait=true --timeout=120s >/dev/null 2>&1 || true
      # The README's uninstall: `kube-proxy-ts cleanup` on the node (here the repository's build).
      cleanup_rules
      ;;
    kube-proxy)
      stop kube-proxy
      in_node "${k8s}/kube-proxy" --cleanup >/dev/null 2>&1 || true
      ;;
    none) ;;
  esac
}

cleanup_rules() {
  [[ -f "${root}/dist/src/cli.js" ]] || (cd "${root}" && npm run --silent build >&2)
  in_node node "${root}/dist/src/cli.js" cleanup >/dev/null
}

cmd_prometheus() {
  k8s="$(bin_dir)"
  case "${1:-}" in
    start)
      local d="${state}/prometheus"
      mkdir -p "${d}/data"
      # The alerting and recording rules the project ships, as Prometheus loads them.
      cp "${root}/manifests/optional/prometheus/kube-proxy-ts.rules.yaml" "${d}/rules.yaml" 2>/dev/null || echo "groups: []" >"${d}/rules.yaml"
      sed -e "s#@STATE@#${state}#g" -e "s#@NODE_IP@#${node_ip}#g" "${here}/local-cluster/prometheus.yml" >"${d}/prometheus.yml"
      local prometheus
      prometheus="$(bash "${here}/prometheus.sh" | tail -n1)"
      start prometheus "${prometheus}" --config.file="${d}/prometheus.yml" --storage.tsdb.path="${d}/data" \
        --web.listen-address=127.0.0.1:9090 --web.enable-lifecycle
      wait_for prometheus 60 in_node curl -fsS http://127.0.0.1:9090/-/ready
      ;;
    stop) stop prometheus ;;
    *) die "prometheus start|stop" ;;
  esac
}

cmd_status() {
  local name
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy prometheus; do
    if running "${name}"; then echo "${name}: running (pid $(pid_of "${name}"))"; else echo "${name}: stopped"; fi
  done
  ip netns list | grep -qw "${netns}" || { echo "netns ${netns}: absent"; return 0; }
  k8s="$(bin_dir)"
  running kube-apiserver || return 0
  kubectl_node get nodes -o wide || true
  kubectl_node get pods -A -o wide || true
  echo "proxy: $(proxy_installed)"
}

# Everything `up` made goes, in an order that leaves no mount or process behind.
cmd_down() {
  [[ -d "${state}" ]] || { say "nothing to remove"; return 0; }
  k8s="$(bin_dir)"
  local name pid
  # 1. Let kubelet tear pods down (CNI DEL releases addresses, removes veths and CNI chains).
  if running kube-apiserver && running kubelet && running containerd; then
    kubectl_node delete daemonsets,deployments,replicasets,statefulsets,jobs --all -A --wait=false >/dev/null 2>&1 || true
    kubectl_node delete pods --all -A --grace-period=1 --wait=false >/dev/null 2>&1 || true
    wait_for "pod sandboxes to stop" 60 bash -c "! ctr --address '${ctr_sock}' -n k8s.io tasks ls -q | grep -q ." || true
  fi
  # 2. Processes, by the PIDs `up` recorded, then any container process still in kubepods.
  for name in prometheus kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "${name}"; done
  local cg
  for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d "${cg}" ]] || continue
    find "${cg}" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do kill -KILL "${pid}" 2>/dev/null || true; done
  done
  # containerd's shims (they hold the containers' mounts), found by the socket they serve.
  for pid in $(pgrep -f "containerd-shim.*-address ${ctr_sock}" || true); do kill -KILL "${pid}" 2>/dev/null || true; done
  stop containerd
  # 3. Mounts under the paths we own, deepest first (container rootfs, shm, secrets, pod netns).
  local mounts m
  mapfile -t mounts < <(awk '{print $5}' /proc/self/mountinfo | grep -E "^(${run_dir}|${state}|/var/lib/kubelet|/run/netns/cni-|/var/run/netns/cni-)" | sort -r || true)
  for m in "${mounts[@]}"; do umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null || true; done
  rm -f /run/netns/cni-* 2>/dev/null || true
  # 4. The node's network namespace (bridge, veths, every rule of the proxy, kubelet and CNI).
  if grep -q "^netns " "${state}/made" 2>/dev/null; then ip netns delete "${netns}" 2>/dev/null || true; fi
  # 5. cgroups kubelet and containerd made, in every hierarchy (leaves first).
  for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/k8s.io; do
    if [[ -d "${cg}" ]]; then find "${cg}" -depth -type d -exec rmdir {} \; 2>/dev/null || true; fi
  done
  # 6. Host sysctls kubelet changed, back to what they were.
  if [[ -f "${state}/sysctls" ]]; then
    while IFS= read -r line; do sysctl -qw "${line}" >/dev/null 2>&1 || true; done <"${state}/sysctls"
  fi
  # 7. Files: kubelet's and CNI's (only those that did not exist before `up`), then our own.
  while read -r kind value; do
    [[ "${kind}" == path ]] && rm -rf "${value}"
  done < <(cat "${state}/made" 2>/dev/null || true)
  rm -rf "${run_dir}" "${state}"
  say "down: nothing left"
}

cmd_env() {
  k8s="$(bin_dir)"
  echo "KUBECONFIG=${state}/admin.kubeconfig"
  echo "NETNS=${netns}"
  echo "NODE_NAME=${node_name}"
  echo "NODE_IP=${node_ip}"
  echo "NODE_IP6=${node_ip6}"
  echo "SERVICE_CIDR=${service_cidr}"
  echo "SERVICE_CIDR6=${service_cidr6}"
  echo "CLUSTER_CIDR=${cluster_cidr}"
  echo "CLUSTER_CIDR6=${cluster_cidr6}"
  echo "DNS_IP=${dns_ip}"
  echo "K8S_BIN=${k8s}"
  echo "STATE_DIR=${state}"
  echo "CONTAINERD_SOCK=${ctr_sock}"
}

command="${1:-}"
[[ $# -gt 0 ]] && shift
case "${command}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  install-proxy) cmd_install_proxy "$@" ;;
  uninstall-proxy) cmd_uninstall_proxy ;;
  proxy) k8s="$(bin_dir)"; proxy_installed ;;
  proxy-mode) k8s="$(bin_dir)"; proxy_mode ;;
  prometheus) cmd_prometheus "$@" ;;
  kubectl) k8s="$(bin_dir)"; kubectl_node "$@" ;;
  exec) in_node "$@" ;;
  env) cmd_env ;;
  *) sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

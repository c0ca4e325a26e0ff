#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to run the tests and the demo: system tools
# (apt-get, only when something is missing), node_modules (npm ci, only when package-lock.json
# changed), then etcd and the pinned kube-apiserver/kube-proxy/kubectl (cached after the first
# build), and the Node.js LTS the suite also runs on (hack/node-lts.sh). Idempotent and quiet when
# everything is in place. Works as root without sudo.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/.." && pwd)"

say() { echo "deps: $*" >&2; }
die() { say "$*"; exit 1; }

# Debian package -> a command it provides, used to tell whether it is installed.
declare -A package_command=(
  [iptables]=iptables
  [nftables]=nft
  [ipset]=ipset
  [conntrack]=conntrack
  [nfacct]=nfacct
  [iproute2]=ip
  [etcd-server]=etcd
  [openssl]=openssl
  [socat]=socat
  [ncat]=ncat
  [curl]=curl
  [shellcheck]=shellcheck
  [prometheus]=promtool
)

# iptables & co. live in /usr/sbin, which is not in every user's PATH.
PATH="${PATH}:/usr/sbin:/sbin"
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  PATH="${PATH}:/usr/local/go/bin"
fi
export PATH

as_root() {
  if [[ "${EUID}" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

missing=()
for package in "${!package_command[@]}"; do
  command -v "${package_command[${package}]}" >/dev/null || missing+=("${package}")
done
if ((${#missing[@]} > 0)); then
  command -v apt-get >/dev/null ||
    die "missing ${missing[*]} and no apt-get here: install them with your package manager"
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort)
  say "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
  for package in "${missing[@]}"; do
    command -v "${package_command[${package}]}" >/dev/null ||
      die "${package} installed but ${package_command[${package}]} is still not in PATH"
  done
fi

# package.json's engines: the lines the suite runs on (20, the machine's; 26, the LTS, below).
command -v node >/dev/null || die "Node.js 20 or 26 is required (not found in PATH)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major == 20 || node_major == 26)) || say "Node.js $(node --version) is untested: the suite runs on Node 20 and 26"
((node_major >= 20)) || die "Node.js 20 or 26 is required (found $(node --version))"

# node_modules is fresh when it was installed from this exact package-lock.json. The stamp is
# written after a successful npm ci; an install made by hand counts as fresh when npm's own
# record of it (.package-lock.json) is newer than the lockfile.
lock_hash="$(sha256sum "${root}/package-lock.json" | cut -d' ' -f1)"
stamp="${root}/node_modules/.kube-proxy-ts-lock"
if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${lock_hash}" ]]; then
  :
elif [[ ! -f "${stamp}" && "${root}/node_modules/.package-lock.json" -nt "${root}/package-lock.json" ]]; then
  echo "${lock_hash}" >"${stamp}"
else
  say "node_modules is missing or stale: npm ci"
  (cd "${root}" && npm ci --no-audit --no-fund >&2)
  echo "${lock_hash}" >"${stamp}"
fi

etcd_path="$(bash "${here}/etcd.sh" | tail -n1)"
k8s_dir="$(bash "${here}/k8s-binaries.sh" | tail -n1)"
node_lts="$(bash "${here}/node-lts.sh" | tail -n1)"
say "ok: etcd ${etcd_path}, kube-apiserver/kube-proxy/kubectl in ${k8s_dir}, node $("${node_lts}/node" --version) in ${node_lts}"

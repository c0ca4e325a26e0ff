#!/usr/bin/env bash
# Prints (on its last line) the path of an etcd binary that serves the pinned kube-apiserver
# (hack/versions.env). Order: $KUBE_PROXY_TS_ETCD, then an etcd in PATH (Debian's etcd-server) when
# its version is new enough, then etcd v3.5.21 built once from the Go module proxy into the cache. kube-apiserver <= 1.33 talks to etcd 3.4+; from 1.34 it uses the etcd 3.6 client,
# which wants etcd 3.5+.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/versions.env
source "${here}/versions.env"

etcd_build_version="v3.5.21"
cache_root="${KUBE_PROXY_TS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-proxy-ts}"
out="${cache_root}/etcd/${etcd_build_version}"

kube_minor="${KUBE_VERSION#v1.}"
kube_minor="${kube_minor%%.*}"
min_etcd_minor=4
if (( kube_minor >= 34 )); then min_etcd_minor=5; fi

# Succeeds when the etcd binary $1 is 3.x with x >= min_etcd_minor.
serves_pinned_apiserver() {
  local version
  version="$("$1" --version 2>/dev/null | sed -n 's/^etcd Version: *//p' | head -n1)"
  [[ "${version}" =~ ^3\.([0-9]+)\. ]] || return 1
  (( BASH_REMATCH[1] >= min_etcd_minor ))
}

if [[ -n "${KUBE_PROXY_TS_ETCD:-}" ]]; then
  if ! serves_pinned_apiserver "${KUBE_PROXY_TS_ETCD}"; then
    echo "etcd: KUBE_PROXY_TS_ETCD=${KUBE_PROXY_TS_ETCD} is not etcd 3.${min_etcd_minor}+" >&2
    exit 1
  fi
  echo "${KUBE_PROXY_TS_ETCD}"
  exit 0
fi

# KUBE_PROXY_TS_ETCD_BUILD=1 skips the system etcd and uses (or builds) ${etcd_build_version}.
if [[ "${KUBE_PROXY_TS_ETCD_BUILD:-0}" != 1 ]] && system_etcd="$(command -v etcd)" &&
  serves_pinned_apiserver "${system_etcd}"; then
  echo "${system_etcd}"
  exit 0
fi

if [[ -x "${out}/etcd" ]]; then
  echo "${out}/etcd"
  exit 0
fi

# shellcheck source=hack/lib/go.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go.sh"
require_go etcd "to build ${etcd_build_version}: no etcd 3.${min_etcd_minor}+ in PATH"

echo "etcd: building etcd ${etcd_build_version} from the Go module proxy into ${out}" >&2
work="${cache_root}/etcd/build-${etcd_build_version}"
mkdir -p "${work}" "${out}"
cd "${work}"
[[ -f go.mod ]] || go mod init kube-proxy-ts/etcd-build >&2 2>&1
export GOFLAGS="-mod=mod"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
go get "go.etcd.io/etcd/server/v3@${etcd_build_version}" >&2
CGO_ENABLED=0 go build -trimpath -o "${out}/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
mv "${out}/etcd.tmp" "${out}/etcd"
"${out}/etcd" --version >&2
echo "${out}/etcd"

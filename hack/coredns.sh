#!/usr/bin/env bash
# Provides a CoreDNS binary for the local cluster (hack/local-cluster.sh): built once from the Go
# module github.com/coredns/coredns with only the plugins a cluster's DNS needs, cached outside the
# repo. Prints the binary's path on its last line. Idempotent.
set -euo pipefail

version="${KUBE_PROXY_TS_COREDNS_VERSION:-v1.12.0}"
cache_root="${KUBE_PROXY_TS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-proxy-ts}"
out="${cache_root}/coredns/${version}"
# shellcheck source=hack/lib/go.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go.sh"
cached_or_locked coredns "${out}/.lock" "${out}/coredns" test -x "${out}/coredns"
require_go coredns

work="${out}/build"
mkdir -p "${work}"
cd "${work}"
export GOFLAGS="-mod=mod"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
# Plugins register themselves in init(); the server's directive order already names them all.
plugins=(cache errors forward health kubernetes loadbalance log loop metrics ready reload)
{
  echo 'package main'
  echo
  echo 'import ('
  echo '	"github.com/coredns/coredns/core/dnsserver"'
  echo '	"github.com/coredns/coredns/coremain"'
  echo
  for p in "${plugins[@]}"; do echo "	_ \"github.com/coredns/coredns/plugin/${p}\""; done
  echo ')'
  echo
  echo 'var _ = dnsserver.Directives'
  echo
  echo 'func main() { coremain.Run() }'
} >main.go
[[ -f go.mod ]] || go mod init kube-proxy-ts/coredns-build >&2 2>&1
echo "coredns: building CoreDNS ${version} (about 4 min on 2 cores)" >&2
start=$(date +%s)
go get "github.com/coredns/coredns@${version}" >&2
go mod tidy >&2
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${out}/coredns.tmp" . >&2
mv "${out}/coredns.tmp" "${out}/coredns"
echo "coredns: built in $(( $(date +%s) - start ))s" >&2
"${out}/coredns" -version >&2
echo "${out}/coredns"

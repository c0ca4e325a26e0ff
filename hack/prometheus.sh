#!/usr/bin/env bash
# Provides a prometheus server with Kubernetes service discovery for the local cluster
# (hack/local-cluster.sh prometheus start). Debian's prometheus package (2.42) is built without the
# kubernetes_sd_configs discovery ("field kubernetes_sd_configs not found"), so this builds the
# upstream server from its Go module with only that discovery compiled in (build tags
# remove_all_sd,enable_kubernetes_sd), cached outside the repo. Prints the binary's path on its last
# line. Debian's promtool is still what the rule tests use. Idempotent.
set -euo pipefail

version="${KUBE_PROXY_TS_PROMETHEUS_VERSION:-v0.316.0}"
cache_root="${KUBE_PROXY_TS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-proxy-ts}"
out="${cache_root}/prometheus/${version}"
# shellcheck source=hack/lib/go.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go.sh"
cached_or_locked prometheus "${out}/.lock" "${out}/prometheus" test -x "${out}/prometheus"
require_go prometheus
echo "prometheus: building the Prometheus server ${version} with Kubernetes discovery only (a few minutes on 2 cores)" >&2
start=$(date +%s)
GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" GOFLAGS=-mod=mod CGO_ENABLED=0 GOBIN="${out}" \
  go install -trimpath -tags remove_all_sd,enable_kubernetes_sd -ldflags "-s -w" \
  "github.com/prometheus/prometheus/cmd/prometheus@${version}" >&2
echo "prometheus: built in $(( $(date +%s) - start ))s" >&2
"${out}/prometheus" --version >&2
echo "${out}/prometheus"

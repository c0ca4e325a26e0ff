#!/usr/bin/env bash
# Deletes the kind cluster that hack/kind-up.sh created (KIND_CLUSTER_NAME, default kube-proxy-ts).
set -euo pipefail

cluster="${KIND_CLUSTER_NAME:-kube-proxy-ts}"
command -v kind >/dev/null || { echo "kind-down: kind is required but not in PATH" >&2; exit 1; }
kind delete cluster --name "${cluster}"

#!/usr/bin/env bash
# `npm run demo`: installs what is missing (hack/deps.sh: system tools, node_modules, etcd and the
# pinned kube-apiserver, built once into ~/.cache/kube-proxy-ts), then runs demo/main.ts.
# Arguments go to the demo: `npm run demo -- --once`, `npm run demo -- --kubeconfig FILE`.
# Against an existing cluster (--kubeconfig, or inside a pod) only node_modules is needed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

cluster_mode=false
for argument in "$@"; do
  case "${argument}" in
    --kubeconfig | --kubeconfig=*) cluster_mode=true ;;
    --help | -h) cluster_mode=true ;; # nothing to build just to print the usage
  esac
done
if [[ -n "${KUBERNETES_SERVICE_HOST:-}" && -f /var/run/secrets/kubernetes.io/serviceaccount/token ]]; then
  case " $* " in
    *" --local "* | *" --once "* | *" --requests"*) ;;
    *) cluster_mode=true ;;
  esac
fi

if [[ "${cluster_mode}" == true ]]; then
  [[ -d node_modules/tsx ]] || npm ci --no-audit --no-fund >&2
else
  bash hack/deps.sh
fi

# iptables & co. live in /usr/sbin, which is not in every user's PATH.
export PATH="${PATH}:/usr/sbin:/sbin"
exec node --import tsx demo/main.ts "$@"

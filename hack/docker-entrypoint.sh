#!/usr/bin/env bash
# Entrypoint of the kube-proxy-ts image: make the container's iptables match the host's backend
# (nft or legacy), then run the agent. Rules written with the other backend would live in a separate
# set of kernel tables, invisible to the host's iptables and ordered unpredictably against them
# (kubernetes/kubernetes#71305). The choice follows the iptables-wrappers approach of kube-proxy's
# images: first look for the hint chains the kubelet creates in the backend it uses, else pick the
# backend that already holds more rules.
set -euo pipefail

log() { echo "kube-proxy-ts entrypoint: $*" >&2; }

# The mangle table of one backend as its save command prints it ("" when it cannot be read).
mangle_table() {
  timeout 5 "iptables-$1-save" -t mangle 2>/dev/null || true
}

# True when the kubelet left its KUBE-IPTABLES-HINT or KUBE-KUBELET-CANARY chain in that backend.
has_kubelet_hint() {
  mangle_table "$1" | grep -E '^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) ' >/dev/null
}

# How many rules ("-A ..." lines) a backend holds over IPv4 and IPv6.
rule_count() {
  {
    timeout 5 "iptables-$1-save" 2>/dev/null || true
    timeout 5 "ip6tables-$1-save" 2>/dev/null || true
  } | grep -c '^-' || true
}

detect_backend() {
  # nft first: querying legacy can make the kernel load the legacy ip_tables modules.
  if has_kubelet_hint nft; then echo nft; return; fi
  if has_kubelet_hint legacy; then echo legacy; return; fi
  local nft legacy
  nft="$(rule_count nft)"
  legacy="$(rule_count legacy)"
  log "no kubelet hint chain; ${nft} nft rules, ${legacy} legacy rules"
  if (( legacy > nft )); then echo legacy; else echo nft; fi
}

select_backend() {
  local backend="${KUBE_PROXY_TS_IPTABLES_BACKEND:-auto}"
  case "${backend}" in
    auto) backend="$(detect_backend)" ;;
    nft | legacy) ;;
    *) log "KUBE_PROXY_TS_IPTABLES_BACKEND must be auto, nft or legacy, not \"${backend}\""; exit 2 ;;
  esac
  export KUBE_PROXY_TS_IPTABLES_BACKEND="${backend}"
  # Also point the plain iptables/ip6tables commands at it, for anyone debugging with `kubectl exec`
  # (the agent runs iptables-${backend}-* by name). A read-only root filesystem (the DaemonSet's)
  # only loses that convenience.
  log "using the iptables ${backend} backend"
  if [[ ! -w /etc/alternatives ]]; then
    log "read-only root filesystem: the plain iptables command keeps the image's default; use iptables-${backend}"
    return
  fi
  local tool
  for tool in iptables ip6tables; do
    update-alternatives --set "${tool}" "/usr/sbin/${tool}-${backend}" >/dev/null 2>&1 \
      || log "could not point ${tool} at ${tool}-${backend} (continuing)"
  done
}

# Only the commands that touch the kernel need a backend; `render`, `version` and `--help` do not.
case "${1:-}" in
  run | cleanup) select_backend ;;
esac

exec node /app/dist/src/cli.js "$@"

#!/usr/bin/env bash
# Provides binaries of the pinned Kubernetes release (hack/versions.env), built from the
# k8s.io/kubernetes Go module through the Go module proxy and cached outside the repo.
#   hack/k8s-binaries.sh                      kube-apiserver, kube-proxy, kubectl (tests, demo, bench)
#   hack/k8s-binaries.sh kubelet kube-scheduler ...   any of the commands listed in ${known[*]} below
# Prints the directory holding the binaries on its last line. Idempotent: a warm cache returns at once.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/versions.env
source "${here}/versions.env"
# shellcheck source=hack/lib/k8s-module.sh
source "${here}/lib/k8s-module.sh"

version="${KUBE_VERSION}"
cache_root="${KUBE_PROXY_TS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-proxy-ts}"
out="${cache_root}/k8s/${version}"
# Every command this module can build; tools.go names them all so one go.sum serves each.
known=(kube-apiserver kube-proxy kubectl kubelet kube-controller-manager kube-scheduler)
if (($# > 0)); then binaries=("$@"); else binaries=(kube-apiserver kube-proxy kubectl); fi
for b in "${binaries[@]}"; do
  [[ " ${known[*]} " == *" ${b} "* ]] || { echo "k8s-binaries: unknown binary ${b} (known: ${known[*]})" >&2; exit 2; }
done

have_all() {
  local b
  for b in "${binaries[@]}"; do
    [[ -x "${out}/${b}" ]] || return 1
  done
}

# shellcheck source=hack/lib/go.sh
source "${here}/lib/go.sh"
# Two concurrent runs (e.g. a test run and the demo) would race on the same outputs: the second
# waits for the first and then finds the binaries cached.
cached_or_locked k8s-binaries "${cache_root}/k8s/.lock-${version}" "${out}" have_all
require_go k8s-binaries "to build ${version}"

work="${cache_root}/k8s/build-${version}"
mkdir -p "${work}" "${out}"

tools="$(
  echo '//go:build tools'
  echo
  echo 'package tools'
  echo
  echo 'import ('
  for b in "${known[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/${b}\""; done
  echo ')'
)"
# Resolve modules again only when go.mod is missing or tools.go names other commands.
if [[ ! -f "${work}/go.mod" || ! -f "${work}/tools.go" || "$(cat "${work}/tools.go")" != "${tools}" ]]; then
  k8s_write_gomod "${work}/go.mod" kube-proxy-ts/k8s-build "${version}" ||
    { echo "k8s-binaries: no go.mod for ${version}" >&2; exit 1; }
  printf '%s\n' "${tools}" >"${work}/tools.go"
  resolve=true
else
  resolve=false
fi

cd "${work}"
export GOFLAGS="-mod=mod"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
if [[ "${resolve}" == true ]]; then
  echo "k8s-binaries: resolving modules for ${version} in ${work}" >&2
  go mod tidy -e >&2 2>&1 || go mod download >&2
fi

ldflags="$(k8s_ldflags "${version}")"

for b in "${binaries[@]}"; do
  if [[ -x "${out}/${b}" ]]; then continue; fi
  echo "k8s-binaries: building ${b} ${version} (first build takes a while on 2 cores)" >&2
  start=$(date +%s)
  CGO_ENABLED=0 go build -trimpath -tags selinux,notest -ldflags "${ldflags}" \
    -o "${out}/${b}.tmp" "k8s.io/kubernetes/cmd/${b}" >&2
  mv "${out}/${b}.tmp" "${out}/${b}"
  echo "k8s-binaries: ${b} built in $(( $(date +%s) - start ))s" >&2
done

"${out}/${binaries[0]}" --version >&2 || true
echo "${out}"

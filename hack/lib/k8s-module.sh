# shellcheck shell=bash
# Sourced by hack/k8s-binaries.sh and hack/e2e-binaries.sh: the wrapper Go module that builds
# commands of k8s.io/kubernetes through the Go module proxy, and the version stamps upstream's
# build writes into them.

# k8s.io/kubernetes replaces each of these with a local path; a wrapper replaces each with its
# published v0.<minor>.<patch> instead (1.33-1.35; 1.36 adds cri-streaming and streaming).
k8s_staging_modules=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
  cloud-provider cluster-bootstrap code-generator component-base component-helpers
  controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation
  endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler
  kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver sample-cli-plugin
  sample-controller)

# k8s_write_gomod FILE MODULE VERSION [STAGING=VERSION...]: writes a go.mod for MODULE requiring
# k8s.io/kubernetes VERSION with upstream's go and godebug lines, each staging module replaced by
# its published version unless an argument pins another one.
k8s_write_gomod() {
  local file="$1" module="$2" version="$3" upstream proxy m
  shift 3
  local -A pinned=()
  for m in "$@"; do pinned[${m%%=*}]="${m#*=}"; done
  upstream="$(mktemp)"
  proxy="${GOPROXY:-https://proxy.golang.org}"
  proxy="${proxy%%,*}"
  if ! curl -fsSL "${proxy}/k8s.io/kubernetes/@v/${version}.mod" -o "${upstream}"; then
    rm -f "${upstream}"
    echo "cannot fetch go.mod of k8s.io/kubernetes ${version} from ${proxy}" >&2
    return 1
  fi
  {
    echo "module ${module}"
    echo
    grep -m1 -E '^go [0-9]' "${upstream}"
    grep -m1 -E '^godebug ' "${upstream}" || true
    echo
    echo "require k8s.io/kubernetes ${version}"
    echo
    echo "replace ("
    for m in "${k8s_staging_modules[@]}"; do
      echo "	k8s.io/${m} => k8s.io/${m} ${pinned[${m}]:-v0.${version#v1.}}"
    done
    echo ")"
  } >"${file}"
  rm -f "${upstream}"
}

# k8s_ldflags VERSION: the -ldflags of upstream's release build (stripped, version stamped).
k8s_ldflags() {
  local version="$1" major_minor major rest minor pkg flags="-s -w"
  major_minor="${version#v}"
  major="${major_minor%%.*}"
  rest="${major_minor#*.}"
  minor="${rest%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X ${pkg}.gitVersion=${version} -X ${pkg}.gitMajor=${major} -X ${pkg}.gitMinor=${minor}"
    flags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  done
  echo "${flags}"
}

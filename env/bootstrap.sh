#!/usr/bin/env bash
# Build the project's virtual environment (.venv) from env/requirements.lock, idempotently:
# a second run with unchanged pins returns at once. Usage: bash env/bootstrap.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages for the local LM corpus (env/apt-packages.txt), installed only when missing:
# one dpkg-query when they are all there. Without root or passwordless sudo: one line, go on.
apt_packages() {
    command -v dpkg-query >/dev/null 2>&1 || {
        echo "env: not Debian: the LM corpus needs the packages in env/apt-packages.txt"; return 0; }
    local wanted status p missing="" sudo=""
    wanted="$(grep -Ev '^[[:space:]]*(#|$)' env/apt-packages.txt | tr '\n' ' ')"
    # shellcheck disable=SC2086
    status="$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' $wanted 2>/dev/null || true)"
    for p in $wanted; do
        grep -qx "$p installed" <<<"$status" || missing+="$p "
    done
    [[ -z "${missing// /}" ]] && return 0
    if [[ "$(id -u)" != 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
            echo "env: the LM corpus needs Debian packages: sudo apt-get install -y $missing"
            return 0
        fi
    fi
    echo "env: installing Debian packages for the LM corpus: $missing"
    local install="$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends"
    # shellcheck disable=SC2086
    $install $missing >/dev/null 2>&1 || { $sudo apt-get update -qq && $install $missing >/dev/null; } \
        || echo "env: apt-get failed; the corpus rule will name the missing package"
}
apt_packages
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
stamp="$VENV/.bootstrap-stamp"
want="$(cat env/requirements.lock env/bootstrap.sh pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "env: $VENV is up to date"
    exit 0
fi
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed"'
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
echo "env: installing pinned packages into $VENV (a few minutes the first time)"
# torch first and alone: with it in place nothing else can pull a different (CUDA) build.
pip install --quiet --disable-pip-version-check "torch==2.13.0"
pip install --quiet --disable-pip-version-check -r env/requirements.lock
pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
echo "$want" > "$stamp"
echo "env: ready ($("$VENV/bin/python" -c 'import torch, transformer_lens, snakemake; print("torch", torch.__version__)'))"

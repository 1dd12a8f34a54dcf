#!/usr/bin/env bash
# Build the project's virtual environment (.venv) from env/requirements.lock, idempotently:
# a second run with unchanged pins returns at once. Usage: bash env/bootstrap.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
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

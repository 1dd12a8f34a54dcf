#!/usr/bin/env bash
# Runner for the prepared GPU check on a machine with a GPU and no network.
#   bash benchmarks/gpu_check.sh OUT_DIR [CHECK_BUDGET_S] [TOY_PAPER_BUDGET_S]
# Installs the wheels carried in .whl/ and .whl2/ (fetched on a networked machine with
# ../shared/gpu/fetch_wheels.sh; .whl2/ adds Snakemake, dm-haiku and tracr), runs
# benchmarks/gpu_check.py, then, when TOY_PAPER_BUDGET_S > 0, the toy-models write-up's paper
# profile through Snakemake (stopped at the budget: the finished jobs' outputs are kept).
# Everything lands in OUT_DIR/gpu_check.tgz (one file, so it fits a transfer of few files).
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR [CHECK_BUDGET_S] [TOY_PAPER_BUDGET_S]}
check_budget=${2:-480}
toy_budget=${3:-0}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work=$(mktemp -d)
for w in .whl .whl2; do
    [ -d "$w" ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site "$w"/*.whl
done
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled
# The rules call `python`; the GPU image may only have python3, inside a virtual environment:
# a symlink to it would lose the environment's packages, so a wrapper that execs it. JAX only
# compiles Tracr programs here: keep it on the CPU and off the GPU's memory.
mkdir -p /tmp/bin && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > /tmp/bin/python
chmod +x /tmp/bin/python
export PATH=/tmp/bin:/tmp/site/bin:$PATH JAX_PLATFORMS=cpu XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv \
    > "$work/nvidia_smi.csv" 2>&1
python3 benchmarks/gpu_check.py --out "$work/check" --budget-s "$check_budget"
if [ "$toy_budget" -gt 0 ]; then
    start=$(date +%s)
    timeout --signal=INT "$toy_budget" python3 -m snakemake --cores 16 --keep-going \
        --config profile=paper -- toy_all > "$work/toy_paper.log" 2>&1
    echo "exit $? after $(( $(date +%s) - start )) s" >> "$work/toy_paper.log"
    tail -5 "$work/toy_paper.log"
    [ -d results/paper ] && cp -r results/paper "$work/toy_paper_results"
    [ -d .snakemake/log ] && cp -r .snakemake/log "$work/snakemake_log"
fi
tar czf "$out/gpu_check.tgz" -C "$work" .
ls -la "$out"

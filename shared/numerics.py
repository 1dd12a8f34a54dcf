"""Numerics and the memory allocator pinned for every job, set before torch loads (so this
module must not import it)."""

from __future__ import annotations

import os

# Kernel choices pinned for every job (importing `shared` or `replications` sets them; torch reads
# them at its first operation):
# ATen's vectorised kernels (reductions, softmax, GELU) otherwise follow the CPU's widest
# instruction set (AVX-512 on one machine, AVX2 on another) and round differently; MKL's
# conditional-numerical-reproducibility branch does the same for matmuls. AVX2 is the widest
# level nearly every x86-64 CPU of the last decade has. Non-x86 CPUs ignore both. A user's own
# setting wins. This narrows, but does not remove, differences between machines: conclusions
# must not depend on bit-identity (README, "Numerics").
PINNED_NUMERICS_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}

# glibc's allocator (read at process start, so this reaches the jobs a process starts, not the
# process itself): by default it serves every block of 32 MiB or more with a fresh mmap and
# unmaps it on free, so each large activation tensor ([rows, d_sae] pre-activations, [batch,
# ctx, vocab] logits) is page-faulted and zeroed by the kernel on every use. Measured on a
# 2-core AMD EPYC (benchmarks/allocator.py): a ReLU over [4096, 2048] fp32 took 4.0 ms per 1k
# rows against 1.7 with these set, and a monosemanticity SAE job spent 41 s of 219 in the
# kernel against 1.2 s. Serving from a heap that is never trimmed keeps the pages; a job's
# resident memory stays at its peak working set instead of falling after it. Allocation does
# not change any result (torch aligns its blocks itself; the default DAG's metrics and weights
# were byte-identical). Other C libraries ignore the variables.
PINNED_ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(64 << 30)}


def pin_numerics_env() -> None:
    """Set PINNED_NUMERICS_ENV and PINNED_ALLOCATOR_ENV where the user has not; effective
    for processes started after (the kernels also for this one, before torch's first op)."""
    for key, value in (PINNED_NUMERICS_ENV | PINNED_ALLOCATOR_ENV).items():
        os.environ.setdefault(key, value)

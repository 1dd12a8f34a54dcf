"""Numerics pinned for every job, set before torch loads (so this module must not import it)."""

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


def pin_numerics_env() -> None:
    """Set PINNED_NUMERICS_ENV where the user has not; effective for processes started after."""
    for key, value in PINNED_NUMERICS_ENV.items():
        os.environ.setdefault(key, value)

"""Seeding, determinism, device choice and the machine a run used, shared by every write-up."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # Deterministic CUDA matmuls need this workspace setting; harmless on CPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for one training step, derived from (seed, step).

    Drawing each batch from its own generator makes a resumed run see exactly the batches an
    uninterrupted run sees, without saving RNG state.
    """
    gen = torch.Generator(device=device)
    gen.manual_seed((seed * 1_000_003 + step * 7_919) % (2**63 - 1))
    return gen


# Random draws with an explicit generator go through the three functions below (a test checks
# that no other module draws in place or names a device beside a generator). Each draws on the
# generator's own device and moves the result, so a CPU generator filling a CUDA tensor neither
# crashes ("Expected a 'cuda' device type for generator") nor changes the numbers: the same
# (seed, generator) gives the same draw on every device.
def uniform_(w: torch.Tensor, low: float, high: float,
             generator: torch.Generator | None) -> torch.Tensor:
    """Fill `w` in place with U(low, high), drawn from `generator` (global RNG when None)."""
    if generator is None:
        return w.uniform_(low, high)
    draw = torch.empty(w.shape, dtype=w.dtype, device=generator.device)
    return w.copy_(draw.uniform_(low, high, generator=generator))


def rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device | str,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """U(0, 1) of `shape` on `device`, drawn on the generator's device."""
    out = torch.rand(shape, generator=generator, device=generator.device, dtype=dtype)
    return out.to(device)


def multinomial(weights: torch.Tensor, n: int, generator: torch.Generator,
                replacement: bool = True) -> torch.Tensor:
    """`n` indices drawn with probability proportional to `weights`, on the weights' device."""
    idx = torch.multinomial(weights.to(generator.device), n, replacement=replacement,
                            generator=generator)
    return idx.to(weights.device)


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA when present (or asked for), CPU otherwise; `preference` is auto, cpu or cuda."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {preference!r}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is available")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def set_threads(n: int) -> None:
    """Use `n` intra-op threads (Snakemake passes the job's `threads`).

    BLAS (numpy, scikit-learn) is limited too: left alone, OpenBLAS starts one thread per core,
    which on a shared 2-core machine made the probe fits about 10x slower."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(max(1, n))
    threadpool_limits(max(1, n))


def cpu_name() -> str | None:
    """The CPU model /proc/cpuinfo names; None where there is no such file (macOS, Windows)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def machine_info(device: torch.device) -> dict[str, Any]:
    """What a benchmark report records of the machine: platform, Python, torch and its threads,
    logical CPUs, CPU model (where known) and, on CUDA, the GPU and CUDA version."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                            "logical_cpus": os.cpu_count()}
    cpu = cpu_name()
    if cpu is not None:
        info["cpu"] = cpu
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages, rounded: how busy a shared machine was."""
    return [round(x, 2) for x in os.getloadavg()]


def benchmark_head(device: torch.device, load_before: list[float],
                   **machine: Any) -> dict[str, Any]:
    """When (UTC) and on what machine a benchmark ran (`machine_info` plus `machine`'s entries),
    and the load average before and after."""
    return {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine_info(device) | machine, "load_average_before": load_before,
            "load_average_after": load_average()}

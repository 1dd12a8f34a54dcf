"""Importing the library pins the CPU kernels, so a script run by hand (outside Snakemake, which
sets the same variables) takes the kernels its DAG job takes."""

import os
import subprocess
import sys

import pytest

from shared.numerics import PINNED_ALLOCATOR_ENV, PINNED_NUMERICS_ENV
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

PROBE = ("import torch, replications, os; torch.ones(2).sum(); "
         "print(os.environ['ATEN_CPU_CAPABILITY'], os.environ['MKL_CBWR'], "
         "torch.backends.cpu.get_cpu_capability())")


def run_probe(extra_env: dict[str, str]) -> list[str]:
    pinned = PINNED_NUMERICS_ENV | PINNED_ALLOCATOR_ENV
    env = {k: v for k, v in os.environ.items() if k not in pinned} | extra_env
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return out.split()


def test_importing_the_write_ups_pins_the_kernels_even_after_torch() -> None:
    aten, mkl, capability = run_probe({})
    assert (aten, mkl) == ("avx2", "AVX2")
    # torch reads the variable at its first operation, after the import order above.
    assert capability != "AVX512"


def test_a_users_own_setting_wins() -> None:
    aten, _, capability = run_probe({"ATEN_CPU_CAPABILITY": "default"})
    assert aten == "default" and capability == "DEFAULT"


def test_jobs_started_after_the_import_get_the_allocator_settings() -> None:
    code = ("import subprocess, sys, shared; print(subprocess.run([sys.executable, '-c', "
            "'import os; print(os.environ[\"MALLOC_MMAP_MAX_\"], "
            "os.environ[\"MALLOC_TRIM_THRESHOLD_\"])'], capture_output=True, text=True, "
            "check=True).stdout)")
    env = {k: v for k, v in os.environ.items() if k not in PINNED_ALLOCATOR_ENV}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == ["0", str(64 << 30)]

"""The ITO and SAE-options benchmarks run at a tiny size, agree with the library and report."""

import json
import runpy

import pytest
import torch

from shared.ito import gradient_pursuit

pytestmark = pytest.mark.unit


def test_per_input_baseline_equals_the_library(root):
    bench = runpy.run_path(str(root / "benchmarks" / "ito_throughput.py"))
    atoms, x = bench["make_inputs"](12, 48, 10, 3, torch.device("cpu"), seed=1)
    batched = gradient_pursuit(x.double(), atoms.double(), 3)
    for row in range(10):
        torch.testing.assert_close(bench["pursuit_one"](x[row].double(), atoms.double(), 3),
                                   batched[row])


def test_tiny_benchmark_writes_results(tmp_path, root):
    main = runpy.run_path(str(root / "benchmarks" / "ito_throughput.py"))["main"]
    out = tmp_path / "r.json"
    main(["--d", "8", "--n-atoms", "32", "--batch", "16", "--per-input", "4",
                "--target-l0", "3", "--rounds", "2", "--out", str(out)])
    report = json.loads(out.read_text())
    assert len(report["batched_seconds"]) == 2 and len(report["per_input_seconds"]) == 2
    assert report["batched_inputs_per_s"] > 0 and report["per_input_inputs_per_s"] > 0
    assert report["support_agrees"] and report["max_abs_diff"] < 1e-4
    assert out.with_suffix(".md").read_text().startswith("# Gradient pursuit throughput (cpu)")
    with pytest.raises(SystemExit):
        main(["--per-input", "8", "--batch", "4"])


def test_sae_options_step_benchmark_times_every_variant(tmp_path, root):
    bench = runpy.run_path(str(root / "benchmarks" / "sae_options_step.py"))
    out = tmp_path / "s.json"
    bench["main"](["--d-in", "8", "--d-sae", "32", "--batch", "16", "--steps", "1",
                   "--rounds", "2", "--out", str(out)])
    rows = json.loads(out.read_text())["results"]
    assert [r["variant"] for r in rows] == list(bench["VARIANTS"])
    assert all(len(r["cpu_rounds_ms"]) == 2 and r["cpu_ms_per_step"] > 0 for r in rows)
    assert rows[0]["cpu_vs_plain"] == 1.0

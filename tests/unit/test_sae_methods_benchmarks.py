"""The gradient-pursuit benchmark runs at a tiny size, agrees with itself and reports."""

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

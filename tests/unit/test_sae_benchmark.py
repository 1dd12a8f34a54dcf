"""The SAE throughput benchmark runs end to end at a tiny size and reports what it promises."""

import importlib.util
import json

import pytest

pytestmark = pytest.mark.unit


def load_benchmark(root):
    spec = importlib.util.spec_from_file_location("sae_throughput",
                                                  root / "benchmarks" / "sae_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_table_lookup(root):
    bench = load_benchmark(root)
    assert bench.peak_from_table("NVIDIA H100 80GB HBM3", "bf16") == ("H100 SXM", 989.4e12)
    assert bench.peak_from_table("NVIDIA H100 PCIe", "tf32")[0] == "H100 PCIe"
    assert bench.peak_from_table("NVIDIA H200", "tf32")[1] == 494.7e12
    assert bench.peak_from_table("NVIDIA A100-SXM4-80GB", "bf16")[0] == "A100"
    assert bench.peak_from_table("Some GPU", "bf16") is None


def test_tiny_benchmark_writes_results(tmp_path, root):
    bench = load_benchmark(root)
    out = tmp_path / "r.json"
    bench.main(["--d-in", "16", "--d-sae", "64", "--batch", "32", "--steps", "2", "--warmup", "1",
                "--rounds", "2", "--peak-n", "64", "--out", str(out)])
    report = json.loads(out.read_text())
    (res,) = report["results"]
    assert res["flops_per_step_10BDF"] == 10 * 32 * 16 * 64
    for name in ("ours", "sae_lens"):
        assert len(res[name]["rounds"]) == 2 and res[name]["tokens_per_s_median"] > 0
    assert res["speedup_ours_over_sae_lens"] > 0
    assert out.with_suffix(".md").read_text().startswith("# SAE training throughput (cpu)")
    with pytest.raises(SystemExit):
        bench.main(["--precision", "tf32"])

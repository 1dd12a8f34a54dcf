"""The local-processing throughput benchmark: runs at a tiny size; its Pythia 2.8B is the real shape."""

import importlib.util
import json

import pytest
import torch

pytestmark = pytest.mark.integration


def load_benchmark(root):
    spec = importlib.util.spec_from_file_location(
        "local_processing_throughput", root / "benchmarks" / "local_processing_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pythia_arch_has_pythia_2_8b_parameter_count(root):
    from shared.lm import build_model

    bench = load_benchmark(root)
    cfg, d_vocab = bench.ARCHS["pythia-2.8b"]
    with torch.device("meta"):  # shapes only, no memory
        model = build_model(cfg, d_vocab, seed=0, device="meta")
    final_ln = sum(p.numel() for n, p in model.named_parameters() if n.startswith("ln_final"))
    # The Pythia paper's non-embedding parameter count of Pythia 2.8B.
    assert bench.block_params(model) + final_ln == 2_517_652_480
    assert model.cfg.rotary_dim == 20 and model.cfg.parallel_attn_mlp


def test_tiny_benchmark_writes_results(tmp_path, root):
    bench = load_benchmark(root)
    out = tmp_path / "r.json"
    bench.main(["--arch", "tiny", "--n-prompts", "4", "--prompt-len", "40",
                "--samples-per-prompt", "2", "--rounds", "2", "--naive-samples", "2",
                "--threads", "1", "--out", str(out)])
    report = json.loads(out.read_text())
    assert [r["layout"] for r in report["results"]] == ["by_length", "padded"]
    for r in report["results"]:
        assert len(r["rounds"]) == 2 and r["samples_per_s_median"] > 0
        assert r["naive"]["samples"] == 2 and r["speedup_over_naive"] > 0
    by_length, padded = report["results"]
    assert by_length["positions_per_round"] == {"full": 160, "truncated": 8 * 65}
    assert padded["positions_per_round"]["truncated"] == 8 * 110
    assert out.with_suffix(".md").read_text().startswith("# Local-processing harvest")
    with pytest.raises(SystemExit):
        bench.main(["--arch", "tiny", "--precision", "tf32"])  # a CUDA-only mode on CPU
    with pytest.raises(SystemExit):
        bench.main(["--arch", "tiny", "--device", "cuda"] if not torch.cuda.is_available()
                   else ["--arch", "nope"])

"""Local processing on tiny models: batched harvest = one prompt at a time; the scripts; paper path.

- Both batching layouts (`by_length`, `padded`) give the cosines a one-prompt-at-a-time
  reference gives (each full prompt and each truncated prompt run alone through
  `run_with_cache`, the mean over every non-BOS position, `torch.cosine_similarity`).
- harvest -> analyse -> make_figures on a tiny Pythia-shaped stand-in directory (smoke profile).
- The paper path offline: a tiny GPT-NeoX saved under `EleutherAI/pythia-2.8b` in a local
  Hugging Face cache, Pile-like text from a local data-set directory, loaded by name.
"""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from replications.local_processing import config as C
from replications.local_processing import harvest as stage
from shared import lm, pipeline
from shared.io import save_tensors
from tests.conftest import hf_cache_repo, offline_hf_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CONTEXTS = (1, 2, 5)


def tiny_cfg(**kw) -> lm.LMConfig:
    base = {"n_layers": 6, "d_model": 16, "d_mlp": 64, "n_heads": 2, "d_head": 8,
            "act_fn": "gelu", "normalization_type": "LN", "positional_embedding_type": "rotary",
            "rotary_dim": 4, "parallel_attn_mlp": True, "n_ctx": 64}
    return lm.LMConfig(**{**base, **kw})


def small_config(layout: str, batch_tokens: int = 40) -> C.Config:
    cfg = C.load("default")
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, prompt_len=24, n_prompts=5, samples_per_prompt=3,
                                 min_position=8),
        harvest=dataclasses.replace(cfg.harvest, contexts=CONTEXTS, layout=layout,
                                    batch_tokens=batch_tokens, device="cpu"),
        analysis=dataclasses.replace(cfg.analysis, focus_context=5, contrast_context=1),
        categories=dataclasses.replace(cfg.categories, context=5),
    )


def random_model(seed: int = 0):
    model = lm.build_model(tiny_cfg(), 50, seed=seed)
    with torch.no_grad():  # non-trivial norms and biases, so that the test can fail
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def rows_for(n: int, length: int, vocab: int, seed: int) -> torch.Tensor:
    rows = torch.randint(3, vocab, (n, length), generator=torch.Generator().manual_seed(seed))
    rows[:, 0] = 0
    return rows.int()


@torch.no_grad()
def reference(model, rows, cfg):
    """One prompt at a time: full rows, then each truncated prompt alone."""
    from replications.local_processing.harvest import sample_positions

    L = model.cfg.n_layers
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(L)]

    def resid(tokens):  # [ctx] -> [ctx, layers, d]
        _, cache = model.run_with_cache(tokens[None].long(), names_filter=names)
        return torch.stack([cache[n][0] for n in names], dim=1).double()

    full = [resid(r) for r in rows]
    mean = torch.cat([f[1:] for f in full]).mean(0)
    s = sample_positions(rows.shape[0], rows.shape[1], cfg.data.samples_per_prompt,
                         cfg.data.min_position, cfg.data.seed)
    cos = torch.empty(len(s), len(CONTEXTS), L, dtype=torch.float64)
    for i, (pr, pos) in enumerate(zip(s.prompt.tolist(), s.position.tolist())):
        for j, c in enumerate(CONTEXTS):
            toks = torch.cat([rows[pr, :1], rows[pr, pos - c + 1: pos + 1]])
            t = resid(toks)[-1]
            cos[i, j] = torch.cosine_similarity(full[pr][pos] - mean, t - mean, dim=-1)
    return cos, mean


@pytest.mark.parametrize("layout, batch_tokens", [("by_length", 40), ("padded", 40),
                                                   ("padded", 10_000)])
def test_batched_harvest_equals_one_prompt_at_a_time(layout, batch_tokens):
    torch.manual_seed(0)
    model = random_model()
    rows = rows_for(5, 24, 50, seed=1)
    cfg = small_config(layout, batch_tokens)
    ref, mean = reference(model, rows, cfg)
    h, timing = stage.run(model, rows, cfg, "tiny", progress=False)
    assert h.cos.shape == (15, 3, 6)
    assert torch.allclose(h.cos.double(), ref, atol=2e-5), (h.cos.double() - ref).abs().max()
    assert torch.allclose(h.mean_norm, mean.norm(dim=-1), rtol=1e-5)
    # Truncation changes something (random weights, rotary: the positions move too) and the
    # token itself after BOS is a different residual from the 5-token one.
    assert (h.cos < 0.999).any() and not torch.allclose(h.cos[:, 0], h.cos[:, 2])
    assert timing.positions["truncated"] == 15 * ((2 + 3 + 6) if layout == "by_length" else 18)
    assert h.baseline.shape == (15, 6) and h.baseline.abs().mean() < h.cos.abs().mean()


def _tiny_tokenizer():
    from shared.tokenizer import TokenizerConfig, train_tokenizer

    texts = [f"The cat and the dog, {i} of them. They sat on it.\nAnd i ran" for i in range(300)]
    return train_tokenizer(texts, TokenizerConfig(vocab_size=300, min_frequency=1,
                                                  split_digits=True, train_bytes=10**6,
                                                  seq_len=64))


def test_scripts_on_a_tiny_stand_in(tmp_path):
    from replications.local_processing.scripts import analyse, harvest, make_figures
    from shared.io import read_json
    from shared.tokenizer import encode_documents, hf_tokenizer, pack_rows

    tok = _tiny_tokenizer()
    hf_tokenizer(tok).save_pretrained(str(tmp_path / "tok"))
    tok.save(str(tmp_path / "tok" / "tokenizer.json"))
    docs = [f"The cat and the dog, {i} of them. They sat on it.\nAnd i ran {i * 7} miles."
            for i in range(900)]
    rows = pack_rows(encode_documents(tok, docs), 64, 0, 1)
    assert rows.shape[0] >= 48
    save_tensors(tmp_path / "tokens.safetensors",
                 {"train": rows[:4].clone(), "val": rows, "bos_id": torch.tensor(0),
                  "eos_id": torch.tensor(1), "pad_id": torch.tensor(2),
                  "vocab_size": torch.tensor(tok.get_vocab_size())})
    model = lm.build_model(tiny_cfg(), tok.get_vocab_size(), seed=0)
    lm.save_model(model, tiny_cfg(), tok.get_vocab_size(), tmp_path / "lm", tmp_path / "tok")

    out = tmp_path / "harvest"
    common = ["--profile", "smoke", "--threads", "1"]
    harvest.main(common + ["--model", str(tmp_path / "lm"), "--tokens",
                           str(tmp_path / "tokens.safetensors"), "--out-dir", str(out)])
    info = read_json(out / "harvest.json")
    assert info["n_tokens"] == 48 * 4 and info["n_layers"] == 6
    assert info["model_label"] == "Pythia-shaped stand-in"
    analyse.main(common + ["--harvest", str(out), "--out", str(tmp_path / "analysis.json")])
    summary = read_json(tmp_path / "analysis.json")
    counts = summary["categories"]["count"]
    # The corpus has every category: newline, '.', ',', common words, letters, digits.
    assert all(counts[c] > 0 for c in counts), counts
    assert summary["headline"]["layer0_focus"] > summary["headline"]["layer0_contrast"]
    make_figures.main(common + ["--harvest", str(out), "--analysis",
                                str(tmp_path / "analysis.json"), "--figure-dir",
                                str(tmp_path / "fig")])
    FIGURES = pipeline.figures("local_processing")

    for name in FIGURES:
        assert (tmp_path / "fig" / f"{name}.png").is_file()
        assert (tmp_path / "fig" / f"{name}.pdf").is_file()
    # A stand-in profile without --tokens is a one-line error, not a traceback.
    with pytest.raises(SystemExit):
        harvest.main(common + ["--model", str(tmp_path / "lm"), "--out-dir", str(out)])


PAPER_CODE = """
import dataclasses, json, sys, torch
from replications.local_processing import config as C, harvest, prompts
from shared.lm import load_model
torch.set_num_threads(1)
cfg = C.load("paper")
cfg = dataclasses.replace(
    cfg, data=dataclasses.replace(cfg.data, dataset=sys.argv[1], prompt_len=32, n_prompts=6,
                                  samples_per_prompt=3, min_position=12),
    harvest=dataclasses.replace(cfg.harvest, device="cpu", batch_tokens=256))
model = load_model("EleutherAI/pythia-2.8b", "cpu")
rows = prompts.paper_prompts(cfg.data, model.tokenizer)
h, _ = harvest.run(model, rows, cfg, "EleutherAI/pythia-2.8b", progress=False)
print(json.dumps({"shape": list(h.cos.shape), "finite": bool(torch.isfinite(h.cos).all()),
                  "bos": h.info["bos_id"], "label": h.info["model_label"],
                  "cats": sorted(set(h.category.tolist())), "rows": list(rows.shape)}))
"""


def test_paper_path_pythia_and_pile_by_name_offline(tmp_path):
    import datasets
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from shared.tokenizer import hf_tokenizer

    sys.path.insert(0, str(ROOT / "tests" / "integration"))

    torch.manual_seed(0)
    tok = _tiny_tokenizer()
    hf = GPTNeoXForCausalLM(GPTNeoXConfig(
        hidden_size=32, num_attention_heads=4, num_hidden_layers=6, intermediate_size=128,
        rotary_pct=0.25, use_parallel_residual=True, vocab_size=tok.get_vocab_size(),
        max_position_embeddings=64)).eval()
    snap = hf_cache_repo(tmp_path / "hub", "EleutherAI/pythia-2.8b")
    hf.save_pretrained(str(snap))
    hf_tokenizer(tok).save_pretrained(str(snap))
    texts = [f"The cat and the dog, {i} of them. They sat on it.\nAnd i ran" for i in range(60)]
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": texts})}).save_to_disk(
        str(tmp_path / "pile"))
    env = offline_hf_env(tmp_path)
    proc = subprocess.run([sys.executable, "-c", PAPER_CODE, str(tmp_path / "pile")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["shape"] == [18, 10, 6] and res["finite"] and res["rows"] == [6, 32]
    assert res["bos"] == 0 and res["label"] == "EleutherAI/pythia-2.8b"
    assert len(res["cats"]) >= 4  # decoded with the model's tokenizer

"""Stand-in LMs (training, resume, save/load, the DAG scripts) and the paper loading path.

The paper path is tested offline: tiny models of each architecture family (GPT-2; GPT-NeoX /
Pythia with partial rotary and parallel attention; a gelu-1l-style HookedTransformer saved as
`model_final.pth` + `config.json`) are written into a Hugging Face cache under the official
repository names, and `shared.lm.load_model("gpt2-xl" | "EleutherAI/pythia-2.8b" | "gelu-1l")`
runs in a subprocess with `HF_HOME` pointing there and `HF_HUB_OFFLINE=1`: the same code a
paper run executes after the hub download.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from shared import lm, lm_train, token_data
from shared.config import ConfigError
from shared.lm import LMConfig
from shared.lm_train import LMTrainConfig, StandInConfig
from shared.runtime import step_generator
from shared.tokenizer import TokenizerConfig, hf_tokenizer, train_tokenizer
from tests.conftest import crash_at_step, hf_cache_repo, offline_hf_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
V = 64  # vocabulary of the synthetic training rows
TV = 320  # vocabulary of the tiny tokenizer and the tiny paper-family models


def markov_rows(n_rows: int, seq_len: int, seed: int) -> torch.Tensor:
    """Rows from a noisy deterministic successor rule: learnable by a 1-layer model."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.empty(n_rows, seq_len, dtype=torch.int32)
    rows[:, 0] = 0
    cur = torch.randint(3, V, (n_rows,), generator=gen)
    for t in range(1, seq_len):
        rows[:, t] = cur
        noise = torch.rand(n_rows, generator=gen) < 0.1
        nxt = (cur * 5 + 7) % (V - 3) + 3
        cur = torch.where(noise, torch.randint(3, V, (n_rows,), generator=gen), nxt)
    return rows


TRAIN, VAL = markov_rows(512, 32, 0), markov_rows(64, 32, 1)


def model_cfg(**kw) -> LMConfig:
    base = dict(n_layers=1, d_model=32, d_mlp=128, n_heads=4, d_head=8, act_fn="gelu",
                normalization_type="LN", positional_embedding_type="standard", rotary_dim=0,
                parallel_attn_mlp=False, n_ctx=32)
    return LMConfig(**{**base, **kw})


def train_cfg(**kw) -> LMTrainConfig:
    base = dict(n_steps=120, batch_size=16, lr=3e-3, min_lr_fraction=0.1, warmup_steps=10,
                schedule="cosine", weight_decay=0.01, adam_betas=(0.9, 0.99),
                grad_clip=1.0,
                log_every=10, eval_every=40, eval_rows=32, checkpoint_every=25, seed=0)
    return LMTrainConfig(**{**base, **kw})


def test_tiny_model_learns():
    torch.set_num_threads(1)
    cfg = StandInConfig(model_cfg(), train_cfg())
    _, hist, tps = lm_train.train_lm(cfg, TRAIN, VAL, V, None, "markov")
    assert hist[0]["val_loss"] > 3.5  # about ln(64) at initialisation
    assert hist[-1]["val_loss"] < 1.5 and hist[-1]["loss"] < 1.5
    assert [h["step"] for h in hist if "val_loss" in h] == [0, 40, 80, 119]
    assert tps > 0


def test_resume_after_crash_is_bit_identical(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    cfg = StandInConfig(model_cfg(positional_embedding_type="rotary", rotary_dim=4,
                                  parallel_attn_mlp=True),
                        train_cfg(n_steps=60, checkpoint_every=20))
    ref_model, ref_hist, _ = lm_train.train_lm(cfg, TRAIN, VAL, V, None, "markov")

    ckpt = tmp_path / "ckpt.safetensors"
    restore = crash_at_step(monkeypatch, lm_train.LMTrainer, 47)
    with pytest.raises(RuntimeError, match="simulated crash"):
        lm_train.train_lm(cfg, TRAIN, VAL, V, ckpt, "markov")
    assert ckpt.is_file()  # written at step 40
    restore()
    model, hist, _ = lm_train.train_lm(cfg, TRAIN, VAL, V, ckpt, "markov")
    assert hist == ref_hist
    ref_state, state = ref_model.state_dict(), model.state_dict()
    assert all(torch.equal(ref_state[k], state[k]) for k in ref_state)
    assert not ckpt.exists()  # removed once training completes


def test_batches_are_a_function_of_seed_and_step():
    cfg = StandInConfig(model_cfg(), train_cfg())
    a = lm_train.LMTrainer(cfg, TRAIN, VAL, V)
    b = lm_train.LMTrainer(cfg, TRAIN, VAL, V)
    assert torch.equal(a.batch(7), b.batch(7)) and not torch.equal(a.batch(7), a.batch(8))
    assert lm_train.lr_at(cfg.train, 0) < lm_train.lr_at(cfg.train, 9) == pytest.approx(3e-3)
    assert lm_train.lr_at(cfg.train, 119) == pytest.approx(3e-4)


def _tiny_tokenizer():
    texts = [f"the bride said {i} words in anger to the groom" for i in range(200)]
    return train_tokenizer(texts, TokenizerConfig(vocab_size=TV, min_frequency=1,
                                                  split_digits=True, train_bytes=10**6,
                                                  seq_len=32))


def test_save_load_round_trip(tmp_path):
    tok = _tiny_tokenizer()
    d_vocab = tok.get_vocab_size()
    model = lm.build_model(model_cfg(), d_vocab, seed=3)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))  # non-trivial norms and biases
    hf_tokenizer(tok).save_pretrained(str(tmp_path / "tok"))
    lm.save_model(model, model_cfg(), d_vocab, tmp_path / "m", tmp_path / "tok")
    x = torch.randint(3, d_vocab, (2, 16), generator=step_generator(0, 0))
    with torch.no_grad():
        ref = model(x)
        raw = lm.load_model(tmp_path / "m", "cpu", processed=False)
        assert torch.equal(raw(x), ref)
        folded = lm.load_model(tmp_path / "m", "cpu", processed=True)
        assert folded.cfg.normalization_type == "LNPre"
        diff = (folded(x).log_softmax(-1) - ref.log_softmax(-1)).abs().max()
        assert diff < 1e-4
    toks = raw.to_tokens("the bride said")
    assert toks[0, 0].item() == 0 and raw.to_string(toks[0, 1:]) == "the bride said"


def test_local_attention_layers(tmp_path):
    """The first `local_layers` layers see only `local_window` positions: a token further back
    changes nothing up to the first global layer, and everything after it; the KV cache and a
    save/load round trip keep the window."""
    from transformer_lens import TransformerLensKeyValueCache

    cfg = model_cfg(n_layers=3, local_layers=2, local_window=2)
    model = lm.build_model(cfg, V, seed=0)
    assert [b.attn.attn_type for b in model.blocks] == ["local", "local", "global"]
    x = torch.randint(3, V, (2, 12), generator=step_generator(0, 0))
    y = x.clone()
    y[:, 5] = (y[:, 5] + 1 - 3) % (V - 3) + 3  # 4 positions before the last of 10
    with torch.no_grad():
        _, cx = model.run_with_cache(x[:, :10])
        _, cy = model.run_with_cache(y[:, :10])
        # Two local layers of window 2 reach 2 positions back: the last position's residual
        # is untouched into layer 2 (the global one) and differs after it.
        assert torch.equal(cx["blocks.2.hook_resid_pre"][:, -1], cy["blocks.2.hook_resid_pre"][:, -1])
        assert not torch.allclose(cx["blocks.2.hook_resid_post"][:, -1],
                                  cy["blocks.2.hook_resid_post"][:, -1])
        full = model(x)
        cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, 2)
        ones = torch.ones_like  # as the steering sampler passes it (no tokenizer here)
        steps = [model(x[:, :6], past_kv_cache=cache, attention_mask=ones(x[:, :6]))]
        steps += [model(x[:, t:t + 1], past_kv_cache=cache, attention_mask=ones(x[:, :1]))
                  for t in range(6, 12)]
        assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    lm.save_model(model, cfg, V, tmp_path / "m", None)
    with torch.no_grad():
        back = lm.load_model(tmp_path / "m", "cpu", processed=False)
        assert torch.equal(back(x), full)
    with pytest.raises(ConfigError, match="local_layers"):
        model_cfg(n_layers=2, local_layers=3)


def test_scripts_tokenize_and_train(tmp_path):
    from shared.config import to_dict
    from shared.corpus import CorpusConfig, Document, assemble, write_corpus
    from shared.corpus_sources import Source
    from shared.io import read_json
    from shared.scripts import train_lm as train_lm_script
    from shared.scripts import train_tokenizer as tok_script

    docs = [Document("s", f"s/{i}", f"Document {i}: the bride and the groom. " * 8)
            for i in range(200)]
    registry = {"s": Source("prose", lambda _: (docs, []), "synthetic")}
    ccfg = CorpusConfig(sources=("s",), code_fraction=0.0, max_bytes=10**6, max_doc_bytes=4000,
                        val_fraction=0.1, seed=0)
    write_corpus(assemble(ccfg, registry=registry), tmp_path / "corpus")
    (tmp_path / "tok.json").write_text(json.dumps(
        {"vocab_size": 300, "min_frequency": 2, "split_digits": True, "train_bytes": 10**6,
         "seq_len": 32}))
    tok_script.main(["--config-json", str(tmp_path / "tok.json"), "--corpus-dir",
                     str(tmp_path / "corpus"), "--out-dir", str(tmp_path / "tok")])
    (tmp_path / "lm.json").write_text(json.dumps(
        {"model": to_dict(model_cfg()), "train": to_dict(train_cfg(n_steps=30, eval_every=10))}))
    def args(tokens: Path) -> list[str]:
        return ["--config-json", str(tmp_path / "lm.json"), "--writeup", "shared", "--profile",
                "smoke", "--tokens", str(tokens), "--tokenizer-dir", str(tmp_path / "tok"),
                "--out-dir", str(tmp_path / "lm"), "--checkpoint-dir", str(tmp_path / "ckpt"),
                "--figure", str(tmp_path / "loss.png"), "--threads", "1"]

    train_lm_script.main(args(tmp_path / "tok" / "tokens.safetensors"))
    hist = read_json(tmp_path / "lm" / "history.json")
    assert hist["final"]["val_loss"] < hist["history"][0]["val_loss"]
    assert (tmp_path / "loss.png").is_file() and (tmp_path / "loss.pdf").is_file()
    model = lm.load_model(tmp_path / "lm", "cpu")
    assert model.to_tokens("the bride")[0, 0].item() == 0
    with pytest.raises(SystemExit):
        train_lm_script.main(args(tmp_path / "missing.safetensors"))


# ------------------------------------------------------------------ paper path, offline


def _load_by_name(home: Path, name: str, x: torch.Tensor, out: Path) -> dict:
    """Run `load_model(name)` offline in a fresh process; return its log-probs for `x`."""
    from safetensors.torch import load_file, save_file

    save_file({"x": x}, str(out.with_suffix(".in.safetensors")))
    code = (
        "import sys, torch\n"
        "from safetensors.torch import load_file, save_file\n"
        "from shared.lm import load_model\n"
        # Any unpickling must be restricted to tensors (gelu-1l's hub file is a pickle).
        "_load = torch.load\n"
        "def _guarded(*a, **k):\n"
        "    assert k.get('weights_only') is True, 'torch.load without weights_only=True'\n"
        "    return _load(*a, **k)\n"
        "torch.load = _guarded\n"
        "x = load_file(sys.argv[2])['x']\n"
        "res = {}\n"
        "for processed in (False, True):\n"
        "    m = load_model(sys.argv[1], 'cpu', processed=processed)\n"
        "    with torch.no_grad():\n"
        "        res[f'logits_{processed}'] = m(x)\n"
        "    res['bos'] = m.to_tokens('the bride')[0, :1]\n"
        "res['rotary_dim'] = torch.tensor(m.cfg.rotary_dim or 0)\n"
        "res['parallel'] = torch.tensor(int(m.cfg.parallel_attn_mlp))\n"
        "save_file({k: v.contiguous() for k, v in res.items()}, sys.argv[3])\n"
    )
    env = offline_hf_env(home)
    proc = subprocess.run(
        [sys.executable, "-c", code, name, str(out.with_suffix(".in.safetensors")), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return load_file(str(out))


def _check_logits(res: dict, ref: torch.Tensor) -> None:
    # Unprocessed weights give the same logits; processing (folded LayerNorm, centred
    # unembedding) shifts logits by a constant per position, so compare log-probabilities.
    assert (res["logits_False"] - ref).abs().max() < 1e-4
    lp = res["logits_True"].log_softmax(-1)
    assert (lp - ref.log_softmax(-1)).abs().max() < 1e-4


X = torch.randint(3, TV, (2, 12), generator=torch.Generator().manual_seed(1))


def _transformers_by_name(tmp_path: Path, hf: Any, name: str) -> dict:
    """Cache `hf` and the tiny tokenizer as hub repository `name`, load it by name offline and
    check its logits against `hf`'s; return what the loader reported."""
    snap = hf_cache_repo(tmp_path / "hub", name)
    hf.save_pretrained(str(snap))
    hf_tokenizer(_tiny_tokenizer()).save_pretrained(str(snap))
    with torch.no_grad():
        ref = hf(X).logits
    res = _load_by_name(tmp_path, name, X, tmp_path / "out.safetensors")
    _check_logits(res, ref)
    return res


def test_paper_path_gpt2_by_name(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    # The real gpt2-xl config.json carries n_ctx too; TransformerLens reads it.
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=TV,
                                    n_positions=64, n_ctx=64, bos_token_id=0,
                                    eos_token_id=1)).eval()
    res = _transformers_by_name(tmp_path, hf, "gpt2-xl")
    assert res["bos"].item() == 0


def test_paper_path_pythia_by_name(tmp_path):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    hf = GPTNeoXForCausalLM(GPTNeoXConfig(
        hidden_size=32, num_attention_heads=4, num_hidden_layers=2, intermediate_size=128,
        rotary_pct=0.25, use_parallel_residual=True, vocab_size=TV,
        max_position_embeddings=64)).eval()
    res = _transformers_by_name(tmp_path, hf, "EleutherAI/pythia-2.8b")
    assert res["rotary_dim"].item() == 2 and res["parallel"].item() == 1


def test_paper_path_gelu_1l_by_name(tmp_path):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    tl = HookedTransformer(HookedTransformerConfig(
        n_layers=1, d_model=32, d_mlp=128, n_heads=4, d_head=8, n_ctx=64, d_vocab=TV,
        act_fn="gelu", normalization_type="LN", seed=0)).eval()
    with torch.no_grad():
        for p in tl.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
        ref = tl(X)
    snap = hf_cache_repo(tmp_path / "hub", "NeelNanda/GELU_1L512W_C4_Code")
    # config.json in the format of NeelNanda's repositories (what TransformerLens parses).
    (snap / "config.json").write_text(json.dumps({
        "n_layers": 1, "d_model": 32, "d_mlp": 128, "d_head": 8, "n_heads": 4, "n_ctx": 64,
        "d_vocab": TV, "act_fn": "gelu", "attn_only": False, "normalization": "LN",
        "shortformer_pos": False, "ln_eps": 1e-5,
        "tokenizer_name": "NeelNanda/gpt-neox-tokenizer-digits",
    }))
    # The hub file is a pickled state dict; load_model must open it with weights_only=True.
    torch.save(tl.state_dict(), snap / lm.NEEL_WEIGHTS_FILE)
    tok_snap = hf_cache_repo(tmp_path / "hub", "NeelNanda/gpt-neox-tokenizer-digits", ("config.json",))
    hf_tokenizer(_tiny_tokenizer()).save_pretrained(str(tok_snap))
    res = _load_by_name(tmp_path, "gelu-1l", X, tmp_path / "out.safetensors")
    _check_logits(res, ref)


# ---------------------------------------------------------------------- paper data sets

def test_load_token_dataset_tokens_and_text(tmp_path):
    import datasets

    rows = [[0] + list(range(i, i + 15)) for i in range(10)]
    datasets.Dataset.from_dict({"tokens": rows}).save_to_disk(str(tmp_path / "tok_ds"))
    got = token_data.load_token_dataset(str(tmp_path / "tok_ds"), n_rows=6, seq_len=8)
    assert got.dtype == torch.int32 and torch.equal(got, torch.tensor(rows)[:6, :8].int())
    with pytest.raises(ValueError, match="rows"):
        token_data.load_token_dataset(str(tmp_path / "tok_ds"), n_rows=11, seq_len=8)

    texts = [f"the bride said {i} words" for i in range(600)]
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": texts})}).save_to_disk(
        str(tmp_path / "text_ds"))
    tok = hf_tokenizer(_tiny_tokenizer())
    got = token_data.load_token_dataset(str(tmp_path / "text_ds"), n_rows=20, seq_len=16, tokenizer=tok)
    assert got.shape == (20, 16) and (got[:, 0] == tok.bos_token_id).all()
    stream = [t for s in texts for t in tok(s, add_special_tokens=False)["input_ids"]
              + [tok.eos_token_id]]
    assert got[:, 1:].reshape(-1).tolist() == stream[: 20 * 15]
    with pytest.raises(ValueError, match="tokenizer"):
        token_data.load_token_dataset(str(tmp_path / "text_ds"), n_rows=2, seq_len=16)
    batches = list(token_data.iter_token_rows(str(tmp_path / "text_ds"), 16, 7, tok))
    assert all(b.shape == (7, 16) for b in batches[:-1]) and 0 < batches[-1].shape[0] <= 7
    assert torch.equal(torch.cat(batches)[:20], got)

"""The model zoo's SAEs on a tiny random model: the zoo's script trains one (or loads a SAELens
directory) and writes its folder; `shared.sae_io.load_sae` reads that folder and a plain
SAELens directory alike; a SAELens directory that does not fit the site is one line."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from shared.config import to_dict
from shared.io import read_json, save_tensors
from shared.lm import LMConfig, build_model, save_model
from shared.sae import SAE, SAEConfig
from shared.sae_io import SAELensInfo, load_sae, save_sae_lens
from shared.sae_zoo import SAEEvalSettings, SAERows, SAERunConfig, SAESite, ZooSAEConfig
from shared.scripts import train_sae
from tests.conftest import user_error

pytestmark = pytest.mark.integration

D_MODEL, D_SAE, VOCAB, SEQ = 16, 32, 40, 12
HOOK = "blocks.0.hook_resid_pre"
ZOO_FILES = ("cfg.json", "sae_weights.safetensors", "sparsity.safetensors",
             "frequency.safetensors", "history.json", "eval.json")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A random one-layer model (lm/) and a tokens file (BOS first) under one folder."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("zoo_sae")
    cfg = LMConfig(n_layers=1, d_model=D_MODEL, d_mlp=4 * D_MODEL, n_heads=2, d_head=8,
                   act_fn="gelu", normalization_type="LN", positional_embedding_type="standard",
                   rotary_dim=0, parallel_attn_mlp=False, n_ctx=SEQ)
    save_model(build_model(cfg, VOCAB, seed=0), cfg, VOCAB, root / "lm", None)
    gen = torch.Generator().manual_seed(0)
    rows = {split: torch.randint(3, VOCAB, (n, SEQ), generator=gen)
            for split, n in (("train", 48), ("val", 12))}
    for r in rows.values():
        r[:, 0] = 0
    ids = {"bos_id": 0, "eos_id": 1, "pad_id": 2, "vocab_size": VOCAB}
    save_tensors(root / "tokens.safetensors",
                 {**rows, **{k: torch.tensor(v, dtype=torch.int64) for k, v in ids.items()}})
    return root


def zoo_config(**run: object) -> ZooSAEConfig:
    sae = SAEConfig(d_in=D_MODEL, d_sae=D_SAE, l1_coeffs=(1e-3,), lr=1e-3, adam_betas=(0.9, 0.999),
                    batch_size=32, n_steps=20, pre_encoder_bias=True, recon_reduction="sum",
                    l1_reduction="sum_batch", resample="none", resample_every=10,
                    resample_window=5, resample_stop=0, dead_frequency=1e-5, seed=0)
    settings = SAERunConfig(source="train", load_dir="", n_activations=256, rows_per_batch=8,
                            drop_bos=True, log_every=5, checkpoint_every=10, precision="fp32",
                            eval_batch_rows=4)
    return ZooSAEConfig(sae=sae, run=dataclasses.replace(settings, **run),
                        site=SAESite(model_name="tiny", hook_name=HOOK, device="cpu"),
                        rows=SAERows(seq_len=SEQ, eval_rows=8),
                        evaluation=SAEEvalSettings(dense_frequency=0.5))


def args(root: Path, cfg: ZooSAEConfig, out: str) -> list[str]:
    return ["--config", json.dumps(to_dict(cfg)), "--writeup", "test", "--model",
            str(root / "lm"), "--tokens", str(root / "tokens.safetensors"), "--out-dir",
            str(root / out), "--checkpoint-dir", str(root / f"{out}_ckpt")]


def test_trained_zoo_sae_loads_by_its_folder(tiny):
    train_sae.main(args(tiny, zoo_config(), "trained"))
    folder = tiny / "trained"
    assert sorted(p.name for p in folder.iterdir()) == sorted(ZOO_FILES)
    ev = read_json(folder / "eval.json")
    assert ev["source"] == "train" and ev["d_sae"] == D_SAE
    assert 0 < ev["l0"] <= D_SAE and ev["n_eval_tokens"] == 8 * (SEQ - 1)
    assert 0 <= ev["dense_fraction"] <= 1 and ev["n_dense"] == ev["dense_fraction"] * D_SAE
    assert [r["step"] for r in read_json(folder / "history.json")["history"]] == \
        [0, 5, 10, 15, 19]
    loaded = load_sae(folder)
    assert loaded.hook_name == HOOK and loaded.cfg["metadata"]["model_name"] == "tiny"
    assert loaded.cfg["metadata"]["context_size"] == SEQ
    assert loaded.sae.d_in == D_MODEL and loaded.sae.d_sae == D_SAE
    assert loaded.frequency is not None and loaded.frequency.dtype == torch.float64
    assert loaded.frequency.shape == (D_SAE,) and 0 <= float(loaded.frequency.min())
    # The same weights again: a second run resumes nothing and trains the same SAE.
    train_sae.main(args(tiny, zoo_config(), "again"))
    again = load_sae(tiny / "again")
    assert torch.equal(again.sae.W_enc, loaded.sae.W_enc)
    assert torch.equal(again.frequency, loaded.frequency)


def test_load_sae_reads_a_plain_sae_lens_directory(tmp_path):
    sae = SAE(D_MODEL, D_SAE, 1, True, torch.Generator().manual_seed(0))
    freq = torch.linspace(0, 0.9, D_SAE)
    save_sae_lens(tmp_path / "with", sae, 0, SAELensInfo("m", HOOK, SEQ, True), freq)
    got = load_sae(tmp_path / "with")
    assert torch.equal(got.sae.W_dec, sae.W_dec) and got.hook_name == HOOK
    assert got.frequency is not None
    assert torch.allclose(got.frequency, freq.double(), rtol=1e-5, atol=1e-9)
    save_sae_lens(tmp_path / "without", sae, 0, SAELensInfo("m", HOOK, SEQ, True), None)
    assert load_sae(tmp_path / "without").frequency is None
    with pytest.raises(FileNotFoundError, match="not a zoo SAE folder or SAELens directory"):
        load_sae(tmp_path / "missing")


def test_the_zoo_loads_a_sae_lens_directory(tiny, capsys):
    """`sae_run.source: load`: the user's SAE comes out, evaluated, in the zoo folder; one that
    does not fit the model's width or the hook is one line."""
    sae = SAE(D_MODEL, D_SAE, 1, True, torch.Generator().manual_seed(1))
    with torch.no_grad():
        sae.b_enc.add_(0.1)
    save_sae_lens(tiny / "user_sae", sae, 0, SAELensInfo("user", HOOK, SEQ, True), None)
    cfg = zoo_config(source="load", load_dir=str(tiny / "user_sae"))
    train_sae.main(args(tiny, cfg, "loaded"))
    assert read_json(tiny / "loaded" / "eval.json")["source"] == "load"
    assert read_json(tiny / "loaded" / "history.json")["history"] == []
    got = load_sae(tiny / "loaded")
    assert torch.equal(got.sae.W_enc, sae.W_enc) and got.frequency.shape == (D_SAE,)

    wide = SAE(D_MODEL + 1, D_SAE, 1, True, torch.Generator().manual_seed(0))
    save_sae_lens(tiny / "wide", wide, 0, SAELensInfo("user", HOOK, SEQ, True), None)
    cfg = zoo_config(source="load", load_dir=str(tiny / "wide"))
    err = user_error(capsys, lambda: train_sae.main(args(tiny, cfg, "x")))
    assert err.count("\n") == 1 and "d_model" in err
    save_sae_lens(tiny / "other_site", sae, 0,
                  SAELensInfo("user", "blocks.0.hook_resid_post", SEQ, True), None)
    cfg = zoo_config(source="load", load_dir=str(tiny / "other_site"))
    err = user_error(capsys, lambda: train_sae.main(args(tiny, cfg, "x")))
    assert err.count("\n") == 1 and f"the site is {HOOK}" in err


def test_bad_settings_are_one_line(tiny, capsys):
    cfg = dataclasses.replace(zoo_config(), site=SAESite("tiny", "blocks.5.hook_resid_pre", "cpu"))
    err = user_error(capsys, lambda: train_sae.main(args(tiny, cfg, "x")))
    assert err.startswith("error: blocks.5.hook_resid_pre: no such hook") and err.count("\n") == 1
    cfg = dataclasses.replace(zoo_config(), rows=SAERows(seq_len=SEQ, eval_rows=13))
    err = user_error(capsys, lambda: train_sae.main(args(tiny, cfg, "x")))
    assert "12 held-out rows" in err and err.count("\n") == 1
    bad = to_dict(zoo_config())
    bad["run"]["load_dir"] = "somewhere"
    err = user_error(capsys, lambda: train_sae.main(
        ["--config", json.dumps(bad), "--model", "m", "--tokens", "t", "--out-dir", "o",
         "--checkpoint-dir", "c"]))
    assert "sae_run.load_dir must be empty" in err and err.count("\n") == 1

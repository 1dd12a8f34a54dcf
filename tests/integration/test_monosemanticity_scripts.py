"""The monosemanticity scripts on tiny inputs, the configs of every profile, and the paper path.

- The smoke-size scripts (train_sae main + seed2, train_orthogonal, analyse, make_figures) run
  on a tiny untrained stand-in and random token rows, and write what the rules declare.
- A crash mid-run resumes to the same SAE (the orthogonal projection and the resample log are
  part of the checkpointed state).
- The paper path offline: a tiny gelu-1l-style model in a Hugging Face cache under the official
  names, a tiny tokenized data set with rows longer than seq_len, and `paper_data`,
  `lm_reference` and `train_sae` run by name for a tiny paper profile (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from replications.monosemanticity import config as mono_config
from replications.monosemanticity import training
from shared import lm, pipeline
from shared.io import load_tensors, read_json, save_tensors
from shared.sae_train import SAETrainer
from tests.conftest import config_copy, crash_at_step, gelu_1l_in_hub, offline_hf_env

FIGURES = pipeline.figures("monosemanticity")

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SMOKE = mono_config.load("smoke")


# ---------------------------------------------------------------------------- tiny stand-in

@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> dict[str, Path]:
    """An untrained smoke-shaped stand-in and random token rows (enough held-out rows)."""
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("stand_in")
    vocab = 96
    model = lm.build_model(SMOKE.lm.model, vocab, seed=0)
    lm.save_model(model, SMOKE.lm.model, vocab, d / "lm", None)
    gen = torch.Generator().manual_seed(0)
    seq = SMOKE.model.seq_len

    def rows(n: int) -> torch.Tensor:
        r = torch.randint(3, vocab, (n, seq), generator=gen, dtype=torch.int64).int()
        r[:, 0] = 0
        return r

    save_tensors(d / "tokens.safetensors", {
        "train": rows(400), "val": rows(SMOKE.model.eval_rows),
        **{k: torch.tensor(v) for k, v in
           {"bos_id": 0, "eos_id": 1, "pad_id": 2, "vocab_size": vocab}.items()}})
    return {"lm": d / "lm", "tokens": d / "tokens.safetensors", "root": d}


def _common(stand_in) -> list[str]:
    return ["--profile", "smoke", "--model", str(stand_in["lm"]), "--tokens",
            str(stand_in["tokens"]), "--threads", "1"]


def _resample_events(stderr: str) -> list[tuple[int, int]]:
    """(step, features resampled) of each resampling the training loop reported."""
    return [(int(step), int(n)) for step, n in
            re.findall(r"step (\d+): resampled (\d+) features", stderr)]


def test_smoke_scripts_on_a_tiny_stand_in(stand_in, capsys):
    from replications.monosemanticity.scripts import (
        analyse,
        make_figures,
        train_orthogonal,
        train_sae,
    )

    root = stand_in["root"]
    events: dict[str, list[tuple[int, int]]] = {}
    for run in ("main", "seed2"):
        capsys.readouterr()
        train_sae.main(_common(stand_in) + ["--run", run, "--out-dir", str(root / run),
                                            "--checkpoint-dir", str(root / "ckpt")])
        events[run] = _resample_events(capsys.readouterr().err)
    train_orthogonal.main(_common(stand_in) + ["--from", str(root / "main"), "--out-dir",
                                               str(root / "orth"), "--checkpoint-dir",
                                               str(root / "ckpt")])
    events["orth"] = _resample_events(capsys.readouterr().err)
    sae = SMOKE.sae
    resample_steps = [s for s in range(sae.resample_every, sae.n_steps, sae.resample_every)
                      if s <= sae.resample_stop]
    assert resample_steps  # the smoke profile resamples at least once
    for run in ("main", "seed2", "orth"):
        for name in ("cfg.json", "sae_weights.safetensors", "sparsity.safetensors",
                     training.FREQUENCY_FILE, "history.json", "eval.json"):
            assert (root / run / name).is_file(), (run, name)
        metrics = read_json(root / run / "eval.json")
        assert 0 <= metrics["dead_fraction"] <= 1 and metrics["l0"] > 0
        assert metrics["n_eval_tokens"] == SMOKE.model.eval_rows * SMOKE.model.seq_len
        hist = read_json(root / run / "history.json")["history"]
        assert any("eval/loss_recovered" in r for r in hist)
        # Logged rows carry the features resampled since the previous row: every resampling
        # the loop reported (only at resampling steps, only when some feature was dead) is
        # counted exactly once.
        assert any("resampled" in r for r in hist)
        assert sum(r.get("resampled", 0) for r in hist) == sum(n for _, n in events[run])
        assert all(step in resample_steps and 0 < n <= sae.d_sae for step, n in events[run])
    assert not list((root / "ckpt").glob("*.safetensors"))  # removed once runs complete
    # The second seed is another SAE; the orthogonal retrain honours its constraint.
    w1 = (root / "main" / "sae_weights.safetensors").read_bytes()
    assert w1 != (root / "seed2" / "sae_weights.safetensors").read_bytes()
    direction = json.loads((root / "orth" / "direction.json").read_text())
    assert set(direction) == {"from_ultra_low", "n_features", "rule"}
    assert read_json(root / "orth" / "eval.json")["max_abs_enc_cos_with_direction"] < 1e-4

    analyse.main(_common(stand_in) + ["--sae", str(root / "main"), "--seed2",
                                      str(root / "seed2"), "--orthogonal", str(root / "orth"),
                                      "--out-dir", str(root / "analysis")])
    metrics = read_json(root / "analysis" / "metrics.json")
    for key in ("dead_fraction", "ultra_low_fraction", "dense_share", "median_enc_dec_cosine",
                "kurtosis_excess_over_gaussian", "nullspace_std_ratio_dec",
                "orthogonal_max_abs_enc_cos_with_old", "orthogonal_direction_from_ultra_low"):
        assert key in metrics, key
    assert metrics["orthogonal_max_abs_enc_cos_with_old"] < 1e-4
    cases = read_json(root / "analysis" / "case_studies.json")["cases"]
    assert 1 <= len(cases) <= SMOKE.case_studies.n_features

    make_figures.main(["--profile", "smoke", "--sae", str(root / "main"), "--seed2",
                       str(root / "seed2"), "--orthogonal", str(root / "orth"), "--analysis",
                       str(root / "analysis"), "--figure-dir", str(root / "figures")])
    for name in FIGURES:
        if name != "lm_loss":  # drawn by the LM rule
            assert (root / "figures" / f"{name}.png").stat().st_size > 2000, name
            assert (root / "figures" / f"{name}.pdf").is_file(), name


def test_missing_input_is_one_line(stand_in, tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "replications.monosemanticity.scripts.train_sae", "--profile",
         "smoke", "--model", str(stand_in["lm"]), "--tokens", str(tmp_path / "nope.safetensors"),
         "--run", "main", "--out-dir", str(tmp_path / "o"), "--checkpoint-dir",
         str(tmp_path / "c")],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nope.safetensors" in errors[0], res.stderr[-2000:]


def test_orthogonal_run_resumes_after_a_crash(stand_in, tmp_path, monkeypatch):
    """Kill at a step between checkpoints; the rerun ends with the same weights and history."""
    import dataclasses

    from replications.monosemanticity.analysis import orthogonalise_

    torch.set_num_threads(1)
    cfg = dataclasses.replace(SMOKE, train=dataclasses.replace(SMOKE.train, checkpoint_every=40))
    model = training.load_lm(stand_in["lm"], "cpu")
    tokens = training.load_token_rows(stand_in["tokens"], cfg)
    u = torch.nn.functional.normalize(torch.randn(cfg.sae.d_in), dim=0)

    def project(sae) -> None:
        orthogonalise_(sae, u)

    def train(ckpt):
        return training.train_run(cfg, cfg.sae, model, tokens, ckpt, {"t": 1}, "test",
                              after_step=project)

    ref = train(None)
    ckpt = tmp_path / "ckpt.safetensors"
    # Step 105: after the checkpoint at step 80 and a resampling (end of step 99).
    restore = crash_at_step(monkeypatch, SAETrainer, 105)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(ckpt)
    assert ckpt.is_file()
    restore()
    resumed = train(ckpt)
    assert resumed.history == ref.history
    for name, p in ref.sae.state_dict().items():
        assert torch.equal(p, resumed.sae.state_dict()[name]), name


def test_paper_rows_are_cut_with_bos_and_shuffled(tmp_path):
    import datasets

    rows = torch.arange(6 * 16).reshape(6, 16)
    datasets.Dataset.from_dict({"tokens": rows.tolist()}).save_to_disk(str(tmp_path / "ds"))
    out = training.paper_token_rows(str(tmp_path / "ds"), 16, 4, bos_id=7, n_rows=0, seed=0)
    assert out.shape == (24, 4) and out.dtype == torch.int32
    assert (out[:, 0] == 7).all()
    expected = rows.reshape(-1, 4)[:, 1:]
    got = sorted(map(tuple, out[:, 1:].tolist()))
    assert got == sorted(map(tuple, expected.tolist()))
    assert not torch.equal(out[:, 1:], expected.int())  # shuffled
    again = training.paper_token_rows(str(tmp_path / "ds"), 16, 4, bos_id=7, n_rows=3, seed=0)
    assert again.shape == (12, 4)


# ---------------------------------------------------------------------------- paper, offline


def test_paper_profile_path_offline(tmp_path):
    """paper_data -> lm_reference -> train_sae for a tiny 'paper' profile, gelu-1l by name."""
    import datasets

    torch.manual_seed(0)
    d_vocab, d_mlp, seq_len = 300, 64, 16
    texts = [f"the bride said {i} words in anger to the groom" for i in range(200)]
    _, tok = gelu_1l_in_hub(tmp_path / "hub", d_vocab, d_mlp, seq_len, texts)
    # A data set of 4 x seq_len-token rows, like c4-code-tokenized-2b's 1024 = 8 x 128.
    gen = torch.Generator().manual_seed(1)
    ds_rows = torch.randint(3, d_vocab, (120, 4 * seq_len), generator=gen)
    datasets.Dataset.from_dict({"tokens": ds_rows.tolist()}).save_to_disk(str(tmp_path / "ds"))

    paper = {
        "model": {"source": "pretrained", "name": "gelu-1l", "dataset": str(tmp_path / "ds"),
                  "dataset_row_len": 4 * seq_len, "seq_len": seq_len, "eval_rows": 64,
                  "loss_eval_rows": 32, "train_eval_rows": 16, "train_rows": 0,
                  "frequency_train_rows": 0, "device": "cpu"},
        "sae": {"d_in": d_mlp, "d_sae": 128, "batch_size": 128, "n_steps": 60,
                "resample_every": 20, "resample_window": 10, "resample_stop": 40},
        "buffer": {"n_activations": 1024, "rows_per_batch": 16},
        "train": {"log_every": 10, "eval_every": 20, "checkpoint_every": 30,
                  "eval_batch_rows": 16},
        "case_studies": {"batch_size": 16},
    }
    config_dir = config_copy(mono_config.CONFIG_DIR, tmp_path / "config", paper=paper)
    out = tmp_path / "out"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import replications.monosemanticity.config as c\n"
        "c.CONFIG_DIR = Path(sys.argv[1])\n"
        "from replications.monosemanticity.scripts import lm_reference, paper_data, train_sae\n"
        "out = Path(sys.argv[2])\n"
        "paper_data.main(['--profile', 'paper', '--out', str(out / 'tokens.safetensors')])\n"
        "common = ['--profile', 'paper', '--model', 'gelu-1l', '--tokens',\n"
        "          str(out / 'tokens.safetensors')]\n"
        "lm_reference.main(common + ['--out', str(out / 'reference.json'), '--figure',\n"
        "                            str(out / 'lm_loss.png')])\n"
        "train_sae.main(common + ['--run', 'main', '--out-dir', str(out / 'sae'),\n"
        "                         '--checkpoint-dir', str(out / 'ckpt')])\n"
    )
    env = offline_hf_env(tmp_path)
    res = subprocess.run([sys.executable, "-c", code, str(config_dir), str(out)], check=False,
                         cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    rows = load_tensors(out / "tokens.safetensors")
    bos = tok.bos_token_id
    assert rows["val"].shape == (64, seq_len) and rows["train"].shape == (120 * 4 - 64, seq_len)
    assert (rows["train"][:, 0] == bos).all() and int(rows["bos_id"]) == bos
    ref = read_json(out / "reference.json")
    assert len(ref["by_position"]) == seq_len - 1 and ref["final"]["val_loss"] > 0
    assert (out / "lm_loss.png").is_file() and (out / "lm_loss.pdf").is_file()
    cfg = read_json(out / "sae" / "cfg.json")
    assert cfg["d_in"] == d_mlp and cfg["metadata"]["model_name"] == "gelu-1l"
    assert read_json(out / "sae" / "eval.json")["n_eval_tokens"] == 64 * seq_len

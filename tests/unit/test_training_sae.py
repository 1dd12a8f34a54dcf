"""Resumable training and the SAE: constraints, gradients, resume-after-failure equality."""

import pytest
import torch

from shared.runtime import step_generator
from shared.sae import SAE, SAEConfig, mmcs, sae_losses
from shared.sae_train import SAETrainer, train_sae
from tests.conftest import crash_at_step

pytestmark = pytest.mark.unit

TRUE = torch.nn.functional.normalize(torch.randn(12, 6, generator=torch.Generator().manual_seed(0)), dim=-1)


def sample(step: int) -> torch.Tensor:
    g = step_generator(3, step)
    mags = torch.rand(128, 12, generator=g) * (torch.rand(128, 12, generator=g) < 0.1)
    return mags @ TRUE


def cfg(**kw) -> SAEConfig:
    base = dict(
        d_in=6, d_sae=12, l1_coeffs=(0.01, 0.05), lr=3e-3, adam_betas=(0.9, 0.999),
        batch_size=128, n_steps=300, pre_encoder_bias=True, recon_reduction="sum",
        l1_reduction="mean_batch", resample="reinit", resample_every=100, resample_window=50,
        resample_stop=200, dead_frequency=0.0, seed=0,
    )
    return SAEConfig(**{**base, **kw})


def test_decoder_rows_stay_unit_norm_and_grad_is_orthogonal():
    trainer = SAETrainer(cfg(), sample)
    for step in range(5):
        trainer.step(step)
        norms = trainer.sae.W_dec.norm(dim=-1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    sae = trainer.sae
    out = sae_losses(sae, sample(99).unsqueeze(1).expand(-1, 2, -1), trainer.l1, "sum", "mean_batch")
    sae.zero_grad()
    out["loss"].sum().backward()
    sae.remove_parallel_grad_()
    parallel = (sae.W_dec.grad * sae.W_dec).sum(-1)
    assert parallel.abs().max() < 1e-6


def test_encode_decode_shapes_and_pre_encoder_bias():
    sae = SAE(6, 10, n_instances=3, pre_encoder_bias=True, generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 3, 6)
    x_hat, f = sae(x)
    assert x_hat.shape == (4, 3, 6) and f.shape == (4, 3, 10) and (f >= 0).all()
    with torch.no_grad():
        sae.b_dec.fill_(1.0)
    f_shift = sae.encode(x + 1.0)
    assert torch.allclose(f_shift, f, atol=1e-5)


def test_sae_learns_and_l1_orders_sparsity():
    sae, hist = train_sae(cfg(n_steps=1500, resample="none"), sample, None, "t")
    assert hist[-1]["loss"] < hist[0]["loss"] / 3
    scores = [mmcs(sae.W_dec[i].detach(), TRUE)[0] for i in range(2)]
    assert max(scores) > 0.85, scores


def test_mmcs_permuted_and_scaled_copy_is_one():
    perm = TRUE[torch.randperm(12)] * 3.0
    score, per = mmcs(perm, TRUE)
    assert score == pytest.approx(1.0, abs=1e-6) and per.shape == (12,)


@pytest.mark.parametrize("resample", ["reinit", "anthropic"])
def test_resume_after_failure_equals_uninterrupted(tmp_path, resample, monkeypatch):
    c = cfg(resample=resample)
    ref, ref_hist = train_sae(c, sample, None, "fp")
    restore = crash_at_step(monkeypatch, SAETrainer, 170)
    ckpt = tmp_path / "ckpt.safetensors"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_sae(c, sample, ckpt, "fp", checkpoint_every=50)
    assert ckpt.is_file()
    restore()
    resumed, hist = train_sae(c, sample, ckpt, "fp", checkpoint_every=50)
    for a, b in zip(ref.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert hist == ref_hist
    assert not ckpt.exists()  # removed once training completes


def test_checkpoint_for_other_settings_is_ignored(tmp_path, monkeypatch):
    c = cfg(n_steps=120)
    restore = crash_at_step(monkeypatch, SAETrainer, 110)
    with pytest.raises(RuntimeError):
        train_sae(c, sample, tmp_path / "c.safetensors", "settings-A", checkpoint_every=50)
    restore()
    ref, _ = train_sae(c, sample, None, "x")
    fresh, _ = train_sae(c, sample, tmp_path / "c.safetensors", "settings-B", checkpoint_every=50)
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), fresh.parameters()))


def test_resampling_revives_dead_features():
    trainer = SAETrainer(cfg(resample="anthropic", n_steps=1000), sample)
    with torch.no_grad():
        trainer.sae.b_enc[:, :4] = -100.0  # features 0-3 can never fire
    for step in range(100):
        trainer.step(step)
    assert (trainer.sae.b_enc[:, :4] == 0).all()
    x = sample(5).unsqueeze(1).expand(-1, 2, -1)
    assert (trainer.sae.encode(x)[:, :, :4] > 0).any()

"""Tiny end-to-end training: TMS learns, an SAE recovers its features, resumes are exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import replications.toy_models.tms as tms
from replications.toy_models.sae_tms import (
    SAETMSConfig,
    evaluate_sae,
    hidden_sampler,
    instance_l1s,
    make_sae_config,
    represented_directions,
    train_source_tms,
)
from shared.sae_train import SAETrainer, train_sae
from shared.training import train_loop

pytestmark = pytest.mark.integration


class Interrupt(RuntimeError):
    """Raised inside a step to simulate a crash after a checkpoint."""


def small_cfg(**change: object) -> SAETMSConfig:
    base = dict(
        n_features=6, n_hidden=3, expected_active_features=0.5, tms_n_steps=1500, tms_lr=1e-3,
        batch_size=512, represented_threshold=0.5, width_multiples=(0.5, 1.0, 2.0),
        l1_coeffs=(0.1,), n_seeds=4, sae_n_steps=2500, sae_lr=1e-3, resampling_ratios=(2, 4),
        resampling_n_hidden=3, resampling_width_multiple=1.0, resampling_l1_coeffs=(0.03,),
        resampling_n_seeds=2, resampling_modes=("none", "reinit"), resampling_sae_n_steps=40,
        resample_every=10, resample_window=5, dead_frequency=0.0, random_baseline_draws=16,
        checkpoint_every=20, log_every=10,
    )
    return SAETMSConfig(**{**base, **change})  # type: ignore[arg-type]


def train_small_tms(n_steps: int, checkpoint: Path | None, checkpoint_every: int = 1000):
    return tms.train_tms(
        n_hidden=2, importance=tms.importance_profile(5, 0.9),
        feature_probability=torch.tensor([1.0, 0.1]), n_steps=n_steps, batch_size=256, lr=1e-3,
        seed=3, checkpoint_path=checkpoint, fingerprint="test", checkpoint_every=checkpoint_every,
        log_every=10,
    )


def test_tms_loss_drops() -> None:
    torch.set_num_threads(1)
    model, history = train_small_tms(600, None)
    first, last = history[0]["loss"], history[-1]["loss"]
    assert last < 0.6 * first
    # The sparse instance packs more than two features into two dimensions.
    assert tms.n_represented(model.W.detach(), 0.5)[1] > 2


def test_sae_recovers_tiny_tms_features_at_true_width() -> None:
    torch.set_num_threads(1)
    cfg = small_cfg()
    W, _, _ = train_source_tms(cfg, cfg.n_features, cfg.n_hidden, 11, None, "test")
    true_dirs, keep = represented_directions(W, cfg.represented_threshold)
    assert int(keep.sum()) == cfg.n_features
    sample_fn = hidden_sampler(W, cfg.feature_probability(cfg.n_features), cfg.batch_size, 5)
    l1s = instance_l1s(cfg.l1_coeffs, cfg.n_seeds)
    sae_cfg = make_sae_config(cfg, cfg.n_hidden, cfg.n_features, l1s, cfg.sae_n_steps, "none", 7)
    sae, _ = train_sae(sae_cfg, sample_fn, None, "test")
    scores = evaluate_sae(sae, true_dirs, sample_fn)
    print("mmcs per initialisation", scores["mmcs"].tolist())
    # Four initialisations at one L1: the best recovers every feature (some can lose a latent).
    assert scores["mmcs"].max() > 0.9
    # Half the width cannot cover every feature.
    half = make_sae_config(cfg, cfg.n_hidden, cfg.n_features // 2, l1s, cfg.sae_n_steps // 5,
                           "none", 7)
    small, _ = train_sae(half, sample_fn, None, "test")
    assert evaluate_sae(small, true_dirs, sample_fn)["mmcs"].max() < 0.9


def test_tms_resume_is_bit_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    reference, _ = train_small_tms(40, None)
    ckpt = tmp_path / "tms.safetensors"
    real = tms.generate_batch
    calls = {"n": 0}

    def crashing(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 21:  # step 20, right after the checkpoint written at step 20
            raise Interrupt("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(tms, "generate_batch", crashing)
    with pytest.raises(Interrupt):
        train_small_tms(40, ckpt, checkpoint_every=20)
    assert ckpt.is_file()
    monkeypatch.setattr(tms, "generate_batch", real)
    resumed, _ = train_small_tms(40, ckpt, checkpoint_every=20)
    assert not ckpt.is_file()  # removed once the run completes
    for name, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_sae_resume_with_resampling_is_bit_identical(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = small_cfg()
    W = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
    base = hidden_sampler(W, 0.1, 64, 1)
    # A large L1 kills features quickly so resampling (and its checkpointed counts) is exercised.
    sae_cfg = make_sae_config(cfg, 3, 8, (3.0, 0.01), 40, "reinit", 2)
    trainer = SAETrainer(sae_cfg, base)
    train_loop(trainer.step, sae_cfg.n_steps, trainer.state(), None, "test")
    reference = trainer.sae
    assert trainer.resampled, "the test should exercise resampling"

    def crashing(step: int) -> torch.Tensor:
        if step == 20:
            raise Interrupt("simulated crash")
        return base(step)

    ckpt = tmp_path / "sae.safetensors"
    with pytest.raises(Interrupt):
        train_sae(sae_cfg, crashing, ckpt, "test", checkpoint_every=20)
    assert ckpt.is_file()
    resumed, _ = train_sae(sae_cfg, base, ckpt, "test", checkpoint_every=20)
    for name, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name

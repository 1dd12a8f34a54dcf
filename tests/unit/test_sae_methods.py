"""The trainer's SAE-methods options (ghost grads variants, decoder norm <= 1 with weight decay,
Adam beta1, pre-encoder bias) against reference computations written out here with autograd."""

import dataclasses
import json

import pytest
import torch

from shared.config import ConfigError
from shared.sae import SAE, SAEConfig, sae_losses
from shared.sae_io import SAELensInfo, load_sae_lens, save_sae_lens
from shared.sae_train import GhostSpec, SAETrainer, _instances_first, _sae_grads, training_options

pytestmark = pytest.mark.unit

BASE = SAEConfig(
    d_in=10, d_sae=32, l1_coeffs=(1e-3, 3e-2, 0.1), lr=1e-2, adam_betas=(0.9, 0.999),
    batch_size=48, n_steps=20, pre_encoder_bias=True, recon_reduction="sum",
    l1_reduction="mean_batch", resample="none", resample_every=1, resample_window=1,
    resample_stop=0, dead_frequency=0.0, seed=0,
)


def reference_loss(sae, x3, l1, dead, mode, activation, recon_red, l1_red):
    """Per-instance SAE loss plus the ghost-grads term, as Anthropic's January update and the
    GDM update describe it, for autograd: residual and per-example scale are constants."""
    out = sae_losses(sae, x3, l1, recon_red, l1_red)
    xin = x3 - sae.b_dec if sae.pre_encoder_bias else x3
    pre = torch.einsum("bid,idf->bif", xin, sae.W_enc) + sae.b_enc
    act = torch.exp(pre) if activation == "exp" else torch.exp(torch.minimum(pre, torch.zeros_like(pre)))
    act = act * dead.to(act.dtype)
    ghost_out = torch.einsum("bif,ifd->bid", act, sae.W_dec)
    residual = (x3 - out["x_hat"]).detach()
    scale = (residual.norm(dim=-1, keepdim=True)
             / (2 * ghost_out.norm(dim=-1, keepdim=True) + 1e-6)).detach()
    sq = (scale * ghost_out - residual).pow(2)
    ghost = (sq.sum(-1) if recon_red == "sum" else sq.mean(-1)).mean(0)  # [inst]
    frac = dead.to(ghost.dtype).mean(-1)
    ratio = out["recon"].detach() / ghost.detach()
    lam = {"original": ratio, "rescaled": ratio * frac, "dead_only_rescaled": frac}[mode]
    lam = torch.where(dead.any(-1), lam, torch.zeros_like(lam))
    return out["loss"] + lam * ghost, lam * ghost


@pytest.mark.parametrize("mode", ["original", "rescaled", "dead_only_rescaled"])
@pytest.mark.parametrize("activation", ["exp", "exp_min0"])
@pytest.mark.parametrize("pre_bias,recon_red", [(True, "sum"), (False, "mean")])
def test_ghost_grads_gradients_match_autograd(mode, activation, pre_bias, recon_red):
    gen = torch.Generator().manual_seed(0)
    sae = SAE(10, 32, n_instances=3, pre_encoder_bias=pre_bias, generator=gen).double()
    with torch.no_grad():
        sae.b_dec.normal_(std=0.3, generator=gen)
        sae.b_enc.normal_(std=0.5, generator=gen)
    l1 = torch.tensor([1e-3, 3e-2, 0.1], dtype=torch.float64)
    x = torch.randn(48, 10, generator=gen, dtype=torch.float64)
    dead = torch.rand(3, 32, generator=gen) < 0.3
    dead[1] = True  # every feature dead (the first K steps)
    dead[2] = False  # none dead: no ghost term
    x3 = x.unsqueeze(1).expand(-1, 3, -1)
    loss, ghost_ref = reference_loss(sae, x3, l1, dead, mode, activation, recon_red, "mean_batch")
    sae.zero_grad()
    loss.sum().backward()
    ref = {n: p.grad.clone() for n, p in sae.named_parameters()}
    ghost = _sae_grads(sae, _instances_first(x, 3), l1, recon_red, "mean_batch", torch.float64,
                       ghost=GhostSpec(dead, mode, activation)).ghost_loss
    torch.testing.assert_close(ghost, ghost_ref.detach(), rtol=1e-9, atol=1e-12)
    assert ghost[2] == 0 and ghost[0] > 0
    for n, p in sae.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=1e-8, atol=1e-11, msg=n)
    if mode == "original":  # the ghost term equals the reconstruction loss where any is dead
        recon = sae_losses(sae, x3, l1, recon_red, "mean_batch")["recon"]
        torch.testing.assert_close(ghost[:2], recon[:2].detach(), rtol=1e-9, atol=0)


def test_exp_min0_spares_falsely_dead_features():
    # A "dead" feature with a large positive pre-activation: exp overflows the ghost output,
    # exp(min(x, 0)) caps it at one and passes no gradient to that feature's encoder.
    sae = SAE(4, 8, generator=torch.Generator().manual_seed(1)).double()
    with torch.no_grad():
        sae.b_enc[0, 0] = 800.0
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    dead = torch.zeros(1, 8, dtype=torch.bool)
    dead[0, :2] = True
    l1 = torch.tensor([1e-2], dtype=torch.float64)
    _sae_grads(sae, _instances_first(x, 1), l1, "sum", "mean_batch", torch.float64)
    main_b_enc = sae.b_enc.grad.clone()
    ghost = _sae_grads(sae, _instances_first(x, 1), l1, "sum", "mean_batch", torch.float64,
                       ghost=GhostSpec(dead, "rescaled", "exp_min0")).ghost_loss
    assert torch.isfinite(ghost).all()
    assert sae.b_enc.grad[0, 0] == main_b_enc[0, 0]  # no ghost gradient through x > 0
    assert sae.b_enc.grad[0, 1] != main_b_enc[0, 1]
    ghost = _sae_grads(sae, _instances_first(x, 1), l1, "sum", "mean_batch", torch.float64,
                       ghost=GhostSpec(dead, "rescaled", "exp")).ghost_loss
    assert not torch.isfinite(ghost).all()
    # A live feature's overflowing exp never reaches the ghost term.
    dead[0, 0] = False
    ghost = _sae_grads(sae, _instances_first(x, 1), l1, "sum", "mean_batch", torch.float64,
                       ghost=GhostSpec(dead, "rescaled", "exp")).ghost_loss
    assert torch.isfinite(ghost).all() and all(torch.isfinite(p.grad).all()
                                               for p in sae.parameters())


def test_dead_mask_tracks_steps_since_firing_and_all_features_for_k_steps():
    cfg = dataclasses.replace(BASE, ghost_grads="rescaled", ghost_dead_window=2,
                              ghost_all_steps=3)
    data = torch.randn(48, 10, generator=torch.Generator().manual_seed(3))
    trainer = SAETrainer(cfg, lambda step: data)
    since = torch.zeros(3, 32)
    for step in range(8):
        expected_dead = torch.ones(3, 32, dtype=torch.bool) if step < 3 else since >= 2
        assert torch.equal(trainer.dead_mask(step), expected_dead), step
        fired = (trainer.sae.encode(data.unsqueeze(1).expand(-1, 3, -1)) > 0).any(0)
        metrics = trainer.step(step)
        since = torch.where(fired, 0.0, since + 1)
        torch.testing.assert_close(trainer.since_fired.value, since)
        assert float(metrics["ghost_dead_fraction"]) == pytest.approx(
            expected_dead.float().mean().item())
    assert "since_fired" in trainer.state()
    assert "since_fired" not in SAETrainer(BASE, lambda step: data).state()  # default: unchanged


def _reference_run(cfg, data, n_steps):
    """Plain autograd + torch's Adam: loss + (wd / 2) |W_dec|^2, then the decoder constraint."""
    trainer = SAETrainer(cfg, lambda step: data)  # for the identical initialisation only
    sae = SAE(cfg.d_in, cfg.d_sae, cfg.n_instances, cfg.pre_encoder_bias)
    sae.load_state_dict(trainer.sae.state_dict())
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=cfg.adam_betas)
    l1 = torch.tensor(cfg.l1_coeffs)
    x3 = data.unsqueeze(1).expand(-1, cfg.n_instances, -1)
    for _ in range(n_steps):
        opt.zero_grad()
        out = sae_losses(sae, x3, l1, cfg.recon_reduction, cfg.l1_reduction)
        (out["loss"].sum() + cfg.decoder_weight_decay / 2 * sae.W_dec.pow(2).sum()).backward()
        if cfg.decoder_norm == "unit":
            sae.remove_parallel_grad_()
        opt.step()
        with torch.no_grad():
            norms = sae.W_dec.norm(dim=-1, keepdim=True)
            sae.W_dec.div_(norms if cfg.decoder_norm == "unit" else norms.clamp_min(1.0))
    return sae


@pytest.mark.parametrize("beta1", [0.0, 0.9])
@pytest.mark.parametrize("pre_bias", [True, False])
@pytest.mark.parametrize("norm,wd", [("at_most_one", 0.05), ("at_most_one", 0.0), ("unit", 0.0)])
def test_trainer_steps_match_a_reference_adam_loop(beta1, pre_bias, norm, wd):
    cfg = dataclasses.replace(BASE, adam_betas=(beta1, 0.999), pre_encoder_bias=pre_bias,
                              decoder_norm=norm, decoder_weight_decay=wd)
    data = torch.randn(48, 10, generator=torch.Generator().manual_seed(4)).relu()
    trainer = SAETrainer(cfg, lambda step: data)
    for step in range(15):
        trainer.step(step)
    ref = _reference_run(cfg, data, 15)
    for n, p in trainer.sae.named_parameters():
        torch.testing.assert_close(p, getattr(ref, n), rtol=1e-4, atol=1e-5, msg=n)
    norms = trainer.sae.W_dec.norm(dim=-1)
    if norm == "at_most_one":
        assert norms.max() <= 1 + 1e-6 and norms.min() < 0.99  # shorter rows are kept
    else:
        torch.testing.assert_close(norms, torch.ones_like(norms))


def test_options_are_validated():
    for bad in ({"ghost_grads": "sometimes"}, {"ghost_activation": "relu"},
                {"ghost_dead_window": 0}, {"ghost_all_steps": -1},
                {"decoder_norm": "free"}, {"decoder_weight_decay": -1.0},
                {"decoder_weight_decay": 1e-3}):  # decay needs decoder_norm at_most_one
        with pytest.raises(ConfigError):
            dataclasses.replace(BASE, **bad)


def test_export_records_the_training_options(tmp_path):
    cfg = dataclasses.replace(BASE, ghost_grads="dead_only_rescaled", ghost_activation="exp_min0",
                              ghost_all_steps=5, decoder_norm="at_most_one",
                              decoder_weight_decay=1e-3, adam_betas=(0.0, 0.999))
    sae = SAE(10, 32, n_instances=3)
    info = SAELensInfo(model_name="m", hook_name="blocks.0.mlp.hook_post", context_size=16,
                       prepend_bos=True)
    save_sae_lens(tmp_path / "a", sae, 1, info, None, training=cfg)
    options = json.loads((tmp_path / "a" / "cfg.json").read_text())["metadata"]["training_options"]
    assert options == training_options(cfg, 1)
    assert options["l1_coefficient"] == 3e-2 and options["adam_betas"] == [0.0, 0.999]
    assert options["ghost_grads"] == "dead_only_rescaled" and options["ghost_all_steps"] == 5
    assert options["decoder_norm"] == "at_most_one" and options["decoder_weight_decay"] == 1e-3
    loaded, _, _ = load_sae_lens(tmp_path / "a")
    torch.testing.assert_close(loaded.W_dec[0], sae.W_dec[1].detach())
    save_sae_lens(tmp_path / "b", sae, 1, info, None)  # without: no key, as before
    assert "training_options" not in json.loads((tmp_path / "b" / "cfg.json").read_text())[
        "metadata"]

"""The trainer's hand-written gradients equal autograd's through `sae_losses`."""

import pytest
import torch

from shared.sae import SAE, SAEConfig, sae_losses
from shared.sae_train import SAETrainer, _instances_first, _sae_grads

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("pre_bias", [True, False])
@pytest.mark.parametrize("recon", ["sum", "mean"])
@pytest.mark.parametrize("l1_red", ["mean_batch", "sum_batch"])
@pytest.mark.parametrize("shared_input", [True, False])
def test_hand_gradients_match_autograd(pre_bias, recon, l1_red, shared_input):
    gen = torch.Generator().manual_seed(0)
    sae = SAE(12, 40, n_instances=3, pre_encoder_bias=pre_bias, generator=gen).double()
    with torch.no_grad():
        sae.b_dec.normal_(generator=gen)
        sae.b_enc.normal_(std=0.3, generator=gen)
    l1 = torch.tensor([1e-3, 3e-2, 0.2], dtype=torch.float64)
    x = torch.randn(64, 12, generator=gen, dtype=torch.float64) if shared_input \
        else torch.randn(64, 3, 12, generator=gen, dtype=torch.float64)
    x3 = x.unsqueeze(1).expand(-1, 3, -1) if shared_input else x
    out = sae_losses(sae, x3, l1, recon, l1_red)
    sae.zero_grad()
    out["loss"].sum().backward()
    ref = {n: p.grad.clone() for n, p in sae.named_parameters()}
    res = _sae_grads(sae, _instances_first(x, 3), l1, recon, l1_red, torch.float64)
    for n, p in sae.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=1e-10, atol=1e-12, msg=n)
    torch.testing.assert_close(res.acts, out["acts"].transpose(0, 1))


def test_metrics_match_sae_losses_and_are_only_computed_on_logged_steps():
    cfg = SAEConfig(
        d_in=8, d_sae=16, l1_coeffs=(0.01, 0.1), lr=1e-3, adam_betas=(0.9, 0.999), batch_size=32,
        n_steps=10, pre_encoder_bias=True, recon_reduction="sum", l1_reduction="mean_batch",
        resample="none", resample_every=1, resample_window=1, resample_stop=0,
        dead_frequency=0.0, seed=0,
    )
    data = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    trainer = SAETrainer(cfg, lambda step: data, log_every=3)
    expected = sae_losses(trainer.sae, data.unsqueeze(1).expand(-1, 2, -1), trainer.l1, "sum",
                          "mean_batch")
    metrics = trainer.step(0)
    assert float(metrics["loss"]) == pytest.approx(expected["loss"].mean().item(), rel=1e-5)
    assert float(metrics["recon"]) == pytest.approx(expected["recon"].mean().item(), rel=1e-5)
    l0 = (expected["acts"] > 0).float().sum(-1).mean().item()
    assert float(metrics["l0"]) == pytest.approx(l0, rel=1e-6)
    assert trainer.step(1) == {} and trainer.step(2) == {} and trainer.step(3) != {}


def test_bf16_step_tracks_fp32_and_tf32_needs_cuda():
    cfg = SAEConfig(
        d_in=32, d_sae=128, l1_coeffs=(1e-3,), lr=1e-3, adam_betas=(0.9, 0.999), batch_size=256,
        n_steps=50, pre_encoder_bias=True, recon_reduction="sum", l1_reduction="mean_batch",
        resample="none", resample_every=1, resample_window=1, resample_stop=0,
        dead_frequency=0.0, seed=0,
    )
    data = torch.randn(256, 32, generator=torch.Generator().manual_seed(2)).relu()
    fp32, bf16 = SAETrainer(cfg, lambda s: data), SAETrainer(cfg, lambda s: data, precision="bf16")
    for step in range(50):
        a, b = fp32.step(step), bf16.step(step)
    assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=0.05)
    assert all(p.dtype == torch.float32 for p in bf16.sae.parameters())  # master weights
    with pytest.raises(ValueError, match="CUDA"):
        SAETrainer(cfg, lambda s: data, precision="tf32")


def test_tf32_switch_is_scoped_to_the_step():
    from shared.sae_train import _matmul_precision

    matmul = torch.backends.cuda.matmul
    attr = "fp32_precision" if hasattr(matmul, "fp32_precision") else "allow_tf32"
    before = getattr(matmul, attr)
    # The flag is a global one that exists on CPU builds too, so the CUDA branch runs here.
    with _matmul_precision("tf32", torch.device("cuda")):
        assert getattr(matmul, attr) in ("tf32", True)
    assert getattr(matmul, attr) == before
    with _matmul_precision("fp32", torch.device("cuda")):
        assert getattr(matmul, attr) == before

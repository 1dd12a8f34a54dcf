"""The SAE trainer on CUDA against the CPU: with and without resampling (both methods), every
precision runs, and fp32 follows the CPU run. Skipped without a CUDA device; the prepared GPU
check (benchmarks/gpu_check.py) runs these."""

import pytest
import torch

from shared.runtime import step_generator
from shared.sae import SAEConfig
from shared.sae_train import SAETrainer

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TRUE = torch.nn.functional.normalize(
    torch.randn(48, 16, generator=torch.Generator().manual_seed(0)), dim=-1)


def sample(step: int) -> torch.Tensor:
    g = step_generator(3, step)
    mags = torch.rand(256, 48, generator=g) * (torch.rand(256, 48, generator=g) < 0.1)
    return mags @ TRUE


def cfg(resample: str) -> SAEConfig:
    return SAEConfig(d_in=16, d_sae=64, l1_coeffs=(0.01, 0.05), lr=3e-3, adam_betas=(0.9, 0.999),
                     batch_size=256, n_steps=60, pre_encoder_bias=True, recon_reduction="sum",
                     l1_reduction="mean_batch", resample=resample, resample_every=20,
                     resample_window=10, resample_stop=40, dead_frequency=0.0, seed=0)


def run(resample: str, device: str, precision: str = "fp32") -> SAETrainer:
    trainer = SAETrainer(cfg(resample), sample, device, precision=precision)  # type: ignore[arg-type]
    with torch.no_grad():
        trainer.sae.b_enc[:, :8] = -100.0  # features 0-7 never fire: resampled at step 20
    for step in range(60):
        trainer.step(step)
    return trainer


@pytest.mark.parametrize("resample", ["none", "reinit", "anthropic"])
def test_cuda_fp32_follows_cpu(resample: str) -> None:
    cpu, gpu = run(resample, "cpu"), run(resample, "cuda")
    assert gpu.resampled == cpu.resampled
    if resample != "none":
        assert cpu.resampled and cpu.resampled[0] >= 16  # the 8 blocked features x 2 instances
    # Loose: Adam turns float-rounding differences in near-zero gradients into lr-sized steps.
    # A resampling draw that differed between devices would move whole rows by O(1).
    for a, b in zip(cpu.sae.parameters(), gpu.sae.parameters()):
        torch.testing.assert_close(b.cpu(), a, atol=2e-3, rtol=1e-2)


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
@pytest.mark.parametrize("resample", ["reinit", "anthropic"])
def test_cuda_precisions_resample(resample: str, precision: str) -> None:
    trainer = run(resample, "cuda", precision)
    assert trainer.resampled and all(torch.isfinite(p).all() for p in trainer.sae.parameters())

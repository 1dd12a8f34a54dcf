"""SAELens loads an export that records the SAE-methods trainer options and keeps them."""

import dataclasses

import pytest
import torch

from shared.sae import SAE, SAEConfig
from shared.sae_io import SAELensInfo, save_sae_lens

pytestmark = pytest.mark.integration

sae_lens = pytest.importorskip("sae_lens")


def test_sae_lens_reads_the_training_options(tmp_path):
    cfg = SAEConfig(
        d_in=12, d_sae=48, l1_coeffs=(1e-3, 2e-3), lr=1e-4, adam_betas=(0.0, 0.999),
        batch_size=64, n_steps=10, pre_encoder_bias=False, recon_reduction="sum",
        l1_reduction="mean_batch", resample="none", resample_every=1, resample_window=1,
        resample_stop=0, dead_frequency=0.0, seed=0,
    )
    cfg = dataclasses.replace(cfg, ghost_grads="rescaled", ghost_activation="exp_min0",
                              decoder_norm="at_most_one", decoder_weight_decay=1e-4)
    sae = SAE(12, 48, n_instances=2, pre_encoder_bias=False)
    info = SAELensInfo(model_name="stand-in", hook_name="blocks.0.mlp.hook_post",
                       context_size=32, prepend_bos=True)
    save_sae_lens(tmp_path / "sae", sae, 1, info, None, training=cfg)
    theirs = sae_lens.SAE.load_from_disk(tmp_path / "sae", device="cpu")
    options = theirs.cfg.metadata.training_options
    assert options["ghost_grads"] == "rescaled" and options["ghost_activation"] == "exp_min0"
    assert options["decoder_norm"] == "at_most_one" and options["adam_betas"] == [0.0, 0.999]
    assert options["l1_coefficient"] == 2e-3 and theirs.cfg.apply_b_dec_to_input is False
    x = torch.randn(20, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(theirs.encode(x), sae.encode(x.unsqueeze(1).expand(-1, 2, -1))[:, 1],
                                   rtol=0, atol=1e-5)

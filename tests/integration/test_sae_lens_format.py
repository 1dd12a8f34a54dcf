"""Our SAE saved in the SAELens format: SAELens loads it and agrees with us; ours round-trips."""

import json

import pytest
import torch
from safetensors.torch import load_file

from shared.sae import SAE
from shared.sae_io import SAELensInfo, load_sae_lens, log_sparsity, save_sae_lens

pytestmark = pytest.mark.integration

sae_lens = pytest.importorskip("sae_lens")

INFO = SAELensInfo(model_name="gelu-1l", hook_name="blocks.0.mlp.hook_post", context_size=128,
                   prepend_bos=True)


def trained_like_sae(pre_bias: bool) -> SAE:
    gen = torch.Generator().manual_seed(0)
    sae = SAE(24, 96, n_instances=3, pre_encoder_bias=pre_bias, generator=gen)
    with torch.no_grad():
        sae.b_dec.normal_(generator=gen)
        sae.b_enc.normal_(std=0.1, generator=gen)
    return sae


@pytest.mark.parametrize("pre_bias", [True, False])
def test_sae_lens_loads_our_sae_and_agrees(tmp_path, pre_bias):
    sae, inst = trained_like_sae(pre_bias), 2
    freq = torch.rand(96, generator=torch.Generator().manual_seed(1))
    freq[:5] = 0.0
    save_sae_lens(tmp_path / "sae", sae, inst, INFO, freq)
    assert {p.name for p in (tmp_path / "sae").iterdir()} == {
        "cfg.json", "sae_weights.safetensors", "sparsity.safetensors"}
    weights = load_file(str(tmp_path / "sae" / "sae_weights.safetensors"))
    assert weights["W_enc"].shape == (24, 96) and weights["W_dec"].shape == (96, 24)

    theirs = sae_lens.SAE.load_from_disk(tmp_path / "sae", device="cpu")
    assert type(theirs).__name__ == "StandardSAE"
    assert theirs.cfg.apply_b_dec_to_input is pre_bias
    assert theirs.cfg.metadata.hook_name == INFO.hook_name
    x = torch.randn(200, 24, generator=torch.Generator().manual_seed(2)) * 3
    with torch.no_grad():
        ours_x = x.unsqueeze(1).expand(-1, 3, -1)
        ours_recon, ours_f = sae(ours_x)
        their_f = theirs.encode(x)
        torch.testing.assert_close(their_f, ours_f[:, inst], rtol=0, atol=1e-5)
        torch.testing.assert_close(theirs.decode(their_f), ours_recon[:, inst], rtol=0, atol=1e-5)
        torch.testing.assert_close(theirs(x), ours_recon[:, inst], rtol=0, atol=1e-5)
    assert (their_f > 0).any() and (their_f == 0).any()

    stored = load_file(str(tmp_path / "sae" / "sparsity.safetensors"))["sparsity"]
    torch.testing.assert_close(stored, torch.log10(freq + 1e-10))
    assert (stored[:5] == -10).all()


def test_our_loader_round_trips(tmp_path):
    sae = trained_like_sae(True)
    freq = torch.rand(96)
    save_sae_lens(tmp_path / "s", sae, 1, INFO, freq)
    loaded, cfg, sparsity = load_sae_lens(tmp_path / "s")
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        assert torch.equal(getattr(loaded, name)[0], getattr(sae, name)[1])
    assert loaded.pre_encoder_bias and cfg["metadata"]["context_size"] == 128
    torch.testing.assert_close(sparsity, log_sparsity(freq))
    # A directory SAELens itself wrote loads into our SAE too.
    theirs = sae_lens.StandardSAE(sae_lens.StandardSAEConfig(d_in=8, d_sae=16))
    theirs.save_model(tmp_path / "theirs")
    ours, _, none = load_sae_lens(tmp_path / "theirs")
    assert none is None and torch.equal(ours.W_dec[0], theirs.W_dec.detach())
    # Without a sparsity file, and for a bad instance index.
    save_sae_lens(tmp_path / "nosparsity", sae, 0, INFO, None)
    assert not (tmp_path / "nosparsity" / "sparsity.safetensors").exists()
    with pytest.raises(ValueError, match="instance"):
        save_sae_lens(tmp_path / "bad", sae, 3, INFO, None)
    assert json.loads((tmp_path / "s" / "cfg.json").read_text())["architecture"] == "standard"

"""End to end: an SAE trained on a tiny LM's MLP activations through the buffer, resumable."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from shared.activations import ActivationBuffer, BufferConfig
from shared.sae import SAEConfig
from shared.sae_eval import SAEEvalConfig, SAEEvaluator
from shared.sae_train import SAETrainer, train_sae
from tests.conftest import crash_at_step

pytestmark = pytest.mark.integration

HOOK = "blocks.0.mlp.hook_post"


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    cfg = HookedTransformerConfig(
        n_layers=1, d_model=32, n_ctx=16, d_head=8, n_heads=4, d_mlp=64, d_vocab=64,
        act_fn="gelu", normalization_type="LN", seed=0, device="cpu",
    )
    return HookedTransformer(cfg).eval()


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    toks = torch.randint(1, 64, (56, 16), generator=torch.Generator().manual_seed(0))
    toks[:, 0] = 0
    return toks


SAE_CFG = SAEConfig(
    d_in=64, d_sae=128, l1_coeffs=(3e-4,), lr=1e-3, adam_betas=(0.9, 0.99), batch_size=64,
    n_steps=100, pre_encoder_bias=True, recon_reduction="sum", l1_reduction="sum_batch",
    resample="anthropic", resample_every=40, resample_window=20, resample_stop=80,
    dead_frequency=0.0, seed=49,
)
BUF_CFG = BufferConfig(hook_name=HOOK, n_activations=600, batch_size=64, rows_per_batch=4,
                       reserved_rows=8, drop_bos=True, seed=49)


def run(model, tokens, evaluator, ckpt):
    buffer = ActivationBuffer(model, tokens[:48], BUF_CFG)
    return train_sae(SAE_CFG, buffer.sample, ckpt, "lm-sae", checkpoint_every=30, log_every=10,
                     data_state=buffer, eval_fn=evaluator, eval_every=50)


def test_resume_after_crash_equals_uninterrupted(tmp_path, model, tokens, monkeypatch):
    evaluator = SAEEvaluator(model, tokens[48:], SAEEvalConfig(HOOK, batch_rows=8, drop_bos=True,
                                                               ultra_low_frequency=1e-3))
    ref, ref_hist = run(model, tokens, evaluator, None)
    assert ref_hist[-1]["recon"] < ref_hist[0]["recon"] / 2
    assert ref_hist[-1]["eval/loss_recovered"] > ref_hist[0]["eval/loss_recovered"]
    restore = crash_at_step(monkeypatch, SAETrainer, 75)
    ckpt = tmp_path / "ckpt.safetensors"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(model, tokens, evaluator, ckpt)
    assert ckpt.is_file()
    restore()
    resumed, hist = run(model, tokens, evaluator, ckpt)  # a fresh buffer, restored from ckpt
    for a, b in zip(ref.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert hist == ref_hist

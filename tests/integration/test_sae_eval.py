"""LM-specific SAE evaluation: loss recovered, the mean-ablation baseline, frequencies."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from shared.activations import harvest
from shared.sae import SAE, SAEConfig
from shared.sae_eval import (
    SAEEvalConfig,
    SAEEvaluator,
    dead_and_ultra_low,
    feature_frequencies,
    loss_recovered,
)
from shared.sae_train import train_sae

pytestmark = pytest.mark.integration

HOOK = "blocks.0.mlp.hook_post"
D_MLP = 64


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=32, n_ctx=16, d_head=8, n_heads=4, d_mlp=D_MLP, d_vocab=64,
        act_fn="gelu", normalization_type="LN", seed=0, device="cpu",
    )
    model = HookedTransformer(cfg).eval()
    with torch.no_grad():
        model.W_U.mul_(20.0)  # sharper next-token distributions than at initialisation
    return model


@pytest.fixture(scope="module")
def tokens(model) -> torch.Tensor:
    # Sampled from the model itself, so its clean CE is its entropy and any ablation is worse
    # on average (CE = entropy + KL); uniformly random tokens would not guarantee that.
    gen = torch.Generator().manual_seed(1)
    toks = torch.zeros(12, 16, dtype=torch.long)
    with torch.no_grad():
        for pos in range(1, 16):
            probs = model(toks[:, :pos])[:, -1].softmax(-1)
            toks[:, pos] = torch.multinomial(probs, 1, generator=gen).squeeze(1)
    return toks


@pytest.fixture(scope="module")
def evaluator(model, tokens) -> SAEEvaluator:
    return SAEEvaluator(model, tokens, SAEEvalConfig(HOOK, batch_rows=5, drop_bos=True,
                                                     ultra_low_frequency=1e-2))


def fixed_sae(W_enc, W_dec, b_enc, b_dec, pre_bias=False) -> SAE:
    sae = SAE(W_enc.shape[0], W_enc.shape[1], 1, pre_encoder_bias=pre_bias)
    with torch.no_grad():
        for name, value in (("W_enc", W_enc), ("W_dec", W_dec), ("b_enc", b_enc), ("b_dec", b_dec)):
            getattr(sae, name)[0].copy_(value)
    return sae


def test_baselines_match_a_direct_computation(model, tokens, evaluator):
    clean = model(tokens, return_type="loss").item()
    assert evaluator.ce_clean == pytest.approx(clean, rel=1e-5)
    mean = harvest(model, tokens, HOOK, batch_rows=12).double().mean(0).float()
    torch.testing.assert_close(evaluator.mean_act, mean, rtol=1e-5, atol=1e-6)

    def patched(value):
        def hook(act, hook):
            act = act.clone()
            act[:, 1:] = value(act[:, 1:])
            return act
        return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(HOOK, hook)]).item()

    zero = patched(torch.zeros_like)
    mean_abl = patched(lambda a: mean.expand_as(a))
    assert evaluator.ce_zero == pytest.approx(zero, rel=1e-5)
    assert evaluator.ce_mean == pytest.approx(mean_abl, rel=1e-5)
    assert evaluator.ce_zero > evaluator.ce_clean  # the ablation hurts this model
    assert evaluator.mean_ablation_score == pytest.approx(
        loss_recovered(zero, mean_abl, clean), rel=1e-4)


def test_perfect_reconstruction_recovers_all_loss(evaluator):
    eye = torch.eye(D_MLP)
    # relu(x) - relu(-x) = x: features in +/- pairs reconstruct the activation exactly.
    sae = fixed_sae(torch.cat([eye, -eye], 1), torch.cat([eye, -eye], 0),
                    torch.zeros(2 * D_MLP), torch.zeros(D_MLP))
    out = evaluator(sae)
    assert out["eval/loss_recovered"] == pytest.approx(1.0, abs=1e-5)
    assert out["eval/mse"] < 1e-10


def test_zero_and_mean_reconstructions_score_like_the_ablations(evaluator):
    zeros = torch.zeros(D_MLP, 8)
    sae = fixed_sae(zeros, zeros.T, torch.zeros(8), torch.zeros(D_MLP))
    out = evaluator(sae)
    assert out["eval/loss_recovered"] == pytest.approx(0.0, abs=1e-6)
    assert out["eval/dead_frac"] == 1.0 and out["eval/l0"] == 0.0
    sae = fixed_sae(zeros, zeros.T, torch.zeros(8), evaluator.mean_act)
    out = evaluator(sae)
    assert out["eval/loss_recovered"] == pytest.approx(evaluator.mean_ablation_score, abs=1e-5)
    assert out["eval/mean_abl_score"] == evaluator.mean_ablation_score


def test_frequencies_dead_and_ultra_low(model, tokens, evaluator):
    sae = SAE(D_MLP, 32, 2, pre_encoder_bias=True, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        sae.b_enc[:, :4] = -1e3  # never fire
    result = evaluator.evaluate(sae)
    freq = feature_frequencies(model, sae, tokens, HOOK, batch_rows=4, drop_bos=True)
    torch.testing.assert_close(result["frequency"], freq)
    assert (freq[:, :4] == 0).all()
    # Against the definition, from the SAE's own forward (einsum, not the counting's addmm):
    # the share of tokens with a positive activation. Rounding near 0 may flip one token.
    acts = harvest(model, tokens, HOOK, batch_rows=4, drop_bos=True)
    with torch.no_grad():
        _, f = sae(acts[:, None].expand(-1, sae.n_instances, -1))
    assert 0 < freq[:, 4:].mean() < 1
    torch.testing.assert_close(freq, (f > 0).float().mean(0),
                               rtol=0, atol=1.5 / acts.shape[0])
    dead, ultra = dead_and_ultra_low(freq, 1e-2)
    torch.testing.assert_close(result["dead_frac"], dead)
    l0 = (freq.sum(-1)).float()
    torch.testing.assert_close(result["l0"], l0, rtol=1e-5, atol=1e-5)
    d, u = dead_and_ultra_low(torch.tensor([0.0, 1e-5, 5e-5, 2e-4, 0.3]), 1e-4)
    assert d.item() == pytest.approx(0.2) and u.item() == pytest.approx(0.4)
    flat = evaluator(sae)
    assert "eval/loss_recovered/0" in flat and "eval/loss_recovered/1" in flat


def test_periodic_evaluation_lands_in_the_training_history(model, tokens, evaluator):
    acts = harvest(model, tokens, HOOK, batch_rows=12)
    cfg = SAEConfig(
        d_in=D_MLP, d_sae=128, l1_coeffs=(1e-3,), lr=1e-3, adam_betas=(0.9, 0.99),
        batch_size=64, n_steps=30, pre_encoder_bias=True, recon_reduction="sum",
        l1_reduction="mean_batch", resample="none", resample_every=1, resample_window=1,
        resample_stop=0, dead_frequency=0.0, seed=0,
    )
    sample = lambda step: acts[(step * 64) % 128:(step * 64) % 128 + 64]  # noqa: E731
    _, hist = train_sae(cfg, sample, None, "eval", log_every=5, eval_every=10, eval_fn=evaluator)
    evaluated = [int(row["step"]) for row in hist if "eval/loss_recovered" in row]
    assert evaluated == [0, 10, 20, 29]
    assert all("loss" in row for row in hist)
    with pytest.raises(ValueError, match="multiple of log_every"):
        train_sae(cfg, sample, None, "eval", log_every=5, eval_every=7, eval_fn=evaluator)


def test_patched_score_and_inference_time_codes(evaluator):
    from shared.ito import sae_ito_codes, sae_topk_codes
    from shared.sae_eval import decode_instance, encode_instance

    gen = torch.Generator().manual_seed(3)
    sae = SAE(D_MLP, 96, 2, pre_encoder_bias=True, generator=gen)
    with torch.no_grad():
        sae.b_dec.normal_(std=0.1, generator=gen)
    # The encoder's own splice through the public method equals `evaluate`'s number.
    encoder = lambda x: decode_instance(sae, encode_instance(sae, x, 1), 1)  # noqa: E731
    score, ce = evaluator.patched_loss_recovered(encoder)
    assert score == pytest.approx(float(evaluator.evaluate(sae)["loss_recovered"][1]), abs=1e-6)
    assert ce > evaluator.ce_clean
    # A +/- basis dictionary with a bias: gradient pursuit with L0 = d_in fits x - b_dec exactly
    # (orthogonal atoms), so the spliced model is the clean one.
    eye = torch.eye(D_MLP)
    basis = fixed_sae(torch.zeros(D_MLP, 2 * D_MLP), torch.cat([eye, -eye], 0),
                      torch.zeros(2 * D_MLP), torch.linspace(-1, 1, D_MLP))
    l0s = []

    def ito(x):
        codes = sae_ito_codes(basis, 0, x, D_MLP)
        l0s.append((codes != 0).sum(-1).max().item())
        return decode_instance(basis, codes, 0)

    score, ce = evaluator.patched_loss_recovered(ito)
    assert score == pytest.approx(1.0, abs=1e-5) and ce == pytest.approx(evaluator.ce_clean,
                                                                          abs=1e-5)
    assert max(l0s) <= D_MLP
    # Fewer atoms: worse, and never above the target; top-k of the encoder likewise.
    few = lambda x: decode_instance(basis, sae_ito_codes(basis, 0, x, 4), 0)  # noqa: E731
    assert evaluator.patched_loss_recovered(few)[0] < 1.0 - 1e-3
    x = torch.randn(30, D_MLP, generator=gen)
    assert ((sae_ito_codes(sae, 0, x, 5) != 0).sum(-1) <= 5).all()
    top = sae_topk_codes(sae, 0, x, 3)
    full = encode_instance(sae, x, 0)
    assert ((top != 0).sum(-1) <= 3).all()
    torch.testing.assert_close(top.sum(-1), full.topk(3, dim=-1).values.sum(-1))

"""The static-cache decoder against TransformerLens: same logits at every position (fp32), the
same steered completions as the uncached reference, bf16 close, and unsupported models refused."""

import dataclasses

import pytest
import torch

from replications.steering.sampling import Sampler, generate, generate_reference, seed_uniforms
from shared.decode import StaticDecoder, UnsupportedModel
from shared.lm import LMConfig, build_model

pytestmark = pytest.mark.integration

GPT2_TINY = LMConfig(n_layers=3, d_model=32, d_mlp=128, n_heads=4, d_head=8, act_fn="gelu_new",
                     normalization_type="LN", positional_embedding_type="standard", rotary_dim=0,
                     parallel_attn_mlp=False, n_ctx=64)
VOCAB = 97


def _model(cfg: LMConfig = GPT2_TINY, seed: int = 0):
    model = build_model(cfg, VOCAB, seed=seed).eval()
    # Non-zero biases and LayerNorm affine parameters, so every term of the decoder is exercised.
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".b", "b_Q", "b_K", "b_V", "b_O", "b_in", "b_out", "b_U")) or \
                    name.endswith(".w"):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model


@pytest.mark.parametrize("norm", ["LN", "LNPre"])
def test_steps_equal_full_forward(norm: str) -> None:
    model = _model(dataclasses.replace(GPT2_TINY, normalization_type=norm))
    tokens = torch.randint(0, VOCAB, (5, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(tokens)  # [rows, pos, vocab]
    dec = StaticDecoder(model, rows=5, max_len=16)
    got = [dec.prefill(tokens[:, :4])]
    for t in range(4, 12):
        got.append(dec.step(tokens[:, t]))
    for i, logits in enumerate(got):
        torch.testing.assert_close(logits, full[:, 3 + i], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("site", ["blocks.1.hook_resid_pre", "blocks.0.hook_resid_post"])
def test_prefill_runs_the_callers_hooks(site: str) -> None:
    # resid_pre hooks run in the decoder's own prompt pass; others through the HookedTransformer.
    model = _model()
    tokens = torch.randint(0, VOCAB, (2, 6), generator=torch.Generator().manual_seed(3))
    delta = torch.randn(2, 2, GPT2_TINY.d_model, generator=torch.Generator().manual_seed(4))

    def add(resid, hook=None):
        resid[:, :2] += delta
        return resid

    hook = (site, add)
    with torch.no_grad(), model.hooks(fwd_hooks=[hook]):
        full = model(tokens)
    dec = StaticDecoder(model, rows=2, max_len=8)
    torch.testing.assert_close(dec.prefill(tokens[:, :5], [hook]), full[:, 4], atol=2e-5, rtol=0)
    # The steered prompt's keys and values are in the cache: the next step sees them.
    torch.testing.assert_close(dec.step(tokens[:, 5]), full[:, 5], atol=2e-5, rtol=0)


def test_static_generation_equals_uncached_reference() -> None:
    model = _model()
    prompt = torch.tensor([1, 5, 9, 13])
    vectors = torch.randn(6, 3, GPT2_TINY.d_model, generator=torch.Generator().manual_seed(5))
    uniforms = seed_uniforms(torch.arange(6), 10)
    sampler = Sampler(temperature=1.0, top_p=0.3, freq_penalty=1.0, candidates=8)
    ref, _ = generate_reference(model, prompt, vectors, uniforms, "blocks.1.hook_resid_pre",
                                sampler, eos_id=-1)
    fast = generate(model, prompt, vectors, uniforms, "blocks.1.hook_resid_pre", sampler,
                    eos_id=-1, decoder="static")
    assert torch.equal(fast.tokens, ref.tokens)
    torch.testing.assert_close(fast.first_logits, ref.first_logits, atol=2e-5, rtol=0)


def test_bf16_steps_are_close() -> None:
    model = _model()
    tokens = torch.randint(0, VOCAB, (4, 10), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        full = model(tokens)
    dec = StaticDecoder(model, rows=4, max_len=10, dtype=torch.bfloat16)
    dec.prefill(tokens[:, :5])
    for t in range(5, 10):
        err = (dec.step(tokens[:, t]) - full[:, t]).abs().max().item()
        assert err < 0.05 * full[:, t].abs().max().item()


def test_unsupported_models_are_refused() -> None:
    rotary = dataclasses.replace(GPT2_TINY, positional_embedding_type="rotary", rotary_dim=8,
                                 parallel_attn_mlp=True)
    with pytest.raises(UnsupportedModel, match="positional_embedding_type 'rotary'"):
        StaticDecoder(build_model(rotary, VOCAB, seed=0), rows=1, max_len=8)
    with pytest.raises(ValueError, match="exceeds the model's context"):
        StaticDecoder(_model(), rows=1, max_len=65)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_steps_equal_eager() -> None:
    model = _model().cuda()
    tokens = torch.randint(0, VOCAB, (3, 9), generator=torch.Generator().manual_seed(7)).cuda()
    eager = StaticDecoder(model, rows=3, max_len=12, cuda_graph=False)
    graph = StaticDecoder(model, rows=3, max_len=12, cuda_graph=True)
    torch.testing.assert_close(graph.prefill(tokens[:, :4]), eager.prefill(tokens[:, :4]))
    for t in range(4, 9):
        torch.testing.assert_close(graph.step(tokens[:, t]).clone(), eager.step(tokens[:, t]))

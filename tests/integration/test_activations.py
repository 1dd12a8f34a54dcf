"""Activation harvesting and the shuffled, resumable activation buffer on a tiny model."""

import dataclasses

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from shared.activations import ActivationBuffer, BufferConfig, harvest

pytestmark = pytest.mark.integration

HOOK = "blocks.0.mlp.hook_post"


def tiny_model() -> HookedTransformer:
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=32, n_ctx=16, d_head=8, n_heads=4, d_mlp=64, d_vocab=64,
        act_fn="gelu", normalization_type="LN", seed=0, device="cpu",
    )
    return HookedTransformer(cfg).eval()


def tiny_tokens(rows: int, ctx: int = 16, seed: int = 0) -> torch.Tensor:
    toks = torch.randint(1, 64, (rows, ctx), generator=torch.Generator().manual_seed(seed))
    toks[:, 0] = 0  # BOS
    return toks


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    return tiny_model()


def buffer_cfg(**kw) -> BufferConfig:
    base = dict(hook_name=HOOK, n_activations=256, batch_size=32, rows_per_batch=4,
                reserved_rows=8, drop_bos=True, seed=0)
    return BufferConfig(**{**base, **kw})


@pytest.mark.parametrize("hook", [HOOK, "blocks.1.hook_resid_pre", "blocks.1.attn.hook_z"])
@pytest.mark.parametrize("drop_bos", [True, False])
def test_harvest_matches_run_with_cache(model, hook, drop_bos):
    toks = tiny_tokens(10)
    _, cache = model.run_with_cache(toks, names_filter=hook)
    ref = cache[hook][:, 1:] if drop_bos else cache[hook]
    ref = ref.reshape(ref.shape[0] * ref.shape[1], -1)
    got = harvest(model, toks, hook, batch_rows=3, drop_bos=drop_bos)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_harvest_stops_after_the_hook_and_leaves_other_hooks_alone(model):
    later = []
    handle = model.hook_dict["ln_final.hook_normalized"].register_forward_hook(
        lambda mod, inp, out: later.append(1))
    try:
        harvest(model, tiny_tokens(4), HOOK, batch_rows=2)
        assert later == []  # the forward pass never reached the final layer norm
        model(tiny_tokens(1))
        assert later == [1]  # and the caller's hook is still installed
    finally:
        handle.remove()


def test_buffer_refills_when_half_served_and_serves_correct_activations(model):
    toks = tiny_tokens(40)
    buf = ActivationBuffer(model, toks, buffer_cfg())
    # Each refill restores >= 256 live activations; one is due once 128 have been served.
    for step in range(20):
        batch = buf.sample(step)
        assert batch.shape == (32, 64) and batch.dtype == torch.float32
        assert buf.refills == 1 + step // 4
        assert buf.size >= 256
        # Every served activation is the one its (row, position) label names.
        rows, pos = buf.last_served[:, 0], buf.last_served[:, 1]
        assert (rows < 32).all()  # rows 32..39 are reserved
        ref = harvest(model, toks[rows], HOOK, batch_rows=32, drop_bos=False)
        ref = ref.reshape(32, 16, 64)[torch.arange(32), pos]
        torch.testing.assert_close(batch, ref, rtol=1e-5, atol=1e-6)


def test_buffer_is_deterministic_and_mixes_prompts(model):
    toks = tiny_tokens(72)
    cfg = buffer_cfg(n_activations=960, rows_per_batch=8)
    a, b = ActivationBuffer(model, toks, cfg), ActivationBuffer(model, toks, cfg)
    worst = 0
    for step in range(30):
        assert torch.equal(a.sample(step), b.sample(step))
        worst = max(worst, int(torch.bincount(a.last_served[:, 0]).max()))
    # 32 tokens drawn from ~64 prompts' 15 positions: a prompt rarely gives more than a few
    # (in prompt order a batch would hold 15 tokens of one prompt).
    assert worst <= 4


def test_state_round_trip_reharvests_identical_activations(model):
    toks = tiny_tokens(40)
    cfg = buffer_cfg()
    ref = ActivationBuffer(model, toks, cfg)
    for step in range(11):
        ref.sample(step)
    state = ref.state_dict()
    # Only labels, order and counters: no activations in the checkpoint.
    tensors = [v for v in state.values() if isinstance(v, torch.Tensor)]
    assert all(not t.is_floating_point() for t in tensors)
    resumed = ActivationBuffer(model, toks, cfg)
    resumed.load_state_dict(state)
    for step in range(11, 40):
        assert torch.equal(ref.sample(step), resumed.sample(step)), step
    assert resumed.refills == ref.refills


def test_negative_keys_use_reserved_rows_and_leave_the_buffer_alone(model):
    toks = tiny_tokens(40)
    buf = ActivationBuffer(model, toks, buffer_cfg())
    reserved = harvest(model, toks[32:], HOOK, batch_rows=4)
    first = buf.sample(-5)
    assert torch.equal(first, buf.sample(-5))
    assert not torch.equal(first, buf.sample(-6))
    # Every row of the pool batch is one of the reserved activations (same model batches).
    assert (first[:, None] == reserved[None]).all(-1).any(-1).all()
    buf.sample(0)  # the training stream starts at step 0 regardless
    with pytest.raises(ValueError, match="in order"):
        buf.sample(5)
    no_reserve = ActivationBuffer(model, toks, dataclasses.replace(buffer_cfg(), reserved_rows=0))
    with pytest.raises(ValueError, match="reserved_rows"):
        no_reserve.sample(-1)

"""The paper profile's GPU kernels against the CPU at small shapes, same weights and inputs:
the LM trainer, the activation buffer, the local-processing harvest and steered rollouts (both
decoders). Skipped without a CUDA device; the prepared GPU check (benchmarks/gpu_check.py) runs
them. TF32 stays off, so fp32 on both sides."""

import copy
import dataclasses

import pytest
import torch

from shared.activations import ActivationBuffer, BufferConfig
from shared.lm import LMConfig, build_model
from shared.lm_train import LMTrainConfig, LMTrainer, StandInConfig

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

V = 64
PYTHIA_TINY = LMConfig(n_layers=2, d_model=32, d_mlp=128, n_heads=4, d_head=8, act_fn="gelu",
                       normalization_type="LN", positional_embedding_type="rotary", rotary_dim=4,
                       parallel_attn_mlp=True, n_ctx=64)
GPT2_TINY = LMConfig(n_layers=2, d_model=32, d_mlp=128, n_heads=4, d_head=8, act_fn="gelu_new",
                     normalization_type="LN", positional_embedding_type="standard", rotary_dim=0,
                     parallel_attn_mlp=False, n_ctx=64)


def rows(n: int, length: int, seed: int) -> torch.Tensor:
    out = torch.randint(1, V, (n, length), generator=torch.Generator().manual_seed(seed))
    out[:, 0] = 0
    return out


def on_both(cfg: LMConfig):
    cpu = build_model(cfg, V, seed=0).eval()
    return cpu, copy.deepcopy(cpu).to("cuda")


def test_lm_trainer_steps_match() -> None:
    tc = LMTrainConfig(n_steps=5, batch_size=8, lr=3e-3, min_lr_fraction=0.1, warmup_steps=1,
                       schedule="cosine", weight_decay=0.01, adam_betas=(0.9, 0.99),
                       grad_clip=1.0, log_every=1, eval_every=5, eval_rows=8,
                       checkpoint_every=5, seed=0)
    cfg = StandInConfig(PYTHIA_TINY, tc)
    train, val = rows(64, 32, 1), rows(8, 32, 2)
    cpu = LMTrainer(cfg, train, val, V, "cpu")
    gpu = LMTrainer(cfg, train, val, V, "cuda")
    gpu.model.load_state_dict(cpu.model.state_dict())
    for step in range(4):
        a, b = cpu.step(step), gpu.step(step)
        assert abs(a["loss"] - b["loss"]) < 1e-4
    for (name, p), q in zip(cpu.model.named_parameters(), gpu.model.parameters()):
        if name.endswith("b_K"):
            # Softmax ignores a key bias: its gradient is zero but for rounding, which Adam
            # scales up to lr-sized steps of either sign (seen on an H200: not a device bug).
            continue
        torch.testing.assert_close(q.cpu(), p, atol=1e-4, rtol=1e-3, msg=name)


def test_activation_buffer_matches() -> None:
    cpu_model, gpu_model = on_both(PYTHIA_TINY)
    cfg = BufferConfig(hook_name="blocks.1.hook_resid_post", n_activations=256, batch_size=32,
                       rows_per_batch=4, reserved_rows=4, drop_bos=True, seed=0)
    tokens = rows(24, 16, 3)
    a, b = ActivationBuffer(cpu_model, tokens, cfg), ActivationBuffer(gpu_model, tokens, cfg)
    for step in range(12):  # across a refill
        torch.testing.assert_close(b.sample(step).cpu(), a.sample(step), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(b.sample(-1).cpu(), a.sample(-1), atol=1e-5, rtol=1e-4)


def test_local_processing_harvest_matches() -> None:
    from replications.local_processing import config as local_config
    from replications.local_processing import harvest

    cpu_model, gpu_model = on_both(PYTHIA_TINY)
    base = local_config.load("smoke")
    toks = rows(6, 48, 4).int()
    results = []
    for model, device in ((cpu_model, "cpu"), (gpu_model, "cuda")):
        cfg = dataclasses.replace(
            base, data=dataclasses.replace(base.data, n_prompts=6, prompt_len=48, min_position=16),
            harvest=dataclasses.replace(base.harvest, device=device))
        results.append(harvest.run(model, toks, cfg, "parity", progress=False)[0])
    torch.testing.assert_close(results[1].cos.cpu(), results[0].cos, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("decoder", ["hooked", "static"])
def test_steered_rollouts_match(decoder: str) -> None:
    from replications.steering.sampling import Sampler, generate, seed_uniforms

    cpu_model, gpu_model = on_both(GPT2_TINY)
    with torch.no_grad():  # peaked next-token distributions, so rounding cannot flip a draw
        for m in (cpu_model, gpu_model):
            m.W_U.mul_(20.0)
    prompt = torch.tensor([0, 5, 9, 13])
    vectors = torch.randn(8, 3, 32, generator=torch.Generator().manual_seed(5))
    uniforms = seed_uniforms(torch.arange(8), 12)
    sampler = Sampler(temperature=1.0, top_p=0.3, freq_penalty=1.0, candidates=16)
    out = [generate(m, prompt, vectors, uniforms, "blocks.1.hook_resid_pre", sampler, eos_id=-1,
                    decoder=decoder) for m in (cpu_model, gpu_model)]  # type: ignore[arg-type]
    torch.testing.assert_close(out[1].first_logits, out[0].first_logits, atol=1e-3, rtol=1e-4)
    assert (out[1].tokens == out[0].tokens).float().mean() >= 0.95

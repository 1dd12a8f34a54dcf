"""How far tf32 and bf16 move each GPU rule's reported numbers from fp32 (issue: paper-profile
precision choices measured, not assumed).

Three kernels, each run at every precision from the same weights and inputs, compared with fp32
on the quantity its write-up reports:

- `sae`: the SAE trainer (monosemanticity, steering) on synthetic activations with known sparse
  features; after `--sae-steps` steps: fraction of variance unexplained, L0, dead fraction and the
  mean max cosine of the decoder to the true features.
- `harvest`: the local-processing harvest (fact finding post 5) on a random-weight model of the
  chosen shape: the per-token centred cosines and the per-layer medians the write-up plots.
- `rollouts`: steered rollouts (steering) through the static decoder: agreement of the sampled
  tokens with fp32 and the KL of the first sampled position; TransformerLens's own cache in fp32
  is the reference the fp32 static decoder must match.

Usage:
  python benchmarks/precision_fidelity.py --device cpu --out benchmarks/results/precision_cpu.json
  python benchmarks/precision_fidelity.py --device cuda --paper --out $OUT/precision_cuda.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared import runtime  # noqa: E402
from shared.io import write_json  # noqa: E402
from shared.runtime import step_generator  # noqa: E402
from shared.sae import SAEConfig, mmcs  # noqa: E402
from shared.sae_train import SAETrainer  # noqa: E402

# Tolerances a precision must meet to be the paper default (relative to fp32 unless stated).
TOLERANCE = {
    "sae_fvu_rel": 0.05, "sae_l0_rel": 0.05, "sae_mmcs_abs": 0.01,
    "harvest_median_abs": 0.005,
    "rollout_total_variation": 0.02,
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sae_fidelity(device: torch.device, precisions: list[str], d_in: int, d_sae: int, batch: int,
                 steps: int) -> dict[str, Any]:
    """Train the same SAE at each precision on the same synthetic batches; compare with fp32."""
    n_true = d_sae // 2
    gen = torch.Generator().manual_seed(0)
    true = torch.nn.functional.normalize(torch.randn(n_true, d_in, generator=gen), dim=-1)
    true = true.to(device)
    p_active = 16 / n_true  # ~16 true features per input

    def sample(step: int) -> torch.Tensor:
        g = step_generator(11, step, device)
        on = runtime.rand((batch, n_true), g, device) < p_active
        mags = runtime.rand((batch, n_true), g, device) * on
        return mags @ true

    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, l1_coeffs=(0.2,), lr=1e-3,
                    adam_betas=(0.9, 0.99), batch_size=batch, n_steps=steps,
                    pre_encoder_bias=True, recon_reduction="sum", l1_reduction="mean_batch",
                    resample="reinit", resample_every=max(2, steps // 2),
                    resample_window=max(1, steps // 4), resample_stop=steps,
                    dead_frequency=1e-5, seed=0)
    held = torch.cat([sample(-(i + 1)) for i in range(4)])
    out: dict[str, Any] = {"d_in": d_in, "d_sae": d_sae, "batch": batch, "steps": steps,
                           "n_true_features": n_true, "results": {}}
    for prec in precisions:
        trainer = SAETrainer(cfg, sample, device, precision=prec)  # type: ignore[arg-type]
        _sync(device)
        t0 = time.perf_counter()
        for step in range(steps):
            trainer.step(step)
        _sync(device)
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            x_hat, f = trainer.sae(held.unsqueeze(1))
            fvu = ((x_hat[:, 0] - held).pow(2).sum() / (held - held.mean(0)).pow(2).sum()).item()
            l0 = (f > 0).float().sum(-1).mean().item()
            dead = ((f > 0).sum(0) == 0).float().mean().item()
            score, _ = mmcs(trainer.sae.W_dec[0], true)
        out["results"][prec] = {"fvu": fvu, "l0": l0, "dead_fraction": dead, "mmcs": score,
                                "resampled": trainer.resampled, "seconds": seconds}
    ref = out["results"].get("fp32")
    if ref:
        for prec, r in out["results"].items():
            r["fvu_rel_diff"] = abs(r["fvu"] - ref["fvu"]) / ref["fvu"]
            r["l0_rel_diff"] = abs(r["l0"] - ref["l0"]) / max(ref["l0"], 1e-9)
            r["mmcs_abs_diff"] = abs(r["mmcs"] - ref["mmcs"])
            r["within_tolerance"] = (r["fvu_rel_diff"] <= TOLERANCE["sae_fvu_rel"]
                                     and r["l0_rel_diff"] <= TOLERANCE["sae_l0_rel"]
                                     and r["mmcs_abs_diff"] <= TOLERANCE["sae_mmcs_abs"])
    return out


def harvest_fidelity(device: torch.device, precisions: list[str], arch: str, n_prompts: int,
                     prompt_len: int) -> dict[str, Any]:
    """The local-processing cosines at each precision against fp32, same random-weight model."""
    import dataclasses

    from benchmarks.local_processing_throughput import ARCHS, random_rows
    from replications.local_processing import config as local_config
    from replications.local_processing import harvest as stage
    from shared.lm import build_model

    lm_cfg, vocab = ARCHS[arch]
    model = build_model(lm_cfg, vocab, seed=0, device=device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    rows = random_rows(n_prompts, prompt_len, vocab, seed=1)
    base = local_config.load("default")
    out: dict[str, Any] = {"arch": arch, "n_prompts": n_prompts, "prompt_len": prompt_len,
                           "results": {}}
    cos: dict[str, torch.Tensor] = {}
    # bf16 last: casting the weights down and back would change the fp32 model.
    for prec in sorted(precisions, key=lambda q: q == "bf16"):
        cfg = dataclasses.replace(
            base, data=dataclasses.replace(base.data, n_prompts=n_prompts, prompt_len=prompt_len,
                                           min_position=min(32, prompt_len // 2)),
            harvest=dataclasses.replace(base.harvest, precision=prec, device=device.type,
                                        batch_tokens=min(base.harvest.batch_tokens, 16384)))
        run_model = model.to(torch.bfloat16) if prec == "bf16" else model.to(torch.float32)
        harvest, timing = stage.run(run_model, rows, cfg, "fidelity", progress=False)
        cos[prec] = harvest.cos.float()
        out["results"][prec] = {"seconds": timing.summary()["seconds"]}
    model.to(torch.float32)
    if "fp32" in cos:
        ref = cos["fp32"]
        # Median over tokens per (context, layer): the quantity the write-up plots.
        ref_med = ref.median(dim=0).values
        for prec, c in cos.items():
            med = c.median(dim=0).values
            r = out["results"][prec]
            r["token_cos_max_abs_diff"] = (c - ref).abs().max().item()
            r["token_cos_mean_abs_diff"] = (c - ref).abs().mean().item()
            r["median_max_abs_diff"] = (med - ref_med).abs().max().item()
            r["within_tolerance"] = r["median_max_abs_diff"] <= TOLERANCE["harvest_median_abs"]
    return out


def _nucleus(logits: torch.Tensor, counts: torch.Tensor, sampler: Any) -> torch.Tensor:
    """The distribution `sample_next` draws from: temperature, penalty, top-p, renormalised."""
    from replications.steering.sampling import _top_p_keep

    x = logits.float() / sampler.temperature - sampler.freq_penalty * counts
    probs, order = x.softmax(-1).sort(-1, descending=True)
    kept = probs * _top_p_keep(probs, sampler.top_p)
    kept = kept / kept.sum(-1, keepdim=True)
    return torch.zeros_like(kept).scatter_(-1, order, kept)


def rollout_fidelity(device: torch.device, arch: str, rows: int, new_tokens: int) -> dict[str, Any]:
    """Steered rollouts: each decoder fed the same (fp32-sampled) tokens, compared per step.

    Whole rollouts are a poor measure: one flipped token makes the rest of a row another
    rollout, so on a flat (random-weight) model any rounding difference looks like total
    disagreement. Teacher-forced, each step's next-token distribution and its draw (the same
    uniform number, counts and top-p) are compared with fp32's. The total-variation distance
    between the two sampling distributions (after temperature, frequency penalty and top-p)
    bounds how much a precision can move any rollout statistic, P(success) included, per step;
    the flip rate of a draw with the same uniform number is larger, since near-equal tokens
    that swap places in the sorted nucleus change which token a uniform lands on without
    changing the distribution."""
    from benchmarks.steering_rollouts import ARCHS, PROMPT_LEN, VECTOR_LEN
    from replications.steering.actadd import FrontSteering
    from replications.steering.sampling import (
        Sampler,
        _token_counts,
        generate,
        sample_next,
        seed_uniforms,
    )
    from shared.decode import StaticDecoder, decode_dtype
    from shared.lm import build_model

    lm_cfg, vocab, layer = ARCHS[arch]
    model = build_model(lm_cfg, vocab, seed=0, device=device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, vocab, (PROMPT_LEN,), generator=gen)
    vectors = (4.0 * torch.randn(rows, VECTOR_LEN, lm_cfg.d_model, generator=gen)).to(device)
    uniforms = seed_uniforms(torch.arange(rows), new_tokens).to(device)
    sampler = Sampler(temperature=1.0, top_p=0.3, freq_penalty=1.0, candidates=64)
    hook = f"blocks.{layer}.hook_resid_pre"
    ref = generate(model, prompt, vectors, uniforms, hook, sampler, eos_id=-1, decoder="hooked")
    static = generate(model, prompt, vectors, uniforms, hook, sampler, eos_id=-1,
                      decoder="static")
    tokens = prompt.to(device).unsqueeze(0).expand(rows, -1).contiguous()
    forced = ref.tokens.to(device)
    logits: dict[str, list[torch.Tensor]] = {}
    for precision in ("fp32", "bf16"):
        dec = StaticDecoder(model, rows, PROMPT_LEN + new_tokens, decode_dtype(precision))
        steps = [dec.prefill(tokens, [(hook, FrontSteering(vectors, once=True))]).clone()]
        for t in range(new_tokens - 1):
            steps.append(dec.step(forced[:, t]).clone())
        logits[precision] = steps
    out: dict[str, Any] = {
        "arch": arch, "rows": rows, "new_tokens": new_tokens,
        "static_fp32_rollouts_equal_hooked": bool(torch.equal(static.tokens, ref.tokens)),
        "results": {},
    }
    counts = _token_counts(tokens, vocab)
    kl, flips, top1, tv = {"bf16": []}, {"bf16": []}, {"bf16": []}, {"bf16": []}  # type: ignore[var-annotated]
    for t in range(new_tokens):
        base = logits["fp32"][t]
        draw_ref = sample_next(base, counts, uniforms[:, t], sampler)
        lp_ref = base.log_softmax(-1)
        nucleus_ref = _nucleus(base, counts, sampler)
        for precision in ("bf16",):
            x = logits[precision][t]
            kl[precision].append((lp_ref.exp() * (lp_ref - x.log_softmax(-1))).sum(-1).mean())
            flips[precision].append(
                (sample_next(x, counts, uniforms[:, t], sampler) != draw_ref).float().mean())
            top1[precision].append((x.argmax(-1) == base.argmax(-1)).float().mean())
            tv[precision].append(
                0.5 * (_nucleus(x, counts, sampler) - nucleus_ref).abs().sum(-1).mean())
        counts.scatter_add_(1, forced[:, t:t + 1], torch.ones(rows, 1, device=device))
    for precision in ("bf16",):
        mean_tv = torch.stack(tv[precision]).mean().item()
        out["results"][precision] = {
            "mean_kl_nats": torch.stack(kl[precision]).mean().item(),
            "mean_total_variation": mean_tv,
            "per_step_flip_rate": torch.stack(flips[precision]).mean().item(),
            "top1_agreement": torch.stack(top1[precision]).mean().item(),
            "within_tolerance": mean_tv <= TOLERANCE["rollout_total_variation"],
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--paper", action="store_true",
                   help="paper shapes: SAE 2048 -> 16384 batch 4096, Pythia-2.8B, GPT-2 XL")
    p.add_argument("--kernels", nargs="+", choices=["sae", "harvest", "rollouts"],
                   default=["sae", "harvest", "rollouts"])
    p.add_argument("--sae-steps", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    precisions = ["fp32", "tf32", "bf16"] if cuda else ["fp32", "bf16"]
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "torch": torch.__version__, "tolerance": TOLERANCE,
    }
    if "sae" in args.kernels:
        shape = (2048, 16384, 4096) if args.paper else (64, 512, 256)
        # 400 steps at the paper shape (the first H200 run) ended before the SAE learned
        # anything (FVU 1.003): 2000 let it get past the start of learning.
        steps = args.sae_steps or (2000 if args.paper else 200)
        report["sae"] = sae_fidelity(device, precisions, *shape, steps=steps)
    if "harvest" in args.kernels:
        arch, n, length = ("pythia-2.8b", 16, 256) if args.paper else ("tiny", 8, 48)
        report["harvest"] = harvest_fidelity(device, precisions, arch, n, length)
    if "rollouts" in args.kernels:
        arch, rows = ("gpt2-xl", 256) if args.paper else ("tiny", 32)
        report["rollouts"] = rollout_fidelity(device, arch, rows, 50 if args.paper else 20)
    if args.out is not None:
        write_json(args.out, report)
    import json

    print(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    main()

"""Harvesting throughput of the local-processing replication (tokens per second), one run.

Runs `replications.local_processing.harvest.run` (the code the `local_harvest` rule runs: a
full-context pass over the prompts that also accumulates the per-layer mean, then every
truncated context of every sampled token, batched) on a random-weight model of a given
architecture and random token rows, and reports:

- sampled tokens per second: tokens whose full-context and 10 truncated residuals after every
  block, and centred cosines, were computed (the unit of the analysis);
- token positions per second through the model (both passes; `padded` counts its padding);
- estimated model FLOP/s: 2 x (parameters of the blocks) x positions (the unembedding is never
  run; attention scores over <= prompt_len keys are left out of the count);
- the same measurement for a one-prompt-at-a-time loop over a few sampled tokens (each full
  prompt and each truncated prompt alone), for the speed-up of batching.

Architectures: `pythia-2.8b` (32 layers, d_model 2560, 32 heads of 80, d_mlp 10240, rotary on
20 of 80 dimensions, parallel attention + MLP, vocabulary 50304: the paper profile's model,
random weights), `stand-in` (the fact-finding default stand-in: 6 layers, d_model 128, rotary,
parallel, vocabulary 2048), `tiny` (tests).

Usage:
  python benchmarks/local_processing_throughput.py --arch stand-in --threads 1 \\
      --out benchmarks/results/local_processing_cpu.json
  python benchmarks/local_processing_throughput.py --arch pythia-2.8b --device cuda \\
      --precision fp32 tf32 bf16 --out benchmarks/results/local_processing_cuda.json
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from replications.local_processing import config as local_config
from replications.local_processing import harvest
from replications.local_processing.harvest import matmul_precision, sample_positions
from shared.io import emit_report
from shared.lm import LMConfig, build_model
from shared.runtime import benchmark_head, load_average

ARCHS: dict[str, tuple[LMConfig, int]] = {
    "pythia-2.8b": (LMConfig(n_layers=32, d_model=2560, d_mlp=10240, n_heads=32, d_head=80,
                             act_fn="gelu", normalization_type="LN",
                             positional_embedding_type="rotary", rotary_dim=20,
                             parallel_attn_mlp=True, n_ctx=2048), 50304),
    "stand-in": (LMConfig(n_layers=6, d_model=128, d_mlp=512, n_heads=4, d_head=32,
                          act_fn="gelu", normalization_type="LN",
                          positional_embedding_type="rotary", rotary_dim=32,
                          parallel_attn_mlp=True, n_ctx=128), 2048),
    "tiny": (LMConfig(n_layers=2, d_model=16, d_mlp=64, n_heads=2, d_head=8, act_fn="gelu",
                      normalization_type="LN", positional_embedding_type="rotary",
                      rotary_dim=4, parallel_attn_mlp=True, n_ctx=64), 64),
}


def block_params(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith("blocks."))


def random_rows(n: int, length: int, vocab: int, seed: int) -> torch.Tensor:
    rows = torch.randint(1, vocab, (n, length), generator=torch.Generator().manual_seed(seed))
    rows[:, 0] = 0  # BOS
    return rows.int()


def bench_config(args: argparse.Namespace, layout: str, precision: str) -> Any:
    cfg = local_config.load("default")
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, prompt_len=args.prompt_len, n_prompts=args.n_prompts,
                                 samples_per_prompt=args.samples_per_prompt,
                                 min_position=args.min_position),
        harvest=dataclasses.replace(cfg.harvest, layout=layout, precision=precision,
                                    batch_tokens=args.batch_tokens, device=args.device),
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def naive_rate(model, rows: torch.Tensor, cfg: Any, n: int) -> dict[str, float]:
    """One prompt at a time: each full prompt, then each truncated prompt, alone."""
    dev = next(model.parameters()).device
    L = model.cfg.n_layers
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(L)]
    s = sample_positions(rows.shape[0], rows.shape[1], cfg.data.samples_per_prompt,
                         cfg.data.min_position, cfg.data.seed)
    pairs = list(zip(s.prompt.tolist(), s.position.tolist()))[:n]
    _sync(dev)
    t0 = time.perf_counter()
    positions = 0
    with matmul_precision(cfg.harvest.precision, dev):
        for prompt, pos in pairs:
            model.run_with_cache(rows[prompt: prompt + 1].long().to(dev), names_filter=names)
            positions += rows.shape[1]
            for c in cfg.harvest.contexts:
                toks = torch.cat([rows[prompt, :1], rows[prompt, pos - c + 1: pos + 1]])
                model.run_with_cache(toks[None].long().to(dev), names_filter=names)
                positions += c + 1
    _sync(dev)
    seconds = time.perf_counter() - t0
    return {"samples": len(pairs), "seconds": seconds, "samples_per_s": len(pairs) / seconds,
            "positions_per_s": positions / seconds}


def summarise(args: argparse.Namespace, model, rows: torch.Tensor, layout: str,
              precision: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    med = {k: statistics.median(r[k] for r in rounds)
           for k in ("seconds", "samples_per_s", "positions_per_s", "full_positions_per_s",
                     "truncated_positions_per_s")}
    flops = 2 * block_params(model) * med["positions_per_s"]
    out = {"layout": layout, "precision": precision, "rounds": rounds, **{f"{k}_median": v
           for k, v in med.items()}, "model_tflops_per_s": flops / 1e12,
           "positions_per_round": rounds[0]["positions"]}
    if args.naive_samples:
        out["naive"] = naive_rate(model, rows, bench_config(args, layout, precision),
                                  args.naive_samples)
        out["speedup_over_naive"] = med["samples_per_s"] / out["naive"]["samples_per_s"]
    return out


def bench(args: argparse.Namespace, model, rows: torch.Tensor,
          precision: str) -> list[dict[str, Any]]:
    """Every layout, rounds alternating between them (ABBA...) so load changes hit all alike."""
    dev = next(model.parameters()).device
    cfgs = {layout: bench_config(args, layout, precision) for layout in args.layouts}
    for cfg in cfgs.values():  # warm-up (untimed)
        warm = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, n_prompts=2))
        harvest.run(model, rows[:2], warm, "bench", progress=False)
    rounds: dict[str, list[dict[str, Any]]] = {layout: [] for layout in args.layouts}
    for i in range(args.rounds):
        order = args.layouts if i % 2 == 0 else list(reversed(args.layouts))
        for layout in order:
            _sync(dev)
            _, timing = harvest.run(model, rows, cfgs[layout], "bench", progress=False)
            rounds[layout].append(timing.summary() | {"positions": timing.positions})
    return [summarise(args, model, rows, layout, precision, rounds[layout])
            for layout in args.layouts]


def markdown(report: dict[str, Any]) -> str:
    s, m = report["settings"], report["machine"]
    lines = [
        f"# Local-processing harvest throughput ({report['device']}, {s['arch']})", "",
        (f"Measured {report['date']} on {m.get('gpu') or m.get('cpu')} (torch {m['torch']}, "
         f"threads {m['torch_threads']}; load average before/after "
         f"{report['load_average_before']} / {report['load_average_after']})."),
        (f"Random-weight {s['arch']} ({report['block_params']:,} block parameters); "
         f"{s['n_prompts']} prompts x {s['prompt_len']} tokens, {s['samples_per_prompt']} "
         f"sampled tokens each, contexts 1-10 (+ BOS), {s['batch_tokens']} positions per "
         f"forward; median of {s['rounds']} rounds per layout, alternating between layouts."),
        "",
        ("| layout | precision | sampled tokens/s | positions/s | full pass positions/s "
         "| truncated pass positions/s | est. TFLOP/s | s per round | vs one prompt at a time |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        naive = (f"{r['speedup_over_naive']:.1f}x ({r['naive']['samples_per_s']:.2f} "
                 f"tokens/s)" if "naive" in r else "-")
        lines.append(
            f"| {r['layout']} | {r['precision']} | {r['samples_per_s_median']:,.1f} | "
            f"{r['positions_per_s_median']:,.0f} | {r['full_positions_per_s_median']:,.0f} | "
            f"{r['truncated_positions_per_s_median']:,.0f} | {r['model_tflops_per_s']:.3g} | "
            f"{r['seconds_median']:.2f} | {naive} |")
    lines += ["", ("Sampled token: its full-context residual after every block (from the "
                   "prompt's shared forward pass) plus 10 truncated runs; FLOPs estimated as "
                   "2 x block parameters x positions.")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=sorted(ARCHS), default="stand-in")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", nargs="+", choices=["fp32", "tf32", "bf16"], default=None)
    p.add_argument("--layouts", nargs="+", choices=["by_length", "padded"],
                   default=["by_length", "padded"])
    p.add_argument("--n-prompts", type=int, default=None)
    p.add_argument("--prompt-len", type=int, default=None)
    p.add_argument("--samples-per-prompt", type=int, default=8)
    p.add_argument("--min-position", type=int, default=32)
    p.add_argument("--batch-tokens", type=int, default=None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--naive-samples", type=int, default=None,
                   help="sampled tokens for the one-prompt-at-a-time comparison (0: skip)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="results JSON (a .md is written beside)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but no CUDA device is available")
    cuda = device.type == "cuda"
    precisions = args.precision or (["fp32", "tf32", "bf16"] if cuda else ["fp32"])
    if not cuda and "tf32" in precisions:
        p.error("tf32 is a CUDA tensor-core mode")
    if args.threads:
        torch.set_num_threads(args.threads)
    big = args.arch == "pythia-2.8b"
    args.n_prompts = args.n_prompts or (512 if big and cuda else 64)
    args.prompt_len = args.prompt_len or (256 if big else 128)
    args.batch_tokens = args.batch_tokens or (16384 if cuda else 8192)
    if args.naive_samples is None:
        args.naive_samples = 16
    lm_cfg, d_vocab = ARCHS[args.arch]
    load_before = load_average()
    model = build_model(lm_cfg, d_vocab, seed=args.seed, device=device).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    rows = random_rows(args.n_prompts, args.prompt_len, d_vocab, args.seed)
    results = []
    for precision in precisions:
        model = model.to(torch.bfloat16 if precision == "bf16" else torch.float32)
        results += bench(args, model, rows, precision)
    report = {
        **benchmark_head(device, load_before), "device": args.device,
        "block_params": block_params(model),
        "settings": {k: getattr(args, k) for k in
                     ("arch", "n_prompts", "prompt_len", "samples_per_prompt", "min_position",
                      "batch_tokens", "rounds", "naive_samples", "seed")},
        "results": results,
    }
    emit_report(report, markdown(report), args.out)
    return report


if __name__ == "__main__":
    main()

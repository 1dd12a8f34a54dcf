"""Steered-rollout throughput: completions per second of the steering replication's sampler.

Times `replications.steering.sampling.generate` (every condition and seed in one batch, one
uncached prompt pass with per-row steering vectors at the front positions, then one KV-cached
pass per new token, vectorised frequency penalty and top-p) against the route ActAdd's code
takes: TransformerLens `HookedTransformer.generate` with an ActAdd-style hook (added when the
residual holds the whole prompt, skipped on cached one-position passes), on the same model,
prompt, vectors and sampling settings (temperature 1.0, top_p 0.3, freq_penalty 1.0, 50 new
tokens). Models have random weights (`--arch`): `tiny`, `stand-in` (the default profile's
4-layer d_model 128 GPT-2-shaped LM, vocab 2048) or `gpt2-xl` (48 layers, d_model 1600, 25
heads, vocab 50257: GPT-2 XL's architecture; for `--device cuda`). Random weights give flat
next-token distributions, so top-p keeps many tokens: a pessimistic case for the sampler's
top-k fast path; `--model DIR` times a trained stand-in (`results/default/steering/lm`) instead.

Usage:
  python benchmarks/steering_rollouts.py --arch stand-in --out benchmarks/results/steering_rollouts_cpu.json
  python benchmarks/steering_rollouts.py --arch gpt2-xl --device cuda --batch-rows 256 512 \\
      --out benchmarks/results/steering_rollouts_cuda.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from replications.steering.sampling import Sampler, generate, seed_uniforms  # noqa: E402
from shared.io import write_json  # noqa: E402
from shared.lm import LMConfig, build_model  # noqa: E402
from shared.runtime import cpu_name as proc_cpu_name  # noqa: E402

ARCHS: dict[str, tuple[LMConfig, int, int]] = {  # config, vocabulary, steering layer
    "tiny": (LMConfig(n_layers=2, d_model=32, d_mlp=128, n_heads=2, d_head=16,
                      act_fn="gelu_new", normalization_type="LN",
                      positional_embedding_type="standard", rotary_dim=0,
                      parallel_attn_mlp=False, n_ctx=64), 512, 1),
    "stand-in": (LMConfig(n_layers=4, d_model=128, d_mlp=512, n_heads=4, d_head=32,
                          act_fn="gelu_new", normalization_type="LN",
                          positional_embedding_type="standard", rotary_dim=0,
                          parallel_attn_mlp=False, n_ctx=128), 2048, 2),
    "gpt2-xl": (LMConfig(n_layers=48, d_model=1600, d_mlp=6400, n_heads=25, d_head=64,
                         act_fn="gelu_new", normalization_type="LN",
                         positional_embedding_type="standard", rotary_dim=0,
                         parallel_attn_mlp=False, n_ctx=1024), 50257, 20),
}
PROMPT_LEN = 9  # "|BOS|I| went| up| to| my| friend| and| said|" in GPT-2's tokenizer
VECTOR_LEN = 8  # the padded wedding prompts


def cpu_name() -> str:
    name = proc_cpu_name()
    return name if name is not None else platform.processor() or platform.machine()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours(model: Any, prompt: torch.Tensor, vectors: torch.Tensor, uniforms: torch.Tensor,
         hook: str, sampler: Sampler, decoder: str = "hooked") -> None:
    generate(model, prompt, vectors, uniforms, hook, sampler, eos_id=-1,
             decoder=decoder)  # type: ignore[arg-type]


def hf_static_generate(cfg: Any, vocab: int, device: torch.device, rows: int,
                       new_tokens: int, rounds: int, dtype: torch.dtype) -> list[float]:
    """Hugging Face `generate` with a static cache, same shape, random weights (the yardstick
    the GPU target is set against). Unsteered, and top-p sampling without a frequency penalty
    (transformers has none): a little less work per step than ours."""
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_cfg = GPT2Config(vocab_size=vocab, n_positions=cfg.n_ctx, n_embd=cfg.d_model,
                        n_layer=cfg.n_layers, n_head=cfg.n_heads, n_inner=cfg.d_mlp,
                        activation_function="gelu_new", bos_token_id=0, eos_token_id=0,
                        pad_token_id=0)
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: 1.6B parameters on a CPU take long
        model = GPT2LMHeadModel(hf_cfg).to(dtype=dtype).eval()
    prompt = torch.randint(3, vocab, (rows, PROMPT_LEN), device=device)

    def run() -> None:
        model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True,
                       top_p=0.3, temperature=1.0, top_k=0, max_new_tokens=new_tokens,
                       min_new_tokens=new_tokens, cache_implementation="static")

    with torch.no_grad():
        run()  # warm-up
        return timed(run, device, rounds)


def actadd_route(model: Any, prompt: torch.Tensor, vectors: torch.Tensor, hook: str,
                 new_tokens: int) -> None:
    """TransformerLens `generate` with ActAdd's hook (skips one-position cached passes)."""
    def hook_fn(resid: torch.Tensor, hook: Any = None) -> torch.Tensor:
        if resid.shape[1] == 1:
            return resid
        resid[:, : vectors.shape[1]] += vectors
        return resid

    tokens = prompt.unsqueeze(0).expand(vectors.shape[0], -1).to(vectors.device)
    with model.hooks(fwd_hooks=[(hook, hook_fn)]):
        model.generate(tokens, max_new_tokens=new_tokens, temperature=1.0, top_p=0.3,
                       freq_penalty=1.0, stop_at_eos=False, verbose=False, use_past_kv_cache=True)


def timed(fn: Any, device: torch.device, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def _row(method: str, rows: int, seconds: list[float], new_tokens: int) -> dict[str, Any]:
    med = statistics.median(seconds)
    print(f"{method:60s} batch {rows:5d}: {rows / med:9.1f} completions/s "
          f"({rows * new_tokens / med:,.0f} tokens/s)", file=sys.stderr)
    return {"method": method, "batch_rows": rows, "seconds": seconds,
            "completions_per_s": rows / med, "tokens_per_s": rows * new_tokens / med}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), default="stand-in")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--batch-rows", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--new-tokens", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-rows", type=int, default=64,
                    help="batch of the TransformerLens-generate baseline (its frequency "
                         "penalty loops over rows in Python)")
    ap.add_argument("--model", type=Path,
                    help="a trained stand-in directory instead of random weights of --arch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--decoders", nargs="+", default=["hooked"],
                    choices=["hooked", "static", "static-bf16"],
                    help="how our cached steps run (replications.steering.sampling.Decoder)")
    ap.add_argument("--hf-static", nargs="*", default=None, choices=["fp32", "bf16"],
                    help="also time Hugging Face generate with a static cache at these dtypes")
    ap.add_argument("--skip-tl-generate", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA device is available")
    cfg, vocab, layer = ARCHS[args.arch]
    if args.model is not None:
        from shared.lm import load_model

        model = load_model(args.model, args.device, processed=True)
        cfg = dataclasses.replace(cfg, d_model=model.cfg.d_model)
        vocab, layer = model.cfg.d_vocab, min(layer, model.cfg.n_layers - 1)
    else:
        model = build_model(cfg, vocab, seed=0, device=device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    n_params = sum(p.numel() for p in model.parameters())
    hook = f"blocks.{layer}.hook_resid_pre"
    sampler = Sampler(temperature=1.0, top_p=0.3, freq_penalty=1.0, candidates=64)
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, vocab, (PROMPT_LEN,), generator=gen)
    load0 = os.getloadavg()
    rows_out = []
    with torch.no_grad():
        # Warm-up (allocator, kernels) on a small batch.
        for decoder in args.decoders:
            # Warm-up (allocator, kernels) on a small batch.
            v = torch.randn(8, VECTOR_LEN, cfg.d_model, generator=gen).to(device)
            ours(model, prompt, v, seed_uniforms(torch.arange(8), 4), hook, sampler, decoder)
            for b in args.batch_rows:
                v = torch.randn(b, VECTOR_LEN, cfg.d_model, generator=gen).to(device)
                u = seed_uniforms(torch.arange(b), args.new_tokens)
                t = timed(lambda v=v, u=u: ours(model, prompt, v, u, hook, sampler, decoder),
                          device, args.rounds)
                rows_out.append(_row(f"ours ({decoder} decoder)", b, t, args.new_tokens))
        if not args.skip_tl_generate:
            b = args.baseline_rows
            v = torch.randn(b, VECTOR_LEN, cfg.d_model, generator=gen).to(device)
            t = timed(lambda: actadd_route(model, prompt, v, hook, args.new_tokens), device,
                      args.rounds)
            rows_out.append(_row("TransformerLens generate + ActAdd hook", b, t,
                                 args.new_tokens))
    if args.hf_static is not None and args.model is None:
        del model
        for name in args.hf_static:
            dtype = torch.bfloat16 if name == "bf16" else torch.float32
            method = (f"Hugging Face generate, static cache, {name} "
                      "(unsteered, no frequency penalty)")
            for b in args.batch_rows:
                try:
                    t = hf_static_generate(cfg, vocab, device, b, args.new_tokens, args.rounds,
                                           dtype)
                except Exception as err:  # the yardstick failing must not lose our numbers
                    print(f"{method}: failed: {err!r}", file=sys.stderr)
                    rows_out.append({"method": method, "batch_rows": b, "error": repr(err)})
                    continue
                rows_out.append(_row(method, b, t, args.new_tokens))
    report = {
        "measured": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "arch": args.arch if args.model is None else f"trained {args.model}",
        "device": args.device,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else cpu_name(),
        "threads": args.threads, "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__, "new_tokens": args.new_tokens, "prompt_len": PROMPT_LEN,
        "vector_len": VECTOR_LEN, "params": n_params,
        "results": rows_out,
    }
    if args.out is not None:
        write_json(args.out, report)
        md = [f"# Steered rollouts ({report['arch']}, {args.device})", "",
              (f"Measured {report['measured']} on {report['device_name']} (torch threads "
              f"{args.threads}; load average before/after {report['load_before']} / "
              f"{report['load_after']}); "
              f"{'random weights' if args.model is None else 'trained weights'}, "
              f"{report['params']:,} parameters, "
              f"prompt {PROMPT_LEN} tokens, vectors on {VECTOR_LEN} front positions, "
              f"{args.new_tokens} new tokens, temperature 1.0, top_p 0.3, freq_penalty 1.0."), "",
              ("| method | completions per call | completions/s (median of "
              f"{args.rounds}) | tokens/s |"), "|---|---|---|---|"]
        md += [f"| {r['method']} | {r['batch_rows']} | {r['completions_per_s']:,.1f} | "
               f"{r['tokens_per_s']:,.0f} |" if "error" not in r else
               f"| {r['method']} | {r['batch_rows']} | failed: {r['error']} | |" for r in rows_out]
        args.out.with_suffix(".md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()

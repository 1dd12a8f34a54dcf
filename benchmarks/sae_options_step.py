"""Time per `SAETrainer.step` with the SAE-methods options against the plain trainer.

The GDM update says ghost grads add about 50% to an SAE gradient step (the decoder runs twice)
and less to training as a whole. This measures the step itself, for each option, in one run:
the plain trainer, the three ghost-grads losses, and decoder norm <= 1 with weight decay. Every
trainer is built once and warmed up; rounds then run `--steps` steps of each in rotating order
and record process CPU time per step (robust to other load with one thread) and wall time.
Ghost grads run with every feature counted dead (`ghost_all_steps` past the end): the
auxiliary pass costs the same whatever the number of dead features (dense, masked).

  python benchmarks/sae_options_step.py --threads 1 --out benchmarks/results/sae_options_step_cpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.io import write_json  # noqa: E402
from shared.runtime import cpu_name  # noqa: E402
from shared.sae import SAEConfig  # noqa: E402
from shared.sae_train import SAETrainer  # noqa: E402

VARIANTS: dict[str, dict[str, object]] = {
    "plain": {},
    "ghost original": {"ghost_grads": "original"},
    "ghost rescaled, exp(min(x, 0))": {"ghost_grads": "rescaled",
                                       "ghost_activation": "exp_min0"},
    "ghost dead only rescaled": {"ghost_grads": "dead_only_rescaled"},
    "decoder norm <= 1, weight decay": {"decoder_norm": "at_most_one",
                                        "decoder_weight_decay": 1e-4},
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-in", type=int, default=512)
    ap.add_argument("--d-sae", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=5, help="steps of each variant per round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if min(args.d_in, args.d_sae, args.batch, args.steps, args.rounds) <= 0:
        ap.error("sizes, --steps and --rounds must be positive")
    torch.set_num_threads(args.threads)
    base = SAEConfig(
        d_in=args.d_in, d_sae=args.d_sae, l1_coeffs=(3e-4,), lr=1e-4, adam_betas=(0.9, 0.99),
        batch_size=args.batch, n_steps=10**9, pre_encoder_bias=True, recon_reduction="sum",
        l1_reduction="sum_batch", resample="none", resample_every=1, resample_window=1,
        resample_stop=0, dead_frequency=0.0, seed=0, ghost_all_steps=10**9,
    )
    data = torch.randn(4, args.batch, args.d_in, generator=torch.Generator().manual_seed(0))
    trainers = {name: SAETrainer(dataclasses.replace(base, **opts),  # type: ignore[arg-type]
                                 lambda step: data[step % 4], log_every=10**9)
                for name, opts in VARIANTS.items()}
    load0 = os.getloadavg()
    step_of = dict.fromkeys(trainers, 0)
    cpu: dict[str, list[float]] = {name: [] for name in trainers}
    wall: dict[str, list[float]] = {name: [] for name in trainers}
    names = list(trainers)
    for r in range(args.rounds + 1):  # round 0 warms up and is not recorded
        for name in names[r % len(names):] + names[: r % len(names)]:
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(args.steps):
                trainers[name].step(step_of[name])
                step_of[name] += 1
            if r:
                cpu[name].append((time.process_time() - c0) / args.steps)
                wall[name].append((time.perf_counter() - w0) / args.steps)
    plain = statistics.median(cpu["plain"])
    rows = [{"variant": name, "cpu_ms_per_step": 1000 * statistics.median(cpu[name]),
             "wall_ms_per_step": 1000 * statistics.median(wall[name]),
             "cpu_vs_plain": statistics.median(cpu[name]) / plain,
             "cpu_rounds_ms": [1000 * v for v in cpu[name]]} for name in names]
    for row in rows:
        print(f"{row['variant']:34s} CPU {row['cpu_ms_per_step']:8.1f} ms/step "
              f"({row['cpu_vs_plain']:.2f}x plain), wall {row['wall_ms_per_step']:8.1f} ms",
              file=sys.stderr)
    report = {
        "measured": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_name(), "threads": args.threads, "torch": torch.__version__,
        "load_before": [round(v, 2) for v in load0],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "d_in": args.d_in, "d_sae": args.d_sae, "batch": args.batch, "steps": args.steps,
        "rounds": args.rounds, "results": rows,
    }
    if args.out is not None:
        write_json(args.out, report)
        lines = [f"# SAE step time with the SAE-methods options ({report['cpu']})", "",
                 f"{args.d_in} -> {args.d_sae}, batch {args.batch}, fp32, {args.threads} "
                 f"thread(s), torch {report['torch']}; medians over {args.rounds} rounds of "
                 f"{args.steps} steps; measured {report['measured']}, load average "
                 f"{report['load_before']} before, {report['load_after']} after.", "",
                 "| variant | CPU ms/step | vs plain | wall ms/step |", "|---|---|---|---|"]
        lines += [f"| {r['variant']} | {r['cpu_ms_per_step']:.1f} | {r['cpu_vs_plain']:.2f}x | "
                  f"{r['wall_ms_per_step']:.1f} |" for r in rows]
        args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

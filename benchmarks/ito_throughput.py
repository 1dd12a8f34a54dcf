"""Inference-time optimisation throughput: inputs per second of batched gradient pursuit.

Times `shared.ito.gradient_pursuit` (the whole batch at once: two GEMMs per iteration over all
inputs and atoms) against a straightforward per-input implementation of the same algorithm
(the write-up's pseudocode in torch: one matrix-vector product per iteration, one input at a
time), same dictionary, inputs and target L0, in one run. The dictionary is random unit atoms
(`--n-atoms` x `--d`), the inputs non-negative sparse combinations of them plus noise, so the
pursuit does the work it does on SAE activations. Rounds alternate between the two methods;
medians are reported. The per-input loop runs on `--per-input` inputs (it is slow) and its
inputs/s is measured on those; the report also checks that both give the same coefficients
on them.

Usage:
  python benchmarks/ito_throughput.py --threads 1 --out benchmarks/results/ito_throughput_cpu.json
  python benchmarks/ito_throughput.py --device cuda --d 2048 --n-atoms 16384 --batch 4096 \\
      --out benchmarks/results/ito_throughput_cuda.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.io import write_json  # noqa: E402
from shared.ito import gradient_pursuit  # noqa: E402
from shared.runtime import cpu_name as proc_cpu_name  # noqa: E402

MARKDOWN = """# Gradient pursuit throughput ({device})

Measured {measured} on {device_name} (torch {torch}, threads {threads}; load average
before/after {load_before} / {load_after}); dictionary {n_atoms} x {d} (random unit atoms),
target L0 {target_l0}, fp32, medians of {rounds} alternating rounds.

| method | inputs per call | inputs/s |
|---|---|---|
| batched (`shared.ito.gradient_pursuit`) | {batch} | {batched_inputs_per_s:,.0f} |
| per input (matrix-vector loop) | 1 ({per_input} timed) | {per_input_inputs_per_s:,.1f} |

Speed-up {speedup:.1f}x. On the {per_input} inputs both ran, the coefficients differ by at most
{max_abs_diff:.2e} and the supports {agreement}.
"""


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = proc_cpu_name()
    return name if name is not None else platform.processor() or platform.machine()


def pursuit_one(signal: torch.Tensor, dictionary: torch.Tensor, target_l0: int) -> torch.Tensor:
    """Gradient pursuit for one input vector: the write-up's pseudocode, matrix-vector form."""
    weights = signal.new_zeros(dictionary.shape[0])
    for _ in range(target_l0):
        residual = signal - dictionary.T @ weights
        inner = dictionary @ residual
        selected = weights != 0
        selected[inner.argmax()] = True
        grad = inner * selected
        c = dictionary.T @ grad
        cc = c @ c
        if cc > 0:
            weights = (weights + (c @ residual) / cc * grad).clamp_(min=0.0)
    return weights


def make_inputs(d: int, n_atoms: int, batch: int, l0: int, device: torch.device,
                seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    atoms = torch.randn(n_atoms, d, generator=gen)
    atoms /= atoms.norm(dim=-1, keepdim=True)
    codes = torch.zeros(batch, n_atoms)
    idx = torch.rand(batch, n_atoms, generator=gen).argsort(-1)[:, :l0]
    codes.scatter_(-1, idx, torch.rand(batch, l0, generator=gen) * 2)
    x = codes @ atoms + 0.05 * torch.randn(batch, d, generator=gen)
    return atoms.to(device), x.to(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--n-atoms", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=1024, help="inputs per batched call")
    ap.add_argument("--per-input", type=int, default=32, help="inputs the per-input loop runs")
    ap.add_argument("--target-l0", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if min(args.d, args.n_atoms, args.batch, args.per_input, args.target_l0, args.rounds) <= 0:
        ap.error("sizes, --target-l0 and --rounds must be positive")
    if args.per_input > args.batch:
        ap.error("--per-input must be at most --batch")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    load0 = os.getloadavg()
    atoms, x = make_inputs(args.d, args.n_atoms, args.batch, args.target_l0, device, 0)
    few = x[: args.per_input]
    # Warm-up (allocator, kernels), untimed; and the agreement check on the same inputs.
    batched_few = gradient_pursuit(few, atoms, args.target_l0)
    looped = torch.stack([pursuit_one(row, atoms, args.target_l0) for row in few])
    max_diff = float((batched_few - looped).abs().max())
    support_agrees = bool(torch.equal(batched_few != 0, looped != 0))
    batched_s, per_input_s = [], []
    for r in range(args.rounds):
        order = ("batched", "per_input") if r % 2 == 0 else ("per_input", "batched")
        for method in order:
            if method == "batched":
                batched_s.append(timed(lambda: gradient_pursuit(x, atoms, args.target_l0),
                                       device))
            else:
                per_input_s.append(timed(
                    lambda: [pursuit_one(row, atoms, args.target_l0) for row in few], device))
    batched_rate = args.batch / statistics.median(batched_s)
    per_input_rate = args.per_input / statistics.median(per_input_s)
    print(f"batched: {batched_rate:,.0f} inputs/s; per input: {per_input_rate:,.1f} inputs/s; "
          f"speed-up {batched_rate / per_input_rate:.1f}x; max |diff| {max_diff:.2e}",
          file=sys.stderr)
    report = {
        "measured": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": args.device, "device_name": device_name(device), "threads": args.threads,
        "torch": torch.__version__, "load_before": [round(v, 2) for v in load0],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "d": args.d, "n_atoms": args.n_atoms, "target_l0": args.target_l0,
        "batch": args.batch, "per_input": args.per_input, "rounds": args.rounds,
        "batched_seconds": batched_s, "per_input_seconds": per_input_s,
        "batched_inputs_per_s": batched_rate, "per_input_inputs_per_s": per_input_rate,
        "speedup": batched_rate / per_input_rate,
        "max_abs_diff": max_diff, "support_agrees": support_agrees,
    }
    if args.out is not None:
        write_json(args.out, report)
        args.out.with_suffix(".md").write_text(MARKDOWN.format(
            **report, agreement="agree" if support_agrees else "DIFFER"))


if __name__ == "__main__":
    main()

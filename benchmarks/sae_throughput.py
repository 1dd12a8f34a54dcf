"""SAE training throughput: this repository's trainer against SAELens's, same settings, one run.

Both trainers train the same SAE shape (d_in -> d_sae, ReLU, pre-encoder bias, MSE summed over
d_in and averaged over the batch, L1 averaged over the batch) with the same L1 coefficient,
learning rate, Adam betas and batch size, on batches sliced from one in-memory activation
tensor (synthetic: non-negative, sparse-ish, like MLP activations; throughput does not depend
on the values). Each trainer is driven through its own training entry point:
`shared.training.train_loop(SAETrainer.step, ...)` and `sae_lens` `SAETrainer.fit()` (no
wandb, no evaluator, no checkpoints). Rounds alternate between the two so that load from
other processes on a shared machine hits both alike; the report gives every round and the
medians.

FLOPs of one step (B = batch, D = d_in, F = d_sae; a GEMM of [m, k] x [k, n] is 2 m k n):
  forward   pre = (x - b_dec) W_enc         2 B D F
            x_hat = f W_dec                 2 B F D
  backward  dW_dec = f^T g                  2 B F D
            g_f = g W_dec^T                 2 B D F
            dW_enc = (x - b_dec)^T g_pre    2 B D F
  = 10 B D F. The gradient with respect to the encoder's input is not needed (x is data; the
  pre-encoder bias's share is a GEMV), so the usual "6 x params x tokens" = 12 B D F counts a
  sixth GEMM that this trainer skips (autograd-based trainers such as SAELens's do run it).
  Model FLOP utilisation (MFU) is reported on the 10 B D F count for both trainers.

Usage:
  python benchmarks/sae_throughput.py                               # CPU, mid size
  python benchmarks/sae_throughput.py --device cuda --paper         # 2048 -> 16384, batch 4096
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.io import emit_report  # noqa: E402
from shared.runtime import benchmark_head, load_average  # noqa: E402
from shared.sae import SAEConfig  # noqa: E402
from shared.sae_train import SAETrainer, tf32_matmuls  # noqa: E402
from shared.training import train_loop  # noqa: E402

# Dense (no sparsity) peak tensor throughput, FLOP/s, from the vendors' data sheets.
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H100 SXM": {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12},
    "H100 PCIe": {"fp32": 51e12, "tf32": 378e12, "bf16": 756e12},
    "H100 NVL": {"fp32": 60e12, "tf32": 417.5e12, "bf16": 835e12},
    "H200": {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12},
    "A100": {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12},
    "A6000": {"fp32": 38.7e12, "tf32": 77.4e12, "bf16": 154.8e12},
    "L40S": {"fp32": 91.6e12, "tf32": 183e12, "bf16": 366e12},
    "L4": {"fp32": 30.3e12, "tf32": 60e12, "bf16": 121e12},
    "A10G": {"fp32": 31.2e12, "tf32": 35e12, "bf16": 70e12},
    "RTX 4090": {"fp32": 82.6e12, "tf32": 82.6e12, "bf16": 165.2e12},
}
PAPER = {"d_in": 2048, "d_sae": 16384, "batch": 4096}
PAPER_TOKENS = 2_000_000_000


def peak_from_table(name: str, precision: str) -> tuple[str, float] | None:
    """Look a CUDA device name up in PEAK_FLOPS (H100 SXM reports as 'H100 80GB HBM3')."""
    if "H100" in name and "PCIe" not in name and "NVL" not in name:
        return "H100 SXM", PEAK_FLOPS["H100 SXM"][precision]
    for key in sorted(PEAK_FLOPS, key=len, reverse=True):
        if key in name:
            return key, PEAK_FLOPS[key][precision]
    return None


def matmul_dtype(precision: str) -> torch.dtype:
    return torch.bfloat16 if precision == "bf16" else torch.float32




class Timer:
    """Wall time, and on CUDA also CUDA-event time, of a block (synchronised at both ends)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.wall, self.events = device, 0.0, None

    def __enter__(self) -> "Timer":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._start, self._end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
            self._start.record()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            self._end.record()
            torch.cuda.synchronize(self.device)
            self.events = self._start.elapsed_time(self._end) / 1000.0
        self.wall = time.perf_counter() - self._t0


def measured_matmul_peak(device: torch.device, precision: str, n: int) -> float:
    """FLOP/s of a large square matmul in `precision`: the device's practical GEMM peak."""
    dtype = matmul_dtype(precision)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    with tf32_matmuls(precision == "tf32") if device.type == "cuda" else contextlib.nullcontext():
        for _ in range(2):
            a @ b
        reps = 10 if device.type == "cuda" else 3
        with Timer(device) as t:
            for _ in range(reps):
                a @ b
    seconds = t.events if t.events is not None else t.wall
    return 2 * n**3 * reps / seconds


def synthetic_activations(n: int, d_in: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, d_in, generator=gen) - 0.5
    return torch.nn.functional.gelu(x).to(device)  # MLP-like: mostly small, some large


def our_trainer(args: argparse.Namespace, data: torch.Tensor, precision: str,
                n_steps: int) -> tuple[Callable[[], Any], Callable[[], float]]:
    cfg = SAEConfig(
        d_in=args.d_in, d_sae=args.d_sae, l1_coeffs=(args.l1,), lr=args.lr,
        adam_betas=(0.9, 0.99), batch_size=args.batch, n_steps=n_steps, pre_encoder_bias=True,
        recon_reduction="sum", l1_reduction="mean_batch", resample="none", resample_every=1,
        resample_window=1, resample_stop=0, dead_frequency=0.0, seed=0,
    )
    n_batches = data.shape[0] // args.batch

    def sample(step: int) -> torch.Tensor:
        i = step % n_batches
        return data[i * args.batch:(i + 1) * args.batch]

    trainer = SAETrainer(cfg, sample, data.device, log_every=100, precision=precision)
    history: list[dict[str, float]] = []

    def run() -> None:
        history.extend(train_loop(trainer.step, n_steps, trainer.state(), None, "bench",
                                  log_every=100, desc="ours"))

    return run, lambda: history[-1]["loss"]


def sae_lens_trainer(args: argparse.Namespace, data: torch.Tensor, precision: str,
                     n_steps: int) -> tuple[Callable[[], Any], Callable[[], float]]:
    from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer as LensTrainer

    device = str(data.device)
    sae = StandardTrainingSAE(StandardTrainingSAEConfig(
        d_in=args.d_in, d_sae=args.d_sae, dtype="float32", device=device,
        apply_b_dec_to_input=True, l1_coefficient=args.l1,
    ))
    cfg = SAETrainerConfig(
        total_training_samples=n_steps * args.batch, train_batch_size_samples=args.batch,
        lr=args.lr, lr_end=args.lr / 10, adam_beta1=0.9, adam_beta2=0.99, device=device,
        autocast=precision == "bf16", dead_feature_window=10**9,
        feature_sampling_window=10**9, n_checkpoints=0, save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False),
    )
    n_batches = data.shape[0] // args.batch

    def batches() -> Iterator[torch.Tensor]:
        step = 0
        while True:
            i = step % n_batches
            yield data[i * args.batch:(i + 1) * args.batch]
            step += 1

    trainer = LensTrainer(cfg, sae, batches())
    last: dict[str, float] = {}

    def run() -> None:
        # fit() reports losses only through wandb: record the last one through `step`.
        original = trainer.step

        def step(batch: torch.Tensor) -> Any:
            out = original(batch)
            last["loss"] = out.loss.detach()
            return out

        trainer.step = step  # type: ignore[method-assign]
        trainer.fit()

    return run, lambda: float(last["loss"])


TRAINERS = {"ours": our_trainer, "sae_lens": sae_lens_trainer}


def bench(args: argparse.Namespace, device: torch.device, precision: str) -> dict[str, Any]:
    data = synthetic_activations(args.data_batches * args.batch, args.d_in, device)
    names = ["ours"] + ([] if args.skip_sae_lens else ["sae_lens"])
    ctx = tf32_matmuls(precision == "tf32") if device.type == "cuda" else contextlib.nullcontext()
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with ctx:
        for name in names:  # warm-up: allocator, BLAS handles, first-call overheads
            run, _ = TRAINERS[name](args, data, precision, args.warmup)
            run()
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                run, final_loss = TRAINERS[name](args, data, precision, args.steps)
                with Timer(device) as t:
                    run()
                seconds = t.events if t.events is not None else t.wall
                rounds[name].append({"seconds": seconds, "wall_seconds": t.wall,
                                     "tokens_per_s": args.steps * args.batch / seconds,
                                     "final_loss": final_loss()})
    flops_step = 10 * args.batch * args.d_in * args.d_sae
    out: dict[str, Any] = {"precision": precision, "flops_per_step_10BDF": flops_step}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        table = peak_from_table(name, precision)
        out["peak_flops_table"] = None if table is None else {"entry": table[0], "flops": table[1]}
    out["peak_flops_measured"] = measured_matmul_peak(device, precision, args.peak_n)
    for name in names:
        tps = statistics.median(r["tokens_per_s"] for r in rounds[name])
        achieved = tps / args.batch * flops_step
        res: dict[str, Any] = {
            "rounds": rounds[name], "tokens_per_s_median": tps,
            "step_ms_median": 1000 * args.batch / tps, "achieved_flops": achieved,
            "fraction_of_measured_peak": achieved / out["peak_flops_measured"],
            "hours_for_2B_tokens": PAPER_TOKENS / tps / 3600,
        }
        if out.get("peak_flops_table"):
            res["fraction_of_table_peak"] = achieved / out["peak_flops_table"]["flops"]
        out[name] = res
    if "sae_lens" in out:
        out["speedup_ours_over_sae_lens"] = (out["ours"]["tokens_per_s_median"]
                                             / out["sae_lens"]["tokens_per_s_median"])
    return out


def sae_lens_version() -> str | None:
    try:
        import sae_lens
        return sae_lens.__version__
    except ImportError:
        return None


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        f"# SAE training throughput ({report['device']})", "",
        f"Measured {report['date']} on "
        f"{report['machine'].get('gpu') or report['machine'].get('cpu')}"
        f" (torch threads: {report['machine']['torch_threads']}; load average before/after "
        f"{report['load_average_before']} / {report['load_average_after']}).",
        f"SAE {s['d_in']} -> {s['d_sae']}, batch {s['batch']}, {s['steps']} timed steps x "
        f"{s['rounds']} alternating rounds per trainer; torch {report['machine']['torch']}, "
        f"sae_lens {report['machine']['sae_lens']}.", "",
        "| precision | trainer | tokens/s (median) | ms/step | of measured matmul peak "
        "| of data-sheet peak | 2B tokens would take | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        for name in ("ours", "sae_lens"):
            if name not in r:
                continue
            x = r[name]
            table = x.get("fraction_of_table_peak")
            speed = f"{r['speedup_ours_over_sae_lens']:.2f}x" if name == "ours" and \
                "speedup_ours_over_sae_lens" in r else ""
            lines.append(
                f"| {r['precision']} | {name} | {x['tokens_per_s_median']:,.0f} | "
                f"{x['step_ms_median']:.1f} | {100 * x['fraction_of_measured_peak']:.1f}% | "
                f"{'-' if table is None else f'{100 * table:.1f}%'} | "
                f"{x['hours_for_2B_tokens']:.2f} h | {speed} |")
    lines += ["", "FLOPs per step counted as 10 x batch x d_in x d_sae (five GEMMs; see the "
              "script's docstring). Measured matmul peak: "
              + ", ".join(f"{r['precision']} {r['peak_flops_measured'] / 1e12:.3g} TFLOP/s"
                          for r in report["results"]) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--paper", action="store_true", help="2048 -> 16384, batch 4096")
    p.add_argument("--d-in", type=int, default=512)
    p.add_argument("--d-sae", type=int, default=4096)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--l1", type=float, default=3e-4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=None, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data-batches", type=int, default=8)
    p.add_argument("--precision", nargs="+", choices=["fp32", "tf32", "bf16"], default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--peak-n", type=int, default=None, help="matmul size for the measured peak")
    p.add_argument("--skip-sae-lens", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="results JSON (a .md is written beside)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but no CUDA device is available")
    if args.paper:
        args.d_in, args.d_sae, args.batch = PAPER["d_in"], PAPER["d_sae"], PAPER["batch"]
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    args.steps = args.steps or (200 if cuda else 10)
    args.peak_n = args.peak_n or (8192 if cuda else 2048)
    precisions = args.precision or (["tf32", "bf16"] if cuda else ["fp32"])
    if not cuda and "tf32" in precisions:
        p.error("tf32 is a CUDA tensor-core mode")
    load_before = load_average()
    results = [bench(args, device, prec) for prec in precisions]
    report = {
        **benchmark_head(device, load_before, sae_lens=sae_lens_version()), "device": args.device,
        "settings": {k: getattr(args, k) for k in
                     ("d_in", "d_sae", "batch", "l1", "lr", "steps", "warmup", "rounds",
                      "data_batches", "paper")},
        "results": results,
    }
    emit_report(report, markdown(report), args.out)
    return report


if __name__ == "__main__":
    main()

"""Profile one `shared.sae_train.SAETrainer.step`: time per step (wall and process CPU time) and the
operators that take it (torch.profiler).

  python benchmarks/sae_step_profile.py                       # d_in 512, d_sae 4096, batch 1024
  python benchmarks/sae_step_profile.py --threads 1 --table   # CPU time is robust to other load

On a shared machine wall time swings with other processes' load; with one thread, process CPU
time measures the work itself. The results of the optimisation are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.sae import SAEConfig  # noqa: E402
from shared.sae_train import SAETrainer  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--d-in", type=int, default=512)
    p.add_argument("--d-sae", type=int, default=4096)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--table", action="store_true", help="print the profiler's operator table")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = SAEConfig(
        d_in=args.d_in, d_sae=args.d_sae, l1_coeffs=(3e-4,) * args.instances, lr=1e-4,
        adam_betas=(0.9, 0.99), batch_size=args.batch, n_steps=10**9, pre_encoder_bias=True,
        recon_reduction="sum", l1_reduction="sum_batch", resample="none", resample_every=1,
        resample_window=1, resample_stop=0, dead_frequency=0.0, seed=0,
    )
    device = torch.device(args.device)
    data = torch.randn(8, args.batch, args.d_in,
                       generator=torch.Generator().manual_seed(0)).to(device)
    trainer = SAETrainer(cfg, lambda step: data[step % 8], device, log_every=100,
                         precision=args.precision)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for step in range(3):
        trainer.step(step)
    walls, cpus = [], []
    for step in range(args.steps):
        sync()
        t, c = time.perf_counter(), time.process_time()
        trainer.step(step)
        sync()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    walls.sort()
    cpus.sort()
    mid = args.steps // 2
    print(f"{args.d_in} -> {args.d_sae}, batch {args.batch}, {args.instances} instance(s), "
          f"{torch.get_num_threads()} thread(s), {args.precision}: "
          f"wall {1000 * walls[mid]:.1f} ms/step (min {1000 * walls[0]:.1f}), "
          f"CPU time {1000 * cpus[mid]:.1f} ms/step (min {1000 * cpus[0]:.1f})")
    if args.table:
        from torch.profiler import ProfilerActivity, profile

        cuda = device.type == "cuda"
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=acts) as prof:
            for step in range(5):
                trainer.step(step)
            sync()
        key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=20))


if __name__ == "__main__":
    main()

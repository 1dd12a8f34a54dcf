"""Elementwise passes over large activation tensors with glibc's default allocator against the
settings `shared/numerics.py` pins for every job (PINNED_ALLOCATOR_ENV).

  python benchmarks/allocator.py --out benchmarks/results/allocator_cpu.json

Each setting runs in its own process (glibc reads the variables at process start), one thread,
the same work: a ReLU and a firing count (`> 0`, summed over rows) over [rows, d_sae] fp32, the
shapes of the monosemanticity SAE's frequency pass. Reported per 1k rows, with the process's
system (kernel) CPU time, where page faults on freshly mapped blocks land.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from shared.numerics import PINNED_ALLOCATOR_ENV  # noqa: E402
from shared.runtime import load_average, machine_info  # noqa: E402

CHILD = """
import json, resource, sys, time, torch
torch.set_num_threads(1)
rows, d_sae, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
pre = torch.randn(rows, d_sae)
def per_1k_rows_ms(fn):
    fn(); fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps * 1e3 * 1024 / rows
sys0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
out = {"relu_ms": per_1k_rows_ms(lambda: torch.relu(pre)),
       "count_ms": per_1k_rows_ms(lambda: (pre > 0).sum(0))}
out["system_s"] = resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys0
print(json.dumps(out))
"""


def run(env: dict[str, str], rows: int, d_sae: int, reps: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(rows), str(d_sae), str(reps)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1024, 4096, 16384])
    p.add_argument("--d-sae", type=int, default=2048)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    # The library pins the allocator on import (this process imported it): strip it for the
    # baseline, set it for the other, so neither depends on the caller's environment.
    base = {k: v for k, v in os.environ.items() if k not in PINNED_ALLOCATOR_ENV}
    results = []
    for rows in args.rows:
        row = {"rows": rows, "d_sae": args.d_sae, "mib": rows * args.d_sae * 4 / 2**20,
               "default": run(base, rows, args.d_sae, args.reps),
               "pinned": run(base | PINNED_ALLOCATOR_ENV, rows, args.d_sae, args.reps)}
        results.append(row)
        d, q = row["default"], row["pinned"]
        print(f"[{rows} x {args.d_sae}, {row['mib']:.0f} MiB] per 1k rows: ReLU "
              f"{d['relu_ms']:.2f} -> {q['relu_ms']:.2f} ms, count {d['count_ms']:.2f} -> "
              f"{q['count_ms']:.2f} ms; system CPU {d['system_s']:.2f} -> {q['system_s']:.2f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"machine": machine_info(torch.device("cpu")), "load_average": load_average(),
                  "pinned": PINNED_ALLOCATOR_ENV, "results": results}
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

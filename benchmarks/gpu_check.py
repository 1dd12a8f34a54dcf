"""The prepared GPU check: every training and analysis kernel of the paper profile, on one GPU,
in a few minutes.

1. `cuda_tests`: the CUDA tests of the suite (SAE trainer with both resampling methods and every
   precision against the CPU, LM trainer, activation buffer, local-processing harvest, steered
   rollouts with both decoders, the static decoder's CUDA graph). Small shapes, same weights on
   both devices.
2. `precision`: tf32 and bf16 against fp32 on each GPU rule's reported numbers, at paper shapes
   (`precision_fidelity.py --paper`).
3. `sae_throughput`, `sae_profile`: the SAE trainer at the monosemanticity paper shape
   (2048 -> 16384, batch 4096) against SAELens, and a kernel profile of one step.
4. `rollouts`: GPT-2 XL-shaped steered rollouts, 1024 rows: TransformerLens's cache, the static
   decoder in fp32 and bf16, and Hugging Face `generate` with a static cache.
5. `harvest`: the Pythia-2.8B-shaped local-processing harvest, both layouts, fp32 and bf16.

Each part runs as its own process with a time limit, so one failure or hang costs only its own
part; every part's log and JSON land in `--out`, with `summary.md` and `summary.json`.
`--device cpu --quick` runs the same parts at tiny shapes on a CPU (to test this script).

  bash benchmarks/gpu_check.sh OUT_DIR        # on the GPU machine (installs carried wheels)
  python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gpu_check
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

CUDA_TESTS = ["tests/integration/test_sae_cuda.py", "tests/integration/test_cuda_parity.py",
              "tests/integration/test_decode.py", "tests/unit/test_generator_devices.py"]


def parts(device: str, quick: bool, out: Path) -> list[tuple[str, list[str], int]]:
    """(name, command, time limit in seconds) of every part, in order."""
    b = f"{PY} benchmarks/"
    if quick:
        return [
            ("cuda_tests", [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CUDA_TESTS], 300),
            ("precision", [*shlex.split(b + "precision_fidelity.py"), "--device", device,
                           "--out", str(out / "precision.json")], 300),
            ("sae_throughput", [*shlex.split(b + "sae_throughput.py"), "--device", device,
                                "--d-in", "64", "--d-sae", "256", "--batch", "128", "--steps", "5",
                                "--rounds", "1", "--precision", "fp32",
                                "--out", str(out / "sae_throughput.json")], 300),
            ("sae_profile", [*shlex.split(b + "sae_step_profile.py"), "--device", device,
                             "--d-in", "64", "--d-sae", "256", "--batch", "128", "--steps", "5",
                             "--table"], 120),
            ("rollouts", [*shlex.split(b + "steering_rollouts.py"), "--arch", "tiny",
                          "--device", device, "--batch-rows", "16", "--new-tokens", "8",
                          "--rounds", "1", "--decoders", "hooked", "static", "static-bf16",
                          "--hf-static", "fp32", "--skip-tl-generate",
                          "--out", str(out / "rollouts.json")], 300),
            ("harvest", [*shlex.split(b + "local_processing_throughput.py"), "--arch", "tiny",
                         "--device", device, "--precision", "fp32", "bf16", "--n-prompts", "8",
                         "--prompt-len", "48", "--rounds", "1",
                         "--out", str(out / "harvest.json")], 300),
        ]
    return [
        ("cuda_tests", [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CUDA_TESTS], 150),
        ("precision", [*shlex.split(b + "precision_fidelity.py"), "--device", device, "--paper",
                       "--out", str(out / "precision.json")], 240),
        ("sae_throughput", [*shlex.split(b + "sae_throughput.py"), "--device", device, "--paper",
                            "--steps", "60", "--rounds", "2", "--precision", "bf16", "tf32",
                            "fp32", "--out", str(out / "sae_throughput.json")], 180),
        ("sae_profile", [*shlex.split(b + "sae_step_profile.py"), "--device", device,
                         "--d-in", "2048", "--d-sae", "16384", "--batch", "4096",
                         "--precision", "bf16", "--steps", "20", "--table"], 60),
        ("rollouts", [*shlex.split(b + "steering_rollouts.py"), "--arch", "gpt2-xl",
                      "--device", device, "--batch-rows", "1024", "--rounds", "2",
                      "--decoders", "static-bf16", "static", "hooked", "--hf-static", "bf16",
                      "--skip-tl-generate", "--out", str(out / "rollouts.json")], 180),
        ("harvest", [*shlex.split(b + "local_processing_throughput.py"), "--arch", "pythia-2.8b",
                     "--device", device, "--precision", "bf16", "fp32", "--n-prompts", "64",
                     "--rounds", "2", "--out", str(out / "harvest.json")], 150),
    ]


def run_part(name: str, cmd: list[str], limit: int, out: Path, deadline: float) -> dict[str, Any]:
    left = deadline - time.monotonic()
    if left < 20:
        return {"part": name, "status": "skipped (out of time)", "seconds": 0.0}
    limit = int(min(limit, left))
    log = out / f"{name}.log"
    t0 = time.monotonic()
    print(f"[gpu_check] {name}: {' '.join(cmd)} (limit {limit} s)", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": f"{ROOT}:" +
           os.environ.get("PYTHONPATH", "")}
    with log.open("w") as fh:
        try:
            rc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                timeout=limit).returncode
            status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            status = f"timed out after {limit} s"
    seconds = time.monotonic() - t0
    tail = log.read_text(errors="replace").splitlines()[-6:]
    print(f"[gpu_check] {name}: {status} in {seconds:.0f} s\n  " + "\n  ".join(tail), flush=True)
    return {"part": name, "status": status, "seconds": round(seconds, 1), "log_tail": tail}


def device_info(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"torch": torch.__version__, "python": sys.version.split()[0]}
    if device == "cuda":
        info |= {"gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
                 "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)}
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny shapes (to test on a CPU)")
    p.add_argument("--budget-s", type=float, default=480.0, help="time for all parts together")
    p.add_argument("--only", nargs="+", default=None, help="run only these parts")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget_s
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results = [run_part(name, cmd, limit, args.out, deadline)
               for name, cmd, limit in parts(args.device, args.quick, args.out)
               if args.only is None or name in args.only]
    summary = {"started": started, "device": args.device, "quick": args.quick,
               "info": device_info(args.device), "parts": results}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    lines = [f"# GPU check ({summary['info'].get('gpu', args.device)}, {started})", "",
             "| part | status | seconds |", "|---|---|---|"]
    lines += [f"| {r['part']} | {r['status']} | {r['seconds']} |" for r in results]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

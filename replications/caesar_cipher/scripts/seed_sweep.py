"""Do the conclusions hold over seeds? Train and analyse every mode for each seed (data and
model seed together), evaluate the claims, report each claim's value per seed and its spread.

    python -m replications.caesar_cipher.scripts.seed_sweep --profile default --seeds 0 1 2
        --out sweep.json [--threads N]

Not a rule of the DAG (it trains every mode once per seed); seed 0 is the DAG's own run. The
README's seed table comes from this script.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from pathlib import Path
from typing import Any

from replications.caesar_cipher import analysis, train
from replications.caesar_cipher.config import WRITEUP
from replications.caesar_cipher.scripts._common import setup
from shared import pipeline
from shared.claims import evaluate, load_claims
from shared.cli import add_paths, parse_and_setup, run, script_parser
from shared.io import write_json
from shared.runtime import seed_everything


def one_seed(cfg: Any, seed: int) -> dict[str, Any]:
    """The analysis summary (as `caesar_analyse` writes it) of every mode for one seed."""
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, seed=seed),
                              model=dataclasses.replace(cfg.model, seed=seed))
    seed_everything(seed)
    modes: dict[str, Any] = {}
    for mode in cfg.train.modes:
        md = train.mode_data(cfg, mode)
        model, _ = train.train(cfg, mode, md, None)
        modes[mode], _ = analysis.analyse(model, md, cfg.analysis.n_eval,
                                          mode in cfg.analysis.circuit_modes,
                                          cfg.analysis.dla_position)
    summary: dict[str, Any] = {"modes": modes}
    if "easy" in modes and "medium" in modes:
        summary["easy_minus_medium_prob"] = (modes["easy"]["accuracy"]["mean_prob_correct"]
                                             - modes["medium"]["accuracy"]["mean_prob_correct"])
    return summary


def main(argv: list[str] | None = None) -> None:
    p = script_parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    add_paths(p, "out")
    args, cfg = parse_and_setup(p, argv, setup)
    claims = load_claims(Path(pipeline.claims_path(WRITEUP)))
    table: dict[str, dict[str, Any]] = {}
    for seed in args.seeds:
        rows = evaluate(claims, {"analysis": one_seed(cfg, seed)}, args.profile)
        for r in rows:
            entry = table.setdefault(r.claim.id, {"values": [], "status": []})
            entry["values"].append(r.reproduced)
            entry["status"].append(r.status)
    for cid, entry in table.items():
        vals = [v for v in entry["values"] if v is not None]
        entry["mean"] = statistics.fmean(vals) if vals else None
        entry["spread"] = (max(vals) - min(vals)) if vals else None
        print(f"{cid:38s} " + " ".join(f"{v:8.3f}" if v is not None else "       -"
                                        for v in entry["values"])
              + "  " + " ".join(entry["status"]), file=sys.stderr)
    write_json(args.out, {"profile": args.profile, "seeds": args.seeds, "claims": table})


if __name__ == "__main__":
    run(main)

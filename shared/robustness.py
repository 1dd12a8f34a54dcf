"""Robustness over seeds: every claim of every write-up, scored on each seed of one profile.

Seed 0 is the profile itself; seed k is its variant `<profile>-seed<k>` (every seed in the
configs shifted by k except the corpus and tokenizer: shared.config.load_profile). A claim is
"reproduced" only if it passes on every seed, else it shows how many seeds it holds on (k/N).

Usage (the `robustness_table` rule runs it):
    python -m shared.robustness --profile P --seeds P P-seed1 ... --out DIR
        --writeup NAME CLAIMS METRICS_SEED0 METRICS_SEED1 ... [--writeup ...] [--cores N]
    python -m shared.robustness --copy-to-writeups robustness/   # tables next to each write-up

DIR gets robustness_<profile>.md, robustness_<profile>.json and <write-up>/robustness_<profile>.md
(one write-up's table, the name it keeps when `--copy-to-writeups` puts it in
replications/<write-up>/).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
from pathlib import Path
from typing import Any, Mapping

from shared import pipeline
from shared.claims import ClaimsFile, Row, _fmt, evaluate, fmt_margin, writeup_claims
from shared.cli import fail, profile_arg, run
from shared.config import base_profile
from shared.io import read_json, write_json


def table_name(profile: str, ext: str = "md") -> str:
    """The file name of a robustness table, the same in robustness/ and next to a write-up."""
    return f"robustness_{profile}.{ext}"


def seed_rows(claims: ClaimsFile, metrics: list[Mapping[str, Any]],
              seeds: list[str]) -> list[list[Row]]:
    """One list of scorecard rows per claim: its row on each seed."""
    per_seed = [evaluate(claims, m, s) for m, s in zip(metrics, seeds, strict=True)]
    return [list(rows) for rows in zip(*per_seed)]


def summarise(rows: list[Row]) -> dict[str, Any]:
    """One claim over the seeds: values, margins, statuses, how many seeds it holds on."""
    n = len(rows)
    holds = sum(r.status == "pass" for r in rows)
    applies = any(r.status != "n/a" for r in rows)
    status = "n/a" if not applies else ("reproduced" if holds == n else f"{holds}/{n}")
    c = rows[0].claim
    return {
        "statement": c.statement, "check": c.check.describe(), "profiles": list(c.profiles),
        "values": [r.reproduced for r in rows], "margins": [r.margin for r in rows],
        "statuses": [r.status for r in rows], "holds": holds, "n": n, "status": status,
        "contradiction": c.contradiction.reason if c.contradiction else None,
    }


def build_table(writeups: Mapping[str, tuple[ClaimsFile, list[Mapping[str, Any]]]],
                seeds: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Write-up -> claim id -> its summary over `seeds` (each write-up's metrics in seed order)."""
    return {
        name: {rows[0].claim.id: summarise(rows) for rows in seed_rows(claims, metrics, seeds)}
        for name, (claims, metrics) in writeups.items()
    }


def machine() -> dict[str, Any]:
    """Where the table was made: CPU, cores, torch and its threads, date, commit."""
    import torch

    from shared.figures import git_commit
    from shared.runtime import cpu_name

    cpu = cpu_name()
    if cpu is None:
        cpu = platform.processor() or platform.machine()
    return {
        "cpu": cpu, "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": datetime.date.today().isoformat(), "commit": git_commit(),
    }


def _cell(summary: Mapping[str, Any], i: int) -> str:
    value, margin, status = summary["values"][i], summary["margins"][i], summary["statuses"][i]
    if value is None:
        return "missing" if status == "missing" else "—"
    mark = " ✗" if status in ("fail", "contradicts") else ""
    mark = " (contradicts)" if status == "contradicts" else mark
    return f"{_fmt(value)} ({fmt_margin(margin)}){mark}"


def _status(summary: Mapping[str, Any]) -> str:
    if summary["status"] in ("reproduced", "n/a"):
        return str(summary["status"])
    contra = [i for i, s in enumerate(summary["statuses"]) if s == "contradicts"]
    if contra:
        seeds = ", ".join(str(i) for i in contra)
        return f"{summary['status']}; contradicts on seed {seeds}: {summary['contradiction']}"
    return str(summary["status"])


def counts(table: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """How many applicable claims are reproduced on every seed, and how many apply."""
    summaries = [s for claims in table.values() for s in claims.values()]
    applicable = [s for s in summaries if s["status"] != "n/a"]
    return {"reproduced": sum(s["status"] == "reproduced" for s in applicable),
            "applicable": len(applicable), "claims": len(summaries)}


def _machine_line(m: Mapping[str, Any], cores: int | None) -> str:
    given = f", {cores} given to the run" if cores else ""
    gpu = f"; GPU {m['cuda']}" if m.get("cuda") else ""
    return (f"Made on {m['date']} at commit {m['commit']}: {m['cpu']} ({m['cpu_count']} cores"
            f"{given}){gpu}; torch {m['torch']}, {m['torch_threads']} intra-op threads in the "
            "table's process (each job sets its own).")


def writeup_markdown(name: str, claims: Mapping[str, Mapping[str, Any]], seeds: list[str],
                     level: int = 2) -> list[str]:
    """One write-up's section: a row per claim, value (margin) on each seed, k/N, status."""
    heads = " | ".join(f"seed {i}" for i in range(len(seeds)))
    lines = [
        f"{'#' * level} {name}", "",
        f"| claim | check | {heads} | holds | status |",
        "|---|---|" + "---|" * len(seeds) + "---|---|",
    ]
    for cid, s in claims.items():
        cells = " | ".join(_cell(s, i) for i in range(len(seeds)))
        holds = "—" if s["status"] == "n/a" else f"{s['holds']}/{s['n']}"
        lines.append(f"| **{cid}**: {s['statement']} | {s['check']} | {cells} | {holds} "
                     f"| {_status(s)} |")
    return lines


def _header(profile: str, seeds: list[str], table: Mapping[str, Any], m: Mapping[str, Any],
            cores: int | None, title: str) -> list[str]:
    n = counts(table)
    return [
        f"# {title} — profile `{profile}`, {len(seeds)} seeds", "",
        f"{n['reproduced']} of {n['applicable']} claims that apply to this profile hold on every "
        f"seed; {n['claims'] - n['applicable']} not applicable to it (values still shown)."
        " Each cell is the value on that seed and, in brackets, its margin: the distance to the "
        "nearest edge of the check's accepted region in the claim's units (+ passes, − fails). "
        f"Seeds: {', '.join(f'{i} = `{s}`' for i, s in enumerate(seeds))} (seed k shifts every "
        "model, SAE, data-order and synthetic-data seed by k; the corpus and tokenizer stay "
        "fixed).", "",
        f"<sub>{_machine_line(m, cores)}</sub>",
    ]


def robustness_markdown(profile: str, seeds: list[str], table: Mapping[str, Any],
                        m: Mapping[str, Any], cores: int | None = None) -> str:
    """The whole table: a section per write-up."""
    lines = _header(profile, seeds, table, m, cores, "Robustness over seeds")
    for name, claims in table.items():
        lines += [""] + writeup_markdown(name, claims, seeds)
    return "\n".join(lines) + "\n"


def write_tables(out: Path, profile: str, seeds: list[str], table: Mapping[str, Any],
                 m: Mapping[str, Any], cores: int | None = None) -> list[Path]:
    """The whole table (markdown and JSON) and one markdown file per write-up under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / table_name(profile), out / table_name(profile, "json")]
    paths[0].write_text(robustness_markdown(profile, seeds, table, m, cores))
    write_json(paths[1], {"profile": profile, "seeds": seeds, "machine": m,
                          "counts": counts(table), "writeups": table})
    for name, claims in table.items():
        path = out / name / table_name(profile)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = _header(profile, seeds, {name: claims}, m, cores, f"Robustness of {name}")
        path.write_text("\n".join(lines + [""] + writeup_markdown(name, claims, seeds, 2)[2:])
                        + "\n")
        paths.append(path)
    return paths


def copy_to_writeups(src: Path, root: Path = pipeline.ROOT) -> list[Path]:
    """Copy each write-up's table from `src` (a robustness/ folder) into its write-up folder."""
    copied = []
    for name in pipeline.WRITEUPS:
        for table in sorted((src / name).glob("robustness_*.md")):
            dest = root / "replications" / name / table.name
            shutil.copyfile(table, dest)
            copied.append(dest)
    if not copied:
        raise FileNotFoundError(f"{src}: no <write-up>/robustness_<profile>.md tables")
    return copied


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", type=profile_arg)
    ap.add_argument("--seeds", nargs="+", type=profile_arg, help="seed 0's profile first")
    ap.add_argument("--writeup", nargs="+", action="append",
                    metavar="NAME CLAIMS METRICS...", help="metrics files in --seeds order")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--cores", type=int, help="cores given to the run (recorded)")
    ap.add_argument("--copy-to-writeups", type=Path, metavar="DIR",
                    help="only copy DIR/<write-up>/robustness_*.md into replications/<write-up>/")
    args = ap.parse_args(argv)
    if args.copy_to_writeups:
        for path in copy_to_writeups(args.copy_to_writeups):
            print(f"wrote {path}")
        return
    if not (args.profile and args.seeds and args.writeup and args.out):
        fail("give --profile, --seeds, --writeup and --out (or only --copy-to-writeups DIR)")
    if any(base_profile(s) != base_profile(args.profile) for s in args.seeds):
        fail(f"--seeds {' '.join(args.seeds)}: not all seeds of profile {args.profile}")
    writeups = {}
    for spec in args.writeup:
        if len(spec) != 2 + len(args.seeds):
            fail(f"--writeup {spec[0]}: give CLAIMS and one metrics file per seed "
                 f"({len(args.seeds)}), got {len(spec) - 1} paths")
        name, claims_path, *metrics_paths = spec
        writeups[name] = (writeup_claims(name, claims_path),
                          [read_json(Path(p)) for p in metrics_paths])
    table = build_table(writeups, args.seeds)
    for path in write_tables(args.out, args.profile, args.seeds, table, machine(), args.cores):
        print(f"wrote {path}")
    n = counts(table)
    print(f"robustness ({args.profile}, {len(args.seeds)} seeds): {n['reproduced']} of "
          f"{n['applicable']} applicable claims hold on every seed")


if __name__ == "__main__":
    run(main)

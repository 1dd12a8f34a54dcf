"""Build the scorecard: every claim of every write-up, published beside reproduced.

Usage (a Snakemake rule runs it):
    python -m shared.scorecard --profile P --writeup NAME CLAIMS METRICS [--writeup ...]
        --markdown OUT.md --json OUT.json --figure OUT.png
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt

from shared.claims import (
    STATUSES,
    Row,
    _fmt,
    counts,
    evaluate,
    fmt_margin,
    load_claims,
    scorecard_json,
    scorecard_markdown,
    status_text,
)
from shared.cli import fail, run
from shared.config import check_profile, config_hash
from shared.figures import Provenance, apply_style, save_figure
from shared.io import read_json, write_json

STATUS_COLOURS = {"pass": "#9be39b", "fail": "#f4a3a3", "contradicts": "#c9a0dc",
                  "missing": "#f7d488", "n/a": "#e3e3e3"}
assert set(STATUS_COLOURS) == set(STATUSES)


def plot_scorecard(rows: list[Row], profile: str) -> plt.Figure:
    """A table figure: one row per claim, the status cell coloured."""
    apply_style()
    header = ["write-up", "claim", "published", "reproduced", "check", "margin", "status"]
    cells = [
        [r.writeup, textwrap.shorten(f"{r.claim.id}: {r.claim.statement}", 72, placeholder="…"),
         textwrap.shorten(r.claim.published, 24, placeholder="…"), _fmt(r.reproduced),
         r.claim.check.describe(), fmt_margin(r.margin),
         textwrap.shorten(status_text(r), 40, placeholder="…")]
        for r in rows
    ]
    fig, ax = plt.subplots(figsize=(12, 0.9 + 0.28 * max(1, len(rows))))
    ax.axis("off")
    table = ax.table(cellText=cells or [["—"] * 7], colLabels=header, loc="upper left",
                     cellLoc="left", colLoc="left",
                     colWidths=[0.09, 0.37, 0.13, 0.07, 0.12, 0.07, 0.15])
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1, 1.25)
    for (row, col), cell in table.get_celld().items():
        cell.set_edgecolor("#bbbbbb")
        if row == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#f2f2f2")
        elif col == 6 and rows:
            cell.set_facecolor(STATUS_COLOURS[rows[row - 1].status])
    n = counts(rows)
    ax.set_title(
        f"Scorecard ({profile} profile): {n['pass']} pass, {n['fail']} fail, "
        f"{n['contradicts']} contradict, {n['missing']} missing, {n['n/a']} n/a", loc="left",
    )
    return fig


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--writeup", nargs=3, action="append", metavar=("NAME", "CLAIMS", "METRICS"),
                    required=True)
    ap.add_argument("--markdown", type=Path, required=True)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--figure", type=Path, required=True)
    args = ap.parse_args(argv)
    profile = check_profile(args.profile)
    rows: list[Row] = []
    for name, claims_path, metrics_path in args.writeup:
        claims = load_claims(Path(claims_path))
        if claims.writeup != name:
            fail(f"{claims_path}: writeup is {claims.writeup!r}, expected {name!r}")
        rows += evaluate(claims, read_json(Path(metrics_path)), profile)
    prov = Provenance.make("scorecard", profile, config_hash([r.claim for r in rows]))
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(scorecard_markdown(rows, profile, prov.as_text()))
    write_json(args.json, scorecard_json(rows, profile))
    save_figure(plot_scorecard(rows, profile), args.figure, prov)
    print(f"scorecard ({profile}): {counts(rows)}")


if __name__ == "__main__":
    run(main)

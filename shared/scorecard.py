"""Build the scorecard: every claim of every write-up, published beside reproduced.

Usage (a Snakemake rule runs it):
    python -m shared.scorecard --profile P --writeup NAME CLAIMS METRICS [--writeup ...]
        --markdown OUT.md --json OUT.json --figure OUT.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from shared.claims import (
    STATUSES,
    Row,
    claims_parser,
    counts,
    evaluate_writeups,
    scorecard_json,
    scorecard_markdown,
)
from shared.cli import run
from shared.config import check_profile, config_hash
from shared.figures import Provenance, apply_style, save_figure
from shared.io import write_json

STATUS_COLOURS = {"pass": "#9be39b", "fail": "#f4a3a3", "contradicts": "#c9a0dc",
                  "missing": "#f7d488", "n/a": "#e3e3e3"}
assert set(STATUS_COLOURS) == set(STATUSES)


def plot_scorecard(rows: list[Row], profile: str) -> plt.Figure:
    """One horizontal stacked bar per write-up: its claims by status, each segment labelled with
    its count. The full table (every claim, published beside reproduced) is in scorecard.md."""
    apply_style()
    writeups = list(dict.fromkeys(r.writeup for r in rows)) or ["—"]
    per = {w: counts([r for r in rows if r.writeup == w]) for w in writeups}
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.42 * len(writeups)))
    y = range(len(writeups))
    left = [0] * len(writeups)
    for status in STATUSES:
        widths = [per[w][status] for w in writeups]
        bars = ax.barh(y, widths, left=left, color=STATUS_COLOURS[status], edgecolor="white",
                       height=0.7, label=f"{status} ({sum(widths)})")
        for bar, k in zip(bars, widths, strict=True):
            if k:
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_y() + bar.get_height() / 2,
                        str(k), ha="center", va="center", fontsize=8)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_yticks(list(y), writeups)
    ax.invert_yaxis()
    ax.set_xlabel("claims")
    ax.legend(ncol=len(STATUSES), loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False,
              fontsize=8, handlelength=1.2, columnspacing=1.0)
    n = counts(rows)
    ax.set_title(
        f"Scorecard ({profile} profile): {n['pass']} pass, {n['fail']} fail, "
        f"{n['contradicts']} contradict, {n['missing']} missing, {n['n/a']} n/a",
        loc="left", pad=22,
    )
    return fig


def main(argv: list[str] | None = None) -> None:
    ap = claims_parser(__doc__.splitlines()[0])
    for output in ("--markdown", "--json", "--figure"):
        ap.add_argument(output, type=Path, required=True)
    args = ap.parse_args(argv)
    profile = check_profile(args.profile)
    rows = evaluate_writeups(args.writeup, profile)
    prov = Provenance.make("scorecard", profile, config_hash([r.claim for r in rows]))
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(scorecard_markdown(rows, profile, prov.as_text()))
    write_json(args.json, scorecard_json(rows, profile))
    save_figure(plot_scorecard(rows, profile), args.figure, prov)
    print(f"scorecard ({profile}): {counts(rows)}")


if __name__ == "__main__":
    run(main)

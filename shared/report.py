"""Build the report: one self-contained HTML page of every write-up's claims and figures.

Usage (the `report` rule runs it; `figures/report.html` is its copy):
    python -m shared.report --profile P --writeup NAME CLAIMS METRICS [--writeup ...]
        --scorecard-figure PNG [--robustness JSON] --out report.html

At the top, a summary per write-up (claims reproduced, failed, contradicted, missing, not
applicable; with the seed sweep's "holds on every seed" count when its table is given) and the
scorecard figure; then per write-up its method (the README's "Method" section), every figure
with its caption, and its claims, published beside reproduced. Images are embedded (base64),
so the page is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Mapping

import markdown
from docutils.core import publish_parts

from shared import pipeline
from shared.claims import (
    STATUSES,
    Row,
    _fmt,
    claims_parser,
    counts,
    evaluate_writeups,
    fmt_margin,
)
from shared.cli import fail, run
from shared.config import check_profile
from shared.figures import git_commit
from shared.io import read_json

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left;vertical-align:top}
th{background:#f2f2f2} td.num{text-align:right}
.pass{background:#9be39b}.fail{background:#f4a3a3}.contradicts{background:#c9a0dc}
.missing{background:#f7d488}.n\\/a{background:#e3e3e3}
figure{margin:1.5em 0;border-top:1px solid #ddd;padding-top:1em}
figure img{max-width:100%}
figcaption{font-size:0.9em;color:#333}
nav a{margin-right:1em} code{background:#f6f6f6;padding:0 0.2em}
section.method{font-size:0.92em}
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def rst_html(text: str) -> str:
    """A caption (reStructuredText) as an HTML fragment."""
    parts = publish_parts(text, writer_name="html5",
                          settings_overrides={"report_level": 5, "halt_level": 5,
                                              "embed_stylesheet": False})
    return str(parts["body"])


def method_section(readme: str) -> str:
    """The README's '## Method' section (up to the next '## ' heading) as HTML."""
    lines = readme.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("## Method")), None)
    if start is None:
        return "<p>(no Method section in the write-up's README)</p>"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
               len(lines))
    return str(markdown.markdown("\n".join(lines[start + 1:end]),
                                 extensions=["tables", "fenced_code"]))


def original_line(readme: str) -> str:
    """The README's "**Original:**" paragraph (the post or paper replicated) as HTML."""
    paragraphs = readme.split("\n\n")
    found = next((p for p in paragraphs if p.lstrip().startswith("**Original:**")), "")
    return str(markdown.markdown(found)) if found else ""


def _seed_cell(robust: Mapping[str, Any] | None, writeup: str, claim: str) -> str:
    if robust is None:
        return ""
    s = robust["writeups"].get(writeup, {}).get(claim)
    if s is None or s["status"] == "n/a":
        return "<td>—</td>"
    return f"<td class='num'>{s['holds']}/{s['n']}</td>"


def summary_table(rows: list[Row], robust: Mapping[str, Any] | None) -> str:
    head = "".join(f"<th>{s}</th>" for s in STATUSES)
    seeds = (f"<th>holds on all {len(robust['seeds'])} seeds</th>" if robust else "")
    out = [f"<table><tr><th>write-up</th>{head}{seeds}</tr>"]
    for w in pipeline.WRITEUPS:
        n = counts([r for r in rows if r.writeup == w])
        cells = "".join(f"<td class='num'>{n[s]}</td>" for s in STATUSES)
        if robust:
            claims = robust["writeups"].get(w, {}).values()
            held = sum(c["status"] == "reproduced" for c in claims)
            applies = sum(c["status"] != "n/a" for c in claims)
            cells += f"<td class='num'>{held}/{applies}</td>"
        out.append(f"<tr><td><a href='#{w}'>{w}</a></td>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def claims_table(rows: list[Row], robust: Mapping[str, Any] | None) -> str:
    seeds = "<th>seeds</th>" if robust else ""
    out = ["<table><tr><th>claim</th><th>published</th><th>reproduced</th><th>check</th>"
           f"<th>margin</th><th>status</th>{seeds}</tr>"]
    for r in rows:
        c = r.claim
        status: str = r.status
        if r.status == "contradicts" and c.contradiction is not None:
            status = f"contradicts: {c.contradiction.reason}"
        out.append(
            f"<tr><td><b>{html.escape(c.id)}</b>: {html.escape(c.statement)}</td>"
            f"<td>{html.escape(c.published)}</td><td class='num'>{_fmt(r.reproduced)}</td>"
            f"<td>{html.escape(c.check.describe())}</td>"
            f"<td class='num'>{fmt_margin(r.margin)}</td>"
            f"<td class='{r.status}'>{html.escape(status)}</td>"
            f"{_seed_cell(robust, r.writeup, c.id)}</tr>")
    out.append("</table>")
    return "\n".join(out)


def build_report(profile: str, rows: list[Row], scorecard_png: Path,
                 robust: Mapping[str, Any] | None, curves: Mapping[str, Path],
                 dashboards: Mapping[str, Path]) -> str:
    """The whole page."""
    n = counts(rows)
    sweep = (f"Seed sweep: {robust['counts']['reproduced']} of {robust['counts']['applicable']} "
             f"applicable claims hold on all {len(robust['seeds'])} seeds "
             f"({', '.join(robust['seeds'])}; made at commit {robust['machine']['commit']})."
             if robust else "No seed sweep of this profile was found (snakemake --cores all "
             "robustness/, then rebuild the report).")
    body = [
        f"<h1>Mechanistic-interpretability replications: {profile} profile</h1>",
        f"<p>Commit {html.escape(git_commit())}. {n['pass']} claims pass, {n['fail']} fail, "
        f"{n['contradicts']} contradict the write-up, {n['missing']} missing, {n['n/a']} do "
        f"not apply to this profile. {html.escape(sweep)}</p>",
        "<nav>" + "".join(f"<a href='#{w}'>{w}</a>" for w in pipeline.WRITEUPS) + "</nav>",
        "<h2>Summary</h2>", summary_table(rows, robust),
        f"<figure>{_img(scorecard_png, 'scorecard')}<figcaption>Claims per write-up by status."
        "</figcaption></figure>",
    ]
    for w in pipeline.WRITEUPS:
        folder = pipeline.REPLICATIONS / w
        readme = (folder / "README.md").read_text()
        m = pipeline.manifest(w)
        body += [f"<h2 id='{w}'>{html.escape(m.title)}</h2>", original_line(readme),
                 "<h3>Method</h3>", f"<section class='method'>{method_section(readme)}</section>",
                 "<h3>Figures</h3>"]
        if w in dashboards:
            # figures/report.html sits beside figures/<write-up>/dashboard.html.
            body.append(f"<p><a class='dashboard' href='{w}/dashboard.html'>Feature dashboard"
                        "</a>: top contexts, activation histogram and logit effects of a spread "
                        "of the SAE's live features.</p>")
        for name, what in pipeline.figures(w).items():
            png = Path(pipeline.results_dir(profile, w)) / "figures" / f"{name}.png"
            caption = folder / "captions" / f"{name}.rst"
            text = rst_html(caption.read_text()) if caption.is_file() else html.escape(what)
            body.append(f"<figure id='{w}-{name}'>{_img(png, f'{w}/{name}')}"
                        f"<figcaption><b>{name}</b>: {text}</figcaption></figure>")
        if w in curves:
            body.append(f"<figure id='{w}-training_curves'>"
                        f"{_img(curves[w], f'{w}/training_curves')}<figcaption><b>training_curves"
                        "</b>: every training run's logged loss, L0, dead fraction and accuracy "
                        "against step (DVCLive logs beside it).</figcaption></figure>")
        body += ["<h3>Claims</h3>", claims_table([r for r in rows if r.writeup == w], robust)]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>Replications report ({profile})</title><style>{STYLE}</style></head>"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n")


def main(argv: list[str] | None = None) -> None:
    ap = claims_parser(__doc__.splitlines()[0])
    ap.add_argument("--scorecard-figure", type=Path, required=True)
    ap.add_argument("--robustness", type=Path, help="a seed sweep's robustness_<profile>.json")
    ap.add_argument("--curves", type=Path, nargs="*", default=[],
                    help="results/<profile>/<write-up>/curves/training_curves.png files")
    ap.add_argument("--dashboards", type=Path, nargs="*", default=[],
                    help="results/<profile>/<write-up>/dashboard/dashboard.html files")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    profile = check_profile(args.profile)
    rows = evaluate_writeups(args.writeup, profile)
    robust = read_json(args.robustness) if args.robustness else None
    if robust is not None and robust.get("profile") != profile:
        fail(f"{args.robustness}: a sweep of profile {robust.get('profile')!r}, not {profile!r}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    curves = {p.parent.parent.name: p for p in args.curves}
    dashboards = {p.parent.parent.name: p for p in args.dashboards}
    args.out.write_text(build_report(profile, rows, args.scorecard_figure, robust, curves,
                                     dashboards))
    print(f"report ({profile}): {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    run(main)

"""The steering figures (PNG + PDF): decompositions, Pareto frontiers, completion tables.

    python -m replications.steering.scripts.make_figures --profile P --vectors DIR
        --rollouts FILE --frontiers FILE --sweep FILE --figure-dir DIR
"""

from __future__ import annotations

from replications.steering import plots
from replications.steering.scripts._common import parser, provenance, setup
from shared import pipeline
from shared.cli import add_paths, log, parse_and_setup, run
from shared.io import read_json

FIGURES = pipeline.figures("steering")  # from the manifest, writeup.yaml


def _pick(conds: list[dict], method: str, coeff: float) -> dict:
    for c in conds:
        if c["method"] == method and c["coeff"] == coeff:
            return c
    raise ValueError(f"no condition {method} x {coeff}")


def _items(cond: dict, n: int) -> list[tuple[str, list[str]]]:
    return list(zip(cond["completions"][:n], cond["matched"][:n]))


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0], model=False, tokens=False),
                  "vectors", "rollouts", "frontiers", sweep="the layer sweep's JSON",
                  figure_dir=None)
    args, cfg = parse_and_setup(p, argv, setup)
    analysis = read_json(args.vectors / "analysis.json")
    rollouts, front = read_json(args.rollouts), read_json(args.frontiers)
    prov = provenance(args.profile, cfg)
    out = {name: args.figure_dir / f"{name}.png" for name in FIGURES}
    fc = cfg.figures

    plots.steering_by_layer(read_json(args.sweep), out["steering_by_layer"], prov)
    plots.anger_decomposition(analysis, out["anger_decomposition"], prov)
    plots.anger_pareto(front, cfg.anger.coeff, out["anger_pareto"], prov)
    plots.wedding_decomposition(analysis, out["wedding_decomposition"], prov)
    plots.wedding_pareto(front, out["wedding_pareto"], prov)

    a, n = rollouts["anger"]["conditions"], cfg.anger.n_completions_shown
    feats = [c for c in a if c["method"] == "feature"]
    best = max(feats, key=lambda c: (c["mean_vocab_count"], -c["coeff"]))
    vec = _pick(a, "vector", cfg.anger.coeff)
    plots.completions_table(
        [(f"Unsteered (P(success) {a[0]['p_success']:.2f})", _items(a[0], n)),
         ((f"ActAdd vector 'Anger' - 'Calm', coefficient {vec['coeff']:g} "
          f"(P {vec['p_success']:.2f})"), _items(vec, n)),
         ((f"Anger feature alone, {best['coeff']:g}x its activation: the most anger words "
          f"(P {best['p_success']:.2f}, {best['mean_vocab_count']:.2f} words per rollout)"),
          _items(best, n))],
        rollouts["anger"]["prompt"], fc.wrap_chars, fc.completion_chars,
        out["anger_completions"], prov, "Anger: the first completions of each condition "
                                        "(seeds 0..; tick: anger vocabulary found)")

    w, n = rollouts["weddings"]["conditions"], cfg.weddings.n_completions_shown
    orig = _pick(w, "original", cfg.weddings.coeff)
    proj = _pick(w, "projected", cfg.weddings.projected_coeff)
    failures = [(t, m) for t, m in zip(proj["completions"][n:], proj["matched"][n:]) if not m][:1]
    plots.completions_table(
        [(f"Unsteered (P(success) {w[0]['p_success']:.2f})", _items(w[0], n)),
         (f"Original wedding vector, coefficient {orig['coeff']:g} (P {orig['p_success']:.2f})",
          _items(orig, n)),
         ((f"Padding features projected out, coefficient {proj['coeff']:g} "
          f"(P {proj['p_success']:.2f})"), _items(proj, n)),
         ("... its first failure after those", failures)],
        rollouts["weddings"]["prompt"], fc.wrap_chars, fc.completion_chars,
        out["wedding_completions"], prov, "Weddings: the first completions of each condition "
                                          "(seeds 0..; tick: wedding vocabulary found)")
    log(f"{len(out)} figures -> {args.figure_dir}")


if __name__ == "__main__":
    run(main)

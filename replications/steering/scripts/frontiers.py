"""Pareto frontiers of every method (P(success) against spliced loss over coefficients) and
the comparisons the claims check.

    python -m replications.steering.scripts.frontiers --profile P --rollouts FILE
        --loss FILE --analysis FILE --out FILE.json

Per experiment and method: the points (coefficient, loss, P(success)) with the shared
unsteered point first, and the indices of the Pareto frontier. Comparisons of method A
against B: `frontier_gap` (mean of A's best reachable P minus B's over the loss range both
cover; > 0: A is better), `dominated` (share of B's frontier points, the unsteered one left
out, that a point of A weakly dominates) and `dominates` (the same, B over A).
"""

from __future__ import annotations

from replications.steering.evaluation import dominated_share, frontier_gap, pareto_front
from replications.steering.scripts._common import parser, setup
from replications.steering.vectors import UNSTEERED
from shared.cli import add_paths, log, parse_and_setup, run
from shared.io import read_json, write_json

COMPARISONS = {
    "anger": [("feature", "vector")],
    "weddings": [("handpicked", "original"), ("reconstruction", "original"),
                 ("topk_pos", "original"), ("topk_pos_neg", "original"),
                 ("projected", "original"), ("topk_pos_neg", "topk_pos")],
}


def points(rollouts: list[dict], losses: list[dict], method: str) -> dict:
    idx = [i for i, c in enumerate(rollouts) if c["method"] in (UNSTEERED, method)]
    coeffs = [rollouts[i]["coeff"] for i in idx]
    loss = [losses[i]["loss"] for i in idx]
    p = [rollouts[i]["p_success"] for i in idx]
    return {"coeff": coeffs, "loss": loss, "p_success": p,
            "loss_sem": [losses[i]["loss_sem"] for i in idx],
            "mean_vocab_count": [rollouts[i]["mean_vocab_count"] for i in idx],
            "front": pareto_front(loss, p)}


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0], model=False, tokens=False),
                  "rollouts", "loss", analysis="steer_vectors' analysis.json", out=None)
    args, cfg = parse_and_setup(p, argv, setup)
    rollouts, losses = read_json(args.rollouts), read_json(args.loss)
    analysis = read_json(args.analysis)
    fc = cfg.frontier
    out: dict = {}
    for name, ref_coeff in (("anger", cfg.anger.coeff), ("weddings", cfg.weddings.coeff)):
        conds, lconds = rollouts[name]["conditions"], losses[name]["conditions"]
        if [(c["method"], c["coeff"]) for c in conds] != [(c["method"], c["coeff"])
                                                          for c in lconds]:
            raise ValueError(f"{name}: rollouts and losses list different conditions")
        methods = sorted({c["method"] for c in conds} - {UNSTEERED})
        pts = {m: points(conds, lconds, m) for m in methods}
        res: dict = {"unsteered": {"p_success": conds[0]["p_success"], "loss": lconds[0]["loss"]},
                     "methods": pts}
        for a, b in COMPARISONS[name]:
            pa, pb = (pts[a]["loss"], pts[a]["p_success"]), (pts[b]["loss"], pts[b]["p_success"])
            res[f"{a}_vs_{b}"] = {
                "frontier_gap": frontier_gap(pa, pb, fc.grid_points),
                "dominated": dominated_share(pa, pb, fc.dominance_tol, skip=[0]),
                "dominates": dominated_share(pb, pa, fc.dominance_tol, skip=[0]),
            }
        for m in methods:
            k = pts[m]["p_success"].index(max(pts[m]["p_success"]))
            res.setdefault("best", {})[m] = {"coeff": pts[m]["coeff"][k],
                                             "p_success": pts[m]["p_success"][k],
                                             "loss": pts[m]["loss"][k]}
        main_method = "vector" if name == "anger" else "original"
        k = pts[main_method]["coeff"].index(ref_coeff)
        res["at_coeff"] = {"coeff": ref_coeff, "p_success": pts[main_method]["p_success"][k],
                           "loss": pts[main_method]["loss"][k]}
        res["steering_gain"] = res["at_coeff"]["p_success"] - res["unsteered"]["p_success"]
        out[name] = res
    a = out["anger"]
    k = a["methods"]["feature"]["coeff"].index(cfg.anger.coeff)
    a["feature_at_coeff"] = {"coeff": cfg.anger.coeff,
                             "p_success": a["methods"]["feature"]["p_success"][k],
                             "loss": a["methods"]["feature"]["loss"][k]}
    w = out["weddings"]
    k = w["methods"]["projected"]["coeff"].index(cfg.weddings.projected_coeff)
    w["projected_at_coeff"] = {"coeff": cfg.weddings.projected_coeff,
                               "p_success": w["methods"]["projected"]["p_success"][k],
                               "loss": w["methods"]["projected"]["loss"][k]}
    an = analysis["anger"]
    a["decomposition"] = {
        "feature": an["anger_feature"]["feature"],
        "feature_activation": an["anger_feature"]["activation"],
        "feature_l1_share": an["anger_feature"]["l1_share"],
        "feature_is_top": float(an["anger_feature_is_top"]),
        "vector_to_feature_norm_ratio": an["vector_to_feature_norm_ratio"],
        "vector_positions": an["vector_positions"],
    }
    wn = analysis["weddings"]
    w["decomposition"] = {
        "n_handpicked": len(wn["handpicked"]),
        "n_topk_pos_terms": len(wn["topk_pos"]),
        "negative_only_features": wn["negative_only_features"],
        "n_padding_features": len(wn["padding_features"]),
        "reconstruction_cosine": wn["reconstruction_cosine"],
        "n_dense_features": wn["n_dense_features"],
        "vector_positions": wn["vector_positions"],
        "vector_max_position_share": wn["vector_norm_profile"]["max_position_share"],
        "vector_padding_share": wn["vector_norm_profile"]["padding_share"],
    }
    write_json(args.out, out)
    gaps = {f"{n}.{k}": round(v["frontier_gap"], 3) for n in out for k, v in out[n].items()
            if isinstance(v, dict) and "frontier_gap" in v}
    log(f"gaps {gaps} -> {args.out}")


if __name__ == "__main__":
    run(main)

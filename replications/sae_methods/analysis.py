"""The numbers the claims check, from the sites' sweeps and the ITO study (no model needed).

Pareto comparisons: `frontier_gap(a, b)` is method a's loss recovered minus method b's at matched
L0, averaged over the points of each curve that fall inside the other's L0 range (b's curve
interpolated linearly in log L0 at a's points, and a's at b's, so the gap is antisymmetric);
positive means a's frontier lies above b's. `band` keeps only points with L0 inside it. None
when the curves share no L0 range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from replications.sae_methods.config import Config

Curve = tuple[Sequence[float], Sequence[float]]  # (L0s, loss recovered)


def _interp(curve: Curve, l0: float) -> float | None:
    xs, ys = np.log(np.asarray(curve[0], float)), np.asarray(curve[1], float)
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    x = math.log(l0)
    if not xs[0] <= x <= xs[-1]:
        return None
    return float(np.interp(x, xs, ys))


def frontier_gap(a: Curve, b: Curve, band: tuple[float, float] = (0.0, math.inf)) -> float | None:
    """Mean loss-recovered advantage of curve a over curve b at matched L0 (see module doc)."""
    diffs = []
    for first, second, sign in ((a, b, 1.0), (b, a, -1.0)):
        for l0, lr in zip(*first):
            if not band[0] <= l0 <= band[1] or l0 <= 0:
                continue
            other = _interp(second, l0)
            if other is not None:
                diffs.append(sign * (lr - other))
    return float(np.mean(diffs)) if diffs else None


def _curve(summary: Mapping[str, Any], method: str) -> Curve:
    m = summary["methods"][method]
    return m["l0"], m["loss_recovered"]


def _gap(summary: Mapping[str, Any], a: str, b: str, band: tuple[float, float] = (0.0, math.inf)
         ) -> float | None:
    if a not in summary["methods"] or b not in summary["methods"]:
        return None
    return frontier_gap(_curve(summary, a), _curve(summary, b), band)


def _min(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return min(vals) if vals else None


def ghost_metrics(cfg: Config, sweeps: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    c = cfg.comparisons
    band = tuple(c.close_band)
    per_site: dict[str, Any] = {}
    for site in c.ghost_sites:
        s = sweeps[site]
        per_site[site] = {
            "rescaled_vs_original": _gap(s, "ghost_rescaled", "ghost_original"),
            "dead_only_vs_original": _gap(s, "ghost_dead_only", "ghost_original"),
            "rescaled_vs_dead_only": _gap(s, "ghost_rescaled", "ghost_dead_only"),
            "rescaled_vs_resampling_band": _gap(s, "ghost_rescaled", "resampling", band),
            "dead_only_vs_resampling_band": _gap(s, "ghost_dead_only", "resampling", band),
            "rescaled_vs_plain": _gap(s, "ghost_rescaled", "plain"),
            "original_vs_plain": _gap(s, "ghost_original", "plain"),
            "resampling_vs_plain": _gap(s, "resampling", "plain"),
            "resampling_vs_rescaled": _gap(s, "resampling", "ghost_rescaled"),
            "exp_min0_vs_exp_original": _gap(s, "ghost_original", "ghost_original_exp"),
            "dead_fraction": {m: v["dead_fraction"] for m, v in s["methods"].items()},
        }

    def over_sites(key: str, fn=_min) -> float | None:  # noqa: ANN001
        return fn([per_site[s][key] for s in c.ghost_sites])

    def max_abs(vals: Sequence[float | None]) -> float | None:
        v = [abs(x) for x in vals if x is not None]
        return max(v) if v else None

    first, second = c.ghost_sites[0], c.ghost_sites[1] if len(c.ghost_sites) > 1 else None
    site_effect = None
    if second is not None:
        a, b = (per_site[first]["resampling_vs_rescaled"],
                per_site[second]["resampling_vs_rescaled"])
        site_effect = None if a is None or b is None else a - b
    return {
        "sites": per_site,
        "rescaled_vs_original_min": over_sites("rescaled_vs_original"),
        "dead_only_vs_original_min": over_sites("dead_only_vs_original"),
        "rescaled_vs_dead_only_max_abs": over_sites("rescaled_vs_dead_only", max_abs),
        "rescaled_vs_resampling_max_abs": over_sites("rescaled_vs_resampling_band", max_abs),
        "dead_only_vs_resampling_max_abs": over_sites("dead_only_vs_resampling_band", max_abs),
        "rescaled_vs_plain_min": over_sites("rescaled_vs_plain"),
        "site_effect": site_effect,
    }


def k_metrics(cfg: Config, sweeps: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    c = cfg.comparisons
    s = sweeps[c.k_site]
    orig = [_gap(s, c.k_original[i + 1], c.k_original[i]) for i in range(2)]
    resc = [_gap(s, c.k_rescaled[i + 1], c.k_rescaled[i]) for i in range(2)]
    orig_total = _gap(s, c.k_original[2], c.k_original[0])
    resc_total = _gap(s, c.k_rescaled[2], c.k_rescaled[0])
    diff = None if orig_total is None or resc_total is None else orig_total - abs(resc_total)
    return {"original_k_steps": orig, "rescaled_k_steps": resc, "original_k_effect": orig_total,
            "original_k_monotone_min": _min(orig), "rescaled_k_effect": resc_total,
            "rescaled_k_effect_abs": None if resc_total is None else abs(resc_total),
            "k_effect_difference": diff}


def _spearman(a: Tensor, b: Tensor) -> float:
    ra = a.double().argsort().argsort().double()
    rb = b.double().argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def improvement_metrics(cfg: Config, sweeps: Mapping[str, Mapping[str, Any]],
                        norms: Mapping[str, Tensor]) -> dict[str, Any]:
    c = cfg.comparisons
    s = sweeps[c.improvements_site]
    out: dict[str, Any] = {
        "beta1_0_vs_099": _gap(s, c.beta1_0, "beta1_099"),
        "bias_vs_no_bias_beta1_099": _gap(s, "beta1_099", "no_bias_beta1_099"),
        "bias_vs_no_bias_beta1_0": _gap(s, c.beta1_0, "no_bias_beta1_0"),
        "norm_at_most_one_vs_unit": _gap(s, "norm_at_most_one", c.beta1_0),
    }
    for key in ("beta1_0_vs_099", "bias_vs_no_bias_beta1_0", "norm_at_most_one_vs_unit"):
        out[f"{key}_abs"] = None if out[key] is None else abs(out[key])
    if "norm_at_most_one.norm" in norms:
        n, abl = norms["norm_at_most_one.norm"], norms["norm_at_most_one.ablation"]
        low = float((n < c.norm_low).double().mean())
        high = float((n > c.norm_high).double().mean())
        rho = [_spearman(n[i], abl[i]) for i in range(n.shape[0])]
        out["norms"] = {"low_fraction": low, "high_fraction": high,
                        "cluster_min_fraction": min(low, high),
                        "middle_fraction": 1.0 - low - high,
                        "spearman_norm_ablation": float(np.mean(rho)),
                        "spearman_per_instance": rho}
    return out


def ito_metrics(ito: Mapping[str, Any]) -> dict[str, Any]:
    dicts = ito["dictionaries"]
    matched = [d["matched_ito_lr"] - d["encoder_lr"] for d in dicts]
    # ITO's frontier at each encoder point's L0 (interpolated) against the encoder there.
    at_encoder = [_interp((d["ito_l0"], d["ito_lr"]), d["encoder_l0"]) for d in dicts]
    interp_gain = [None if v is None else v - d["encoder_lr"] for v, d in zip(at_encoder, dicts)]
    hi = max(range(len(dicts)), key=lambda i: dicts[i]["encoder_l0"])
    lo = min(range(len(dicts)), key=lambda i: dicts[i]["encoder_l0"])
    n_t = len(dicts[0]["ito_lr"])
    margins = [dicts[hi]["ito_lr"][t] - max(d["ito_lr"][t] for i, d in enumerate(dicts) if i != hi)
               for t in range(n_t)]
    best = [max(d["ito_lr"][t] for d in dicts) for t in range(n_t)]
    random_gap = [b - r for b, r in zip(best, ito["random"]["ito_lr"])]
    lo_l0 = dicts[lo]["encoder_l0"]
    topk_hi = _interp((dicts[hi]["topk_l0"], dicts[hi]["topk_lr"]), lo_l0)
    ito_hi = _interp((dicts[hi]["ito_l0"], dicts[hi]["ito_lr"]), lo_l0)
    codes = ito["codes"]
    mins = codes["min_active_median"]
    return {
        "matched_gain": matched, "matched_gain_min": min(matched),
        "interp_gain_min": _min(interp_gain),
        "high_l0_dictionary": hi, "high_l0_margin_lowest_target": margins[0],
        "high_l0_margin_mean": float(np.mean(margins)),
        "high_vs_low_l0_dictionary_mean": float(np.mean(
            [a - b for a, b in zip(dicts[hi]["ito_lr"], dicts[lo]["ito_lr"])])),
        "random_gap_min": min(random_gap), "random_best_lr": max(ito["random"]["ito_lr"]),
        "topk_high_l0_vs_low_l0_encoder": None if topk_hi is None else topk_hi - dicts[lo]["encoder_lr"],
        "ito_high_l0_vs_low_l0_encoder": None if ito_hi is None else ito_hi - dicts[lo]["encoder_lr"],
        "p_ito_fires_strong": codes["p_ito_fires_strong"],
        "p_ito_fires_weak": codes["p_ito_fires_weak"],
        "strong_minus_weak": codes["p_ito_fires_strong"] - codes["p_ito_fires_weak"],
        "corr_strong": codes["corr_strong"], "corr_weak": codes["corr_weak"],
        "min_active_ratio": mins["ito"] / mins["encoder"] if mins["encoder"] > 0 else None,
    }


def analyse(cfg: Config, sweeps: Mapping[str, Mapping[str, Any]], norms: Mapping[str, Tensor],
            ito: Mapping[str, Any]) -> dict[str, Any]:
    """Every metric the claims read (`norms`: the improvements site's norm statistics)."""
    return {"ghost": ghost_metrics(cfg, sweeps), "k": k_metrics(cfg, sweeps),
            "improvements": improvement_metrics(cfg, sweeps, norms), "ito": ito_metrics(ito),
            "sites": {name: {m: {"l0": v["l0"], "loss_recovered": v["loss_recovered"]}
                             for m, v in s["methods"].items()} for name, s in sweeps.items()}}

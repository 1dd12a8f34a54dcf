"""Summaries of the harvested cosines: per-layer quantiles, the trend, the tail, the categories.

`Harvest` is what `scripts/harvest.py` writes (`harvest.safetensors` + `harvest.json`);
`summarise` turns it into the analysis JSON the claims read:

- `median`, `q25`, `q75`, `mean`, `squared_median` (of cos^2, the write-up's "fraction of norm
  explained") per context and layer, and the random-pair baseline's median per layer;
- headline numbers at layer 0 (the focus context 5, the token alone, context 10) and their
  contrast;
- the trend of the focus context's median over layers: the drop over the first third (layer 0 to
  layer k = round(first_fraction * (n_layers - 1))), mean drop per layer there and over the
  rest (k to the penultimate layer), their ratio (a plateau makes it small), the largest
  single-layer share of the early drop (gradual: no one layer does it all), the final uptick;
- the tail of the focus context's distribution pooled over layers (and at layer 0): how far the
  low quantile lies below the median against how far the high one lies above it;
- per-category medians and counts at (categories.layer, categories.context), with the gaps the
  write-up describes (alphabetic highest; punctuation lowest; common words and other tokens
  below alphabetic ones), and the same at every layer with the gaps' mean over layers;
- the lowest-cosine tokens there, decoded, for inspection.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from replications.local_processing.categories import CATEGORIES
from replications.local_processing.config import AnalysisConfig, CategoryConfig
from shared.io import load_tensors, read_json, save_tensors, write_json

TENSORS_FILE = "harvest.safetensors"
INFO_FILE = "harvest.json"
PUNCTUATION = ("newline", "full_stop", "comma")


@dataclasses.dataclass(frozen=True)
class Harvest:
    """Centred cosines of every sampled token, with what is needed to slice them."""

    cos: Float[Tensor, "n contexts layers"]
    baseline: Float[Tensor, "n layers"]  # random-pair cosine (tokens of different prompts)
    token: Int[Tensor, " n"]
    category: Int[Tensor, " n"]  # index into CATEGORIES
    prompt: Int[Tensor, " n"]
    position: Int[Tensor, " n"]
    mean_norm: Float[Tensor, " layers"]  # norm of the per-layer mean that was subtracted
    contexts: tuple[int, ...]
    info: dict[str, Any]  # model, sizes, token strings (harvest.json)

    @property
    def n_layers(self) -> int:
        return self.cos.shape[2]

    def context_index(self, context: int) -> int:
        if context not in self.contexts:
            raise ValueError(f"context {context} was not harvested ({list(self.contexts)})")
        return self.contexts.index(context)

    def save(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_tensors(out_dir / TENSORS_FILE, {
            "cos": self.cos.float(), "baseline": self.baseline.float(), "token": self.token,
            "category": self.category, "prompt": self.prompt, "position": self.position,
            "mean_norm": self.mean_norm.float(),
            "contexts": torch.tensor(self.contexts, dtype=torch.int64),
        })
        write_json(out_dir / INFO_FILE, self.info)

    @classmethod
    def load(cls, out_dir: Path) -> Harvest:
        t = load_tensors(out_dir / TENSORS_FILE)
        return cls(cos=t["cos"], baseline=t["baseline"], token=t["token"],
                   category=t["category"], prompt=t["prompt"], position=t["position"],
                   mean_norm=t["mean_norm"], contexts=tuple(t["contexts"].tolist()),
                   info=read_json(out_dir / INFO_FILE))


def quantiles(x: Tensor, qs: tuple[float, ...], dim: int = 0) -> Tensor:
    """Interpolated quantiles in float64 along `dim` (first axis of the result: qs)."""
    return torch.quantile(x.double(), torch.tensor(qs, dtype=torch.float64), dim=dim)


def layer_stats(cos: Float[Tensor, "n contexts layers"]) -> dict[str, Tensor]:
    """Median, quartiles, mean and median of cos^2 per context and layer: [contexts, layers]."""
    q25, med, q75 = quantiles(cos, (0.25, 0.5, 0.75))
    sq = quantiles(cos.double() ** 2, (0.5,))[0]
    return {"median": med, "q25": q25, "q75": q75, "mean": cos.double().mean(0),
            "squared_median": sq}


def first_third_layer(n_layers: int, fraction: float) -> int:
    """The layer a `fraction` of the way through (32 layers, 1/3 -> layer 10; 6 -> layer 2)."""
    return max(1, round(fraction * (n_layers - 1)))


def trend_metrics(median: Float[Tensor, " layers"], fraction: float) -> dict[str, float]:
    """Early drop, per-layer slopes before / after the first third, steps, final uptick."""
    m = [float(x) for x in median]
    n = len(m)
    k = first_third_layer(n, fraction)
    nan = math.nan
    early_drop = m[0] - m[k] if k < n else nan
    steps = [m[i] - m[i + 1] for i in range(min(k, n - 1))]
    late_span = n - 2 - k
    early_slope = early_drop / k if k < n else nan
    late_slope = (m[k] - m[n - 2]) / late_span if late_span > 0 else nan
    return {
        "first_third_layer": float(k),
        "early_drop": early_drop,
        "early_slope": early_slope,
        "late_slope": late_slope,
        "late_over_early_slope": (late_slope / early_slope
                                  if late_span > 0 and early_slope > 0 else nan),
        "early_max_step_share": (max(steps) / early_drop if steps and early_drop > 0 else nan),
        "early_min_step": min(steps) if steps else nan,
        "final_uptick": m[n - 1] - m[n - 2] if n >= 2 else nan,
        "argmin_layer": float(min(range(n), key=lambda i: m[i])),
    }


def tail_metrics(values: Tensor, q: float) -> dict[str, float]:
    """Tail asymmetry: (median - q_low) / (q_high - median), and the share below zero."""
    lo, med, hi = (float(v) for v in quantiles(values.flatten(), (q, 0.5, 1 - q)))
    return {"q_low": lo, "median": med, "q_high": hi,
            "left_over_right_tail": (med - lo) / (hi - med) if hi > med else math.inf,
            "share_negative": float((values < 0).double().mean())}


def _nanmin(values: list[float]) -> float:
    """Smallest of the values that are not NaN (NaN when none is): empty categories drop out."""
    kept = [v for v in values if not math.isnan(v)]
    return min(kept) if kept else math.nan


GAPS = ("alpha_minus_max_other", "punctuation_gap", "alpha_minus_common", "alpha_minus_other",
        "alpha_minus_punctuation")


def category_metrics(cos: Float[Tensor, " n"], category: Int[Tensor, " n"]) -> dict[str, Any]:
    """Median, quartiles and count per category, and the gaps between them.

    `punctuation` pools newline, full stop and comma tokens (a few dozen each in the stand-in
    profiles, too few for a stable median of their own).
    """
    out: dict[str, Any] = {"median": {}, "q25": {}, "q75": {}, "count": {}}
    punct_ids = torch.tensor([CATEGORIES.index(c) for c in PUNCTUATION])
    groups = [(name, category == i) for i, name in enumerate(CATEGORIES)]
    groups.append(("punctuation", torch.isin(category, punct_ids)))
    for name, mask in groups:
        sel = cos[mask]
        out["count"][name] = int(sel.numel())
        if sel.numel():
            q25, med, q75 = (float(v) for v in quantiles(sel, (0.25, 0.5, 0.75)))
        else:
            q25 = med = q75 = math.nan
        out["median"][name], out["q25"][name], out["q75"][name] = med, q25, q75
    med = out["median"]
    others = [med[c] for c in CATEGORIES if c != "alpha" and not math.isnan(med[c])]
    out |= {
        # "Alpha is extremely high": above every other category (each punctuation one too).
        "alpha_minus_max_other": med["alpha"] - max(others) if others else math.nan,
        # "Punctuation is substantially lower": pooled punctuation below the lowest of the
        # common-word, alphabetic and other medians.
        "punctuation_gap": _nanmin([med["alpha"], med["common"], med["other"]])
        - med["punctuation"],
        "alpha_minus_common": med["alpha"] - med["common"],
        "alpha_minus_other": med["alpha"] - med["other"],
        "alpha_minus_punctuation": med["alpha"] - med["punctuation"],
    }
    return out


def categories_by_layer(h: Harvest, context: int) -> dict[str, Any]:
    """Category medians and gaps at every layer (one context), and the gaps' mean over layers."""
    j = h.context_index(context)
    per = [category_metrics(h.cos[:, j, layer], h.category) for layer in range(h.n_layers)]
    return {
        "median": {c: [p["median"][c] for p in per] for c in per[0]["median"]},
        "gaps": {g: [p[g] for p in per] for g in GAPS},
        "mean_over_layers": {g: sum(p[g] for p in per) / len(per) for g in GAPS},
    }


def outliers(h: Harvest, layer: int, context: int, n: int, max_chars: int) -> list[dict]:
    """The `n` lowest-cosine tokens at (layer, context): token, category, cosine, position."""
    cos = h.cos[:, h.context_index(context), layer]
    order = torch.argsort(cos)[:n]
    strings = h.info.get("token_strings", {})
    return [{"token": strings.get(str(int(h.token[i])), str(int(h.token[i])))[:max_chars],
             "category": CATEGORIES[int(h.category[i])], "cos": float(cos[i]),
             "prompt": int(h.prompt[i]), "position": int(h.position[i])} for i in order]


def summarise(h: Harvest, acfg: AnalysisConfig, ccfg: CategoryConfig,
              max_chars: int) -> dict[str, Any]:
    """Everything the claims and the figures read, as JSON-able numbers."""
    if ccfg.layer >= h.n_layers:
        raise ValueError(f"categories.layer {ccfg.layer} >= n_layers {h.n_layers}")
    stats = layer_stats(h.cos)
    per_context = {f"c{c}": {k: v[j].tolist() for k, v in stats.items()}
                   for j, c in enumerate(h.contexts)}
    f, r = h.context_index(acfg.focus_context), h.context_index(acfg.contrast_context)
    c_cat = h.context_index(ccfg.context)
    med = stats["median"]
    headline = {
        "focus_context": acfg.focus_context, "contrast_context": acfg.contrast_context,
        "layer0_focus": float(med[f, 0]),
        "layer0_contrast": float(med[r, 0]),
        "layer0_longest": float(med[-1, 0]),
        "layer0_focus_minus_contrast": float(med[f, 0] - med[r, 0]),
        "min_focus_minus_contrast": float((med[f] - med[r]).min()),
        "longest_context": h.contexts[-1],
        "longest_median_mean_over_layers": float(med[-1].mean()),
        "longest_median_max_after_layer0": (float(med[-1, 1:].max())
                                            if h.n_layers > 1 else math.nan),
        "focus_squared_median_layer0": float(stats["squared_median"][f, 0]),
        "baseline_median_max_abs": float(quantiles(h.baseline, (0.5,))[0].abs().max()),
        # More context never hurts much: medians rise with the context length at layer 0.
        "layer0_monotone_in_context": float(bool((med[1:, 0] >= med[:-1, 0] - 0.01).all())),
    }
    return {
        "n_tokens": int(h.cos.shape[0]),
        "n_prompts": int(h.prompt.max()) + 1,
        "n_layers": h.n_layers,
        "contexts": list(h.contexts),
        "per_context": per_context,
        "baseline_median": quantiles(h.baseline, (0.5,))[0].tolist(),
        "mean_norm": h.mean_norm.tolist(),
        "headline": headline,
        "trend": trend_metrics(med[f], acfg.first_fraction),
        "trend_longest": trend_metrics(med[-1], acfg.first_fraction),
        "tail": tail_metrics(h.cos[:, f], acfg.tail_quantile),
        "tail_layer0": tail_metrics(h.cos[:, f, 0], acfg.tail_quantile),
        "categories": {"layer": ccfg.layer, "context": ccfg.context,
                       **category_metrics(h.cos[:, c_cat, ccfg.layer], h.category),
                       "by_layer": categories_by_layer(h, ccfg.context)},
        "outliers": outliers(h, ccfg.layer, ccfg.context, acfg.n_outliers, max_chars),
    }

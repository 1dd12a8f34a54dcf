"""The two experiments as lists of steering conditions (method x coefficient) with their vectors.

Every condition of an experiment is a [n, d_model] vector added at the front positions of the
same prompt, n being the padded ActAdd length (shorter vectors are zero elsewhere). The
coefficient-0 condition is one shared `unsteered` condition: every method's curve starts at it.
`build_anger` / `build_weddings` return the conditions and a JSON-able record of the
decompositions (features, activations, labels) for the figures and metrics.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from replications.steering import features as F
from replications.steering.actadd import (
    ActAddVector,
    PromptPair,
    actadd_vector,
    encode,
    make_pair,
    norm_profile,
    token_strings,
)
from replications.steering.config import AngerConfig, Config, WeddingsConfig
from shared.sae import SAE

UNSTEERED = "unsteered"
ANGER_METHODS = ("vector", "feature")
WEDDING_METHODS = ("original", "handpicked", "reconstruction", "topk_pos", "topk_pos_neg",
                   "projected")


@dataclasses.dataclass
class Experiment:
    name: str
    prompt: Int[Tensor, " pos"]  # BOS first
    methods: list[str] = dataclasses.field(default_factory=list)
    conditions: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    vectors: list[Tensor] = dataclasses.field(default_factory=list)

    def add(self, method: str, unit: Float[Tensor, "n d_model"], coeffs: tuple[float, ...],
            scale_note: str) -> None:
        """One condition per non-zero coefficient (0 is the shared unsteered condition)."""
        if not self.conditions:
            self.conditions.append({"method": UNSTEERED, "coeff": 0.0, "norm": 0.0,
                                    "scale": ""})
            self.vectors.append(torch.zeros_like(unit))
        self.methods.append(method)
        for c in coeffs:
            if c == 0:
                continue
            v = c * unit
            self.conditions.append({"method": method, "coeff": float(c),
                                    "norm": float(v.norm()), "scale": scale_note})
            self.vectors.append(v)

    def stacked(self) -> Float[Tensor, "cond n d_model"]:
        return torch.stack(self.vectors)


def _dense(freq: Tensor, cfg: Config) -> Tensor:
    return freq > cfg.analysis.dense_frequency


def _actadd(model: Any, prompts: AngerConfig | WeddingsConfig,
            cfg: Config) -> tuple[PromptPair, ActAddVector]:
    """The experiment's padded prompt pair and its ActAdd vector at the steering hook."""
    pair = make_pair(model.tokenizer, prompts.positive, prompts.negative)
    return pair, actadd_vector(model, pair, cfg.model.hook_name)


Built = tuple[Experiment, dict[str, Any]]  # the conditions and the decompositions' record


def build_anger(model: Any, sae: SAE, freq: Tensor, cfg: Config) -> Built:
    """'Anger' - 'Calm': the ActAdd vector and the top SAE feature of the 'Anger' token."""
    a, tok = cfg.anger, model.tokenizer
    pair, vec = _actadd(model, a, cfg)
    last = pair.length - 1 - pair.n_pad_positive  # last real token of the positive prompt
    f = F.encode(sae, vec.positive_acts)[last]
    f_neg = F.encode(sae, vec.negative_acts)[last]
    dense = _dense(freq, cfg)
    tops = F.top_features(f, dense, cfg.anger.n_top_features)
    top = F.anger_feature(f, f_neg, dense, a.feature_selection)
    position = pair.length - 1  # the vector's last position (GPT-2: '| think|')
    feature_unit = F.single_feature_vector(sae, pair.length, position, top.feature,
                                           top.activation)
    exp = Experiment("anger", torch.tensor(encode(tok, a.prompt)))
    exp.add("vector", vec.vector, a.vector_coeffs, "ActAdd coefficient")
    exp.add("feature", feature_unit, a.feature_coeffs, "x the feature's activation")
    at = a.coeff
    info = {
        "positive_tokens": token_strings(tok, pair.positive.tolist()),
        "negative_tokens": token_strings(tok, pair.negative.tolist()),
        "prompt_tokens": token_strings(tok, exp.prompt.tolist()),
        "vector_positions": pair.length,
        "feature_position": position,
        "decomposed_token": token_strings(tok, [int(pair.positive[last])])[0],
        "top_features": [dataclasses.asdict(t) for t in tops],
        "anger_feature": dataclasses.asdict(top),
        "anger_feature_is_top": tops[0].feature == top.feature,
        "anger_feature_rank": next((i for i, t in enumerate(tops) if t.feature == top.feature),
                                   len(tops)),
        "anger_feature_negative_activation": float(f_neg[top.feature]),
        "feature_selection": a.feature_selection,
        "vector_norm_per_position": vec.vector.norm(dim=-1).tolist(),
        # Footnote 8: at the same coefficient the vector's norm exceeds the feature's (shrinkage).
        "vector_norm_at_coeff": float((at * vec.vector[position]).norm()),
        "feature_norm_at_coeff": float((at * feature_unit[position]).norm()),
        "vector_total_norm_at_coeff": float((at * vec.vector).norm()),
    }
    info["vector_to_feature_norm_ratio"] = info["vector_norm_at_coeff"] / max(
        info["feature_norm_at_coeff"], 1e-12)
    return exp, info


def build_weddings(model: Any, sae: SAE, freq: Tensor, cfg: Config) -> Built:
    """The wedding vector, its decomposition and the five SAE-based variants."""
    w, tok = cfg.weddings, model.tokenizer
    pair, vec = _actadd(model, w, cfg)
    dense = _dense(freq, cfg)
    f_pos, f_neg = F.encode(sae, vec.positive_acts), F.encode(sae, vec.negative_acts)
    n = pair.length

    picks = {F.word_position(tok, w.positive, word): k for word, k in w.handpicked_words.items()}
    hp_terms = F.handpicked_terms(f_pos, dense, picks)
    handpicked = F.feature_sum(sae, n, hp_terms)
    recon = F.reconstruct(sae, vec.positive_acts) - F.reconstruct(sae, vec.negative_acts)
    last = list(range(n - w.topk_positions, n))
    pos_terms = F.topk_terms(f_pos, f_neg, last, w.topk, include_negative=False)
    both_terms = F.topk_terms(f_pos, f_neg, last, w.topk, include_negative=True)
    shorter = "positive" if pair.n_pad_positive > 0 else "negative"
    pad_positions = pair.padding_positions(shorter)
    f_short = f_pos if shorter == "positive" else f_neg
    pad_feats = F.padding_features(f_short[pad_positions], dense, w.n_padding_features) \
        if pad_positions else []
    directions = F.decoder(sae)[[i for i, _ in pad_feats]] if pad_feats else \
        torch.zeros(0, vec.vector.shape[1])
    projected = F.project_out(vec.vector, directions)

    exp = Experiment("weddings", torch.tensor(encode(tok, w.prompt)))
    exp.add("original", vec.vector, w.vector_coeffs, "ActAdd coefficient")
    exp.add("handpicked", handpicked, w.handpicked_coeffs, "x the features' activations")
    exp.add("reconstruction", recon, w.vector_coeffs, "ActAdd coefficient")
    exp.add("topk_pos", F.feature_sum(sae, n, pos_terms), w.vector_coeffs, "ActAdd coefficient")
    exp.add("topk_pos_neg", F.feature_sum(sae, n, both_terms), w.vector_coeffs,
            "ActAdd coefficient")
    exp.add("projected", projected, w.vector_coeffs, "ActAdd coefficient")

    def terms_json(terms: list[tuple[int, int, float]]) -> list[dict[str, float]]:
        return [{"position": p, "feature": i, "weight": v} for p, i, v in terms]

    info = {
        "positive_tokens": token_strings(tok, pair.positive.tolist()),
        "negative_tokens": token_strings(tok, pair.negative.tolist()),
        "prompt_tokens": token_strings(tok, exp.prompt.tolist()),
        "vector_positions": n,
        "padded_prompt": shorter,
        "padding_positions": pad_positions,
        "per_position": F.per_position_top(f_pos, f_neg, dense, w.n_top_per_position),
        "handpicked": terms_json(hp_terms),
        "handpicked_positions": {str(p): k for p, k in picks.items()},
        "topk_positions": last,
        "topk_pos": terms_json(pos_terms),
        "topk_pos_neg": terms_json(both_terms),
        "negative_only_features": len(both_terms) - len(pos_terms),
        "padding_features": [{"feature": i, "activation": v} for i, v in pad_feats],
        "vector_norm_per_position": vec.vector.norm(dim=-1).tolist(),
        "vector_norm_profile": norm_profile(vec.vector, pad_positions),
        "projected_norm_per_position": projected.norm(dim=-1).tolist(),
        "reconstruction_cosine": float(torch.nn.functional.cosine_similarity(
            recon.flatten(), vec.vector.flatten(), dim=0)),
        "n_dense_features": int(dense.sum()),
    }
    return exp, info


def mentioned_features(anger: dict[str, Any], weddings: dict[str, Any]) -> list[int]:
    """Every feature the decompositions name (labelled with their top tokens)."""
    feats = {t["feature"] for t in anger["top_features"]} | {anger["anger_feature"]["feature"]}
    for rows in weddings["per_position"]:
        feats |= {r["feature"] for r in rows}
    for key in ("handpicked", "topk_pos_neg"):
        feats |= {t["feature"] for t in weddings[key]}
    feats |= {t["feature"] for t in weddings["padding_features"]}
    return sorted(feats)

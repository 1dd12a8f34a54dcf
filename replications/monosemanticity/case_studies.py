"""Case studies of single features (stage `mono_analyse`, after the write-up's section on
interpreting features): the first non-ultra-low features, their top-activating contexts
(streaming top-k over the evaluation tokens) and their direct logit effects. `plots.py` draws
them; the weight analyses are in `analysis.py`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from replications.monosemanticity.analysis import (
    CLASS_NAMES,
    ActsFn,
    AnalysisSettings,
    EncodeFn,
    FrequencySummary,
    SAEWeights,
    batched_feature_acts,
    feature_encoder,
)
from replications.monosemanticity.neuron_basis import (
    encoder_decoder_cosine,
    excess_kurtosis,
    neuron_sparsity,
)
from shared.config import check
from shared.feature_stats import StreamingTopK, TopK

DecodeFn = Callable[[int], str]


@dataclasses.dataclass(frozen=True)
class CaseStudySettings:
    """Which features get case studies and how much of each is shown."""

    n_features: int  # write-up: the first 8 non-ultra-low features
    min_activations: int  # a candidate must fire on at least this many evaluation tokens
    n_contexts: int  # top-activating contexts per feature (one per sequence)
    window_before: int  # tokens shown before the max-activating token
    window_after: int  # tokens shown after it
    n_logit_tokens: int  # top positive and top negative logit effects listed
    batch_size: int  # sequences per model forward pass
    exclude_first_position: bool  # skip position 0 (BOS), whose activations are atypical

    def __post_init__(self) -> None:
        check(self.n_features >= 1, "n_features must be at least 1")
        check(self.min_activations >= 1, "min_activations must be at least 1")
        check(self.n_contexts >= 1, "n_contexts must be at least 1")
        check(self.window_before >= 0 and self.window_after >= 0, "windows must be >= 0")
        check(self.n_logit_tokens >= 1, "n_logit_tokens must be at least 1")
        check(self.batch_size >= 1, "batch_size must be at least 1")


# ---------------------------------------------------------------------------------------------
# 5. Case studies: top-activating contexts and logit effects.


def select_case_features(
    frequencies: FrequencySummary, settings: CaseStudySettings
) -> Int[Tensor, " k"]:
    """The write-up's rule ('the first 8 non-ultra-low features'): the lowest-index features
    that are not ultra-low and fired on at least `min_activations` evaluation tokens."""
    counts = frequencies.freqs * frequencies.n_tokens
    ok = frequencies.normal & (counts >= settings.min_activations - 0.5)
    return ok.nonzero().flatten()[: settings.n_features]


def top_activations(
    tokens: Int[Tensor, "seq pos"], acts_fn: ActsFn, encode: EncodeFn, n_features: int,
    settings: CaseStudySettings,
) -> TopK:
    """Streaming top-k of `encode(acts_fn(tokens))` over all evaluation sequences."""
    topk = StreamingTopK(n_features, settings.n_contexts)
    for start, acts in batched_feature_acts(tokens, acts_fn, encode, settings.batch_size):
        topk.update(acts, start, settings.exclude_first_position)
    return topk.result()


@dataclasses.dataclass(frozen=True)
class Contexts:
    """Token windows around each top activation, with the feature's activation per token."""

    tokens: Int[Tensor, "feat k window"]  # -1 outside the sequence or for empty slots
    acts: Float[Tensor, "feat k window"]  # 0 where tokens is -1
    centre: int  # index of the max-activating token within the window


def context_windows(
    tokens: Int[Tensor, "seq pos"], topk: TopK, acts_fn: ActsFn, encode: EncodeFn,
    settings: CaseStudySettings,
) -> Contexts:
    """Windows of `window_before` + 1 + `window_after` tokens around each top activation.

    Only the (at most features x k) selected sequences are run again, to colour every token
    of the window by the feature's activation.
    """
    n_feat, k = topk.seq.shape
    used = topk.seq.clamp_min(0).flatten().unique()
    seq_acts = torch.cat([encode(acts_fn(tokens[used[i:i + settings.batch_size]])).cpu()
                          for i in range(0, len(used), settings.batch_size)])  # [used, pos, feat]
    row = torch.searchsorted(used, topk.seq.clamp_min(0))  # [feat, k] -> row of seq_acts
    offsets = torch.arange(-settings.window_before, settings.window_after + 1)
    pos = topk.pos.clamp_min(0)[..., None] + offsets  # [feat, k, window]
    seq_len = tokens.shape[1]
    valid = (pos >= 0) & (pos < seq_len) & (topk.seq >= 0)[..., None]
    pos_c = pos.clamp(0, seq_len - 1)
    win_tokens = tokens[topk.seq.clamp_min(0)[..., None], pos_c]
    feat = torch.arange(n_feat)[:, None, None].expand_as(pos_c)
    win_acts = seq_acts[row[..., None].expand_as(pos_c), pos_c, feat]
    return Contexts(
        tokens=torch.where(valid, win_tokens, torch.full_like(win_tokens, -1)),
        acts=torch.where(valid, win_acts, torch.zeros_like(win_acts)),
        centre=settings.window_before,
    )


def logit_effects(
    directions: Float[Tensor, "feat d_mlp"], W_out: Float[Tensor, "d_mlp d_model"],
    W_U: Float[Tensor, "d_model d_vocab"], ln_final_w: Float[Tensor, " d_model"] | None,
) -> Float[Tensor, "feat d_vocab"]:
    """Direct logit effect of each decoder row: centre(row @ W_out) * ln_final.w @ W_U.

    A linear approximation of the final LayerNorm: its centring and weight are applied, its
    1/scale is not (a positive number shared by all tokens, so the ranking is unchanged).
    Pass ln_final_w=None for models whose LN weight is folded into W_U.
    """
    resid = einops.einsum(directions.double(), W_out.double(),
                          "feat d_mlp, d_mlp d_model -> feat d_model")
    resid = resid - resid.mean(-1, keepdim=True)
    if ln_final_w is not None:
        resid = resid * ln_final_w.double()
    logits = einops.einsum(resid, W_U.double(), "feat d_model, d_model d_vocab -> feat d_vocab")
    # Only differences between logits matter to the softmax.
    return logits - logits.mean(-1, keepdim=True)


LOGIT_NOTE = ("direct logit effect: decoder row @ W_out, centred and scaled by ln_final.w "
              "(the final LayerNorm's 1/scale left out), @ W_U, minus its mean over the vocabulary")


@dataclasses.dataclass(frozen=True)
class CaseStudy:
    """One feature: where it fires most, and which tokens it promotes and suppresses."""

    feature: int
    frequency: float
    label: str  # e.g. its neuron-sparsity class and kurtosis, for the header
    context_tokens: Int[Tensor, "k window"]
    context_acts: Float[Tensor, "k window"]
    max_acts: Float[Tensor, " k"]
    centre: int
    top_token_ids: Int[Tensor, " n"]
    top_token_effects: Float[Tensor, " n"]
    bottom_token_ids: Int[Tensor, " n"]
    bottom_token_effects: Float[Tensor, " n"]


def case_studies(
    weights: SAEWeights, frequencies: FrequencySummary, features: Int[Tensor, " feat"],
    tokens: Int[Tensor, "seq pos"], acts_fn: ActsFn, W_out: Float[Tensor, "d_mlp d_model"],
    W_U: Float[Tensor, "d_model d_vocab"], ln_final_w: Float[Tensor, " d_model"] | None,
    settings: CaseStudySettings, analysis_settings: AnalysisSettings,
) -> list[CaseStudy]:
    """Top-activating contexts and logit effects of `features` (see select_case_features);
    `analysis_settings` supplies the sparsity-class thresholds shown in each header."""
    encode = feature_encoder(weights, features)
    topk = top_activations(tokens, acts_fn, encode, len(features), settings)
    ctx = context_windows(tokens, topk, acts_fn, encode, settings)
    effects = logit_effects(weights.W_dec[features], W_out, W_U, ln_final_w)
    n = settings.n_logit_tokens
    top, bottom = effects.topk(n, dim=-1), (-effects).topk(n, dim=-1)
    dec = weights.W_dec[features]
    sparsity_class = neuron_sparsity(dec, analysis_settings).classes
    kurt = excess_kurtosis(dec)
    enc_dec = encoder_decoder_cosine(weights)[features]
    return [
        CaseStudy(
            feature=int(f),
            frequency=float(frequencies.freqs[f]),
            label=(f"{CLASS_NAMES[int(sparsity_class[i])]}, kurtosis {float(kurt[i]):.1f}, "
                   f"enc-dec cos {float(enc_dec[i]):.2f}"),
            context_tokens=ctx.tokens[i],
            context_acts=ctx.acts[i].float(),
            max_acts=topk.values[i],
            centre=ctx.centre,
            top_token_ids=top.indices[i],
            top_token_effects=top.values[i].float(),
            bottom_token_ids=bottom.indices[i],
            bottom_token_effects=-bottom.values[i].float(),
        )
        for i, f in enumerate(features.tolist())
    ]

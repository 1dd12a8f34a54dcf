"""SAE decompositions of the steering vectors and the vectors built from SAE features.

Feature activations come from the SAE's encoder on each prompt position's residual; a
feature's "norm" in the write-up is its activation (decoder rows have unit norm).

Anger (section 3): the features active on the last token of the positive prompt ('Anger'),
their share of the L1 (summed activations) there; the top non-dense one (by that activation,
or by it minus the negative prompt's at the same position) is "the anger feature", steered
with alone: coefficient x its activation x its decoder row, added at the last position of the
ActAdd vector (GPT-2: the '| think|' position of "|BOS|I| think|...").

Weddings (section 4), each a [n, d_model] vector at coefficient 1:
- `per_position`: at each position, the features with the largest activation on the positive
  prompt minus that on the negative one (dense features left out: they nearly cancel);
- `handpicked`: the positive prompt's decomposition restricted to the picked features (the
  largest non-dense activations at the last token of each listed word), at coefficient c
  times their activations;
- `reconstruction`: SAE(positive) - SAE(negative) at every position (no error term);
- `topk_pos` / `topk_pos_neg`: at the last few positions, the features among the top k of the
  positive prompt (and of the negative prompt), each with coefficient f_pos - f_neg;
- `projected`: the original vector with the decoder directions of the padding (space)
  features projected out at every position (those with the largest non-dense activation on
  the padding positions of the shorter prompt).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from shared.activations import forward_to_hook, model_device
from shared.sae import SAE
from shared.sae_eval import decode_instance, encode_instance


def encode(sae: SAE, x: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_sae"]:
    with torch.no_grad():
        return encode_instance(sae, x.to(sae.W_enc.device), 0).cpu()


def reconstruct(sae: SAE, x: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_model"]:
    with torch.no_grad():
        f = encode_instance(sae, x.to(sae.W_enc.device), 0)
        return decode_instance(sae, f, 0).cpu()


def decoder(sae: SAE) -> Float[Tensor, "d_sae d_model"]:
    return sae.W_dec[0].detach().cpu().float()


def feature_sum(
    sae: SAE, n: int, terms: Sequence[tuple[int, int, float]]
) -> Float[Tensor, "n d_model"]:
    """sum of weight x decoder row of feature, at position, over (position, feature, weight)."""
    w_dec = decoder(sae)
    out = torch.zeros(n, w_dec.shape[1])
    for pos, feat, weight in terms:
        out[pos] += weight * w_dec[feat]
    return out


# ---------------------------------------------------------------------------------------------
# Anger


@dataclasses.dataclass(frozen=True)
class TopFeature:
    feature: int
    activation: float
    l1_share: float  # of all features' summed activation on this token
    dense: bool


def top_features(
    f: Float[Tensor, " d_sae"], dense: Tensor, k: int
) -> list[TopFeature]:
    """The k largest activations of one token, with their L1 shares."""
    total = float(f.sum())
    vals, idx = f.topk(min(k, int((f > 0).sum().clamp_min(1))))
    return [TopFeature(int(i), float(v), float(v) / total if total > 0 else 0.0,
                       bool(dense[int(i)])) for v, i in zip(vals.tolist(), idx.tolist())]


def anger_feature(
    f_pos: Float[Tensor, " d_sae"], f_neg: Float[Tensor, " d_sae"], dense: Tensor,
    selection: str,
) -> TopFeature:
    """The top non-dense feature by activation on the positive prompt (the write-up: the one
    that fires most) or by positive minus negative activation (`selection="difference"`)."""
    score = f_pos if selection == "activation" else f_pos - f_neg
    score = score.masked_fill(dense, float("-inf"))
    i = int(score.argmax())
    if not f_pos[i] > 0:
        raise ValueError("no non-dense feature is active on the anger prompt's last token")
    total = float(f_pos.sum())
    return TopFeature(i, float(f_pos[i]), float(f_pos[i]) / total, False)


def single_feature_vector(
    sae: SAE, n: int, position: int, feature: int, activation: float
) -> Float[Tensor, "n d_model"]:
    """activation x decoder row of `feature` at `position` (coefficient 1)."""
    return feature_sum(sae, n, [(position, feature, activation)])


# ---------------------------------------------------------------------------------------------
# Weddings


def per_position_top(
    f_pos: Float[Tensor, "n d_sae"], f_neg: Float[Tensor, "n d_sae"], dense: Tensor, k: int,
) -> list[list[dict[str, float]]]:
    """For each position, the k features with the largest f_pos - f_neg (non-dense only)."""
    diff = (f_pos - f_neg).masked_fill(dense.unsqueeze(0), float("-inf"))
    out = []
    for p in range(diff.shape[0]):
        vals, idx = diff[p].topk(k)
        out.append([{"feature": int(i), "diff": float(v), "positive": float(f_pos[p, i]),
                     "negative": float(f_neg[p, i])}
                    for v, i in zip(vals.tolist(), idx.tolist()) if v > 0])
    return out


def handpicked_terms(
    f_pos: Float[Tensor, "n d_sae"], dense: Tensor, picks: dict[int, int]
) -> list[tuple[int, int, float]]:
    """(position, feature, activation) for the `picks[position]` largest non-dense positive-
    prompt activations at each picked position."""
    terms = []
    for pos, k in sorted(picks.items()):
        acts = f_pos[pos].masked_fill(dense, 0.0)
        vals, idx = acts.topk(k)
        terms += [(pos, int(i), float(v)) for v, i in zip(vals.tolist(), idx.tolist()) if v > 0]
    return terms


def topk_terms(
    f_pos: Float[Tensor, "n d_sae"], f_neg: Float[Tensor, "n d_sae"], positions: Sequence[int],
    k: int, include_negative: bool,
) -> list[tuple[int, int, float]]:
    """(position, feature, f_pos - f_neg) for the top-k features of the positive prompt (and of
    the negative prompt) at each position."""
    terms = []
    for pos in positions:
        chosen = {int(i) for v, i in zip(*f_pos[pos].topk(k)) if v > 0}
        if include_negative:
            chosen |= {int(i) for v, i in zip(*f_neg[pos].topk(k)) if v > 0}
        terms += [(pos, i, float(f_pos[pos, i] - f_neg[pos, i])) for i in sorted(chosen)]
    return terms


def padding_features(
    f_pad: Float[Tensor, "n_pad d_sae"], dense: Tensor, k: int
) -> list[tuple[int, float]]:
    """The k non-dense features with the largest summed activation on the padding positions."""
    score = f_pad.sum(0).masked_fill(dense, 0.0)
    vals, idx = score.topk(k)
    return [(int(i), float(v)) for v, i in zip(vals.tolist(), idx.tolist()) if v > 0]


def project_out(
    vector: Float[Tensor, "n d_model"], directions: Float[Tensor, "k d_model"]
) -> Float[Tensor, "n d_model"]:
    """`vector` with the span of `directions` removed at every position."""
    if directions.shape[0] == 0:
        return vector.clone()
    q, _ = torch.linalg.qr(directions.double().T)  # [d_model, k], orthonormal columns
    v = vector.double()
    return (v - (v @ q) @ q.T).to(vector.dtype)


def word_position(tokenizer: Any, text: str, word: str) -> int:
    """Position (BOS = 0) of the last token of the first occurrence of `word` in `text`."""
    start = text.find(word)
    if start < 0:
        raise ValueError(f"{word!r} does not occur in {text!r}")
    prefix = text[: start + len(word)]
    n = len(tokenizer(prefix, add_special_tokens=False)["input_ids"])
    full = tokenizer(text, add_special_tokens=False)["input_ids"]
    if full[:n] != tokenizer(prefix, add_special_tokens=False)["input_ids"]:
        raise ValueError(f"{word!r} does not end at a token boundary in {text!r}")
    return n  # BOS shifts every index by one: the word's last token is at n


# ---------------------------------------------------------------------------------------------
# Feature labels: which tokens a feature fires on, its top contexts, its direct logit effect


@torch.no_grad()
def feature_profiles(
    model: Any, sae: SAE, rows: Int[Tensor, "rows seq"], hook_name: str,
    features: Sequence[int], batch_rows: int, drop_bos: bool,
) -> tuple[Float[Tensor, "feat vocab"], Float[Tensor, "feat rows seq"]]:
    """Summed activation of each feature per token id, and its activation at every position
    (only the listed features are encoded, so this is cheap even for 131072 features)."""
    feats = torch.tensor(list(features), dtype=torch.long)
    dev = sae.W_enc.device
    w_enc = sae.W_enc[0][:, feats.to(dev)]
    b_enc = sae.b_enc[0][feats.to(dev)]
    by_token = torch.zeros(len(feats), model.cfg.d_vocab, dtype=torch.float64)
    acts = torch.zeros(len(feats), rows.shape[0], rows.shape[1])
    for start in range(0, rows.shape[0], batch_rows):
        chunk = rows[start:start + batch_rows]
        x = forward_to_hook(model, chunk.to(model_device(model)), hook_name).to(dev).float()
        if sae.pre_encoder_bias:
            x = x - sae.b_dec[0]
        f = torch.relu(x @ w_enc + b_enc).cpu()  # [b, seq, feat]
        if drop_bos:
            f[:, 0] = 0.0
        acts[:, start:start + chunk.shape[0]] = f.permute(2, 0, 1)
        by_token.index_add_(1, chunk.reshape(-1).long(), f.reshape(-1, len(feats)).T.double())
    return by_token.float(), acts


def token_counts(rows: Int[Tensor, "rows seq"], vocab: int, drop_bos: bool) -> Tensor:
    """Occurrences of each token id in the profile rows (the positions the profiles count)."""
    return torch.bincount(rows[:, int(drop_bos):].reshape(-1).long(), minlength=vocab).double()


def top_tokens(
    tokenizer: Any, by_token: Float[Tensor, " vocab"], counts: Tensor, k: int, min_count: int,
) -> list[tuple[str, float]]:
    """The k tokens (seen at least `min_count` times) with the largest mean activation of a
    feature, with that mean."""
    mean = (by_token.double() / counts.clamp_min(1)).masked_fill(counts < min_count, 0.0)
    vals, idx = mean.topk(k)
    return [(tokenizer.decode([int(i)]), float(v))
            for v, i in zip(vals.tolist(), idx.tolist()) if v > 0]


def top_contexts(
    tokenizer: Any, rows: Int[Tensor, "rows seq"], acts: Float[Tensor, "rows seq"], k: int,
    before: int, after: int,
) -> list[dict[str, Any]]:
    """The k positions where a feature is largest, each with its token window."""
    vals, flat = acts.flatten().topk(k)
    seq = rows.shape[1]
    out = []
    for v, i in zip(vals.tolist(), flat.tolist()):
        r, p = divmod(i, seq)
        lo, hi = max(1, p - before), min(seq, p + after + 1)
        out.append({"activation": float(v), "before": tokenizer.decode(rows[r, lo:p].tolist()),
                    "token": tokenizer.decode([int(rows[r, p])]),
                    "after": tokenizer.decode(rows[r, p + 1:hi].tolist())})
    return out


@torch.no_grad()
def direct_logits(
    model: Any, tokenizer: Any, direction: Float[Tensor, " d_model"], k: int
) -> list[tuple[str, float]]:
    """The tokens a direction promotes most through the unembedding (LayerNorm folded)."""
    logits = direction.to(model.W_U) @ model.W_U
    vals, idx = logits.topk(k)
    return [(tokenizer.decode([int(i)]), float(v)) for v, i in zip(vals.tolist(), idx.tolist())]

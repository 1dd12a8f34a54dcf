"""The solution's analyses, on a trained model and its validation set.

Every number here has a stated baseline, so each claim can fail:

- accuracy and probability of the correct rotation by position (chance 1/26);
- position 0 (the direct path): the model's prediction for a single first character against the
  first-letter frequencies of the word list (the post: about 29% for "t");
- layer-0 heads attending within words (baseline: the within-word share of uniform causal
  attention);
- the layer-1 OV circuit on all (word, rotation) pairs: what each layer-1 head writes, via the
  final LayerNorm and unembedding, for the correct rotation when it attends fully to 0A, 0B or
  0C (centred over the 26 rotations: baseline 0; a shuffled-rotation control too);
- layer-1 heads preferring common words (rank correlation with frequency, baseline 0) and early
  positions (attention on the first word against its uniform share);
- direct logit attribution by component (embeddings, 0.0, 0.1, 1.0, 1.1);
- heads 1.0 and 1.1 compensating for each other: correlation over words of their OV boosts
  (baseline 0; with the words' frequency regressed out in easy mode).

Word positions: a sequence is 8 words of 3 letters each followed by a space, so position p is
letter p % 4 (A, B, C, or the space) of word p // 4.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformer_lens import HookedTransformer

from replications.caesar_cipher import data
from replications.caesar_cipher.train import ModeData

COMPONENTS = ("embed", "0.0", "0.1", "1.0", "1.1")
PER_WORD = data.WORD_LEN + 1


def _correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[batch, seq] value at the label of each sequence."""
    return logits.gather(-1, labels[:, None, None].expand(-1, logits.shape[1], 1))[..., 0]


def _rank_corr(x: np.ndarray, y: np.ndarray) -> float:
    rx = np.argsort(np.argsort(x)).astype(float)
    ry = np.argsort(np.argsort(y)).astype(float)
    return _corr(rx, ry)


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    if np.std(x) == 0 or np.std(y) == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _residual(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y with its least-squares line on x removed."""
    a = np.vstack([x, np.ones_like(x)]).T
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return y - a @ coef


# ------------------------------------------------------------------------ accuracy by position


def accuracy(model: HookedTransformer, tokens: torch.Tensor, labels: torch.Tensor
             ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    with torch.no_grad():
        logits = model(tokens)
    probs = logits.softmax(-1)
    acc = (logits.argmax(-1) == labels[:, None]).float().mean(0)
    p_correct = _correct(probs, labels)
    loss = -_correct(logits.log_softmax(-1), labels).mean()
    summary = {
        "mean_prob_correct": float(p_correct.mean()),
        "median_prob_correct": float(p_correct.median()),
        "loss": float(loss),
        "accuracy": float(acc.mean()),
        "accuracy_pos0": float(acc[0]),
        "accuracy_last": float(acc[-1]),
        "accuracy_rise": float(acc[-1] - acc[0]),
        "accuracy_over_chance_pos0": float(acc[0] * data.N_ROT),
        "chance": 1 / data.N_ROT,
    }
    return summary, {"accuracy_by_position": acc, "prob_by_position": p_correct.mean(0)}


# -------------------------------------------------------------------------------- position 0


def position0(model: HookedTransformer, md: ModeData) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Every first character alone: the model's distribution over rotations; the implied
    probability of each original first letter, f(Y) = mean_X P(rotation X | first char Y + X),
    against the word list's first-letter frequencies (by frequency in easy, uniform in medium)."""
    toks = torch.arange(data.N_ROT)[:, None]
    with torch.no_grad():
        probs = model(toks).softmax(-1)[:, 0]  # [first char, rotation]
    implied = torch.stack([
        torch.stack([probs[(y + x) % data.N_ROT, x] for x in range(data.N_ROT)]).mean()
        for y in range(data.N_ROT)
    ])
    freq = data.letter_frequencies(md.words, weighted=md.mode == "easy")[0].float()
    top = int(freq.argmax())
    t = data.LETTERS.index("t")
    summary = {
        "top_letter": data.LETTERS[top],
        "top_letter_freq": float(freq[top]),
        "top_letter_model": float(implied[top]),
        "t_freq": float(freq[t]),
        "t_model": float(implied[t]),
        "t_model_minus_freq": float(implied[t] - freq[t]),
        "corr_implied_vs_freq": _corr(implied.numpy(), freq.numpy()),
        "max_abs_error": float((implied - freq).abs().max()),
        # Shifted-row structure: every row is the same distribution, moved by the character.
        "row_shift_consistency": float(1 - (torch.stack([
            probs[c].roll(-c) for c in range(data.N_ROT)]).std(0).mean() / probs.std())),
    }
    return summary, {"pos0_probs": probs, "pos0_implied": implied, "first_letter_freq": freq}


# ---------------------------------------------------------------------------- attention


def attention(model: HookedTransformer, tokens: torch.Tensor
              ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Mean attention patterns; layer 0's within-word share (queries at B and C positions);
    layer 1's share on the first word from the last position, against uniform shares."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    pats = torch.stack([cache[n] for n in names], 1)  # [batch, layer, head, q, k]
    seq = tokens.shape[1]
    pos = torch.arange(seq)
    same_word = (pos[:, None] // PER_WORD) == (pos[None, :] // PER_WORD)
    causal = pos[None, :] <= pos[:, None]
    queries = (pos % PER_WORD == 1) | (pos % PER_WORD == 2)  # B and C letters
    within = (pats[:, 0] * same_word).sum(-1)[..., queries].mean((0, 2))  # [head]
    uniform = ((same_word & causal).sum(-1).float() / causal.sum(-1).float())[queries].mean()
    # Layer 1 from the last position: mass on the first word and on B/C letters.
    last = pats[:, 1, :, -1]  # [batch, head, k]
    first_word = last[..., :PER_WORD].sum(-1).mean(0)
    bc_keys = (pos % PER_WORD == 1) | (pos % PER_WORD == 2)
    bc_mass = last[..., bc_keys].sum(-1).mean(0)
    n_keys = seq
    # Early positions: attention-weighted key position over the query position, queries from
    # the second word on (uniform causal attention: q / 2 / q, about 0.5).
    qs = pos[pos >= PER_WORD]
    l1 = pats[:, 1][..., qs, :]  # [batch, head, q, k]
    rel_pos = ((l1 * pos).sum(-1) / qs).mean((0, 2))
    rel_uniform = float((qs.float() / 2 / qs).mean())
    summary = {
        "layer0_within_word": [float(v) for v in within],
        "layer0_within_word_mean": float(within.mean()),
        "layer0_within_word_uniform": float(uniform),
        "layer0_within_word_over_uniform": float(within.mean() / uniform),
        "layer1_first_word_from_last": [float(v) for v in first_word],
        "layer1_first_word_uniform": PER_WORD / n_keys,
        "layer1_first_word_over_uniform_max": float(first_word.max() / (PER_WORD / n_keys)),
        "layer1_bc_mass_from_last": [float(v) for v in bc_mass],
        "layer1_relative_key_position": [float(v) for v in rel_pos],
        "layer1_relative_key_position_min": float(rel_pos.min()),
        "layer1_relative_key_position_uniform": rel_uniform,
        "layer1_bc_uniform": float(bc_keys.float().mean()),
        "layer1_bc_over_uniform_mean": float(bc_mass.mean() / bc_keys.float().mean()),
    }
    return summary, {"mean_patterns": pats.mean(0), "layer1_from_last": last.mean(0)}


def common_word_attention(model: HookedTransformer, md: ModeData, tokens: torch.Tensor,
                          plain: torch.Tensor) -> dict[str, Any]:
    """Attention that layer-1 heads (summed) give a word's B and C letters, from queries after
    the word, relative to a uniform share; averaged per word identity; rank correlation with
    the word's frequency (baseline 0)."""
    name = "blocks.1.attn.hook_pattern"
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n == name)
    pat = cache[name].sum(1)  # [batch, q, k], heads summed
    seq = tokens.shape[1]
    n_words = seq // PER_WORD
    word_id = _word_ids(plain, md.words)  # [batch, n_words]
    q_pos = torch.arange(seq)
    total = torch.zeros(len(md.words.words), dtype=torch.float64)
    count = torch.zeros(len(md.words.words), dtype=torch.float64)
    for w in range(n_words):
        b, c = w * PER_WORD + 1, w * PER_WORD + 2
        qs = q_pos[q_pos >= w * PER_WORD + PER_WORD]
        if len(qs) == 0:
            continue
        got = pat[:, qs][:, :, [b, c]].sum(-1)  # [batch, q]
        share = got * (qs + 1).float() / 2  # relative to uniform causal attention (2 keys)
        total.index_add_(0, word_id[:, w], share.mean(1).double())
        count.index_add_(0, word_id[:, w], torch.ones(len(tokens), dtype=torch.float64))
    seen = count > 0
    rel = (total[seen] / count[seen]).numpy()
    freq = md.words.freqs[seen].numpy()
    return {
        "rank_corr_attention_vs_frequency": _rank_corr(rel, freq),
        "words_seen": int(seen.sum()),
        "relative_attention_top10_words": float(rel[:10].mean()),
        "relative_attention_other_words": float(rel[10:].mean()),
    }


def _word_ids(plain: torch.Tensor, words: data.WordList) -> torch.Tensor:
    """[batch, n_words] index in the word list of each word of plain-text sequences."""
    seq = plain.shape[1]
    n_words = seq // PER_WORD
    letters = plain[:, :n_words * PER_WORD].reshape(len(plain), n_words, PER_WORD)[..., :3]
    code = letters[..., 0] * 676 + letters[..., 1] * 26 + letters[..., 2]
    wt = words.tokens()
    lookup = torch.full((26 ** 3,), -1, dtype=torch.long)
    lookup[wt[:, 0] * 676 + wt[:, 1] * 26 + wt[:, 2]] = torch.arange(len(wt))
    ids = lookup[code]
    if (ids < 0).any():
        raise ValueError("a sequence holds a word outside the word list")
    return ids


# ----------------------------------------------------------------------- layer-1 OV circuit


def _to_logits(model: HookedTransformer, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """A residual-stream contribution through the final LayerNorm (frozen scale: centring,
    1/scale, its weight) and the unembedding, centred over the 26 rotations."""
    x = x - x.mean(-1, keepdim=True)
    w: torch.Tensor = model.ln_final.w  # type: ignore[assignment]
    out = (x / scale) * w @ model.W_U
    return out - out.mean(-1, keepdim=True)


def layer1_ov_outputs(model: HookedTransformer, toks: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """[batch, pos, head, d_model]: what each layer-1 head writes when it attends fully to each
    source position (layer 1's LayerNorm output, with its weight and bias, x W_V + b_V, x W_O);
    and the final LayerNorm's scales. A head's real output is the attention-weighted sum of
    these (tested)."""
    names = ("blocks.1.ln1.hook_normalized", "ln_final.hook_scale")
    with torch.no_grad():
        _, cache = model.run_with_cache(toks, names_filter=lambda x: x in names)
        ln1 = model.blocks[1].ln1
        w: torch.Tensor = ln1.w  # type: ignore[assignment]
        b: torch.Tensor = ln1.b  # type: ignore[assignment]
        normed = cache[names[0]] * w + b  # hook_normalized is before w and b
        v = torch.einsum("bpd,hde->bphe", normed, model.W_V[1]) + model.b_V[1]
        return torch.einsum("bphe,hed->bphd", v, model.W_O[1]), cache[names[1]]


def layer1_ov(model: HookedTransformer, md: ModeData) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """All 100 x 26 (word, rotation) pairs as 3-token sequences: each layer-1 head's OV output
    from 0A, 0B and 0C (as if it attended there fully), read as logits; the correct rotation's
    centred logit averaged over rotations -> [head, word, position]."""
    words = md.words.tokens()
    n = len(words)
    rots = torch.arange(data.N_ROT)
    toks = data.rotate(words.repeat_interleave(data.N_ROT, 0), rots.repeat(n))
    labels = rots.repeat(n)
    with torch.no_grad():
        out, scale = layer1_ov_outputs(model, toks)
        logits = _to_logits(model, out, scale.mean())  # [batch, pos, head, 26]
    correct = logits.gather(-1, labels[:, None, None, None].expand(-1, 3, model.cfg.n_heads, 1))[..., 0]
    wrong = logits.gather(-1, ((labels + 1 + torch.arange(len(labels)) % 25) % 26)
                          [:, None, None, None].expand(-1, 3, model.cfg.n_heads, 1))[..., 0]
    by_word = correct.reshape(n, data.N_ROT, 3, -1).mean(1).permute(2, 0, 1)  # [head, word, pos]
    shuffled = wrong.reshape(n, data.N_ROT, 3, -1).mean(1).permute(2, 0, 1)
    mean_hp = by_word.mean(1)  # [head, pos]
    freq = md.words.freqs.numpy()
    best_pos = mean_hp.argmax(1)  # each head's strongest source position
    per_head = torch.stack([by_word[h, :, best_pos[h]] for h in range(by_word.shape[0])])
    easy = md.mode == "easy"
    x0, x1 = per_head[0].numpy(), per_head[1].numpy()
    logf = np.log(freq)
    summary = {
        "mean_correct_logit": [[float(v) for v in row] for row in mean_hp],
        "best_head_logit_B": float(mean_hp[:, 1].max()),
        "best_head_logit_C": float(mean_hp[:, 2].max()),
        "best_head_logit_A": float(mean_hp[:, 0].max()),
        "best_head_logit_BC": float(mean_hp[:, 1:].max()),
        "shuffled_best_head_logit_BC": float(shuffled.mean(1)[:, 1:].max()),
        "best_position": ["ABC"[int(p)] for p in best_pos],
        "heads_prefer_different_positions": float(best_pos[0] != best_pos[1]),
        "frac_words_boosted_BC": float((by_word[..., 1:].amax((0, 2)) > 0).float().mean()),
        # Common words boosted more (easy; medium's frequencies are uniform).
        "rank_corr_boost_vs_frequency": _rank_corr(by_word[..., 1:].amax((0, 2)).numpy(), freq)
        if easy else 0.0,
        # Heads compensating: over words, one head's boost against the other's.
        "head_corr_over_words": _corr(x0, x1),
        "head_corr_over_words_freq_removed": _corr(_residual(x0, logf), _residual(x1, logf))
        if easy else _corr(x0, x1),
        "head_corr_shuffled_words": _corr(x0, np.random.default_rng(0).permutation(x1)),
    }
    return summary, {"ov_by_word": by_word, "ov_head_best": per_head}


# ---------------------------------------------------------------- direct logit attribution


def dla(model: HookedTransformer, tokens: torch.Tensor, labels: torch.Tensor, position: int,
        subtract_mean: bool = True) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Each component's contribution to the correct rotation's centred logit: embeddings
    (token + position), then each head's output, each minus its mean over the batch, through
    the final LayerNorm with each sequence's own scale."""
    names = ["hook_embed", "hook_pos_embed", "ln_final.hook_scale"] + [
        f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
        parts = [cache["hook_embed"] + cache["hook_pos_embed"]]
        for layer in range(model.cfg.n_layers):
            z = cache[f"blocks.{layer}.attn.hook_z"]  # [batch, pos, head, d_head]
            out = torch.einsum("bphe,hed->bphd", z, model.W_O[layer])
            parts += [out[:, :, h] for h in range(model.cfg.n_heads)]
        resid = torch.stack(parts)  # [comp, batch, pos, d_model]
        if subtract_mean:
            resid = resid - resid.mean(1, keepdim=True)
        logits = _to_logits(model, resid, cache["ln_final.hook_scale"][None])
    correct = logits.gather(-1, labels[None, :, None, None].expand(
        len(parts), -1, logits.shape[2], 1))[..., 0]  # [comp, batch, pos]
    mean_all = correct.mean((1, 2))
    mean_pos = correct[:, :, position].mean(1)
    total = mean_all.sum()
    layer1 = mean_all[3:].sum()
    summary = {
        "components": list(COMPONENTS),
        "mean_all_positions": [float(v) for v in mean_all],
        f"mean_position_{position}": [float(v) for v in mean_pos],
        "layer1_share": float(layer1 / total),
        "layer1_share_position": float(mean_pos[3:].sum() / mean_pos.sum()),
        "position": position,
        # Compensation, per sequence: where one layer-1 head gives less, does the other give more?
        "layer1_heads_corr_over_sequences": _corr(
            correct[3].flatten().numpy(), correct[4].flatten().numpy()),
    }
    return summary, {"dla_correct": correct}


def analyse(model: HookedTransformer, md: ModeData, n_eval: int, circuits: bool,
            dla_position: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Every analysis of one mode; the summary (JSON) and the tensors the figures draw."""
    toks, labels = md.val.tokens[:n_eval], md.val.labels[:n_eval]
    summary: dict[str, Any] = {}
    tensors: dict[str, torch.Tensor] = {}
    s, t = accuracy(model, toks, labels)
    summary["accuracy"], tensors = s, {**tensors, **t}
    if circuits:
        for key, (s, t) in {
            "position0": position0(model, md),
            "attention": attention(model, toks),
            "ov": layer1_ov(model, md),
            "dla": dla(model, toks, labels, dla_position),
        }.items():
            summary[key] = s
            tensors.update(t)
        summary["common_words"] = common_word_attention(model, md, toks, md.val.plain[:n_eval])
        # The post: at position 1 the head that reads 0B (its 1.1) matters most, since only
        # (A, B) information exists there. Which head reads 0B best is the OV analysis's.
        b_head = int(np.argmax([row[1] for row in summary["ov"]["mean_correct_logit"]]))
        pos_dla = summary["dla"][f"mean_position_{dla_position}"][3:]
        summary["dla"]["b_head"] = f"1.{b_head}"
        summary["dla"]["b_head_share_position"] = float(pos_dla[b_head] / sum(pos_dla))
        tensors["word_freq"] = md.words.freqs.float()
    return summary, tensors

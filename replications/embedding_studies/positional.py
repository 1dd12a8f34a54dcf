"""Emergent positional embeddings of words: does the residual stream know which word a token is in?

The post (GPT-2 small): prompts of a fixed ~19-token prefix and seven random lower-case words of
1-3 tokens each (each fed as " word"; token length uniform, then a word of that length uniform),
words of training prompts from 80% of the dictionary and of validation prompts from the other
20%; a logistic-regression probe on the residual stream after layer 3, at the last token of each
word, predicting the word's index (0-6). Its key plot: for each absolute position and true
index, the distribution of predicted indices. Its limitations, which it asks to control: the
classes are not balanced for absolute position, and "begins with a space" alone (a one-token
word) says something about the index at a fixed position. Here:

- `word_list`: lower-case words of the text rows occurring at least `min_word_count` times,
  grouped by the number of tokens of " word" (1..max_word_tokens), each group split 80/20;
- `make_prompts`: BOS + prefix + n_words words, the word-end positions and labels;
- residuals at the word ends before block 0 and after every block (padding after a prompt's
  end is never read: attention is causal);
- probes (the shared probe, `shared.probes.fit_logistic`) at every layer, trained on the
  training prompts and scored on the validation prompts: (a) as the post, on all word ends;
  (b) position-balanced: at every absolute position, each index present there is cut to the
  same number of word ends (positions with a single index are dropped), in training and in
  validation, so absolute position alone carries no information about the index;
- the baseline the probe must beat: the same probe on [one-hot absolute position, does the
  token begin with a space] only, on the same rows.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from replications.embedding_studies.config import PositionalConfig
from replications.embedding_studies.embeddings import residuals_at
from shared.probes import fit_logistic

WORD = re.compile(r"(?<![A-Za-z'])[a-z]{2,}(?![A-Za-z'])")


def word_list(rows: Int[Tensor, "rows seq"], tokenizer: Any, cfg: PositionalConfig
              ) -> dict[int, list[tuple[str, list[int]]]]:
    """Token count -> the (word, token ids of " word") of the text's common lower-case words."""
    counts: Counter[str] = Counter()
    for row in rows.tolist():
        counts.update(WORD.findall(tokenizer.decode(row[1:])))
    groups: dict[int, list[tuple[str, list[int]]]] = {k: [] for k in
                                                      range(1, cfg.max_word_tokens + 1)}
    for word in sorted(w for w, c in counts.items() if c >= cfg.min_word_count):
        ids = tokenizer.encode(" " + word, add_special_tokens=False)
        if len(ids) in groups and tokenizer.decode(ids) == " " + word:
            groups[len(ids)].append((word, ids))
    return groups


def split_words(groups: dict[int, list[tuple[str, list[int]]]], fraction: float, seed: int
                ) -> tuple[dict[int, list[list[int]]], dict[int, list[list[int]]]]:
    """Each token-length group split into training and validation words (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    train, val = {}, {}
    for k, words in groups.items():
        if len(words) < 2:
            raise ValueError(f"only {len(words)} words of {k} tokens in the text: lower "
                             "positional.max_word_tokens or min_word_count, or add text")
        perm = torch.randperm(len(words), generator=gen).tolist()
        cut = min(len(words) - 1, max(1, round(fraction * len(words))))
        train[k] = [words[i][1] for i in perm[:cut]]
        val[k] = [words[i][1] for i in perm[cut:]]
    return train, val


@dataclasses.dataclass(frozen=True)
class Prompts:
    tokens: Int[Tensor, "prompts seq"]  # right-padded with the BOS id
    row: Int[Tensor, " n"]  # word end -> prompt
    pos: Int[Tensor, " n"]  # absolute position of the word's last token
    index: Int[Tensor, " n"]  # the word's index in the prompt (0..n_words-1)
    space: Bool[Tensor, " n"]  # the last token begins with a space (a one-token word)


def make_prompts(prefix: list[int], bos: int, words: dict[int, list[list[int]]], n_prompts: int,
                 n_words: int, gen: torch.Generator) -> Prompts:
    lengths = sorted(words)
    seqs, row, pos, index, space = [], [], [], [], []
    for p in range(n_prompts):
        seq = [bos] + prefix
        for w in range(n_words):
            k = lengths[int(torch.randint(len(lengths), (1,), generator=gen))]
            ids = words[k][int(torch.randint(len(words[k]), (1,), generator=gen))]
            seq += ids
            row.append(p)
            pos.append(len(seq) - 1)
            index.append(w)
            space.append(k == 1)
        seqs.append(seq)
    width = max(len(s) for s in seqs)
    tokens = torch.tensor([s + [bos] * (width - len(s)) for s in seqs])
    return Prompts(tokens, torch.tensor(row), torch.tensor(pos), torch.tensor(index),
                   torch.tensor(space))


def balance(pos: Int[Tensor, " n"], label: Int[Tensor, " n"], gen: torch.Generator
            ) -> Int[Tensor, " m"]:
    """Rows such that at every absolute position each label present has the same count."""
    keep = []
    for p in pos.unique().tolist():
        at = (pos == p).nonzero().flatten()
        labels = label[at].unique()
        if len(labels) < 2:
            continue
        groups = [at[label[at] == c] for c in labels]
        m = min(len(g) for g in groups)
        for g in groups:
            keep.append(g[torch.randperm(len(g), generator=gen)[:m]])
    return torch.cat(keep).sort().values if keep else torch.zeros(0, dtype=torch.long)


def baseline_features(pos: Int[Tensor, " n"], space: Bool[Tensor, " n"], positions: Tensor
                      ) -> Float[Tensor, "n d"]:
    onehot = (pos[:, None] == positions[None]).float()
    return torch.cat([onehot, space.float()[:, None]], dim=1)


def probe(Xtr: Tensor, ytr: Tensor, Xva: Tensor, n_classes: int, cfg: PositionalConfig
          ) -> Int[Tensor, " n"]:
    fit = fit_logistic(Xtr[None].float(), ytr[None], n_classes, cfg.probe_l2, cfg.probe_max_iter)
    return fit.logits(Xva[None].float())[0].argmax(-1)


def run(model, prefix: list[int], bos: int, groups: dict[int, list[tuple[str, list[int]]]],
        cfg: PositionalConfig) -> tuple[dict[str, Any], dict[str, Tensor]]:
    n_layers = model.cfg.n_layers
    if cfg.layer >= n_layers:
        raise ValueError(f"positional.layer {cfg.layer}: the model has {n_layers} layers")
    gen = torch.Generator().manual_seed(cfg.seed)
    train_words, val_words = split_words(groups, cfg.dict_train_fraction, cfg.seed)
    tr = make_prompts(prefix, bos, train_words, cfg.n_train_prompts, cfg.n_words, gen)
    va = make_prompts(prefix, bos, val_words, cfg.n_val_prompts, cfg.n_words, gen)
    width = max(tr.tokens.shape[1], va.tokens.shape[1])
    if width > model.cfg.n_ctx:
        raise ValueError(f"prompts of {width} tokens exceed the model's context {model.cfg.n_ctx}")
    acts_tr = residuals_at(model, tr.tokens, tr.row, tr.pos, cfg.batch_prompts)
    acts_va = residuals_at(model, va.tokens, va.row, va.pos, cfg.batch_prompts)
    positions = torch.cat([tr.pos, va.pos]).unique()
    base_tr = baseline_features(tr.pos, tr.space, positions)
    base_va = baseline_features(va.pos, va.space, positions)
    btr, bva = balance(tr.pos, tr.index, gen), balance(va.pos, va.index, gen)
    if len(btr) < 2 * cfg.n_words or len(bva) < cfg.n_words:
        raise ValueError(f"position balancing leaves {len(btr)} training and {len(bva)} "
                         "validation word ends: more prompts are needed")
    n = cfg.n_words

    def acc(pred: Tensor, y: Tensor) -> float:
        return float((pred == y).float().mean())

    layers: dict[str, list[float]] = {"all": [], "balanced": []}
    head_pred = None
    for li in range(n_layers + 1):  # 0: before block 0; li: after block li - 1
        pred = probe(acts_tr[li], tr.index, acts_va[li], n, cfg)
        layers["all"].append(acc(pred, va.index))
        if li == cfg.layer + 1:
            head_pred = pred
        pb = probe(acts_tr[li][btr], tr.index[btr], acts_va[li][bva], n, cfg)
        layers["balanced"].append(acc(pb, va.index[bva]))
    assert head_pred is not None
    base_all = acc(probe(base_tr, tr.index, base_va, n, cfg), va.index)
    base_bal = acc(probe(base_tr[btr], tr.index[btr], base_va[bva], n, cfg), va.index[bva])
    hl = cfg.layer + 1
    right = head_pred == va.index
    per_index = [float(right[va.index == i].float().mean()) for i in range(n)]
    margin = 0.05
    beats = [li - 1 for li, a in enumerate(layers["balanced"]) if a >= base_bal + margin]
    summary = {
        "n_train": len(tr.index), "n_val": len(va.index),
        "n_train_balanced": len(btr), "n_val_balanced": len(bva),
        "prefix_tokens": len(prefix),
        "words_per_length": {str(k): len(v) for k, v in groups.items()},
        "layer": cfg.layer, "chance": 1.0 / n,
        "acc": layers["all"][hl], "baseline_acc": base_all,
        "acc_over_chance": layers["all"][hl] - 1.0 / n,
        "balanced_acc": layers["balanced"][hl], "balanced_baseline_acc": base_bal,
        "balanced_gain": layers["balanced"][hl] - base_bal,
        "gain": layers["all"][hl] - base_all,
        "per_index_acc": per_index,
        "early_minus_late": sum(per_index[:3]) / 3 - sum(per_index[-3:]) / 3,
        "acc_by_layer": layers["all"], "balanced_acc_by_layer": layers["balanced"],
        "best_balanced_gain": max(layers["balanced"]) - base_bal,
        # The first residual whose position-balanced probe beats the baseline by `margin`:
        # -1 before block 0 (embeddings), i after block i; n_layers when none does.
        "earliest_layer_margin": margin,
        "earliest_layer": beats[0] if beats else n_layers,
    }
    tensors = {"val_pos": va.pos, "val_index": va.index, "val_pred": head_pred}
    return summary, tensors


def run_on_model(model, rows: Int[Tensor, "rows seq"], cfg: PositionalConfig, label: str
                 ) -> tuple[dict[str, Any], dict[str, Tensor]]:
    tok = model.tokenizer
    bos = int(rows[0, 0])
    prefix = tok.encode(cfg.prefix, add_special_tokens=False)
    groups = word_list(rows, tok, cfg)
    out, tensors = run(model, prefix, bos, groups, cfg)
    return {"model_label": label, "n_layers": model.cfg.n_layers, **out}, tensors


def describe(out: dict[str, Any]) -> str:
    return (f"layer {out['layer']}: accuracy {out['acc']:.3f} (baseline {out['baseline_acc']:.3f}); "
            f"position-balanced {out['balanced_acc']:.3f} (baseline "
            f"{out['balanced_baseline_acc']:.3f})")

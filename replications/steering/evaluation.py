"""The write-up's two metrics and the comparison of Pareto frontiers.

- P(successful rollout): the share of completions that contain a word of the target
  vocabulary, counted after lower-casing and replacing non-word characters by spaces
  (`count_vocab`, whole words).
- Spliced LLM loss: mean next-token loss on held-out pretraining text with the steering vector
  added at the text's front positions, counting only predictions made at positions after the
  steered ones (steered 0..n-1: the predictions of tokens n+1 onwards), never sampling.
  The clean run up to the steering layer is shared by every condition
  (`start_at_layer`), so each condition costs only the layers from the steering layer up.
- Pareto frontiers over coefficients (P up, loss down): `pareto_front`, the step function
  `frontier_at` (best P reachable at or below a loss), `frontier_gap` (mean difference of two
  step functions over the loss range both cover) and `dominated_share` (how many of one
  frontier's points another frontier weakly dominates).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from shared.activations import forward_to_hook, model_device

_NON_WORD = re.compile(r"\W")


def load_vocab(path: Path) -> frozenset[str]:
    """Words of a vocabulary file (one a line, '#' comments), lower-cased."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing vocabulary file")
    words = {line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#")}
    if not words:
        raise ValueError(f"{path}: empty vocabulary")
    return frozenset(words)


def words_of(text: str) -> list[str]:
    """Lower-cased words, non-word characters replaced by spaces."""
    return _NON_WORD.sub(" ", text.lower()).split()


def count_vocab(text: str, vocab: frozenset[str]) -> int:
    """Occurrences of vocabulary words in `text` (whole words)."""
    return sum(w in vocab for w in words_of(text))


def matched_words(text: str, vocab: frozenset[str]) -> list[str]:
    return [w for w in words_of(text) if w in vocab]


def vocab_counts(texts: Iterable[str], vocab: frozenset[str]) -> dict[str, int]:
    """Occurrences of each vocabulary word over many texts (for the corpus report)."""
    counts = dict.fromkeys(sorted(vocab), 0)
    for text in texts:
        for w in words_of(text):
            if w in counts:
                counts[w] += 1
    return counts


# ---------------------------------------------------------------------------------------------
# Spliced LM loss


@torch.no_grad()
def spliced_loss(
    model: Any, rows: Int[Tensor, "rows seq"], vectors: Float[Tensor, "cond n d_model"],
    layer: int, batch_rows: int,
) -> Float[Tensor, "cond rows"]:
    """Mean next-token loss per (condition, row) with `vectors[c]` added at positions 0..n-1
    of `blocks.<layer>.hook_resid_pre`, over the predictions made at positions >= n."""
    device = model_device(model)
    rows = rows.to(device).long()
    n_cond, n = vectors.shape[0], vectors.shape[1]
    n_rows, seq = rows.shape
    if seq <= n + 1:
        raise ValueError(f"rows of {seq} tokens leave no prediction after {n} steered positions")
    # Layers below the steering site are the same for every condition: run them once.
    resid = forward_to_hook(model, rows, f"blocks.{layer}.hook_resid_pre")
    out = torch.empty(n_cond, n_rows)
    pairs = torch.cartesian_prod(torch.arange(n_cond), torch.arange(n_rows))  # cond-major
    for start in range(0, pairs.shape[0], batch_rows):
        cond, row = pairs[start:start + batch_rows].T
        x = resid[row.to(device)].clone()
        x[:, :n] += vectors[cond].to(x)
        # loss_per_token[:, p] is the loss of predicting token p + 1 from position p.
        losses = model(x, start_at_layer=layer, tokens=rows[row.to(device)],
                       return_type="loss", loss_per_token=True)
        out[cond, row] = losses[:, n:].float().mean(-1).cpu()
    return out


# ---------------------------------------------------------------------------------------------
# Pareto frontiers: points are (loss, p) with lower loss and higher p better.


def pareto_front(loss: Sequence[float], p: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points, by increasing loss."""
    order = sorted(range(len(loss)), key=lambda i: (loss[i], -p[i]))
    front, best = [], -np.inf
    for i in order:
        if p[i] > best:
            front.append(i)
            best = p[i]
    return front


def frontier_at(loss: Sequence[float], p: Sequence[float], grid: np.ndarray) -> np.ndarray:
    """Best P reachable at a loss no higher than each grid value (nan below every point)."""
    loss_a, p_a = np.asarray(loss, float), np.asarray(p, float)
    out = np.full(len(grid), np.nan)
    for j, g in enumerate(grid):
        ok = loss_a <= g
        if ok.any():
            out[j] = p_a[ok].max()
    return out


def frontier_gap(
    a: tuple[Sequence[float], Sequence[float]], b: tuple[Sequence[float], Sequence[float]],
    grid_points: int,
) -> float:
    """Mean of frontier_a - frontier_b over losses both cover: from the larger of the two
    lowest losses to the smaller of the two highest. Positive: `a` reaches more P(success)
    for the same loss."""
    lo = max(min(a[0]), min(b[0]))
    hi = min(max(a[0]), max(b[0]))
    if hi < lo:
        return float("nan")
    grid = np.linspace(lo, hi, grid_points)
    return float(np.mean(frontier_at(*a, grid) - frontier_at(*b, grid)))


def dominated_share(
    a: tuple[Sequence[float], Sequence[float]], b: tuple[Sequence[float], Sequence[float]],
    tol: float, skip: Sequence[int] = (),
) -> float:
    """Share of b's frontier points (except indices in `skip`) weakly dominated by a point of
    a (loss no higher, P no lower than P_b - tol)."""
    front = [i for i in pareto_front(*b) if i not in set(skip)]
    if not front:
        return float("nan")
    la, pa = np.asarray(a[0], float), np.asarray(a[1], float)
    hits = [bool(((la <= b[0][i]) & (pa >= b[1][i] - tol)).any()) for i in front]
    return float(np.mean(hits))

"""Puzzle 2: word2vec-style directions in the token embeddings.

The post: a linear regression from each token's embedding to its number of characters recovers
it "very cleanly" once ridiculous tokens (such as 512 spaces) are filtered out, and the feature
is numerical, not categorical: to go from 3 characters to 4 "you just add this direction",
rather than the model clustering tokens of each length. "Begins with a space" is another
strongly represented feature. Here, on `W_E` (default weight processing, as the post):

- tokens: decodable (no U+FFFD), not whitespace only, at most `max_chars` characters; the length
  counts every character, a leading space included;
- the length regression: ridge (closed form, centred) fitted on a seeded training split, R^2 on
  the held-out tokens; baseline: the same fit on shuffled training lengths (R^2 on the true
  held-out lengths), over `n_shuffles` shuffles;
- numeric, not clusters: the class means mu_k of the tokens of each length k (lengths with at
  least `min_per_length` tokens); the steps mu_{k+1} - mu_k point the same way when one
  direction encodes length (their mean pairwise cosine, `step_alignment`; for the means of
  random groups the consecutive steps share a mean with opposite signs and the cosine is about
  -0.5: the shuffled baseline, averaged over the shuffles), and adding the average step s to an embedding moves the fitted
  regression's prediction by `unit_step` = w . s characters (one, if the regression reads the
  same direction the means step along); the held-out mean prediction per true length rises
  with every length (`monotone_fraction`);
- further binary directions, each a held-out logistic probe (the shared probe) against the
  same probe on shuffled labels: "begins with a space" (all kept tokens) and "capitalised"
  (tokens whose first non-space character is a letter; is it upper case).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from replications.embedding_studies.config import DirectionsConfig
from shared.probes import fit_logistic


def token_strings(tokenizer: Any, d_vocab: int) -> list[str]:
    return [tokenizer.decode([i]) for i in range(min(d_vocab, len(tokenizer)))]


def keep_token(s: str, max_chars: int) -> bool:
    """Not degenerate: decodes cleanly, not only whitespace, not too long."""
    return 0 < len(s) <= max_chars and bool(s.strip()) and "\ufffd" not in s \
        and s.isprintable()


def split(n: int, test_fraction: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    perm = torch.randperm(n, generator=gen)
    k = n - max(1, int(round(test_fraction * n)))
    if k < 2:
        raise ValueError(f"{n} tokens leave no training split")
    return perm[:k].sort().values, perm[k:].sort().values


def ridge_fit(X: Float[Tensor, "n d"], y: Float[Tensor, " n"], ridge: float
              ) -> tuple[Float[Tensor, " d"], float]:
    """w, b minimising ||Xw + b - y||^2 + lam ||w||^2, lam = ridge * n * mean feature variance."""
    X, y = X.double(), y.double()
    mu, ym = X.mean(0), y.mean()
    Xc = X - mu
    cov = Xc.T @ Xc
    lam = ridge * float(cov.diagonal().mean())
    w = torch.linalg.solve(cov + lam * torch.eye(X.shape[1], dtype=X.dtype), Xc.T @ (y - ym))
    return w, float(ym - mu @ w)


def r2(pred: Tensor, y: Tensor) -> float:
    y = y.double()
    return 1.0 - float(((pred.double() - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def length_study(X: Float[Tensor, "n d"], length: Int[Tensor, " n"], cfg: DirectionsConfig
                 ) -> tuple[dict[str, Any], dict[str, Tensor]]:
    gen = torch.Generator().manual_seed(cfg.seed)
    tr, te = split(len(X), cfg.test_fraction, gen)
    y = length.double()
    w, b = ridge_fit(X[tr], y[tr], cfg.ridge)
    pred = X.double() @ w + b
    shuffled = []
    for _ in range(cfg.n_shuffles):
        ys = y[tr][torch.randperm(len(tr), generator=gen)]
        ws, bs = ridge_fit(X[tr], ys, cfg.ridge)
        shuffled.append(r2(X[te].double() @ ws + bs, y[te]))
    # Class means per length and their steps.
    counts = torch.bincount(length)
    ks = [k for k in range(len(counts)) if counts[k] >= cfg.min_per_length]
    run = _longest_run(ks)
    mus = torch.stack([X[length == k].double().mean(0) for k in run])
    steps = mus[1:] - mus[:-1]
    mean_step = (mus[-1] - mus[0]) / (len(run) - 1)
    # Baseline: the same statistic for random groups of the same sizes (shuffled lengths),
    # averaged over the shuffles.
    shuffled_align = []
    for _ in range(cfg.n_shuffles):
        perm_len = length[torch.randperm(len(length), generator=gen)]
        mus_s = torch.stack([X[perm_len == k].double().mean(0) for k in run])
        shuffled_align.append(_consecutive_cos(mus_s[1:] - mus_s[:-1]))
    held_mean = [float(pred[te][length[te] == k].mean()) if (length[te] == k).any()
                 else math.nan for k in run]
    pairs = [(a, c) for a, c in zip(held_mean, held_mean[1:])
             if not (math.isnan(a) or math.isnan(c))]
    result = {
        "n_tokens": len(X), "n_train": len(tr), "n_test": len(te),
        "heldout_r2": r2(pred[te], y[te]),
        "train_r2": r2(pred[tr], y[tr]),
        "shuffled_r2_mean": sum(shuffled) / len(shuffled),
        "shuffled_r2_max": max(shuffled),
        "lengths": run, "counts": [int(counts[k]) for k in run],
        "heldout_mean_pred": held_mean,
        "step_alignment": _mean_pairwise_cos(steps),
        "step_alignment_consecutive": _consecutive_cos(steps),
        "step_alignment_consecutive_shuffled": sum(shuffled_align) / len(shuffled_align),
        "unit_step": float(w @ mean_step),
        "monotone_fraction": sum(c > a for a, c in pairs) / max(1, len(pairs)),
    }
    tensors = {"pred_test": pred[te].float(), "length_test": length[te]}
    return result, tensors


def _longest_run(ks: list[int]) -> list[int]:
    """The longest run of consecutive lengths (the step analysis needs neighbours)."""
    best: list[int] = []
    cur: list[int] = []
    for k in ks:
        cur = cur + [k] if cur and k == cur[-1] + 1 else [k]
        if len(cur) > len(best):
            best = cur
    if len(best) < 3:
        raise ValueError(f"fewer than 3 consecutive token lengths with enough tokens ({ks})")
    return best


def _unit(v: Tensor) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-30)


def _mean_pairwise_cos(steps: Tensor) -> float:
    u = _unit(steps)
    sims = u @ u.T
    i, j = torch.triu_indices(len(u), len(u), offset=1)
    return float(sims[i, j].mean())


def _consecutive_cos(steps: Tensor) -> float:
    u = _unit(steps)
    return float((u[1:] * u[:-1]).sum(-1).mean())


def binary_probe(X: Float[Tensor, "n d"], label: Bool[Tensor, " n"], cfg: DirectionsConfig,
                 gen: torch.Generator) -> dict[str, float]:
    """Held-out accuracy of a logistic probe, of the same probe on shuffled training labels,
    and of always guessing the training majority."""
    tr, te = split(len(X), cfg.test_fraction, gen)
    y = label.long()
    ys = y[tr][torch.randperm(len(tr), generator=gen)]
    Xtr = torch.stack([X[tr], X[tr]]).float()
    fit = fit_logistic(Xtr, torch.stack([y[tr], ys]), 2, cfg.probe_l2, cfg.probe_max_iter)
    pred = fit.logits(torch.stack([X[te], X[te]]).float()).argmax(-1)
    acc = (pred == y[te]).float().mean(1)
    majority = float(y[tr].float().mean() >= 0.5)
    return {"heldout_acc": float(acc[0]), "shuffled_acc": float(acc[1]),
            "majority_acc": float((y[te] == majority).float().mean()),
            "positive_share": float(y.float().mean()), "n_tokens": len(X)}


def run(W_E: Float[Tensor, "vocab d"], strings: list[str], cfg: DirectionsConfig
        ) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Every Puzzle 2 number: the length regression and the binary directions."""
    keep = [i for i, s in enumerate(strings) if keep_token(s, cfg.max_chars)]
    if len(keep) < 20:
        raise ValueError(f"only {len(keep)} tokens pass the filter")
    idx = torch.tensor(keep)
    X = W_E[idx].detach().double().cpu()
    kept = [strings[i] for i in keep]
    length = torch.tensor([len(s) for s in kept])
    out: dict[str, Any] = {"n_vocab": len(strings), "n_kept": len(keep)}
    out["length"], tensors = length_study(X, length, cfg)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    space = torch.tensor([s.startswith(" ") for s in kept])
    out["space"] = binary_probe(X, space, cfg, gen)
    letter = [i for i, s in enumerate(kept) if s.lstrip(" ")[:1].isalpha()]
    cap = torch.tensor([kept[i].lstrip(" ")[0].isupper() for i in letter])
    out["capital"] = binary_probe(X[torch.tensor(letter)], cap, cfg, gen)
    for name in ("space", "capital"):
        p = out[name]
        p["gain_over_shuffled"] = p["heldout_acc"] - max(p["shuffled_acc"], p["majority_acc"])
    ln = out["length"]
    ln["r2_gain_over_shuffled"] = ln["heldout_r2"] - ln["shuffled_r2_max"]
    ln["alignment_gain_over_shuffled"] = (ln["step_alignment_consecutive"]
                                          - ln["step_alignment_consecutive_shuffled"])
    return out, tensors


def run_on_model(model, cfg: DirectionsConfig, label: str
                 ) -> tuple[dict[str, Any], dict[str, Tensor]]:
    strings = token_strings(model.tokenizer, model.cfg.d_vocab)
    out, tensors = run(model.W_E[: len(strings)], strings, cfg)
    return {"model_label": label, **out}, tensors


def describe(out: dict[str, Any]) -> str:
    ln = out["length"]
    return (f"length R^2 held-out {ln['heldout_r2']:.3f} (shuffled max "
            f"{ln['shuffled_r2_max']:.3f}); space acc {out['space']['heldout_acc']:.3f}; "
            f"capital acc {out['capital']['heldout_acc']:.3f}")

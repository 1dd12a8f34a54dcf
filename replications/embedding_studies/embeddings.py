"""Puzzle 1: how similar are a model's token embeddings, and why?

The post plots the histogram of pairwise cosine similarities of 5000 random token embeddings
(`W_E` of a TransformerLens model loaded with its default weight processing): GPT-Neo 125M's
mean is above 0.9, GPT-2 small's about 0.3. The answer it points to: a large shared mean vector
(the cosine of each embedding with the mean is about 0.95 for GPT-Neo), i.e. the origin is not
meaningful; a comment adds Cai et al. (2021): residual streams lie in a few clusters around a
common offset, and re-centring brings their cosines near 0 at every layer.

Here, for a vector set X (rows):

- `pairwise_cosines`: the cosines of all distinct pairs (upper triangle);
- `centred`: X minus its mean row; `remove_top_pcs`: centred X with its top-k principal
  components projected out;
- `cosine_with_mean`: each row's cosine with the mean row (the post's explanation, directly);
- the same statistics per layer for the residual stream (`blocks.0.hook_resid_pre`, the
  embedding plus positions, then each block's `hook_resid_post`) at sampled positions of text
  rows, BOS position left out, each layer centred with its own mean over the sample.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from replications.embedding_studies.config import Puzzle1Config
from shared.activations import model_device


def pairwise_cosines(X: Float[Tensor, "n d"]) -> Float[Tensor, " pairs"]:
    """Cosine similarity of every distinct pair of rows (float64)."""
    Xn = X.double() / X.double().norm(dim=-1, keepdim=True).clamp_min(1e-30)
    sims = Xn @ Xn.T
    i, j = torch.triu_indices(len(X), len(X), offset=1)
    return sims[i, j]


def centred(X: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
    X = X.double()
    return X - X.mean(0)


def remove_top_pcs(X: Float[Tensor, "n d"], k: int) -> Float[Tensor, "n d"]:
    """Centred X with its top `k` principal directions projected out."""
    Xc = centred(X)
    _, _, Vh = torch.linalg.svd(Xc, full_matrices=False)
    V = Vh[:k].T
    return Xc - (Xc @ V) @ V.T


def cosine_with_mean(X: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
    X = X.double()
    return torch.cosine_similarity(X, X.mean(0, keepdim=True), dim=-1)


def variants(X: Float[Tensor, "n d"], remove_pcs: tuple[int, ...]) -> dict[str, Tensor]:
    """The vector set as it is, mean-centred, and centred with the top k PCs removed."""
    out = {"raw": X.double(), "centred": centred(X)}
    for k in remove_pcs:
        if k < min(X.shape):
            out[f"pcs_removed_{k}"] = remove_top_pcs(X, k)
    return out


def summary(cos: Float[Tensor, " pairs"]) -> dict[str, float]:
    q = torch.quantile(cos.float(), torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95]))
    return {"mean": float(cos.mean()), "q05": float(q[0]), "q25": float(q[1]),
            "median": float(q[2]), "q75": float(q[3]), "q95": float(q[4])}


def histogram(cos: Float[Tensor, " pairs"], bins: int) -> list[int]:
    return torch.histc(cos.float(), bins=bins, min=-1.0, max=1.0).long().tolist()


def embedding_study(W_E: Float[Tensor, "vocab d"], cfg: Puzzle1Config, bins: int
                    ) -> dict[str, Any]:
    """Cosine statistics and histograms of a seeded vocabulary subsample, per variant."""
    gen = torch.Generator().manual_seed(cfg.seed)
    n = min(cfg.n_tokens, W_E.shape[0])
    pick = torch.randperm(W_E.shape[0], generator=gen)[:n]
    X = W_E[pick].detach().cpu()
    out: dict[str, Any] = {"n_tokens": n, "d_model": int(W_E.shape[1]), "variants": {}}
    for name, V in variants(X, cfg.remove_pcs).items():
        cos = pairwise_cosines(V)
        out["variants"][name] = {**summary(cos), "hist": histogram(cos, bins)}
    cm = cosine_with_mean(X)
    out["cos_with_mean"] = {"mean": float(cm.mean()), "median": float(cm.median())}
    # Share of the squared norm in the mean direction: how big the shared offset is.
    Xd = X.double()
    out["mean_norm_share"] = float(Xd.mean(0).norm() ** 2 / Xd.pow(2).sum(1).mean())
    return out


def sample_positions(n_rows: int, row_len: int, n: int, seed: int
                     ) -> tuple[Int[Tensor, " n"], Int[Tensor, " n"]]:
    """`n` distinct (row, position) pairs, position >= 1 (the BOS is left out), seeded."""
    total = n_rows * (row_len - 1)
    flat = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[: min(n, total)]
    flat = flat.sort().values
    return flat // (row_len - 1), flat % (row_len - 1) + 1


def resid_hooks(n_layers: int) -> list[str]:
    """The residual stream before block 0 (embeddings + positions), then after every block."""
    return ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(n_layers)]


@torch.no_grad()
def residuals_at(model, rows: Int[Tensor, "rows seq"], row: Int[Tensor, " n"],
                 pos: Int[Tensor, " n"], batch_rows: int = 32) -> Float[Tensor, "layers n d"]:
    """The residual at (row, pos) for every hook of `resid_hooks`, gathered per batch of rows."""
    names = resid_hooks(model.cfg.n_layers)
    dev = model_device(model)
    out = torch.empty(len(names), len(row), model.cfg.d_model)
    for start in range(0, rows.shape[0], batch_rows):
        sel = ((row >= start) & (row < start + batch_rows)).nonzero().flatten()
        if len(sel) == 0:
            continue
        _, cache = model.run_with_cache(rows[start:start + batch_rows].long().to(dev),
                                        names_filter=names,
                                        stop_at_layer=model.cfg.n_layers)
        r, p = (row[sel] - start).to(dev), pos[sel].to(dev)
        for li, name in enumerate(names):
            out[li, sel] = cache[name][r, p].float().cpu()
    return out


def residual_study(model, rows: Int[Tensor, "rows seq"], cfg: Puzzle1Config, bins: int
                   ) -> dict[str, Any]:
    """Per layer: the cosine statistics of the sampled residuals, raw and re-centred."""
    row, pos = sample_positions(rows.shape[0], rows.shape[1], cfg.resid_tokens, cfg.seed)
    acts = residuals_at(model, rows, row, pos)
    layers: list[dict[str, Any]] = []
    for X in acts:
        per = {}
        for name, V in variants(X, cfg.remove_pcs).items():
            cos = pairwise_cosines(V)
            per[name] = {**summary(cos), "hist": histogram(cos, bins)}
        per["cos_with_mean"] = float(cosine_with_mean(X).mean())
        layers.append(per)
    return {"n_positions": len(row), "layer_names": ["embed"] + [str(i) for i in
                                                               range(model.cfg.n_layers)],
            "layers": layers}


def headline(emb: dict[str, Any], resid: dict[str, Any], remove_pcs: tuple[int, ...]
             ) -> dict[str, float]:
    """The numbers the claims read."""
    v = emb["variants"]
    layers = resid["layers"]
    k = max(p for p in remove_pcs if f"pcs_removed_{p}" in v)
    raw = [lay["raw"]["mean"] for lay in layers]
    cen = [lay["centred"]["mean"] for lay in layers]
    return {
        "embed_mean_cos": v["raw"]["mean"],
        "embed_centred_mean_cos": v["centred"]["mean"],
        "embed_centred_abs_mean_cos": abs(v["centred"]["mean"]),
        "embed_pcs_removed_mean_cos": v[f"pcs_removed_{k}"]["mean"],
        "embed_cos_with_mean": emb["cos_with_mean"]["mean"],
        "embed_drop": v["raw"]["mean"] - v["centred"]["mean"],
        "resid_raw_mean_cos_min": min(raw),
        "resid_raw_mean_cos_mean": sum(raw) / len(raw),
        "resid_centred_abs_mean_cos_max": max(abs(c) for c in cen),
        "resid_drop_min": min(r - c for r, c in zip(raw, cen)),
    }


def run(model, rows: Int[Tensor, "rows seq"], cfg: Puzzle1Config, label: str) -> dict[str, Any]:
    """Puzzle 1 on one model: its embeddings, its residual stream, the headline numbers."""
    bins = cfg.hist_bins
    emb = embedding_study(model.W_E, cfg, bins)
    resid = residual_study(model, rows, cfg, bins)
    return {"model_label": label, "n_layers": model.cfg.n_layers, "bins": bins,
            "remove_pcs": list(cfg.remove_pcs), "embedding": emb, "residual": resid,
            "headline": headline(emb, resid, cfg.remove_pcs)}


def describe(out: dict[str, Any]) -> str:
    h = out["headline"]
    return (f"embedding mean cosine {h['embed_mean_cos']:.3f}, centred "
            f"{h['embed_centred_mean_cos']:.3f}; residual raw mean over layers "
            f"{h['resid_raw_mean_cos_mean']:.3f}")

"""Inference-time optimisation on the dictionaries of one site's SAEs (the write-up's first
snippet).

For each dictionary (one SAE per L1 coefficient, plus a random dictionary of the same size):
loss recovered when gradient pursuit (`shared.ito`) replaces the encoder, at each target L0, and
with the cheap alternative, the encoder's top-k coefficients. For the SAEs also the encoder's own
point, and ITO at the encoder's own L0 token by token (`target_l0` per input), which compares the
two on the same dictionary at exactly matched sparsity. On one dictionary, at matched L0: the
encoder's and ITO's activations of every feature (the scatter), each token's smallest non-zero
activation under each method, and how often ITO fires where the encoder fires strongly or
weakly (per feature, by quartile of the encoder's non-zero activations).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from jaxtyping import Float
from torch import Tensor

from replications.sae_methods.config import ITOConfig
from shared.ito import sae_ito_codes, sae_topk_codes
from shared.sae import SAE
from shared.sae_eval import SAEEvaluator, decode_instance, encode_instance

Codes = Callable[[Float[Tensor, "n d"]], Float[Tensor, "n d_sae"]]


def random_dictionary(like: SAE, mean_act: Float[Tensor, " d"], seed: int) -> SAE:
    """Gaussian unit-norm atoms, as many as `like` has, offset by the mean activation (the
    baseline's bias: what a dictionary-free reconstruction keeps)."""
    gen = torch.Generator().manual_seed(seed)
    sae = SAE(like.d_in, like.d_sae, 1, pre_encoder_bias=True)
    with torch.no_grad():
        w = torch.randn(like.d_sae, like.d_in, generator=gen)
        sae.W_dec[0].copy_(w / w.norm(dim=-1, keepdim=True))
        sae.b_dec[0].copy_(mean_act.cpu())
    return sae.to(like.W_dec.device)


def _score(evaluator: SAEEvaluator, sae: SAE, codes: Codes) -> tuple[float, float]:
    """Loss recovered with `codes` decoded by the dictionary at the hook, and the mean L0."""
    counts = {"nz": 0.0, "n": 0}

    def patch(x: Tensor) -> Tensor:
        f = codes(x.to(sae.W_dec.device))
        counts["nz"] += float((f != 0).sum())
        counts["n"] += x.shape[0]
        return decode_instance(sae, f, 0)

    recovered, _ = evaluator.patched_loss_recovered(patch)
    return recovered, counts["nz"] / max(counts["n"], 1)


def _enc_l0(sae: SAE, x: Tensor) -> Tensor:
    return (encode_instance(sae, x, 0) > 0).sum(-1)


def frontier(evaluator: SAEEvaluator, sae: SAE, cfg: ITOConfig, encoder: bool) -> dict[str, Any]:
    """ITO (and, with `encoder`, top-k, the encoder itself and ITO at its L0) on one dictionary."""
    out: dict[str, Any] = {"targets": list(cfg.target_l0s), "ito_lr": [], "ito_l0": []}
    for k in cfg.target_l0s:
        lr, l0 = _score(evaluator, sae, lambda x, k=k: sae_ito_codes(sae, 0, x, k, cfg.refine_steps))
        out["ito_lr"].append(lr)
        out["ito_l0"].append(l0)
    if not encoder:
        return out
    out["topk_lr"], out["topk_l0"] = [], []
    for k in cfg.target_l0s:
        lr, l0 = _score(evaluator, sae, lambda x, k=k: sae_topk_codes(sae, 0, x, k))
        out["topk_lr"].append(lr)
        out["topk_l0"].append(l0)
    out["encoder_lr"], out["encoder_l0"] = _score(evaluator, sae,
                                                  lambda x: encode_instance(sae, x, 0))
    out["matched_ito_lr"], out["matched_ito_l0"] = _score(
        evaluator, sae, lambda x: sae_ito_codes(sae, 0, x, _enc_l0(sae, x), cfg.refine_steps))
    return out


@torch.no_grad()
def compare_codes(sae: SAE, x: Float[Tensor, "n d"], cfg: ITOConfig
                  ) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Encoder vs ITO codes at matched L0 on one dictionary: the scatter feature's pairs, each
    token's smallest non-zero activation, and the strong / weak agreement statistics."""
    enc = encode_instance(sae, x, 0)
    ito = sae_ito_codes(sae, 0, x, _enc_l0(sae, x), cfg.refine_steps)
    inf = torch.tensor(float("inf"), device=enc.device)
    mins = {}
    for name, f in (("encoder", enc), ("ito", ito)):
        m = torch.where(f > 0, f, inf).min(-1).values
        mins[name] = m[torch.isfinite(m)].cpu()
    fires = (enc > 0).sum(0)
    # The scatter feature: the most often firing one that is not dense (fires on <= 20%).
    eligible = torch.where(fires <= 0.2 * x.shape[0], fires, torch.zeros_like(fires))
    feat = int(eligible.argmax())
    either = (enc[:, feat] > 0) | (ito[:, feat] > 0)
    # Per feature, each encoder-active token's quartile among that feature's non-zero values.
    strong_hits, strong_n, weak_hits, weak_n = 0.0, 0, 0.0, 0
    strong_pairs, weak_pairs = [], []
    for j in torch.nonzero(fires >= cfg.min_fires).flatten().tolist():
        on = enc[:, j] > 0
        e, i = enc[on, j], ito[on, j]
        q = e.argsort().argsort().float() / max(e.numel() - 1, 1)
        scale = e.max()
        for sel, pairs, kind in ((q >= 0.75, strong_pairs, "strong"), (q < 0.25, weak_pairs, "weak")):
            pairs.append(torch.stack([e[sel], i[sel]], -1) / scale)
            hits = float((i[sel] > 0).sum())
            if kind == "strong":
                strong_hits, strong_n = strong_hits + hits, strong_n + int(sel.sum())
            else:
                weak_hits, weak_n = weak_hits + hits, weak_n + int(sel.sum())

    def corr(pairs: list[Tensor]) -> float:
        p = torch.cat(pairs) if pairs else torch.zeros(0, 2)
        if p.shape[0] < 3 or float(p[:, 0].std()) == 0 or float(p[:, 1].std()) == 0:
            return float("nan")
        return float(torch.corrcoef(p.T.double())[0, 1])

    stats = {
        "feature": feat, "feature_fires": int(fires[feat]), "n_tokens": int(x.shape[0]),
        "encoder_l0": float((enc > 0).sum(-1).float().mean()),
        "ito_l0": float((ito > 0).sum(-1).float().mean()),
        "min_active_median": {k: float(v.median()) if v.numel() else float("nan")
                              for k, v in mins.items()},
        "p_ito_fires_strong": strong_hits / max(strong_n, 1),
        "p_ito_fires_weak": weak_hits / max(weak_n, 1),
        "n_strong": strong_n, "n_weak": weak_n,
        "corr_strong": corr(strong_pairs), "corr_weak": corr(weak_pairs),
        "n_features": int((fires >= cfg.min_fires).sum()),
    }
    tensors = {"scatter": torch.stack([enc[either, feat], ito[either, feat]], -1).cpu(),
               "min_encoder": mins["encoder"], "min_ito": mins["ito"]}
    return stats, tensors


def run(model: Any, eval_rows: Tensor, saes: list[SAE], l1_coeffs: list[float], hook: str,
        drop_bos: bool, cfg: ITOConfig) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Every dictionary's frontier, the random baseline's, and the code comparison on
    `saes[cfg.scatter_dictionary]` (all on `eval_rows`)."""
    from shared.activations import harvest
    from shared.sae_eval import SAEEvalConfig

    ecfg = SAEEvalConfig(hook_name=hook, batch_rows=cfg.batch_rows, drop_bos=drop_bos,
                         ultra_low_frequency=1e-4)
    evaluator = SAEEvaluator(model, eval_rows, ecfg)
    dictionaries = []
    for l1, sae in zip(l1_coeffs, saes):
        dictionaries.append({"l1": l1, **frontier(evaluator, sae, cfg, encoder=True)})
    rand = random_dictionary(saes[0], evaluator.mean_act, cfg.seed)
    random_front = frontier(evaluator, rand, cfg, encoder=False)
    x = harvest(model, eval_rows, hook, cfg.batch_rows, drop_bos).float()
    stats, tensors = compare_codes(saes[cfg.scatter_dictionary], x.to(saes[0].W_dec.device), cfg)
    out = {"hook": hook, "ce_clean": evaluator.ce_clean, "ce_zero_ablation": evaluator.ce_zero,
           "dictionaries": dictionaries, "random": random_front,
           "scatter_dictionary": cfg.scatter_dictionary, "codes": stats}
    return out, tensors


def describe(out: dict[str, Any]) -> str:
    best = max(max(d["ito_lr"]) for d in out["dictionaries"])
    return (f"{len(out['dictionaries'])} dictionaries, best ITO loss recovered {best:.3f}, "
            f"random {max(out['random']['ito_lr']):.3f}")

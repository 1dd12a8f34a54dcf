"""The solution's analyses of the trained model, each as the post does it.

`analyse(model, cfg)` returns a JSON summary (what `grid_metrics` puts under `analysis.` in
metrics.json) and the tensors the figures draw:

- `labels`: the model's labels on the whole grid against the labelling function, held-out
  accuracy, and where the errors are: near the curved boundaries (green, purple) against
  elsewhere, and by the number of colour changes of the row (0, 1, 2);
- `neurons`: each MLP neuron's contribution to the logit difference (red minus blue): its ReLU
  output times W_out W_U[:, red - blue]; neurons whose largest |contribution| exceeds the
  threshold, sorted into families by colour (sign) and side (left, all, right); one neuron of
  each of the post's four families (red-right, red-all, blue-left, blue-right), and how often
  their summed contribution (compared with 0; all else zero-ablated) agrees with the model;
- `probes`: multinomial logistic regressions from resid_mid (last position) to X and to Y;
- `attention`: mean attention of the last position per head; the attention pattern replaced
  by its mean over all inputs (Heimersheim and Hobbhahn's ablation), and the two heads that
  attend most to Y restored;
- `qk`: the QK circuit on the positional embeddings, W_pos W_Q^h (W_pos W_K^h)^T (no biases,
  no 1/sqrt(d_head) scale); per head, position 2's score for X's position minus Y's;
- `extended`: extended embeddings, W_E W_V^h W_O^h W_in weighted by the mean attention of head
  h on X's (or Y's) position; whether they rise or fall with the input value.
"""

from __future__ import annotations

from typing import Any

import torch
from transformer_lens import HookedTransformer

from replications.grid_challenge import data
from replications.grid_challenge.config import Config

FAMILIES = ("red-right", "red-all", "blue-left", "blue-right", "red-left", "blue-all")
POST_FOUR = ("red-right", "red-all", "blue-left", "blue-right")
LEFT_COLS, RIGHT_COLS = 38, 75  # a neuron's left third is Y < 38, its right third Y >= 75
ALL_RATIO = 0.5  # "all": its weaker third carries at least half of its stronger third's mass

Tensors = dict[str, torch.Tensor]


def _rate(mask: torch.Tensor, wrong: torch.Tensor) -> float | None:
    n = int(mask.sum())
    return float(wrong[mask].float().mean()) if n else None


def logit_diff(logits: torch.Tensor) -> torch.Tensor:
    return logits[..., 1] - logits[..., 0]


def run_all(model: HookedTransformer) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits at the last position on the whole grid and the activations the analyses read."""
    names = ("blocks.0.mlp.hook_post", "blocks.0.hook_resid_mid", "blocks.0.attn.hook_pattern")
    with torch.no_grad():
        logits, cache = model.run_with_cache(data.all_inputs(), names_filter=list(names))
    return logits[:, -1], {
        "post": cache["blocks.0.mlp.hook_post"][:, -1],
        "resid_mid": cache["blocks.0.hook_resid_mid"][:, -1],
        "pattern": cache["blocks.0.attn.hook_pattern"][:, :, -1, :],  # [cell, head, key]
    }


def label_errors(pred: torch.Tensor, truth: torch.Tensor, is_train: torch.Tensor,
                 near: float) -> tuple[dict[str, Any], Tensors]:
    """Accuracy and where the model's errors are ([P, P] grids of labels)."""
    wrong = pred != truth
    test = ~is_train.reshape(data.P, data.P)
    d_curved = data.distance_to_switch(data.CURVED)
    d_line = data.distance_to_switch(("orange",))
    near_curved = d_curved < near
    near_line = (d_line < near) & ~near_curved
    elsewhere = ~near_curved
    far = elsewhere & ~near_line
    changes = torch.tensor([len(s.switches) for s in data.scan_rows(truth)])
    by_changes = {str(k): _rate((changes == k)[:, None].expand(-1, data.P), wrong)
                  for k in (0, 1, 2)}
    acc_test = float((~wrong)[test].float().mean())
    red_share = float(truth.float().mean())
    s = {
        "accuracy_all": float((~wrong).float().mean()),
        "accuracy_train": float((~wrong)[~test].float().mean()),
        "accuracy_test": acc_test,
        # The challenge's hint reports 1 - 2 x (error rate) on the held-out half.
        "casper_accuracy_test": 1 - 2 * (1 - acc_test),
        "majority_baseline": max(red_share, 1 - red_share),
        "n_errors": int(wrong.sum()),
        "error_rate_near_curved": _rate(near_curved, wrong),
        "error_rate_near_line": _rate(near_line, wrong),
        "error_rate_elsewhere": _rate(elsewhere, wrong),
        "error_rate_far": _rate(far, wrong),
        "share_cells_near_curved": float(near_curved.float().mean()),
        "share_errors_near_curved": (float(wrong[near_curved].sum() / wrong.sum())
                                     if bool(wrong.any()) else None),
        "error_rate_near_curved_test": _rate(near_curved & test, wrong),
        "error_rate_elsewhere_test": _rate(elsewhere & test, wrong),
        "error_rate_by_row_changes": by_changes,
        "rows_by_changes": {str(k): int((changes == k).sum()) for k in (0, 1, 2)},
    }
    ec, ee = s["error_rate_near_curved"], s["error_rate_elsewhere"]
    s["curved_over_elsewhere"] = (ec / ee if ee else None) if ec is not None else None
    el = s["error_rate_near_line"]
    s["curved_over_line"] = (ec / el if el else None) if ec is not None else None
    s["row_errors_rise_with_changes"] = float(
        None not in by_changes.values()
        and by_changes["0"] <= by_changes["1"] <= by_changes["2"])  # type: ignore[operator]
    return s, {"truth": truth, "model_labels": pred, "errors": wrong, "near_curved": near_curved}


def _family(c: torch.Tensor, impact: float) -> str:
    """A neuron's family from its contribution grid [P, P] and the sign of its impact."""
    a = c.abs()
    left, right = float(a[:, :LEFT_COLS].mean()), float(a[:, RIGHT_COLS:].mean())
    colour = "red" if impact > 0 else "blue"
    if min(left, right) >= ALL_RATIO * max(left, right):
        return f"{colour}-all"
    return f"{colour}-{'left' if left > right else 'right'}"


def _agreement(total: torch.Tensor, model_labels: torch.Tensor) -> float:
    return float(((total > 0).long() == model_labels).float().mean())


def neuron_families(model: HookedTransformer, post: torch.Tensor, model_labels: torch.Tensor,
                    threshold: float) -> tuple[dict[str, Any], Tensors]:
    """The post's section 3: neuron contributions, families, four representatives."""
    W_U = model.unembed.W_U.detach()
    impact = model.blocks[0].mlp.W_out.detach() @ (W_U[:, 1] - W_U[:, 0])  # [d_mlp]
    contrib = (post * impact).T.reshape(-1, data.P, data.P)  # [neuron, X, Y]
    flat_labels = model_labels.reshape(-1)
    maxabs = contrib.abs().amax(dim=(1, 2))
    members = torch.nonzero(maxabs > threshold).reshape(-1).tolist()
    family = {n: _family(contrib[n], float(impact[n])) for n in members}
    by_family = {f: [n for n in members if family[n] == f] for f in FAMILIES}
    flat = contrib.reshape(len(contrib), -1)
    # One neuron per family of the post's four: the strongest, then each in turn replaced by
    # the member that makes the four agree best with the model (two passes).
    chosen = {f: (max(by_family[f], key=lambda n: float(maxabs[n])) if by_family[f] else None)
              for f in POST_FOUR}
    for _ in range(2):
        for f in POST_FOUR:
            if not by_family[f]:
                continue
            rest = sum((flat[n] for g, n in chosen.items() if g != f and n is not None),
                       torch.zeros(flat.shape[1]))
            chosen[f] = max(by_family[f],
                            key=lambda n: (_agreement(rest + flat[n], flat_labels), -n))
    four = [n for n in chosen.values() if n is not None]
    four_total = sum((flat[n] for n in four), torch.zeros(flat.shape[1]))
    fam_total = flat[members].sum(0) if members else torch.zeros(flat.shape[1])
    red_share = float(flat_labels.float().mean())
    s = {
        "threshold": threshold,
        "n_members": len(members),
        "family_sizes": {f: len(by_family[f]) for f in FAMILIES},
        "post_four_families_present": float(all(by_family[f] for f in POST_FOUR)),
        "chosen": {f: n for f, n in chosen.items()},
        "chosen_max_abs": {f: (float(maxabs[n]) if n is not None else None)
                           for f, n in chosen.items()},
        "agreement_four": _agreement(four_total, flat_labels) if four else None,
        "agreement_families": _agreement(fam_total, flat_labels),
        "agreement_all_neurons": _agreement(flat.sum(0), flat_labels),
        "agreement_baseline_majority": max(red_share, 1 - red_share),
        "max_abs_largest": float(maxabs.max()),
    }
    fam_index = torch.full((len(impact),), -1, dtype=torch.long)
    for n in members:
        fam_index[n] = FAMILIES.index(family[n])
    tensors = {
        "impact": impact, "max_abs": maxabs, "family_index": fam_index,
        "four_contrib": torch.stack([contrib[n] if n is not None else torch.zeros(data.P, data.P)
                                     for n in chosen.values()]),
        "four_total": four_total.reshape(data.P, data.P),
    }
    return s, tensors


def probe(features: torch.Tensor, targets: torch.Tensor, is_train: torch.Tensor, steps: int,
          l2: float) -> tuple[float, float, torch.Tensor]:
    """Multinomial logistic regression (L-BFGS, full batch) fitted on the training half:
    accuracy on it, on the held-out half, and held-out accuracy per target value."""
    x = features.double()
    mu, sd = x[is_train].mean(0), x[is_train].std(0).clamp_min(1e-8)
    x = (x - mu) / sd
    n_cls = data.P
    w = torch.zeros(x.shape[1], n_cls, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_cls, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9,
                            tolerance_change=1e-12)
    xt, yt = x[is_train], targets[is_train]

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        right = (x @ w + b).argmax(-1) == targets
    held = ~is_train
    per_value = torch.stack([right[held & (targets == v)].double().mean()
                             for v in range(n_cls)])
    return float(right[is_train].double().mean()), float(right[held].double().mean()), per_value


def probes(resid_mid: torch.Tensor, is_train: torch.Tensor, steps: int, l2: float
           ) -> tuple[dict[str, Any], Tensors]:
    """The post's 4.2: can X and Y be read linearly from resid_mid (last position)?"""
    inputs = data.all_inputs()
    s: dict[str, Any] = {"chance": 1 / data.P}
    t: Tensors = {}
    for name, col in (("x", 0), ("y", 1)):
        fit, held, per_value = probe(resid_mid, inputs[:, col], is_train, steps, l2)
        s[f"{name}_train"], s[f"{name}_test"] = fit, held
        t[f"probe_{name}_per_value"] = per_value
    s["x_minus_y_test"] = s["x_test"] - s["y_test"]
    s["x_minus_y_train"] = s["x_train"] - s["y_train"]
    return s, t


def attention(model: HookedTransformer, pattern: torch.Tensor, model_labels: torch.Tensor,
              truth: torch.Tensor) -> tuple[dict[str, Any], Tensors]:
    """Mean attention per head; the pattern fixed to its mean (all heads; all but the two that
    attend most to Y)."""
    mean = pattern.mean(0)  # [head, key]
    n_heads = mean.shape[0]
    y_heads = sorted(torch.argsort(mean[:, 1], descending=True, stable=True)[:2].tolist())
    flat_model, flat_truth = model_labels.reshape(-1), truth.reshape(-1)

    def with_pattern(keep: list[int]) -> torch.Tensor:
        def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
            fixed = act.clone()
            for h in range(n_heads):
                if h not in keep:
                    fixed[:, h, -1, :] = mean[h]
            return fixed

        with torch.no_grad():
            logits = model.run_with_hooks(
                data.all_inputs(), fwd_hooks=[("blocks.0.attn.hook_pattern", hook)])[:, -1]
        return (logit_diff(logits) > 0).long()

    ablated, restored = with_pattern([]), with_pattern(y_heads)
    red_share = float(flat_model.float().mean())
    s = {
        "mean_attention": {"x": mean[:, 0].tolist(), "y": mean[:, 1].tolist(),
                           "z": mean[:, 2].tolist()},
        "top_y_heads": y_heads,
        "ablated_agreement": float((ablated == flat_model).float().mean()),
        "ablated_accuracy": float((ablated == flat_truth).float().mean()),
        "restored_agreement": float((restored == flat_model).float().mean()),
        "agreement_baseline_majority": max(red_share, 1 - red_share),
    }
    s["restore_gain"] = s["restored_agreement"] - s["ablated_agreement"]
    return s, {"mean_pattern": mean, "ablated_labels": ablated.reshape(data.P, data.P),
               "restored_labels": restored.reshape(data.P, data.P)}


def qk_positional(model: HookedTransformer) -> tuple[dict[str, Any], Tensors]:
    """The post's 4.3: QK circuit on the positional embeddings; and on the token embeddings
    (query: token 113 at position 2; keys: tokens 0..112 at X's and at Y's position)."""
    attn = model.blocks[0].attn
    W_pos, W_E = model.pos_embed.W_pos.detach(), model.embed.W_E.detach()
    q = torch.einsum("pd,hde->hpe", W_pos, attn.W_Q.detach())
    k = torch.einsum("pd,hde->hpe", W_pos, attn.W_K.detach())
    scores = torch.einsum("hpe,hqe->hpq", q, k)  # [head, query pos, key pos]
    delta = scores[:, 2, 0] - scores[:, 2, 1]
    zq = torch.einsum("d,hde->he", W_E[data.Z_TOKEN] + W_pos[2], attn.W_Q.detach()) + attn.b_Q
    token_scores = torch.stack([
        torch.einsum("he,the->ht", zq, torch.einsum("td,hde->the", W_E[: data.P] + W_pos[p],
                                                     attn.W_K.detach()) + attn.b_K)
        for p in (0, 1)]) / attn.attn_scale  # [key pos, head, token]
    s = {
        "delta_x_minus_y": delta.tolist(),
        "n_heads_prefer_x": int((delta > 0).sum()),
        "n_heads_abs_delta_over_11": int((delta.abs() > 11).sum()),
        "max_abs_delta": float(delta.abs().max()),
    }
    return s, {"qk_pos": scores, "qk_tokens": token_scores.detach()}


def _spearman(v: torch.Tensor) -> float:
    """Rank correlation of v with its index (no ties expected in float weights)."""
    r = torch.argsort(torch.argsort(v, stable=True), stable=True).double()
    i = torch.arange(len(v), dtype=torch.float64)
    r, i = r - r.mean(), i - i.mean()
    return float((r * i).sum() / (r.norm() * i.norm()))


def extended_embeddings(model: HookedTransformer, mean_pattern: torch.Tensor,
                        fam: dict[str, Any], fam_t: Tensors, truth: torch.Tensor
                        ) -> tuple[dict[str, Any], Tensors]:
    """The post's section 5 (no biases, as its formula): per neuron and input value."""
    attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
    ov = torch.einsum("td,hde,hef->htf", model.embed.W_E.detach()[: data.P],
                      attn.W_V.detach(), attn.W_O.detach())  # [head, token, d_model]
    ee = torch.stack([torch.einsum("h,htd,dn->nt", mean_pattern[:, p], ov, mlp.W_in.detach())
                      for p in (0, 1)])  # [X or Y, neuron, token]
    fam_index = fam_t["family_index"]
    rho = {f: [_spearman(ee[1, n]) for n in torch.nonzero(fam_index == i).reshape(-1).tolist()]
           for i, f in enumerate(FAMILIES)}
    right = rho["red-right"] + rho["blue-right"]
    left = rho["red-left"] + rho["blue-left"]
    # Rows that are red left of the orange line and blue right of it (the post's mask 9).
    rows = [x for x, sc in enumerate(data.scan_rows(truth))
            if any(b == "orange" for b, _ in data.active_switches(x)) and
            sc.start == data.RED and len(sc.switches) == 1]
    flatten = []
    idx = torch.tensor(rows)
    for n in torch.nonzero(fam_index == FAMILIES.index("blue-right")).reshape(-1).tolist():
        alone = ee[0, n, idx]
        summed = alone + ee[1, n, 133 - idx]
        flatten.append(float(summed.std() / alone.std().clamp_min(1e-12)))
    chosen = {f: n for f, n in fam["chosen"].items() if n is not None}
    s = {
        "rho_y": {f: _spearman(ee[1, n]) for f, n in chosen.items()},
        "rho_x": {f: _spearman(ee[0, n]) for f, n in chosen.items()},
        "right_rising_y_share": (sum(r > 0 for r in right) / len(right)) if right else None,
        "left_falling_y_share": (sum(r < 0 for r in left) / len(left)) if left else None,
        "n_right": len(right), "n_left": len(left),
        "orange_rows": rows,
        "orange_flattening_median": (float(torch.tensor(flatten).median()) if flatten else None),
    }
    four = torch.stack([ee[:, n] if n is not None else torch.zeros(2, data.P)
                        for n in fam["chosen"].values()])  # [4, X or Y, token]
    return s, {"ext_four": four}


def analyse(model: HookedTransformer, cfg: Config) -> tuple[dict[str, Any], Tensors]:
    """Every analysis of the module docstring on the whole grid."""
    a = cfg.analysis
    truth = data.grid()
    is_train = data.split(cfg.data.seed, cfg.data.train_fraction)
    logits, acts = run_all(model)
    diff = logit_diff(logits).reshape(data.P, data.P)
    pred = (diff > 0).long()
    summary: dict[str, Any] = {}
    tensors: Tensors = {"logit_diff": diff, "is_train": is_train.reshape(data.P, data.P)}
    summary["labels"], t = label_errors(pred, truth, is_train, a.near)
    tensors.update(t)
    summary["neurons"], fam_t = neuron_families(model, acts["post"], pred, a.family_threshold)
    tensors.update(fam_t)
    summary["probes"], t = probes(acts["resid_mid"], is_train, a.probe_steps, a.probe_l2)
    tensors.update(t)
    summary["attention"], t = attention(model, acts["pattern"], pred, truth)
    tensors.update(t)
    summary["qk"], t = qk_positional(model)
    tensors.update(t)
    summary["extended"], t = extended_embeddings(model, tensors["mean_pattern"],
                                                 summary["neurons"], fam_t, truth)
    tensors.update(t)
    return summary, {k: v.detach().contiguous() for k, v in tensors.items()}

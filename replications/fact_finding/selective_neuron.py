"""The most target-selective lookup neuron (post 3's baseball neuron): ROC AUC of every lookup
neuron for the target sport against a permutation null, its weight cosines, its AUC with those
directions projected out, and the loss under its mean and zero ablation. Used by the
`ff_neuron_lookup` stage (`neuron_lookup.py`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from einops import rearrange
from jaxtyping import Bool, Float, Int
from torch import Tensor

from replications.fact_finding.facts import FactPrompts
from replications.fact_finding.neurons import (
    Lookup,
    NeuronSettings,
    PositionRun,
    hook_name,
    mlp_input,
    set_neurons,
)

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


def ranks(scores: Float[Tensor, "n m"]) -> Float[Tensor, "n m"]:
    """Ranks of each column (1-based, ties averaged)."""
    from scipy.stats import rankdata

    return torch.from_numpy(rankdata(scores.double().numpy(), axis=0))


def auc_from_ranks(r: Float[Tensor, "n m"], positive: Bool[Tensor, " n"]) -> Float[Tensor, " m"]:
    """Mann-Whitney ROC AUC from column ranks."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both positive and negative examples")
    return ((r[positive].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).float()


def roc_auc(scores: Float[Tensor, "n m"], positive: Bool[Tensor, " n"]) -> Float[Tensor, " m"]:
    """ROC AUC of every column of `scores` for `positive` (Mann-Whitney, ties averaged)."""
    return auc_from_ranks(ranks(scores), positive)


def null_max_auc(r: Float[Tensor, "n m"], positive: Bool[Tensor, " n"], n_perm: int,
                 gen: torch.Generator) -> Float[Tensor, " n_perm"]:
    """The best column's AUC when the labels are shuffled (ranks reused): what the most
    selective of m neurons reaches by chance with this many people."""
    return torch.stack([auc_from_ranks(r, positive[torch.randperm(len(positive), generator=gen)])
                        .max() for _ in range(n_perm)])


def orthogonal_remainders(
    x: Float[Tensor, "n d"], max_span: int, gen: torch.Generator
) -> Float[Tensor, "n d"]:
    """Each row's component orthogonal to the span of the other rows of its group.

    Rows are split at random into groups of at most `max_span + 1` (one group when they all
    fit, as in the write-up). Within a group X with Gram matrix G, row i of G^-1 X is
    orthogonal to every other row and lies in the span, so the remainder of x_i is
    (G^-1 X)_i / (G^-1)_ii: one solve per group instead of one projection per row."""
    n, d = x.shape
    if max_span + 1 > d:
        raise ValueError(f"max_span {max_span} leaves no room in {d} dimensions")
    n_groups = math.ceil(n / (max_span + 1))
    order = torch.randperm(n, generator=gen)
    out = torch.empty_like(x, dtype=torch.float64)
    for idx in torch.tensor_split(order, n_groups):
        xg = x[idx].double()
        gram = xg @ xg.T
        dual = torch.linalg.solve(gram, xg)  # G^-1 X
        g_inv_diag = torch.linalg.solve(gram, torch.eye(len(idx), dtype=torch.float64)).diagonal()
        out[idx] = dual / g_inv_diag[:, None]
    return out.float()


def orthogonal_to(v: Float[Tensor, " d"], basis: Float[Tensor, "k d"]) -> Float[Tensor, " d"]:
    """`v` minus its projection on the span of `basis`'s rows."""
    q, _ = torch.linalg.qr(basis.double().T)
    v = v.double()
    return (v - q @ (q.T @ v)).float()


def cosine(a: Tensor, b: Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


@torch.inference_mode()
def ablated_losses(
    model: HookedTransformer, prompts: FactPrompts, layer: int, neuron: int,
    values: Sequence[float], batch_size: int, pos: int,
) -> list[float]:
    """Mean full-vocabulary loss on the answers with the neuron set to each of `values` at
    position `pos` (one batched pass per value)."""
    device = next(model.parameters()).device
    answer = prompts.answer_ids[prompts.labels]
    out = []
    for value in values:
        patch = set_neurons(slice(None), pos, neuron, torch.tensor(value))
        losses = []
        for start in range(0, len(prompts), batch_size):
            toks = prompts.tokens[start: start + batch_size].to(device)
            with model.hooks(fwd_hooks=[(hook_name(layer, "post"), patch)]):
                lp = model(toks)[:, prompts.final_pos].float().log_softmax(-1)
            ans = answer[start: start + batch_size].to(device)
            losses.append(-lp[torch.arange(len(toks), device=device), ans].cpu())
        out.append(float(torch.cat(losses).mean()))
    return out


@dataclasses.dataclass(frozen=True)
class Selective:
    """The most target-selective lookup neuron and what the write-up measures about it."""

    layer: int
    neuron: int
    acts: Float[Tensor, " p"]  # post-GELU at the read position, every known person
    positive: Bool[Tensor, " p"]
    auc_by_neuron: Float[Tensor, "n_layers d_mlp"]
    metrics: dict



def target_directions(
    model: HookedTransformer, settings: NeuronSettings, circ: Lookup,
    answer_ids: Int[Tensor, " a"], target: int,
) -> tuple[Float[Tensor, " d"], Float[Tensor, " d"]]:
    """The directions that raise the target's logit (through the head's OV, or the unembedding
    alone: always at the final token), and that raise it relative to the other values."""
    W_U = model.W_U.detach().float().cpu()[:, answer_ids]
    W_U = W_U - W_U.mean(0, keepdim=True)  # the final LayerNorm removes the mean over d_model
    others = [i for i in range(len(answer_ids)) if i != target]
    raw, rel = W_U[:, target], W_U[:, target] - W_U[:, others].mean(1)
    if circ.direction_kind(settings) == "head_ov":
        W_OV = (model.W_V[circ.head] @ model.W_O[circ.head]).detach().float().cpu()
        raw, rel = W_OV @ raw, W_OV @ rel
    return raw, rel


# Every number selective_neuron reports, NaN when it cannot be measured.
SELECTIVE_NUMBERS = (
    "layer", "neuron", "auc", "second_best_auc", "auc_pre_gelu", "auc_w_in_orthogonal",
    "auc_orthogonal_remainder", "orthogonal_span", "cos_in_out", "cos_in_sport",
    "cos_in_sport_relative", "loss_clean", "loss_mean_ablated", "loss_zero_ablated",
    "mean_ablation_loss_ratio", "median_auc_lookup_neurons", "null_max_auc", "auc_over_null_max",
)


def unmeasured_selective(known: FactPrompts, settings: NeuronSettings, circ: Lookup) -> dict | None:
    """The selective-neuron metrics with every number NaN and the reason, when the known people
    are all of the target sport or none of it (a weak stand-in may know only the majority sport,
    and an AUC needs both classes); None when the neuron can be measured."""
    target = known.answers.index(settings.target_value)
    n_target, n = int((known.labels == target).sum()), len(known.labels)
    if 0 < n_target < n:
        return None
    return {**dict.fromkeys(SELECTIVE_NUMBERS, math.nan), "name": "none",
            "target": settings.target_value, "direction": circ.direction_kind(settings),
            "n_people": n, "n_target": n_target,
            "unmeasured": f"{n_target} of the {n} known people play {settings.target_value}: "
                          "a selectivity needs both classes"}


def selective_neuron(
    model: HookedTransformer, known: FactPrompts, run: PositionRun, settings: NeuronSettings,
    circ: Lookup, batch_size: int,
) -> Selective:
    """The lookup neuron with the highest ROC AUC for the target sport against the others, its
    weight cosines, its AUC with those directions projected out and on the orthogonal remainder
    of the residuals, and the loss on the target's people under mean and zero ablation."""
    layers = circ.layers
    target = known.answers.index(settings.target_value)
    positive = known.labels == target
    post = torch.stack([run.acts[hook_name(l, "post")] for l in layers], 1)  # [p, l, n]
    r = ranks(rearrange(post, "p l n -> p (l n)"))
    auc = auc_from_ranks(r, positive).view(len(layers), -1)
    null = null_max_auc(r, positive, settings.n_null_permutations,
                        torch.Generator().manual_seed(settings.seed))
    best = int(auc.argmax())
    li, neuron = divmod(best, auc.shape[1])
    layer = layers[li]
    acts = post[:, li, neuron]
    mlp = model.blocks[layer].mlp
    w_in = mlp.W_in.detach().float().cpu()[:, neuron]
    w_out = mlp.W_out.detach().float().cpu()[neuron]
    raw, rel = target_directions(model, settings, circ, known.answer_ids, target)
    x = mlp_input(model, layer, run.acts[hook_name(layer, "mlp_in")])
    w_perp = orthogonal_to(w_in, torch.stack([w_out, raw, rel]))
    gen = torch.Generator().manual_seed(settings.seed)
    max_span = int(settings.orthogonal_rank_fraction * model.cfg.d_model)
    remainder = orthogonal_remainders(x, max_span, gen)
    scores = torch.stack([run.acts[hook_name(layer, "pre")][:, neuron], x @ w_perp, remainder @ w_in], 1)
    auc_pre, auc_perp, auc_rem = roc_auc(scores, positive).tolist()
    base = known.subset(torch.nonzero(positive).flatten())
    clean = float(-run.answer_logprobs[positive, target].mean())
    mean_loss, zero_loss = ablated_losses(model, base, layer, neuron,
                                          [float(acts.mean()), 0.0], batch_size,
                                          circ.pos(known.last_pos, known.final_pos))
    second = auc.flatten().topk(2).values[1]
    metrics = {
        "layer": layer, "neuron": neuron, "name": f"L{layer}N{neuron}",
        "target": settings.target_value, "direction": circ.direction_kind(settings),
        "n_people": len(positive),
        "n_target": int(positive.sum()),
        "auc": float(auc.flatten()[best]), "second_best_auc": float(second),
        "auc_pre_gelu": auc_pre, "auc_w_in_orthogonal": auc_perp,
        "auc_orthogonal_remainder": auc_rem,
        "orthogonal_span": max_span,
        "cos_in_out": cosine(w_in, w_out), "cos_in_sport": cosine(w_in, raw),
        "cos_in_sport_relative": cosine(w_in, rel),
        "loss_clean": clean, "loss_mean_ablated": mean_loss, "loss_zero_ablated": zero_loss,
        "mean_ablation_loss_ratio": mean_loss / clean if clean > 0 else math.nan,
        "median_auc_lookup_neurons": float(auc.median()),
        "null_max_auc": float(null.mean()),
        "auc_over_null_max": float(auc.flatten()[best] - null.mean()),
    }
    return Selective(layer, neuron, acts, positive, auc, metrics)

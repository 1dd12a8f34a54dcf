"""Stage `ff_neuron_lookup` (post 3): the non-linear excess GELU adds on the attribute head's
read-out, the most baseball-selective lookup neuron, MLP output norms of known against unknown
names, and the swap-surname parallelogram test (trained against shuffled MLPs). Shared pieces
are in `neurons.py`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from einops import einsum, rearrange
from jaxtyping import Bool, Float, Int
from torch import Tensor

from replications.fact_finding import circuit_steps
from replications.fact_finding.facts import FactPrompts
from replications.fact_finding.neurons import (
    Lookup,
    NameGrid,
    NeuronSettings,
    PositionRun,
    hook_name,
    layer_dict,
    mlp_input,
    name_grid,
    run_at,
    set_neurons,
)

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


# ---------------------------------------------------------------------------------------------
# Non-linear excess


def nonlinear_excess(
    grid: Float[Tensor, "n_first n_last *rest"], first: Int[Tensor, " p"], last: Int[Tensor, " p"]
) -> Float[Tensor, " p *rest"]:
    """E(A&B) - E(~A&B) - E(A&~B) + E(~A&~B) per person (A = their first name, B = their
    surname), each E a mean over the grid's names (post 3): zero for anything additive in the
    two tokens, positive for an AND, negative for an OR."""
    n_f, n_s = grid.shape[:2]
    total = grid.sum((0, 1))
    rows, cols = grid.sum(1), grid.sum(0)  # [n_first, ...], [n_last, ...]
    ab = grid[first, last]
    not_a_b = (cols[last] - ab) / (n_f - 1)
    a_not_b = (rows[first] - ab) / (n_s - 1)
    neither = (total - rows[first] - cols[last] + ab) / ((n_f - 1) * (n_s - 1))
    return ab - not_a_b - a_not_b + neither


def sport_directions(
    model: HookedTransformer, settings: NeuronSettings, circ: Lookup,
    answer_ids: Int[Tensor, " a"],
) -> Float[Tensor, "a d_model"]:
    """Residual directions (at the read position) that raise each sport's logit relative to the
    others: through the attribute head's OV circuit and the unembedding (weights only: LayerNorm
    scales ignored), or through the unembedding alone (always at the final token, the circuit
    part's `attribute_readout` there); the circuit part's directions (centred over the sports,
    a 3-way softmax, and over d_model, which the final LayerNorm removes)."""
    if circ.direction_kind(settings) == "head_ov":
        dirs = circuit_steps.ov_directions(model, circ.head, answer_ids)
    else:
        dirs = circuit_steps.answer_directions(model, answer_ids)
    return dirs.T.detach().float().cpu().contiguous()


def neuron_direct_effects(
    model: HookedTransformer, layers: Sequence[int], directions: Float[Tensor, "a d_model"]
) -> Float[Tensor, "a n_layers d_mlp"]:
    """W_out row of every lookup neuron dotted with each sport direction."""
    W_out = torch.stack([model.blocks[l].mlp.W_out.detach().float().cpu() for l in layers])
    return einsum(W_out, directions, "l n d, a d -> a l n")


@dataclasses.dataclass(frozen=True)
class ExcessResult:
    """Per person: the GELU-made AND that goes straight to the sport, and the total."""

    gelu_part: Float[Tensor, " p"]  # sum over kept neurons of (post - max(pre, 0)) x direct effect
    total: Float[Tensor, " p"]  # non-linear excess of the lookup MLPs' output on the sport
    gelu_by_layer: Float[Tensor, "p n_layers"]
    total_by_layer: Float[Tensor, "p n_layers"]
    kept_fraction: Float[Tensor, " p"]  # share of neurons whose excess the GELU raises

    def ratio(self) -> Float[Tensor, " p"]:
        return self.gelu_part / self.total


def excess_ratio(
    pre: Float[Tensor, "n_first n_last n_layers d_mlp"],
    post: Float[Tensor, "n_first n_last n_layers d_mlp"],
    first: Int[Tensor, " p"], last: Int[Tensor, " p"], label: Int[Tensor, " p"],
    direct: Float[Tensor, "a n_layers d_mlp"],
) -> ExcessResult:
    """Post 3's "neurons with direct effect on the attributes are not performing ANDs": per
    person, the change in non-linear excess across each GELU (pre-GELU excess clamped at zero,
    neurons where it is not positive dropped) times the neuron's direct effect on the person's
    sport, summed; against the total non-linear excess of the lookup MLPs' direct effect
    (sum over all neurons of the post-GELU excess times the direct effect: the output is linear
    in the activations, and b_out cancels)."""
    nle_pre = nonlinear_excess(pre, first, last)
    nle_post = nonlinear_excess(post, first, last)
    gain = nle_post - nle_pre.clamp_min(0)
    kept = gain > 0
    w = direct[label]  # [p, l, n]
    gelu = (gain * kept * w).sum(-1)
    total = (nle_post * w).sum(-1)
    return ExcessResult(gelu.sum(-1), total.sum(-1), gelu, total,
                        kept.float().mean((1, 2)))


def other_labels(label: Int[Tensor, " p"], n_values: int, gen: torch.Generator
                 ) -> Int[Tensor, " p"]:
    """A different value for every person, drawn uniformly from the others: the wrong-sport
    baseline (a lookup that boosts the right sport must not boost a wrong one as often)."""
    shift = torch.randint(1, n_values, label.shape, generator=gen)
    return (label + shift) % n_values


# ---------------------------------------------------------------------------------------------
# The selective neuron


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


# ---------------------------------------------------------------------------------------------
# Linear structure


@contextlib.contextmanager
def shuffled_mlps(model: HookedTransformer, layers: Sequence[int], seed: int) -> Iterator[None]:
    """Permute the entries of each weight and bias of the given MLPs (in place, restored after):
    the write-up's 'randomly shuffled the MLP weights and biases' baseline."""
    gen = torch.Generator().manual_seed(seed)
    saved = []
    with torch.no_grad():
        for layer in layers:
            mlp = model.blocks[layer].mlp
            for name in ("W_in", "b_in", "W_out", "b_out"):
                p = getattr(mlp, name)
                saved.append((p, p.detach().clone()))
                perm = torch.randperm(p.numel(), generator=gen).to(p.device)
                p.copy_(p.detach().flatten()[perm].view_as(p))
    try:
        yield
    finally:
        with torch.no_grad():
            for p, orig in saved:
                p.copy_(orig)


@dataclasses.dataclass(frozen=True)
class ParallelogramPairs:
    """Grid rows of A, B (two names), C, D (their surnames swapped) and C', D' (random)."""

    a: Int[Tensor, " n"]
    b: Int[Tensor, " n"]
    c: Int[Tensor, " n"]
    d: Int[Tensor, " n"]
    c_rand: Int[Tensor, " n"]
    d_rand: Int[Tensor, " n"]
    n_candidates: int


def parallelogram_pairs(
    grid: NameGrid, from_first: Int[Tensor, " p"], from_last: Int[Tensor, " p"], n_pairs: int,
    gen: torch.Generator,
) -> ParallelogramPairs:
    """Pairs of the given names (different first names and surnames) whose two swapped names
    are unknown names, sampled without replacement; random unknown names as the baseline."""
    unknown = grid.unknown
    i, j = torch.triu_indices(len(from_first), len(from_first), offset=1)
    fa, la, fb, lb = from_first[i], from_last[i], from_first[j], from_last[j]
    ok = (fa != fb) & (la != lb) & unknown[fa, lb] & unknown[fb, la]
    cand = torch.nonzero(ok).flatten()
    if len(cand) == 0:
        raise ValueError("no pair of names has both surname-swapped names among the unknown "
                         "names: the parallelogram test needs some")
    pick = cand[torch.randperm(len(cand), generator=gen)[:n_pairs]]
    rows_unknown = torch.nonzero(unknown.flatten()).flatten()
    rand = rows_unknown[torch.randint(len(rows_unknown), (2, len(pick)), generator=gen)]
    row = grid.row
    return ParallelogramPairs(row(fa[pick], la[pick]), row(fb[pick], lb[pick]),
                              row(fa[pick], lb[pick]), row(fb[pick], la[pick]),
                              rand[0], rand[1], len(cand))


def parallelogram_ratio(
    feats: Float[Tensor, "rows n_layers d"], pairs: ParallelogramPairs
) -> Float[Tensor, "n n_layers"]:
    """|f(A) + f(B) - f(C) - f(D)| / |f(A) + f(B) - f(C') - f(D')|: 0 for a function linear in
    the two name tokens, about 1 when swapped names look like random unknown names."""
    ab = feats[pairs.a] + feats[pairs.b]
    num = (ab - feats[pairs.c] - feats[pairs.d]).norm(dim=-1)
    den = (ab - feats[pairs.c_rand] - feats[pairs.d_rand]).norm(dim=-1)
    return num / den.clamp_min(1e-12)


@dataclasses.dataclass(frozen=True)
class Selective:
    """The most target-selective lookup neuron and what the write-up measures about it."""

    layer: int
    neuron: int
    acts: Float[Tensor, " p"]  # post-GELU at the read position, every known person
    positive: Bool[Tensor, " p"]
    auc_by_neuron: Float[Tensor, "n_layers d_mlp"]
    metrics: dict


@dataclasses.dataclass(frozen=True)
class LookupResult:
    excess: ExcessResult
    excess_label: Int[Tensor, " p"]
    answers: tuple[str, ...]
    selective: Selective | None  # None: the known people hold one class only
    n_by_answer: dict[str, int]  # known people per value of the attribute
    target: str  # the value the selective neuron is sought for
    norms_known: Float[Tensor, "k n_all_layers"]
    norms_unknown: Float[Tensor, "u n_all_layers"]
    linearity: dict[str, Float[Tensor, "n n_layers"]]  # series -> ratios per pair and layer
    layers: tuple[int, ...]
    where: str  # "at the surname" / "at the final token"
    direction: str  # head_ov / unembed: how the sport is read from the lookup MLPs


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


def _median_by_layer(ratios: Float[Tensor, "n l"], layers: Sequence[int]) -> dict[str, float]:
    return {**layer_dict(ratios.median(0).values.tolist(), layers),
            "mean": float(ratios.median(0).values.mean())}


def run_lookup(
    model: HookedTransformer, facts: dict, known: FactPrompts, settings: NeuronSettings,
    circ: Lookup, batch_size: int,
) -> tuple[LookupResult, dict]:
    """Non-linear excess, the selective neuron, known vs unknown norms, linear structure."""
    layers = circ.layers
    all_layers = list(range(model.cfg.n_layers))
    run_k = run_at(
        model, known.tokens, circ.pos(known.last_pos, known.final_pos), known.final_pos,
        [hook_name(l, n) for l in layers for n in ("pre", "post", "mlp_in")], known.answer_ids,
        batch_size, desc="known people")
    grid = name_grid(known, facts, settings.grid_max_names)
    grid_hooks = ([hook_name(l, n) for l in layers for n in ("pre", "post", "resid_post")]
                  + [hook_name(l, "mlp_out") for l in all_layers])
    grid_pos = circ.pos(grid.surname_pos, grid.final_pos)
    run_g = run_at(model, grid.tokens, grid_pos, grid.final_pos, grid_hooks,
                        known.answer_ids, batch_size, desc="name grid")
    shuffled_hooks = [hook_name(l, n) for l in layers for n in ("mlp_out", "resid_post")]
    with shuffled_mlps(model, layers, settings.seed):
        run_s = run_at(model, grid.tokens, grid_pos, grid.final_pos,
                            shuffled_hooks, known.answer_ids, batch_size, desc="shuffled MLPs")

    def stack(run: PositionRun, name: str, ls: Sequence[int]) -> Tensor:
        return torch.stack([run.acts[hook_name(l, name)] for l in ls], 1)

    n_f, n_s = len(grid.firsts), len(grid.lasts)
    pre = stack(run_g, "pre", layers).view(n_f, n_s, len(layers), -1)
    post = stack(run_g, "post", layers).view(n_f, n_s, len(layers), -1)
    # At the surname, MLPs at or after the head's layer have no direct path to it: their
    # neurons count zero. At the final token every lookup MLP writes straight to the logits.
    direct = neuron_direct_effects(
        model, layers, sport_directions(model, settings, circ, known.answer_ids)
    ) * circ.direct[None, :, None]
    excess = excess_ratio(pre, post, grid.known_first, grid.known_last, grid.known_label, direct)
    ratio = excess.ratio()
    wrong = excess_ratio(pre, post, grid.known_first, grid.known_last,
                         other_labels(grid.known_label, len(known.answer_ids),
                                      torch.Generator().manual_seed(settings.seed + 1)), direct)

    unmeasured = unmeasured_selective(known, settings, circ)
    sel = (None if unmeasured is not None
           else selective_neuron(model, known, run_k, settings, circ, batch_size))

    norms = stack(run_g, "mlp_out", all_layers).norm(dim=-1)  # [grid, all layers]
    known_rows = grid.row(grid.known_first, grid.known_last)
    unknown_rows = torch.nonzero(grid.unknown.flatten()).flatten()
    if len(unknown_rows) == 0:
        raise ValueError("no unknown name lies in the name grid: facts.json unknown_names")
    nk, nu = norms[known_rows], norms[unknown_rows]

    gen = torch.Generator().manual_seed(settings.seed)
    pairs = parallelogram_pairs(grid, grid.known_first, grid.known_last,
                                settings.n_linearity_pairs, gen)
    uf, ul = torch.nonzero(grid.unknown, as_tuple=True)
    control = parallelogram_pairs(grid, uf, ul, settings.n_linearity_pairs, gen)
    series = {
        "mlp": parallelogram_ratio(stack(run_g, "mlp_out", layers), pairs),
        "mlp_shuffled": parallelogram_ratio(stack(run_s, "mlp_out", layers), pairs),
        "resid": parallelogram_ratio(stack(run_g, "resid_post", layers), pairs),
        "resid_shuffled": parallelogram_ratio(stack(run_s, "resid_post", layers), pairs),
        "mlp_unknown_names": parallelogram_ratio(stack(run_g, "mlp_out", layers), control),
    }
    pos = excess.total > 0
    metrics = {
        "read_position": circ.read_position,
        "nonlinear_excess": {
            "median_ratio": float(ratio.median()),
            "median_ratio_total_positive": float(ratio[pos].median()) if pos.any() else math.nan,
            "share_total_positive": float(pos.float().mean()),
            # Baseline: the same excess toward a wrong sport per person.
            "share_total_positive_wrong_sport": float((wrong.total > 0).float().mean()),
            "share_total_positive_over_wrong_sport": float(pos.float().mean()
                                                           - (wrong.total > 0).float().mean()),
            "median_total_wrong_sport": float(wrong.total.median()),
            "median_total": float(excess.total.median()),
            "median_gelu_part": float(excess.gelu_part.median()),
            "corr_gelu_total": float(torch.corrcoef(torch.stack([excess.gelu_part,
                                                                 excess.total]))[0, 1]),
            "median_kept_fraction": float(excess.kept_fraction.median()),
            "n_people": len(ratio), "grid": [n_f, n_s],
            "direction": circ.direction_kind(settings),
            "head": f"L{circ.head[0]}H{circ.head[1]}",
            "direct_layers": [l for l, d in zip(layers, circ.direct.tolist()) if d],
        },
        "selective_neuron": sel.metrics if sel is not None else unmeasured,
        "norms": {
            "known_mean": layer_dict(nk.mean(0).tolist(), all_layers),
            "unknown_mean": layer_dict(nu.mean(0).tolist(), all_layers),
            "known_over_unknown": layer_dict((nk.mean(0) / nu.mean(0)).tolist(), all_layers),
            "lookup_mean_known_over_unknown": float((nk.mean(0) / nu.mean(0))[list(layers)].mean()),
            "n_known": len(nk), "n_unknown": len(nu),
        },
        "linearity": {**{k: _median_by_layer(v, layers) for k, v in series.items()},
                      "mlp_minus_shuffled": float(series["mlp"].median(0).values.mean()
                                                  - series["mlp_shuffled"].median(0).values.mean()),
                      "n_pairs": len(pairs.a), "n_candidate_pairs": pairs.n_candidates,
                      "n_control_pairs": len(control.a)},
    }
    n_by_answer = {a: int((known.labels == i).sum()) for i, a in enumerate(known.answers)}
    result = LookupResult(excess, grid.known_label, known.answers, sel, n_by_answer,
                          settings.target_value, nk, nu,
                          series, tuple(layers), circ.where, circ.direction_kind(settings))
    return result, metrics

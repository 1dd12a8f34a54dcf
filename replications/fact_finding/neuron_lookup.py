"""Stage `ff_neuron_lookup` (post 3): the non-linear excess GELU adds on the attribute head's
read-out, the most baseball-selective lookup neuron, MLP output norms of known against unknown
names, and the swap-surname parallelogram test (trained against shuffled MLPs). The selective
neuron is in `selective_neuron.py`, pieces shared with `ff_neuron_facts` in `neurons.py`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from einops import einsum
from jaxtyping import Float, Int
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
    name_grid,
    run_at,
)
from replications.fact_finding.selective_neuron import (
    Selective,
    selective_neuron,
    unmeasured_selective,
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

"""The lookup MLPs' neurons (post 3): per-fact ablation effects, non-linear excess, the baseball
neuron, known against unknown names and how far the MLPs break linear structure.

Everything is read at the circuit part's read position (`circuit.read_position`): the surname
token, where the write-up's effective model (attention 0-1 + MLPs 2-6 in Pythia 2.8B) turns the
name's tokens into its attributes, or the final token, for a model whose early attention gathers
the name there and whose MLPs look the attribute up on it (the default stand-in). The lookup MLPs and the
attribute head are the circuit part's (`circuit.lookup_mlps`, `circuit.attribute_head`: the
top direct-logit-attribution head, or the write-up's L16H20), so both parts study one circuit.
Two prompt sets are run once each with `run_with_cache` (batched) and every analysis reads the
cached read-position activations:

- the known people (`facts.json`, relation "sport"): the baseball neuron's ROC AUC, the mean
  activations that mean ablation puts back, the full-vocabulary loss on baseball players;
- the name grid: every pair of the commonest first names and surnames of the known people (the
  write-up's "about 100 of each"): the non-linear excess, MLP output norms of known against
  unknown names, and the swap-surname parallelogram test (again with shuffled MLP weights).

Per-neuron ablations are exact and batched: the residual stream before the neuron's layer is
cached once and the rest of the model is run on a batch in which row i has neuron i replaced
(`start_at_layer`), so one pass covers `neuron_batch` neurons. No per-neuron Python loops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from einops import einsum, rearrange, repeat
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from replications.fact_finding import circuit
from replications.fact_finding.facts import FactPrompts
from shared.config import check

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


@dataclasses.dataclass(frozen=True)
class NeuronSettings:
    """Which MLPs and head the neuron analyses read, and the sizes of their batches and samples."""

    # head_ov: the sport read through the head's OV circuit and the unembedding (the write-up);
    # unembed: the sport's unembedding column alone (a fallback without a known head)
    sport_direction: Literal["head_ov", "unembed"]
    target_value: str  # the sport of the selective neuron (paper: baseball)
    entity_ablation: Literal["mean", "resample"]  # paper: mean over the known athletes
    n_resample: int  # resample ablation: other people whose value is put back (effects averaged)
    neuron_batch: int  # patched neurons (x resamples) per forward pass
    grid_max_names: int  # the name grid: this many commonest first names x surnames (paper 100)
    n_linearity_pairs: int  # pairs of known names in the parallelogram test (sampled)
    n_null_permutations: int  # label shuffles for the best neuron's chance AUC
    # the orthogonal remainder: each person's residual is projected off the span of at most
    # floor(fraction * d_model) other people's (paper: all ~1500 others in 2560 dimensions)
    orthogonal_rank_fraction: float
    seed: int  # pair sampling, resample draws, groups of the remainder, the weight shuffle

    def __post_init__(self) -> None:
        check(bool(self.target_value), "neurons.target_value must not be empty")
        check(self.n_resample >= 1 and self.neuron_batch >= 1,
              "neurons.n_resample and neuron_batch must be at least 1")
        check(self.grid_max_names >= 3, "neurons.grid_max_names must be at least 3")
        check(self.n_linearity_pairs >= 1 and self.n_null_permutations >= 1,
              "neurons.n_linearity_pairs and n_null_permutations must be at least 1")
        check(0 < self.orthogonal_rank_fraction < 1,
              "neurons.orthogonal_rank_fraction must lie in (0, 1)")



@dataclasses.dataclass(frozen=True)
class Lookup:
    """The circuit the neuron analyses read: the lookup MLPs and the attribute head."""

    layers: tuple[int, ...]  # the effective model's lookup MLPs (paper: 2-6)
    head: tuple[int, int]  # (layer, head) moving the sport to the final token (paper: L16H20)
    read_position: Literal["surname", "final"]  # where the lookup is read (circuit part's)

    @property
    def direct(self) -> Bool[Tensor, " n_layers"]:
        """Lookup MLPs with a direct path to the sport read-out: at the surname, those before the
        head's layer (it reads the residual before it); at the final token, all (the unembedding
        reads the final residual)."""
        if self.read_position == "final":
            return torch.ones(len(self.layers), dtype=torch.bool)
        return torch.tensor([l < self.head[0] for l in self.layers])

    def pos(self, surname_pos: int, final_pos: int) -> int:
        """The read position of a prompt with these surname and final positions."""
        return surname_pos if self.read_position == "surname" else final_pos

    @property
    def where(self) -> str:
        """For titles and captions."""
        return "at the surname" if self.read_position == "surname" else "at the final token"

    def direction_kind(self, settings: NeuronSettings) -> str:
        """head_ov or unembed: at the final token no head follows the lookup MLPs, so the sport
        is read through the unembedding, as the circuit part reads it there."""
        return settings.sport_direction if self.read_position == "surname" else "unembed"


def lookup_circuit(
    model: HookedTransformer, known: FactPrompts, circuit_settings, batch_size: int,
) -> Lookup:
    """The circuit part's lookup MLPs and attribute head, picked as `circuit.analyse` picks it
    (top direct logit attribution on the known prompts, optionally weighted by attention to the
    surname, or the reference head)."""
    circuit_settings.check_model(model.cfg.n_layers, model.cfg.n_heads)
    if circuit_settings.attribute_head == "reference":
        head = tuple(circuit_settings.reference_head)
    else:
        clean = circuit.clean_run(model, known, batch_size)
        head = circuit.head_attribution(model, clean, known).pick(
            circuit_settings.attribute_head, circuit_settings.reference_head)
    return Lookup(tuple(circuit_settings.lookup_mlps), (int(head[0]), int(head[1])),
                  circuit_settings.read_position)


# ---------------------------------------------------------------------------------------------
# Running prompt sets once


def hook_name(layer: int, name: str) -> str:
    """TransformerLens hook names: pre/post (MLP neurons), mlp_in, mlp_out, resid_pre/post."""
    return {"pre": f"blocks.{layer}.mlp.hook_pre", "post": f"blocks.{layer}.mlp.hook_post",
            "mlp_in": f"blocks.{layer}.ln2.hook_normalized",
            "mlp_out": f"blocks.{layer}.hook_mlp_out",
            "resid_pre": f"blocks.{layer}.hook_resid_pre",
            "resid_post": f"blocks.{layer}.hook_resid_post"}[name]


@dataclasses.dataclass(frozen=True)
class PositionRun:
    """One prompt set's cached activations at the read position, and its answers' log probs."""

    acts: dict[str, Float[Tensor, "n ..."]]  # hook name -> [n, d] (read position)
    answer_logprobs: Float[Tensor, "n n_answers"]  # full-vocabulary log probs at the final token


@torch.inference_mode()
def run_at(
    model: HookedTransformer, tokens: Int[Tensor, "n seq"], pos: int, final_pos: int,
    hooks: Sequence[str], answer_ids: Int[Tensor, " n_answers"], batch_size: int,
    desc: str = "prompts",
) -> PositionRun:
    """`run_with_cache` over `tokens` in batches, keeping `hooks` at position `pos` only."""
    device = next(model.parameters()).device
    names = set(hooks)
    kept: dict[str, list[Tensor]] = {h: [] for h in hooks}
    logps = []
    for start in tqdm(range(0, len(tokens), batch_size), desc=desc, leave=False):
        toks = tokens[start: start + batch_size].to(device)
        logits, cache = model.run_with_cache(toks, names_filter=lambda n: n in names)
        for h in hooks:
            kept[h].append(cache[h][:, pos].float().cpu())
        lp = logits[:, final_pos].float().log_softmax(-1)
        logps.append(lp[:, answer_ids.to(device)].cpu())
    return PositionRun({h: torch.cat(v) for h, v in kept.items()}, torch.cat(logps))


def mlp_input(model: HookedTransformer, layer: int, normalized: Float[Tensor, "n d"]
              ) -> Float[Tensor, "n d"]:
    """What W_in reads: the LayerNorm output (folded models keep no LN weights to apply)."""
    ln = model.blocks[layer].ln2
    if hasattr(ln, "w"):
        return normalized * ln.w.detach().float().cpu() + ln.b.detach().float().cpu()
    return normalized


# ---------------------------------------------------------------------------------------------
# Exact, batched single-neuron ablations


def set_neurons(rows: Tensor | slice, pos: int, neurons: Tensor | int, values: Tensor
                ) -> Callable[[Tensor, object], Tensor]:
    """A hook on `hook_post` setting act[rows, pos, neurons] = values (row-wise when tensors)."""
    def patch(act: Tensor, hook: object) -> Tensor:
        act[rows, pos, neurons] = values.to(act.device, act.dtype)
        return act

    return patch


@torch.inference_mode()
def patched_answer_logprobs(
    model: HookedTransformer,
    resid_pre: Float[Tensor, "n seq d_model"],
    layer: int,
    pos: int,
    final_pos: int,
    answer_ids: Int[Tensor, " n"],
    neurons: Int[Tensor, " m"],
    values: Float[Tensor, "n m k"],
    batch_size: int,
    desc: str = "neurons",
) -> Float[Tensor, "n m k"]:
    """Log prob of each prompt's answer with neuron `neurons[j]` set to `values[i, j, r]` at
    position `pos` of prompt i (one neuron at a time), from the cached residual before `layer`.

    Rows of a pass are (prompt, neuron, sample) triples: the rest of the model runs once per
    `batch_size` rows, never once per neuron."""
    device = next(model.parameters()).device
    n, m, k = values.shape
    flat_prompt = repeat(torch.arange(n), "n -> (n m k)", m=m, k=k)
    flat_neuron = repeat(neurons, "m -> (n m k)", n=n, k=k)
    flat_value = rearrange(values, "n m k -> (n m k)")
    out = torch.empty(n * m * k)
    for start in tqdm(range(0, n * m * k, batch_size), desc=desc, leave=False):
        sl = slice(start, start + batch_size)
        rows = flat_prompt[sl]
        idx, val = flat_neuron[sl].to(device), flat_value[sl].to(device)
        ar = torch.arange(len(rows), device=device)
        patch = set_neurons(ar, pos, idx, val)
        with model.hooks(fwd_hooks=[(hook_name(layer, "post"), patch)]):
            logits = model(resid_pre[rows].to(device), start_at_layer=layer)
        lp = logits[:, final_pos].float().log_softmax(-1)
        out[sl] = lp[ar, answer_ids[rows].to(device)].cpu()
    return rearrange(out, "(n m k) -> n m k", n=n, m=m, k=k)


@dataclasses.dataclass(frozen=True)
class EntityPrompt:
    relation: str
    prompt: str
    answer: str
    tokens: Int[Tensor, " seq"]
    surname_pos: int
    answer_id: int


def entity_prompts(model: HookedTransformer, entity: dict) -> list[EntityPrompt]:
    """The entity's known facts (facts.json "entity", `known` true) with their surname position
    (the last token of the name; each prompt's final token is its last)."""
    name = entity["name"]
    out = []
    for fact in entity["facts"]:
        if not fact.get("known", True):
            continue
        prompt = fact["prompt"]
        end = prompt.find(name)
        if end < 0:
            raise ValueError(f"entity prompt {prompt!r} does not contain the name {name!r}")
        toks = model.to_tokens(prompt)[0].cpu()
        upto = model.to_tokens(prompt[: end + len(name)])[0].cpu()
        if not torch.equal(toks[: len(upto)], upto):
            raise ValueError(f"entity prompt {prompt!r}: the name does not end on a token")
        answer = model.tokenizer(fact["answer"], add_special_tokens=False)["input_ids"][0]
        out.append(EntityPrompt(fact["relation"], prompt, fact["answer"], toks,
                                len(upto) - 1, int(answer)))
    if len(out) < 2:
        raise ValueError(f"the entity {name} has {len(out)} known facts: at least 2 are needed")
    return out


@dataclasses.dataclass(frozen=True)
class EntityEffects:
    """Change in each fact's answer log prob when each lookup neuron is ablated (one at a time)."""

    relations: tuple[str, ...]
    answers: tuple[str, ...]
    clean_logprob: Float[Tensor, " n_facts"]
    effects: Float[Tensor, "n_facts n_layers d_mlp"]  # ablated - clean (averaged over samples)
    layers: tuple[int, ...]

    def correlation(self) -> Float[Tensor, "n_facts n_facts"]:
        """Pearson correlation between facts of the per-neuron effects (all lookup neurons)."""
        flat = rearrange(self.effects, "f l n -> f (l n)").double()
        return torch.corrcoef(flat).float()


def replacement_values(
    known_post: Float[Tensor, "n_people n_layers d_mlp"], mode: str, n_resample: int,
    gen: torch.Generator, exclude: Int[Tensor, " e"],
) -> Float[Tensor, "n_layers d_mlp k"]:
    """What ablation puts back: the mean over known people, or k other people's values."""
    if mode == "mean":
        return known_post.mean(0)[..., None]
    keep = torch.ones(len(known_post), dtype=torch.bool)
    keep[exclude] = False
    pool = torch.nonzero(keep).flatten()
    pick = pool[torch.randint(len(pool), (n_resample,), generator=gen)]
    return rearrange(known_post[pick], "k l n -> l n k")


def entity_neuron_effects(
    model: HookedTransformer, facts: Sequence[EntityPrompt],
    replacement: Float[Tensor, "n_layers d_mlp k"], layers: Sequence[int], batch_size: int,
    read_position: Literal["surname", "final"],
) -> EntityEffects:
    """Every lookup neuron ablated at the read position (the entity's surname, or each prompt's
    last token), for each fact (batched patching)."""
    d_mlp = model.cfg.d_mlp
    names = {hook_name(l, "resid_pre") for l in layers}
    effects = torch.empty(len(facts), len(layers), d_mlp)
    clean = torch.empty(len(facts))
    device = next(model.parameters()).device
    for f, fact in enumerate(facts):  # facts differ in length: one cache each, neurons batched
        with torch.inference_mode():
            logits, cache = model.run_with_cache(fact.tokens[None].to(device),
                                                 names_filter=lambda n: n in names)
        clean[f] = logits[0, -1].float().log_softmax(-1)[fact.answer_id].cpu()
        for j, layer in enumerate(layers):
            lp = patched_answer_logprobs(
                model, cache[hook_name(layer, "resid_pre")].cpu(), layer,
                fact.surname_pos if read_position == "surname" else len(fact.tokens) - 1,
                len(fact.tokens) - 1, torch.tensor([fact.answer_id]), torch.arange(d_mlp),
                replacement[j][None], batch_size, desc=f"{fact.relation} L{layer}")
            effects[f, j] = (lp[0] - clean[f]).mean(-1)
    return EntityEffects(tuple(x.relation for x in facts), tuple(x.answer for x in facts),
                         clean, effects, tuple(layers))


def offdiagonal(mat: Float[Tensor, "f f"]) -> Float[Tensor, " pairs"]:
    i, j = torch.triu_indices(len(mat), len(mat), offset=1)
    return mat[i, j]


# ---------------------------------------------------------------------------------------------
# The name grid


@dataclasses.dataclass(frozen=True)
class NameGrid:
    """Prompts for every (first name, surname) pair of the commonest names of the known people.

    Row `f * n_last + s` is first name f with surname s; tokens are built from the single name
    tokens, so every pair has the same positions as the known people's prompts."""

    firsts: tuple[str, ...]
    lasts: tuple[str, ...]
    tokens: Int[Tensor, "n_first_x_n_last seq"]
    surname_pos: int
    final_pos: int
    known_first: Int[Tensor, " p"]  # the known people inside the grid: their name indices
    known_last: Int[Tensor, " p"]
    known_label: Int[Tensor, " p"]  # index into the relation's values
    unknown: Bool[Tensor, "n_first n_last"]  # facts.json unknown names inside the grid

    def row(self, first: Int[Tensor, " *b"], last: Int[Tensor, " *b"]) -> Int[Tensor, " *b"]:
        return first * len(self.lasts) + last


def name_grid(known: FactPrompts, facts: dict, max_names: int) -> NameGrid:
    """The grid of the `max_names` commonest first names x surnames among `known` (the write-up
    pools the athletes' first names and surnames and takes every combination)."""
    firsts_all = [n.split(" ", 1)[0] for n in known.names]
    lasts_all = [n.split(" ", 1)[1] for n in known.names]

    def commonest(names: list[str]) -> list[str]:
        counts: dict[str, int] = {}
        for x in names:
            counts[x] = counts.get(x, 0) + 1
        return sorted(counts, key=lambda x: (-counts[x], x))[:max_names]

    firsts, lasts = commonest(firsts_all), commonest(lasts_all)
    if len(firsts) < 3 or len(lasts) < 3:
        raise ValueError("the known people have fewer than 3 distinct first names or surnames")
    # Each known prompt's name tokens sit at first_pos / last_pos: read them from there.
    tok_of = {}
    for i, name in enumerate(known.names):
        first, last = name.split(" ", 1)
        tok_of[("f", first)] = int(known.tokens[i, known.first_pos])
        tok_of[("s", last)] = int(known.tokens[i, known.last_pos])
    f_ids = torch.tensor([tok_of[("f", x)] for x in firsts])
    s_ids = torch.tensor([tok_of[("s", x)] for x in lasts])
    template = known.tokens[0]
    tokens = repeat(template, "seq -> (f s) seq", f=len(firsts), s=len(lasts)).clone()
    tokens[:, known.first_pos] = repeat(f_ids, "f -> (f s)", s=len(lasts))
    tokens[:, known.last_pos] = repeat(s_ids, "s -> (f s)", f=len(firsts))
    fi = {x: i for i, x in enumerate(firsts)}
    si = {x: i for i, x in enumerate(lasts)}
    inside = [i for i in range(len(known)) if firsts_all[i] in fi and lasts_all[i] in si]
    unknown = torch.zeros(len(firsts), len(lasts), dtype=torch.bool)
    known_pairs = {(firsts_all[i], lasts_all[i]) for i in inside}
    for first, last in facts.get("unknown_names", []):
        if first in fi and last in si and (first, last) not in known_pairs:
            unknown[fi[first], si[last]] = True
    return NameGrid(
        firsts=tuple(firsts), lasts=tuple(lasts), tokens=tokens,
        surname_pos=known.last_pos, final_pos=known.final_pos,
        known_first=torch.tensor([fi[firsts_all[i]] for i in inside], dtype=torch.long),
        known_last=torch.tensor([si[lasts_all[i]] for i in inside], dtype=torch.long),
        known_label=known.labels[inside].clone(), unknown=unknown)


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
        dirs = circuit.ov_directions(model, circ.head, answer_ids)
    else:
        dirs = circuit.answer_directions(model, answer_ids)
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


def layer_dict(values: Sequence[float], layers: Sequence[int]) -> dict[str, float]:
    """Per-layer metrics keyed L<layer> (no dots: the claims' metric paths)."""
    return {f"L{l}": float(v) for l, v in zip(layers, values)}


def as_numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# ---------------------------------------------------------------------------------------------
# The analyses as the scripts run them


def check_inputs(model: HookedTransformer, facts: dict, settings: NeuronSettings) -> None:
    """One-line errors before any compute: the sport relation and the target value."""
    check(model.cfg.act_fn in ("gelu", "gelu_new", "relu", "silu", "gelu_fast"),
          f"the model's MLP activation {model.cfg.act_fn} has no pre/post hooks")
    if "sport" not in facts.get("known", {}):
        raise ValueError("facts.json has no known sport facts")
    values = facts["relations"]["sport"]["values"]
    check(settings.target_value in values,
          f"neurons.target_value {settings.target_value!r} is not a sport value ({values})")


def run_entity(
    model: HookedTransformer, facts: dict, known: FactPrompts, settings: NeuronSettings,
    layers: Sequence[int], batch_size: int, read_position: Literal["surname", "final"],
) -> tuple[EntityEffects, dict]:
    """Per-neuron ablation effects on each of the entity's facts and their correlations, every
    neuron ablated at the read position (values put back: the known people's there)."""
    prompts = entity_prompts(model, facts["entity"])
    pos = known.last_pos if read_position == "surname" else known.final_pos
    run = run_at(model, known.tokens, pos, known.final_pos,
                      [hook_name(l, "post") for l in layers], known.answer_ids, batch_size,
                      desc="known people")
    post = torch.stack([run.acts[hook_name(l, "post")] for l in layers], 1)
    gen = torch.Generator().manual_seed(settings.seed)
    me = [i for i, n in enumerate(known.names) if n == facts["entity"]["name"]]
    repl = replacement_values(post, settings.entity_ablation, settings.n_resample, gen,
                              torch.tensor(me, dtype=torch.long))
    effects = entity_neuron_effects(model, prompts, repl, layers,
                                    max(1, settings.neuron_batch // repl.shape[-1]) * repl.shape[-1],
                                    read_position)
    corr = effects.correlation()
    off = offdiagonal(corr)
    flat = rearrange(effects.effects, "f l n -> f (l n)")
    top = flat.abs().argmax(-1)
    metrics = {
        "entity": facts["entity"]["name"],
        "ablation": settings.entity_ablation,
        "read_position": read_position,
        "n_facts": len(prompts),
        "n_neurons": int(flat.shape[1]),
        "relations": list(effects.relations),
        "clean_logprob": {r: float(v) for r, v in zip(effects.relations, effects.clean_logprob)},
        "largest_effect": {r: float(flat[i, top[i]]) for i, r in enumerate(effects.relations)},
        "correlation": {f"{effects.relations[i]}_{effects.relations[j]}": float(corr[i, j])
                        for i, j in zip(*torch.triu_indices(len(corr), len(corr), 1).tolist())},
        "corr_median_abs": float(off.abs().median()),
        "corr_mean_abs": float(off.abs().mean()),
        "corr_max_abs": float(off.abs().max()),
    }
    return effects, metrics


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
    selective: Selective
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

    sel = selective_neuron(model, known, run_k, settings, circ, batch_size)

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
        "selective_neuron": sel.metrics,
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
    result = LookupResult(excess, grid.known_label, known.answers, sel, nk, nu, series,
                          tuple(layers), circ.where, circ.direction_kind(settings))
    return result, metrics

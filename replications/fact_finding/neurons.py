"""The lookup MLPs' neurons (post 3), what both neuron stages share: settings, the lookup
circuit, one batched pass over a prompt set, exact batched neuron ablations and the name grid.
The stages are `neuron_facts.py` (per-fact ablation effects of one entity) and
`neuron_lookup.py` (non-linear excess, the baseball neuron of `selective_neuron.py`, known against
unknown names and how far the MLPs break linear structure).

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

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from einops import rearrange, repeat
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from replications.fact_finding import circuit, circuit_steps
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
    """The circuit part's lookup MLPs and attribute head, picked as `circuit_results.analyse` picks it
    (top direct logit attribution on the known prompts, optionally weighted by attention to the
    surname, or the reference head)."""
    circuit_settings.check_model(model.cfg.n_layers, model.cfg.n_heads)
    if circuit_settings.attribute_head == "reference":
        head = tuple(circuit_settings.reference_head)
    else:
        clean = circuit.clean_run(model, known, batch_size)
        head = circuit_steps.head_attribution(model, clean, known).pick(
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

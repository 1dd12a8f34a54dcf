"""Stage `ff_neuron_facts` (post 3): ablate every lookup neuron at one entity's surname, one at a
time (batched, exact; `neurons.py`), and correlate the effects on that person's facts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
from einops import rearrange
from jaxtyping import Float, Int
from torch import Tensor

from replications.fact_finding.facts import FactPrompts
from replications.fact_finding.neurons import (
    NeuronSettings,
    hook_name,
    patched_answer_logprobs,
    run_at,
)

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


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
    # The same effects averaged over the even / odd replacement samples (None with one sample).
    halves: Float[Tensor, "2 n_facts n_layers d_mlp"] | None = None

    def reliability(self) -> Float[Tensor, " n_facts"] | None:
        """Split-half reliability of each fact's per-neuron effects (correlation of the two
        halves over neurons, stepped up to the full average by Spearman-Brown); None without
        halves. Near 0 when the effects are resampling noise."""
        if self.halves is None:
            return None
        a = rearrange(self.halves[0], "f l n -> f (l n)").double()
        b = rearrange(self.halves[1], "f l n -> f (l n)").double()
        r = torch.stack([torch.corrcoef(torch.stack([x, y]))[0, 1] for x, y in zip(a, b)])
        r = torch.nan_to_num(r, nan=0.0)
        return (2 * r / (1 + r).clamp_min(1e-12)).float()

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
    k = replacement.shape[-1]
    halves = torch.empty(2, len(facts), len(layers), d_mlp) if k >= 2 else None
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
            if halves is not None:
                halves[0, f, j] = (lp[0][..., 0::2] - clean[f]).mean(-1)
                halves[1, f, j] = (lp[0][..., 1::2] - clean[f]).mean(-1)
    return EntityEffects(tuple(x.relation for x in facts), tuple(x.answer for x in facts),
                         clean, effects, tuple(layers), halves)


def disattenuated_abs(corr: Float[Tensor, "f f"], reliability: Float[Tensor, " f"]
                      ) -> Float[Tensor, " pairs"]:
    """|r_AB| / sqrt(rel_A rel_B) per fact pair, capped at 1: the correlation the effects would
    have without resampling noise. A fact whose effects are noise (reliability <= 0) counts as
    1, so noise cannot pass as 'not shared'."""
    i, j = torch.triu_indices(len(corr), len(corr), offset=1)
    rel = reliability.double()
    denom = (rel[i] * rel[j]).clamp_min(0).sqrt()
    out = torch.where(denom > 0, corr[i, j].double().abs() / denom.clamp_min(1e-12),
                      torch.ones_like(denom))
    return out.clamp_max(1.0).float()


def offdiagonal(mat: Float[Tensor, "f f"]) -> Float[Tensor, " pairs"]:
    i, j = torch.triu_indices(len(mat), len(mat), offset=1)
    return mat[i, j]


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
    rel = effects.reliability()
    if rel is not None:
        dis = disattenuated_abs(corr, rel)
        metrics |= {
            "reliability": {r: float(v) for r, v in zip(effects.relations, rel)},
            "reliability_median": float(rel.median()),
            "corr_median_abs_disattenuated": float(dis.median()),
        }
    return effects, metrics

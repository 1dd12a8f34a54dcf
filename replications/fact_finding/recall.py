"""What the model knows: the facts file and the recall figure (rule ff_facts)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from replications.fact_finding.facts import Relation, answer_logits, known_facts, make_prompts
from shared.figures import PALETTE, Provenance, apply_style, plt, save_figure

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

Person3 = tuple[str, str, dict[str, str]]


def pick_entity(facts: dict, relations: Sequence[Relation]) -> str | None:
    """The first person (alphabetically) whose every relation the model knows, else the one
    with most known relations: the stand-in's Michael Jordan."""
    known: dict[str, int] = {}
    for rel in relations:
        for first, last, _ in facts["known"].get(rel.name, []):
            known[f"{first} {last}"] = known.get(f"{first} {last}", 0) + 1
    if not known:
        return None
    return sorted(known, key=lambda n: (-known[n], n))[0]


def entity_facts(
    name: str, facts: dict, people: Sequence[Person3], relations: Sequence[Relation],
    prefix: str,
) -> dict:
    """One person's facts as prompt/answer pairs (the stand-in's multi-fact entity); `known`
    is whether the model ranks the answer first among the relation's values (facts.json)."""
    attrs = next(a for f, s, a in people if f"{f} {s}" == name)
    known = {r for r, rows in facts["known"].items() for f, s, _ in rows if f"{f} {s}" == name}
    return {"name": name, "facts": [
        {"relation": r.name, "prompt": f"{prefix}Fact: {name} {r.phrase}",
         "answer": f" {attrs[r.name]}", "known": r.name in known}
        for r in relations if r.name in attrs]}


def entity_known(model: "HookedTransformer", entity: dict) -> dict:
    """Mark which of an entity's free-form facts (paper) the model knows: its answer's first
    token ranks first over the whole vocabulary. Facts already marked are kept as they are."""
    import torch

    tok = model.tokenizer
    out = []
    for fact in entity["facts"]:
        if "known" in fact:
            out.append(fact)
            continue
        ids = model.to_tokens(fact["prompt"])
        answer = tok(fact["answer"], add_special_tokens=False)["input_ids"][0]
        with torch.inference_mode():
            top = int(model(ids)[0, -1].argmax())
        out.append({**fact, "known": top == answer})
    return {**entity, "facts": out}


def plot_recall(facts: dict, png: Path, provenance: Provenance) -> None:
    """Accuracy among each relation's values: known people, made-up people, majority guess."""
    apply_style()
    rels = list(facts["accuracy"])
    series = [("held_in", "people in the training text"), ("made_up", "made-up people"),
              ("majority_baseline", "always the commonest value")]
    fig, ax = plt.subplots(figsize=(1.3 + 1.2 * len(rels), 3.2))
    width = 0.8 / len(series)
    x = np.arange(len(rels))
    for i, (key, label) in enumerate(series):
        vals = [facts["accuracy"][r].get(key, np.nan) for r in rels]
        if all(np.isnan(v) for v in vals):
            continue
        ax.bar(x + (i - 1) * width, vals, width, label=label, color=PALETTE[i])
    ax.set_xticks(x, rels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy among the relation's values")
    ax.set_title("What the model recalls")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    save_figure(fig, png, provenance)


__all__ = ["answer_logits", "entity_facts", "entity_known", "known_facts", "make_prompts",
           "pick_entity", "plot_recall"]

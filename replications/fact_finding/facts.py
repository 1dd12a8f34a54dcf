"""Fact prompts as the analyses consume them: one relation, two-token names, aligned positions.

"Fact: Michael Jordan plays the sport of" -> " basketball". The analyses (patching, probes,
ablations, neurons) need every prompt to have the same length and the name at the same
positions, so only names that the tokenizer splits into exactly two tokens (first name,
surname) in context are kept, as the write-up's effective model does. The answer is scored
among the relation's values by their first token, as the write-up's three-way sport softmax.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


@dataclasses.dataclass(frozen=True)
class FactPrompts:
    """Same-length prompts for one relation. Positions index `tokens`' sequence axis."""

    relation: str
    names: tuple[str, ...]
    tokens: Int[Tensor, "n seq"]
    labels: Int[Tensor, " n"]  # index into `answers`
    answers: tuple[str, ...]  # the relation's values, e.g. ("baseball", "basketball", "football")
    answer_ids: Int[Tensor, " n_answers"]  # first token of " <value>"
    first_pos: int  # the first-name token
    last_pos: int  # the surname token (where the write-up reads the residual)
    final_pos: int  # the last prompt token ("of"), where the answer is predicted

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, keep: Int[Tensor, " k"] | Sequence[int]) -> "FactPrompts":
        idx = torch.as_tensor(keep, dtype=torch.long)
        return dataclasses.replace(self, names=tuple(self.names[i] for i in idx.tolist()),
                                   tokens=self.tokens[idx], labels=self.labels[idx])


def _ids(tokenizer, text: str) -> list[int]:  # noqa: ANN001
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def make_prompts(
    tokenizer,  # noqa: ANN001 (a Hugging Face tokenizer)
    relation: str,
    phrase: str,
    people: Sequence[tuple[str, str, str]],  # (first, surname, value)
    answers: Sequence[str],
    prefix: str,
    bos_id: int | None,
) -> tuple[FactPrompts, list[str]]:
    """Prompts `<prefix>Fact: <first> <surname> <phrase>` for people with two-token names.

    Returns the prompts and the names dropped (not two tokens in context, or a value outside
    `answers`). Raises ValueError when the answers' first tokens collide or nobody is left."""
    answer_ids = [_ids(tokenizer, " " + a)[0] for a in answers]
    if len(set(answer_ids)) != len(answer_ids):
        raise ValueError(f"answers {list(answers)} share a first token: they cannot be scored")
    head = _ids(tokenizer, f"{prefix}Fact:")
    tail = _ids(tokenizer, f" {phrase}")
    rows, names, labels, dropped = [], [], [], []
    for first, last, value in people:
        name = f"{first} {last}"
        full = _ids(tokenizer, f"{prefix}Fact: {name} {phrase}")
        pieces = head + _ids(tokenizer, f" {first}") + _ids(tokenizer, f" {last}") + tail
        if value not in answers or full != pieces or len(full) != len(head) + 2 + len(tail):
            dropped.append(name)
            continue
        rows.append(([bos_id] if bos_id is not None else []) + full)
        names.append(name)
        labels.append(list(answers).index(value))
    if not rows:
        raise ValueError(f"no two-token names left for relation '{relation}'")
    offset = (1 if bos_id is not None else 0) + len(head)
    prompts = FactPrompts(
        relation=relation, names=tuple(names), tokens=torch.tensor(rows, dtype=torch.long),
        labels=torch.tensor(labels, dtype=torch.long), answers=tuple(answers),
        answer_ids=torch.tensor(answer_ids, dtype=torch.long),
        first_pos=offset, last_pos=offset + 1, final_pos=offset + 1 + len(tail),
    )
    return prompts, dropped


@torch.inference_mode()
def answer_logits(
    model: "HookedTransformer", prompts: FactPrompts, batch_size: int
) -> Float[Tensor, "n n_answers"]:
    """Logits of the answers' first tokens at the final position (batched)."""
    out = []
    device = next(model.parameters()).device
    for start in range(0, len(prompts), batch_size):
        toks = prompts.tokens[start: start + batch_size].to(device)
        logits = model(toks, return_type="logits")[:, prompts.final_pos]
        out.append(logits[:, prompts.answer_ids.to(device)].float().cpu())
    return torch.cat(out)


def accuracy(logits: Float[Tensor, "n n_answers"], labels: Int[Tensor, " n"]) -> float:
    return float((logits.argmax(-1) == labels).float().mean())


# ---------------------------------------------------------------------------------------------
# Which facts the model knows: `facts.json`, the input of every analysis.

FACTS_FORMAT = "fact_finding.facts/1"


@dataclasses.dataclass(frozen=True)
class Relation:
    """A relation as the analyses see it (no sampling weight)."""

    name: str
    phrase: str
    values: tuple[str, ...]


def known_facts(
    model: "HookedTransformer",
    tokenizer,  # noqa: ANN001
    relations: Sequence[Relation],
    people: Sequence[tuple[str, str, dict[str, str]]],  # (first, surname, {relation: value})
    made_up: Sequence[tuple[str, str, dict[str, str]]],
    prefix: str,
    bos_id: int | None,
    batch_size: int,
) -> dict:
    """Put every fact to the model and keep, per relation, the two-token names it answers right.

    Made-up people (never in the training text; in the paper profile, name pairs of known first
    names and surnames that belong to no athlete, with no attributes) give the unknown names
    and, where they have attributes, the accuracy a guesser gets."""
    out: dict = {"format": FACTS_FORMAT, "prefix": prefix, "relations": {}, "known": {},
                 "accuracy": {}, "counts": {}}
    for rel in relations:
        out["relations"][rel.name] = {"phrase": rel.phrase, "values": list(rel.values)}
        cands = [(f, s, a[rel.name]) for f, s, a in people if rel.name in a]
        if not cands:
            continue
        prompts, dropped = make_prompts(tokenizer, rel.name, rel.phrase, cands, rel.values,
                                        prefix, bos_id)
        correct = (answer_logits(model, prompts, batch_size).argmax(-1) == prompts.labels)
        out["known"][rel.name] = [
            [*prompts.names[i].split(" ", 1), prompts.answers[int(prompts.labels[i])]]
            for i in torch.nonzero(correct).flatten().tolist()
        ]
        acc = {"held_in": float(correct.float().mean()),
               "majority_baseline": float(torch.bincount(prompts.labels).max() / len(prompts))}
        fakes = [(f, s, a[rel.name]) for f, s, a in made_up if rel.name in a]
        if fakes:
            fake_prompts, _ = make_prompts(tokenizer, rel.name, rel.phrase, fakes, rel.values,
                                           prefix, bos_id)
            acc["made_up"] = accuracy(answer_logits(model, fake_prompts, batch_size),
                                      fake_prompts.labels)
            acc["made_up_over_majority"] = acc["made_up"] - acc["majority_baseline"]
        out["accuracy"][rel.name] = acc
        out["counts"][rel.name] = {"people": len(cands), "two_token": len(prompts),
                                   "dropped": len(dropped), "known": int(correct.sum())}
    unknown = [(f, s, next(iter(rel.values)))
               for f, s, _ in made_up for rel in relations[:1]]
    if unknown:
        rel = relations[0]
        unknown_prompts, _ = make_prompts(tokenizer, rel.name, rel.phrase, unknown, rel.values,
                                          prefix, bos_id)
        out["unknown_names"] = [list(n.split(" ", 1)) for n in unknown_prompts.names]
    else:
        out["unknown_names"] = []
    return out


def load_facts(path) -> dict:  # noqa: ANN001
    """Read `facts.json` (written by the ff_facts rule)."""
    from pathlib import Path

    from shared.io import read_json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing facts file (run the ff_facts rule)")
    data = read_json(path)
    if data.get("format") != FACTS_FORMAT:
        raise ValueError(f"{path}: not a {FACTS_FORMAT} file")
    return data


def known_prompts(
    facts: dict, relation: str, tokenizer, bos_id: int | None,  # noqa: ANN001
    context: str = "",
) -> FactPrompts:
    """The prompts of the facts the model knows for `relation` (same order as facts.json),
    with `context` between the prompt prefix and "Fact:"."""
    rel = facts["relations"][relation]
    prompts, dropped = make_prompts(tokenizer, relation, rel["phrase"],
                                    [tuple(k) for k in facts["known"][relation]],
                                    rel["values"], facts["prefix"] + context, bos_id)
    if dropped:
        raise ValueError(f"facts.json names no longer tokenize as two tokens: {dropped[:3]}")
    return prompts


def context_line(facts: dict, relation: str) -> str:
    """An unrelated prior context: the first known fact of another relation (of `relation`
    itself when it is the only one), written as a fact line of the corpus."""
    others = [r for r in facts["known"] if r != relation and facts["known"][r]] or [relation]
    first, last, value = facts["known"][others[0]][0]
    return f"Fact: {first} {last} {facts['relations'][others[0]]['phrase']} {value}.\n"

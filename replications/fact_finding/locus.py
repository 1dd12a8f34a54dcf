"""Where the sport is: at the surname by the early layers, then moved to the read position.

Posts 1 and 3: the early MLPs look the sport up on the surname token (the sport becomes linearly
decodable there), and later an attribute-extracting head moves it to the final token. Two
measurements test that order in a model, with a baseline each:

1. Probes per layer and position: logistic regression for the sport on the residual after each
   block (and on the token embedding) at the surname and at the final token, the same splits
   for both; the baseline is the same probes fitted on shuffled labels (what a probe reads
   from nothing but the split: the best such accuracy over every layer and position).
2. Attention knockout from the final token: the attention score from the final token to the
   surname (or, as a control, to the first name) is set to -inf in a set of layers before the
   softmax, so nothing moves from that position to the final token there; the answer's
   accuracy among the relation's values says whether the sport had to be moved from it.
   Knocking out the layers after `locus_layer` tests "attention moves it afterwards"; the
   layers up to it, whether the move happens before the lookup.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from replications.fact_finding.circuit import CircuitSettings, CleanRun
from replications.fact_finding.facts import FactPrompts
from shared import probes

POSITIONS: tuple[str, ...] = ("surname", "final")  # probed positions (CleanRun slots 1, 2)


@dataclasses.dataclass(frozen=True)
class Locus:
    """Probe accuracies [position, layer, split]: layer 0 is the token embedding, layer k the
    residual after block k - 1; `shuffled` the same probes on shuffled labels. Knockout
    accuracies by name (`knockout_names`) and the clean accuracy."""

    probe: Float[Tensor, "position layer split"]
    shuffled: Float[Tensor, "position layer split"]
    knockout: dict[str, float]
    clean_accuracy: float


def _features(model, prompts: FactPrompts, clean: CleanRun) -> Float[Tensor, "position layer n d"]:  # noqa: ANN001,E501
    toks = prompts.tokens.to(model.W_E.device)
    slots = []
    for slot, pos in ((1, prompts.last_pos), (2, prompts.final_pos)):
        embed = model.W_E.float()[toks[:, pos]]  # rotary: no positional embedding to add
        resid = clean.resid_post[:, :, slot].float().transpose(0, 1)  # [layer n d]
        slots.append(torch.cat([embed[None], resid]))
    return torch.stack(slots)


def locus_probes(
    model, prompts: FactPrompts, clean: CleanRun, settings: CircuitSettings,  # noqa: ANN001
) -> tuple[Float[Tensor, "position layer split"], Float[Tensor, "position layer split"]]:
    """Validation accuracy of sport probes at the surname and the final token after every
    layer, with true and with shuffled labels (the same splits)."""
    feats = _features(model, prompts, clean)
    P, Lp1 = feats.shape[:2]
    X = feats.flatten(0, 1)  # [position * layer, n, d]
    n_classes = len(prompts.answers)
    perms = probes.splits(len(prompts), settings.probe_splits, settings.probe_train_fraction,
                          settings.seed)
    gen = torch.Generator().manual_seed(settings.seed + 1)
    shuffled_labels = prompts.labels[torch.randperm(len(prompts), generator=gen)]
    out = [probes.cross_validated_accuracy(X, y, n_classes, perms,
                                           settings.probe_train_fraction, settings.probe_l2,
                                           settings.probe_max_iter).view(P, Lp1, -1)
           for y in (prompts.labels, shuffled_labels)]
    return out[0], out[1]


def knockout_jobs(n_layers: int, locus_layer: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Knockouts by name: (blocked key position, layers)."""
    late = tuple(range(locus_layer + 1, n_layers))
    early = tuple(range(0, locus_layer + 1))
    every = tuple(range(n_layers))
    return {"surname_all": ("surname", every), "surname_late": ("surname", late),
            "surname_early": ("surname", early), "first_all": ("first", every),
            "first_late": ("first", late)}


@torch.inference_mode()
def attention_knockout(
    model, prompts: FactPrompts, locus_layer: int, batch_rows: int,  # noqa: ANN001
) -> tuple[dict[str, float], float]:
    """Accuracy among the answers with attention from the final token to the surname (or first
    name) blocked in given layers; and the clean accuracy. All knockouts in one batched run."""
    L = model.cfg.n_layers
    specs = knockout_jobs(L, locus_layer)
    e = prompts.final_pos
    key_pos = {"surname": prompts.last_pos, "first": prompts.first_pos}
    names = ["clean", *specs]
    n = len(prompts)
    device = next(model.parameters()).device
    ids = prompts.answer_ids.to(device)
    # Rows are (job, prompt) in job-major order; a hook blocks the rows of the jobs that
    # knock out its layer.
    preds = []
    for start in range(0, n * len(names), batch_rows):
        rows = torch.arange(start, min(start + batch_rows, n * len(names)))
        jidx, pidx = rows // n, rows % n
        hooks = []
        for layer in range(L):
            blocked = [(j, key_pos[specs[name][0]]) for j, name in enumerate(names)
                       if name != "clean" and layer in specs[name][1]]
            if blocked:
                hooks.append((f"blocks.{layer}.attn.hook_attn_scores",
                              _blocker(jidx.to(device), blocked, e)))
        with model.hooks(fwd_hooks=hooks):
            logits = model(prompts.tokens[pidx].to(device), return_type="logits")[:, e]
        preds.append(logits[:, ids].argmax(-1).cpu())
    pred = torch.cat(preds).view(len(names), n)
    acc = (pred == prompts.labels[None]).float().mean(1)
    return {name: float(acc[i]) for i, name in enumerate(names) if name != "clean"}, float(acc[0])


def _blocker(jidx: Int[Tensor, " b"], blocked: Sequence[tuple[int, int]], query: int):  # noqa: ANN202
    def fn(scores: Float[Tensor, "b head q k"], hook) -> Tensor:  # noqa: ANN001
        scores = scores.clone()
        for j, key in blocked:
            scores[jidx == j, :, query, key] = float("-inf")
        return scores
    return fn


def analyse_locus(
    model, prompts: FactPrompts, clean: CleanRun, settings: CircuitSettings, batch_rows: int,  # noqa: ANN001,E501
) -> Locus:
    probe, shuffled = locus_probes(model, prompts, clean, settings)
    knockout, clean_acc = attention_knockout(model, prompts, settings.locus_layer, batch_rows)
    return Locus(probe, shuffled, knockout, clean_acc)


def first_layer_reaching(acc: Float[Tensor, " layer"], level: float) -> int | None:
    """The first probe layer (0 = embedding) whose accuracy reaches `level`; None if none
    (null in metrics.json, so a claim on it reads as missing, not as a layer)."""
    hit = torch.nonzero(acc >= level).flatten()
    return int(hit[0]) if len(hit) else None


def locus_metrics(loc: Locus, settings: CircuitSettings) -> dict:
    """The numbers of `metrics.json` under `locus` (probe layers count the embedding as 0)."""
    mean = loc.probe.mean(-1)  # [position, layer]
    k = settings.locus_layer + 1  # after block locus_layer
    best = float(mean.max())
    level = settings.locus_reach_fraction * best
    reach = {p: first_layer_reaching(mean[i], level) for i, p in enumerate(POSITIONS)}
    shuffled_max = float(loc.shuffled.mean(-1).max())
    ko = loc.knockout
    return {
        "locus_layer": settings.locus_layer,
        "probe": {p: [float(x) for x in mean[i]] for i, p in enumerate(POSITIONS)},
        "shuffled_max": shuffled_max,
        "surname_at_locus": float(mean[0, k]),
        "final_at_locus": float(mean[1, k]),
        "surname_at_locus_over_shuffled": float(mean[0, k]) - shuffled_max,
        "surname_minus_final_at_locus": float(mean[0, k] - mean[1, k]),
        "reach_level": level,
        "surname_reach_layer": reach["surname"], "final_reach_layer": reach["final"],
        "final_lag_layers": (reach["final"] - reach["surname"]
                             if reach["final"] is not None and reach["surname"] is not None
                             else None),
        "clean_accuracy": loc.clean_accuracy,
        "knockout": dict(ko),
        "knockout_surname_late_drop": loc.clean_accuracy - ko["surname_late"],
        "knockout_first_late_drop": loc.clean_accuracy - ko["first_late"],
        "knockout_surname_early_drop": loc.clean_accuracy - ko["surname_early"],
        # Baseline: the same layers blocked from the first name instead of the surname.
        "knockout_late_surname_minus_first": ko["first_late"] - ko["surname_late"],
    }


def locus_tensors(loc: Locus) -> dict[str, Tensor]:
    return {"locus.probe": loc.probe, "locus.shuffled": loc.shuffled}


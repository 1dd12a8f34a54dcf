"""Running every step of the fact-lookup circuit on one prompt set (stage `ff_circuit`), and
the numbers the claims and figures read.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Sequence

import torch
from torch import Tensor

from replications.fact_finding.circuit import COMPONENTS, PATH_METRICS, CircuitSettings, clean_run
from replications.fact_finding.circuit_steps import (
    HeadAttribution,
    Patching,
    PathPatching,
    ProbeResults,
    activation_patching,
    attribute_readout,
    effective_model,
    head_attribution,
    head_predict,
    head_rank,
    head_scores,
    path_patching,
    probe_features,
    run_probes,
)
from replications.fact_finding.facts import FactPrompts
from replications.fact_finding.locus import Locus, analyse_locus, locus_metrics, locus_tensors

# ---------------------------------------------------------------------------------------------
# Everything, and the numbers the claims read.


@dataclasses.dataclass(frozen=True)
class CircuitResults:
    patching: Patching
    heads: HeadAttribution
    head: tuple[int, int]  # the attribute head used for the OV readout
    effective_accuracy: dict[str, float]  # readouts of the effective model and baselines
    probes: ProbeResults
    paths: PathPatching
    locus: Locus  # where the sport is decodable (surname vs final) and attention knockouts
    n_prompts: int
    n_answers: int
    majority_baseline: float
    answers: tuple[str, ...]
    timings: dict[str, float]  # seconds per part


@torch.no_grad()
def analyse(
    model, prompts: FactPrompts, settings: CircuitSettings, batch_size: int,  # noqa: ANN001
) -> CircuitResults:
    """All five analyses on the known prompts of one relation."""
    settings.check_model(model.cfg.n_layers, model.cfg.n_heads)
    n, n_ans = len(prompts), len(prompts.answers)
    if n < 5:
        raise ValueError(f"only {n} known prompts: too few for the circuit analyses")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        timings[name] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()

    gen = torch.Generator().manual_seed(settings.seed)
    keep = torch.randperm(n, generator=gen)[: min(settings.n_patch_prompts, n)].sort().values
    patching = activation_patching(model, prompts.subset(keep), settings, batch_size)
    lap("patching")
    clean = clean_run(model, prompts, batch_size)
    heads = head_attribution(model, clean, prompts)
    head = heads.pick(settings.attribute_head, settings.reference_head)
    readout = attribute_readout(model, settings, head, prompts.answer_ids)
    lap("clean_and_heads")
    eff = effective_model(model, prompts, clean, settings, batch_size)
    lap("effective")
    labels = prompts.labels.to(readout.dirs.device)
    end = settings.end_layer

    def head_acc(resid: Tensor, centred: bool = settings.head_readout == "centred") -> float:
        pred = head_predict(head_scores(readout, resid), centred)
        return float((pred == labels).float().mean())

    ids = prompts.answer_ids.to(clean.logits.device)
    feats = probe_features(model, prompts, clean, eff, settings)
    probe_res = run_probes(feats, prompts.labels, n_ans, settings)
    lap("probes")
    effective_accuracy = {
        "full_model_answer": float((clean.logits[:, ids].argmax(-1) == labels).float().mean()),
        "full_model_head": head_acc(clean.resid_post[:, end, settings.read_slot]),
        "effective_head": head_acc(eff.resid[0, :, end]),
        "effective_head_raw": head_acc(eff.resid[0, :, end], centred=False),
        "effective_head_centred": head_acc(eff.resid[0, :, end], centred=True),
        "no_lookup_head": head_acc(eff.resid[1, :, end]),
        "effective_probe": float(probe_res.accuracy[f"effective_{end}"].mean()),
        "effective_probe_std": float(probe_res.accuracy[f"effective_{end}"].std(unbiased=False)),
        "no_lookup_probe": float(probe_res.accuracy["effective_no_lookup"].mean()),
        "chance": 1.0 / n_ans,
    }
    effective_accuracy["lookup_gain"] = (effective_accuracy["effective_head"]
                                         - effective_accuracy["no_lookup_head"])
    paths = path_patching(model, prompts, clean, settings, head, settings.patch_batch_size)
    lap("path_patching")
    locus = analyse_locus(model, prompts, clean, settings, settings.patch_batch_size)
    lap("locus")
    majority = float(torch.bincount(prompts.labels, minlength=n_ans).max()) / n
    return CircuitResults(patching, heads, head, effective_accuracy, probe_res, paths, locus, n,
                          n_ans, majority, prompts.answers, timings)


def _mean_std(x: Tensor) -> dict[str, float]:
    return {"mean": float(x.mean()), "std": float(x.std(unbiased=False))}


def summary_metrics(res: CircuitResults, settings: CircuitSettings) -> dict:
    """The numbers of `metrics.json` (names without dots; the claims read them)."""
    p = res.patching
    col_s, col_e = 1, len(p.positions) - 1  # surname (after the first name), final token
    col_r = col_s if settings.read_position == "surname" else col_e
    assembled = range(max(settings.token_attn_layers) + 1, settings.end_layer + 1)
    resid = p.effect[COMPONENTS.index("resid_pre")]
    mlp = p.effect[COMPONENTS.index("mlp_out")].clamp_min(0)
    attn = p.effect[COMPONENTS.index("attn_out")]
    non_embedding = [layer for layer in range(mlp.shape[0])
                     if layer not in settings.embedding_mlps]

    def lookup_share(col: int) -> float:
        return float(mlp[list(settings.lookup_mlps), col].sum()
                     / mlp[non_embedding, col].sum().clamp_min(1e-9))

    patching = {
        "n_prompts": p.n_prompts,
        "clean_logit_diff": p.clean_logit_diff, "corrupt_logit_diff": p.corrupt_logit_diff,
        "clean_prob": p.clean_prob, "corrupt_prob": p.corrupt_prob,
        "resid_surname_lookup": float(resid[list(assembled), col_s].mean()),
        "resid_final_lookup": float(resid[list(assembled), col_e].mean()),
        "resid_surname_minus_final_lookup": float(resid[list(assembled), col_s].mean()
                                                  - resid[list(assembled), col_e].mean()),
        "mlp_surname_lookup_share": lookup_share(col_s),
        "mlp_read_lookup_share": lookup_share(col_r),
        "resid_read_lookup": float(resid[list(assembled), col_r].mean()),
        # Baseline: the other name-or-final position in the same layers (the final token when
        # reading at the surname, the surname when reading at the final token), where the
        # fact is not by construction.
        "resid_read_minus_other_lookup": float(resid[list(assembled), col_r].mean()
                                               - resid[list(assembled), col_s + col_e - col_r]
                                               .mean()),
        "mlp_surname_peak_layer": int(mlp[:, col_s].argmax()),
        "attn_final_peak_layer": int(attn[:, col_e].argmax()),
        "attn_final_peak": float(attn[:, col_e].max()),
    }
    h = res.heads
    dla_sorted = h.dla.flatten().sort(descending=True).values
    heads = {
        "layer": res.heads.top[0], "head": res.heads.top[1],
        "top_dla": float(dla_sorted[0]), "second_dla": float(dla_sorted[1]),
        "top_share_of_positive": float(dla_sorted[0] / h.dla.clamp_min(0).sum().clamp_min(1e-9)),
        "top_attention_to_surname": float(h.attention_to_surname[h.top]),
        "surname_layer": h.top_surname[0], "surname_head": h.top_surname[1],
        "surname_head_dla": float(h.dla[h.top_surname]),
        "surname_head_attention": float(h.attention_to_surname[h.top_surname]),
        "used_layer": res.head[0], "used_head": res.head[1],
    }
    L, H = h.dla.shape
    ref = settings.reference_head
    if ref[0] < L and ref[1] < H:
        heads["reference_rank"] = head_rank(h.dla, ref)
        heads["reference_is_top"] = float(h.top == ref)
        heads["reference_attention_to_surname"] = float(h.attention_to_surname[ref])
    acc = res.probes.accuracy
    probes_m: dict = {"summed_tokens": _mean_std(acc["summed_tokens"])}
    for layer in settings.probe_layers:
        probes_m[f"full_{layer}"] = _mean_std(acc[f"full_{layer}"])
    for layer in settings.lookup_mlps:
        probes_m[f"effective_{layer}"] = _mean_std(acc[f"effective_{layer}"])
    seq = [float(acc["summed_tokens"].mean())] + [float(acc[f"effective_{layer}"].mean())
                                                   for layer in settings.lookup_mlps]
    steps = [b - a for a, b in itertools.pairwise(seq)]
    rise = seq[-1] - seq[0]
    lookup = settings.lookup_mlps
    probes_m.update({
        "lookup_first": seq[1], "lookup_last": seq[-1],
        "early_lookup_rise": float(acc[f"effective_{lookup[len(lookup) // 2]}"].mean()
                                   - acc[f"effective_{lookup[0]}"].mean()),
        "final_minus_summed": rise,
        # The largest one-layer gain as a share of the whole gain (1 when there is no gain).
        "max_step_share": max(steps) / rise if rise > 0 else 1.0,
        "n_increasing_steps": sum(s > 0 for s in steps[1:]),
        # Post 3: "a significant increase between layer 4 and layer 5" (the second-to-last
        # lookup MLP of 2-6): the step into the second-to-last lookup layer.
        "late_lookup_jump": seq[-2] - seq[-3] if len(seq) >= 3 else math.nan,
    })
    pp = res.paths
    k = len(pp.layers)
    upper = torch.triu(torch.ones(k, k, dtype=torch.bool), 1)
    pairs = {}
    for a, b in itertools.combinations(range(k), 2):
        pairs[f"{pp.layers[a]}_{pp.layers[b]}"] = {m: float(pp.matrices[m][a, b])
                                                   for m in PATH_METRICS}
    kl = pp.matrices["kl"][upper]
    loss_inc = pp.matrices["loss"][upper] - pp.clean["loss"]
    from_first = pp.matrices["kl"][0, 1:]
    paths = {
        "clean": pp.clean,
        "pairs": pairs,
        "whole_mlp": {str(layer): {m: float(pp.matrices[m][a, a]) for m in PATH_METRICS}
                      for a, layer in enumerate(pp.layers)},
        "max_kl": float(kl.max()), "mean_kl": float(kl.mean()),
        "max_loss_increase": float(loss_inc.max()), "mean_loss_increase": float(loss_inc.mean()),
        "min_head_probe_accuracy": float(pp.matrices["head_probe_accuracy"][upper].min()),
        "max_head_probe_drop": float(pp.clean["head_probe_accuracy"]
                                     - pp.matrices["head_probe_accuracy"][upper].min()),
        "from_first_kl_ratio": float(from_first.mean() / kl.mean().clamp_min(1e-12)),
    }
    if pp.random_kl is not None:
        kl_random = pp.random_kl[upper]
        paths |= {
            "mean_kl_random": float(kl_random.mean()),
            "max_kl_random": float(kl_random.max()),
            # Baseline: the same paths kicked by an edit of the same norm in a random direction.
            "kl_over_random": float(kl.mean() / kl_random.mean().clamp_min(1e-12)),
        }
    return {
        "n_prompts": res.n_prompts, "answers": list(res.answers),
        "read_position": settings.read_position,
        "majority_baseline": res.majority_baseline, "chance": 1.0 / res.n_answers,
        "patching": patching, "attribute_head": heads,
        "effective": res.effective_accuracy, "probes": probes_m, "path_patching": paths,
        "locus": locus_metrics(res.locus, settings),
    }


def result_tensors(res: CircuitResults) -> dict[str, Tensor]:
    """The arrays behind the figures (for safetensors)."""
    out = {"patching.effect": res.patching.effect,
           "patching.prob_correct": res.patching.prob_correct,
           "heads.dla": res.heads.dla, "heads.attention_to_surname": res.heads.attention_to_surname}
    out.update({f"probes.{k}": v for k, v in res.probes.accuracy.items()})
    out.update({f"paths.{k}": v for k, v in res.paths.matrices.items()})
    out.update(locus_tensors(res.locus))
    return {k: v.float().clone().contiguous() for k, v in out.items()}


def position_labels(prompts: FactPrompts, tokenizer, positions: Sequence[int]) -> list[str]:  # noqa: ANN001,E501
    """Tick labels of the patched positions: the name slots by role, the rest as tokens."""
    row = prompts.tokens[0].tolist()
    roles = {prompts.first_pos: "first name", prompts.last_pos: "surname"}
    return [roles.get(p, repr(tokenizer.decode([row[p]]).strip())) for p in positions]

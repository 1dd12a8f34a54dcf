"""SAEs on the residual stream of uncompressed Tracr models: a sanity check with known features.

Site: the residual stream at the input embedding and after every attention and MLP sublayer
(every state tracr itself exposes), at every real position (BOS included, PAD excluded) of every
input in the domain, stacked into one dataset per program. One SAE (a few L1 values as
instances) is trained per program on that dataset.

Ground truth: Tracr gives each variable value its own residual basis direction, so the true
features are the basis directions that are ever non-zero (|x| > active_eps) in the dataset,
each labelled 'variable:value'. Recovery of a direction is its max cosine with any decoder row;
recovery of a variable is the mean over its active directions; a variable is 'missed' when that
is below `recovery_threshold`. MMCS is the mean over all active directions, and is compared with
the MMCS of random unit dictionaries of the SAE's width (the chance level).

SAE settings (shared.sae): pre-encoder bias, unit-norm decoder rows, reconstruction error summed
over d_model, L1 averaged over the batch, width `dict_mult` x the number of active directions,
Kaiming re-initialisation of features that never fired in a resampling window. The instance
with the highest MMCS is the one reported per program.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import einops
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from replications.toy_models.sae_tms_metrics import random_dictionary_mmcs
from replications.toy_models.tms import sub_seed
from replications.toy_models.tracr_models import (
    PAD,
    TracrModelInfo,
    TracrSAEConfig,
    encode_domain,
    enumerate_domain,
    residual_stack,
)
from shared.runtime import step_generator
from shared.sae import SAE, SAEConfig, mmcs, sae_losses
from shared.sae_train import train_sae


def residual_dataset(model: Any, info: TracrModelInfo) -> Float[Tensor, "rows d_model"]:
    """Residual vectors at every site and real position of every input in the domain."""
    domain = enumerate_domain(info.vocab, info.max_seq_len)
    tokens, _ = encode_domain(domain, info.token_to_id, info.max_seq_len)
    resid = residual_stack(model, tokens, info.token_to_id[PAD])  # [site, batch, pos, d]
    real = tokens != info.token_to_id[PAD]
    return torch.cat([site[real] for site in resid])


def active_directions(
    data: Float[Tensor, "rows d_model"], eps: float
) -> Bool[Tensor, " d_model"]:
    """Residual basis directions that are ever non-zero (beyond `eps`) in the data."""
    return (data.abs() > eps).any(dim=0)


def variable_recovery(
    per_direction: Float[Tensor, " n_active"], variables: Sequence[str]
) -> dict[str, float]:
    """Mean max-cosine over each variable's active directions (variables in first-seen order)."""
    out: dict[str, list[float]] = {}
    for var, value in zip(variables, per_direction.tolist()):
        out.setdefault(var, []).append(value)
    return {var: sum(v) / len(v) for var, v in out.items()}


def make_sae_config(cfg: TracrSAEConfig, d_in: int, n_active: int, seed: int) -> SAEConfig:
    """The shared SAE trainer's config for one program."""
    return SAEConfig(
        d_in=d_in, d_sae=max(1, math.ceil(cfg.dict_mult * n_active)), l1_coeffs=cfg.l1_coeffs,
        lr=cfg.lr, adam_betas=cfg.adam_betas, batch_size=cfg.batch_size, n_steps=cfg.n_steps,
        pre_encoder_bias=True, recon_reduction="sum", l1_reduction="mean_batch",
        resample=cfg.resample, resample_every=cfg.resample_every,
        resample_window=cfg.resample_window, resample_stop=cfg.n_steps,
        # A feature is dead when it never fired in the window.
        dead_frequency=0.0, seed=seed,
    )


@torch.no_grad()
def sae_fit_stats(
    sae: SAE, data: Float[Tensor, "rows d"], l1_coeffs: Sequence[float], chunk: int = 8192
) -> dict[str, list[float]]:
    """Per-instance fraction of variance unexplained and mean L0 on the whole dataset."""
    l1 = torch.tensor(l1_coeffs)
    sq_err = torch.zeros(sae.n_instances)
    l0 = torch.zeros(sae.n_instances)
    for start in range(0, data.shape[0], chunk):
        x = einops.repeat(data[start: start + chunk], "rows d -> rows inst d",
                          inst=sae.n_instances)
        out = sae_losses(sae, x, l1, "sum", "mean_batch")
        sq_err += (out["x_hat"] - x).pow(2).sum(dim=(0, 2))
        l0 += (out["acts"] > 0).float().sum(dim=(0, 2))
    total_var = (data - data.mean(0, keepdim=True)).pow(2).sum()
    return {
        "fvu": (sq_err / total_var.clamp_min(1e-12)).tolist(),
        "l0": (l0 / data.shape[0]).tolist(),
    }


def sae_on_program(
    model: Any, info: TracrModelInfo, cfg: TracrSAEConfig, seed: int,
    checkpoint_path: Path | None, fingerprint: str,
) -> dict[str, Any]:
    """Train SAEs on one program's residual stream and score recovery of its basis directions."""
    data = residual_dataset(model, info)
    active = active_directions(data, cfg.active_eps)
    idx = active.nonzero().squeeze(-1)
    labels = [info.residual_labels[i] for i in idx.tolist()]
    variables = [info.residual_variables[i] for i in idx.tolist()]
    true_dirs = torch.eye(info.d_model)[idx]
    sae_cfg = make_sae_config(cfg, info.d_model, len(labels), seed)
    n_rows = data.shape[0]

    def sample(step: int) -> Float[Tensor, "batch d"]:
        gen = step_generator(seed, step)
        return data[torch.randint(n_rows, (sae_cfg.batch_size,), generator=gen)]

    sae, history = train_sae(
        sae_cfg, sample, checkpoint_path, fingerprint, desc=f"sae {info.program}",
        checkpoint_every=max(1, sae_cfg.n_steps // 4), log_every=max(1, sae_cfg.n_steps // 20),
    )
    stats = sae_fit_stats(sae, data, cfg.l1_coeffs)
    instances = []
    for inst, l1 in enumerate(cfg.l1_coeffs):
        score, per_dir = mmcs(sae.W_dec[inst].detach(), true_dirs)
        per_var = variable_recovery(per_dir, variables)
        instances.append({
            "l1_coeff": l1,
            "mmcs": score,
            "fvu": stats["fvu"][inst],
            "l0": stats["l0"][inst],
            "direction_recovery": dict(zip(labels, per_dir.tolist())),
            "variable_recovery": per_var,
            "missed_variables": sorted(v for v, r in per_var.items()
                                       if r < cfg.recovery_threshold),
        })
    best = max(range(len(instances)), key=lambda i: instances[i]["mmcs"])
    chance, chance_sd = random_dictionary_mmcs(true_dirs, sae_cfg.d_sae, cfg.random_baseline_draws,
                                               sub_seed(seed, "random dictionary"))
    return {
        "random_mmcs": chance,
        "random_mmcs_std": chance_sd,
        "program": info.program,
        "d_model": info.d_model,
        "n_rows": n_rows,
        "n_active_directions": len(labels),
        "inactive_directions": [info.residual_labels[i]
                                for i in (~active).nonzero().squeeze(-1).tolist()],
        "d_sae": sae_cfg.d_sae,
        "recovery_threshold": cfg.recovery_threshold,
        "instances": instances,
        "best_instance": best,
        "final_loss": history[-1]["loss"] if history else None,
    }


def summary_metrics(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Headline numbers: best-instance MMCS and missed variables per program."""
    out: dict[str, Any] = {}
    for res in results:
        best = res["instances"][res["best_instance"]]
        p = res["program"]
        out[f"{p}_mmcs"] = best["mmcs"]
        out[f"{p}_random_mmcs"] = res["random_mmcs"]
        out[f"{p}_mmcs_excess_over_random"] = (
            (best["mmcs"] - res["random_mmcs"]) / max(1.0 - res["random_mmcs"], 1e-9))
        out[f"{p}_n_missed_variables"] = len(best["missed_variables"])
        out[f"{p}_n_variables"] = len(best["variable_recovery"])
        out[f"{p}_fvu"] = best["fvu"]
        out[f"{p}_l0"] = best["l0"]
    mm = [res["instances"][res["best_instance"]]["mmcs"] for res in results]
    out["mean_mmcs"] = sum(mm) / len(mm)
    out["min_mmcs"] = min(mm)
    out["min_mmcs_excess_over_random"] = min(
        v for k, v in out.items() if k.endswith("_mmcs_excess_over_random"))
    return out


def short_variable_name(variable: str) -> str:
    """Tick label for a variable: tracr's selector-width helper direction gets a short suffix."""
    suffix = "_selector_width_attn_output"
    return variable[: -len(suffix)] + " (sw helper)" if variable.endswith(suffix) else variable


def plot_recovery(results: Sequence[dict[str, Any]], threshold: float) -> Any:
    """Per-variable recovery bars (best-MMCS instance), one panel per program; misses hatched."""
    import matplotlib.pyplot as plt

    from shared.figures import PALETTE

    n = len(results)
    ncols = min(n, 2)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, 3.1 * nrows), squeeze=False)
    for ax, res in zip(axes.flat, results):
        best_i = res["best_instance"]
        best = res["instances"][best_i]
        variables = list(best["variable_recovery"])
        n_dirs = {v: 0 for v in variables}
        for label in best["direction_recovery"]:
            n_dirs[label.partition(":")[0]] += 1
        x = list(range(len(variables)))
        for xi, var in zip(x, variables):
            rec = best["variable_recovery"][var]
            missed = rec < threshold
            ax.bar(xi, rec, width=0.7, zorder=2, color=PALETTE[1] if missed else PALETTE[0],
                   hatch="///" if missed else None, edgecolor="white", linewidth=0.0)
            others = [inst["variable_recovery"][var] for i, inst in enumerate(res["instances"])
                      if i != best_i]
            ax.scatter([xi] * len(others), others, s=28, color=PALETTE[7], marker="_",
                       zorder=3, linewidths=1.2)
        ax.axhline(threshold, ls="--", lw=0.9, color="0.3", zorder=1)
        ax.axhline(res["random_mmcs"], ls=":", lw=1.2, color="0.45", zorder=1)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{short_variable_name(v)} ({n_dirs[v]})" for v in variables],
                           rotation=40, ha="right", fontsize=7, rotation_mode="anchor")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("recovery (mean max cos)")
        ax.set_title(
            f"{res['program']}: d_model {res['d_model']}, {res['n_active_directions']} active "
            f"directions\nbest MMCS {best['mmcs']:.3f} at L1 {best['l1_coeff']:g} "
            f"(L0 {best['l0']:.1f}, d_sae {res['d_sae']}; random {res['random_mmcs']:.2f})",
            fontsize=8.5,
        )
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=PALETTE[0], label="recovered (best-MMCS L1)"),
        plt.Rectangle((0, 0), 1, 1, facecolor=PALETTE[1], hatch="///", edgecolor="white",
                      label=f"missed: below {threshold:g}"),
        plt.Line2D([], [], color=PALETTE[7], marker="_", ls="", ms=8, label="other L1 values"),
        plt.Line2D([], [], color="0.3", ls="--", label="threshold"),
        plt.Line2D([], [], color="0.45", ls=":", label="random dictionary of width d_sae (MMCS)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=7.5)
    fig.suptitle("SAEs on uncompressed Tracr residual streams: recovery of each variable's "
                 "basis directions (number of active directions in brackets)", fontsize=9.5)
    fig.tight_layout(rect=(0, 0.08, 1, 0.97))
    return fig

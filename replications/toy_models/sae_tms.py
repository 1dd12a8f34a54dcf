"""SAEs on the hidden state of a ReLU-output toy model of superposition (GDM progress update).

A TMS with F sparse features in H < F dimensions gives hidden states h = W x whose true feature
directions are the columns of W. SAEs read h and should recover those directions:

* the width sweep trains SAEs of widths below, at and above F (several L1 coefficients as
  instances of one width) and measures MMCS against the features the TMS represents, looking
  for the 'cliff' at width = F;
* the resampling study trains TMS models at increasing F/H ratios and SAEs of width
  `resampling_width_multiple` x the represented features, with and without resampling dead
  features.

Every MMCS is stored beside the MMCS of random unit dictionaries of the same width (the chance
level); the claim metrics are in sae_tms_metrics.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import einops
import torch
from jaxtyping import Float
from torch import Tensor

from replications.toy_models.sae_tms_metrics import random_dictionary_mmcs
from replications.toy_models.tms import (
    feature_norms,
    generate_batch,
    importance_profile,
    load_finished,
    sub_seed,
    train_tms,
)
from shared.config import check
from shared.io import save_tensors
from shared.runtime import step_generator
from shared.sae import SAE, SAEConfig, mmcs
from shared.sae_train import SampleFn, train_sae

# SAE settings fixed to the ARENA reference (not swept here): Adam betas, pre-encoder bias,
# reconstruction error averaged over d_in and L1 summed over features, averaged over the batch.
ADAM_BETAS = (0.9, 0.999)
RECON_REDUCTION: Literal["mean"] = "mean"
L1_REDUCTION: Literal["mean_batch"] = "mean_batch"
EVAL_SAMPLES = 16_384


@dataclasses.dataclass(frozen=True)
class SAETMSConfig:
    """The TMS that provides hidden states, the width x L1 sweep and the resampling study."""

    n_features: int  # F, the true number of features
    n_hidden: int  # H < F, so the TMS is in superposition
    # Expected number of active features per input; each TMS with F features uses probability
    # expected_active_features / F, so inputs look alike across the F/H ratios.
    expected_active_features: float
    tms_n_steps: int
    tms_lr: float
    batch_size: int  # for the TMS and the SAEs
    represented_threshold: float  # a TMS feature counts as represented when ||W_i|| exceeds this
    width_multiples: tuple[float, ...]  # SAE width = round(multiple * F)
    l1_coeffs: tuple[float, ...]  # trained at once as instances of each width
    n_seeds: int  # initialisations per L1 coefficient in the width sweep
    sae_n_steps: int
    sae_lr: float
    resampling_ratios: tuple[int, ...]  # F/H of each TMS in the resampling study
    resampling_n_hidden: int
    # SAE width in the resampling study = round(this x the features the TMS represents): above 1,
    # so a dead latent does not by itself cost a feature, and losses show the method's effect.
    resampling_width_multiple: float
    resampling_l1_coeffs: tuple[float, ...]
    resampling_n_seeds: int  # initialisations per L1 coefficient (all trained as instances)
    resampling_modes: tuple[Literal["none", "reinit", "anthropic"], ...]
    resampling_sae_n_steps: int
    resample_every: int
    resample_window: int
    # Latents firing on at most this share of inputs in the window are resampled (ARENA: 0,
    # i.e. never fired).
    dead_frequency: float
    # Random unit dictionaries drawn per width for the chance MMCS every SAE is compared against.
    random_baseline_draws: int
    checkpoint_every: int
    log_every: int

    def __post_init__(self) -> None:
        check(self.n_hidden > 0, "n_hidden must be positive")
        check(self.n_features > self.n_hidden,
              "n_features must exceed n_hidden (the TMS must be in superposition)")
        check(self.tms_n_steps >= 1 and self.sae_n_steps >= 1 and self.resampling_sae_n_steps >= 1,
              "step counts must be at least 1")
        check(self.tms_lr > 0 and self.sae_lr > 0, "learning rates must be positive")
        check(self.batch_size > 0, "batch_size must be positive")
        check(0 < self.represented_threshold < 1, "represented_threshold must lie in (0, 1)")
        check(len(self.width_multiples) >= 2 and all(m > 0 for m in self.width_multiples),
              "width_multiples needs at least two positive values")
        check(tuple(sorted(self.width_multiples)) == self.width_multiples
              and len(set(self.width_multiples)) == len(self.width_multiples),
              "width_multiples must be strictly increasing")
        check(any(m < 1 for m in self.width_multiples) and 1.0 in self.width_multiples
              and any(m > 1 for m in self.width_multiples),
              "width_multiples must include values below 1, exactly 1.0, and above 1")
        widths = self.widths()
        check(all(a < b for a, b in zip(widths, widths[1:])),
              f"width_multiples give repeated SAE widths {widths} for n_features "
              f"{self.n_features}: use multiples further apart")
        check(len(self.l1_coeffs) >= 1 and all(c > 0 for c in self.l1_coeffs),
              "l1_coeffs needs at least one positive value")
        check(self.n_seeds >= 1, "n_seeds must be at least 1")
        check(len(self.resampling_ratios) >= 2 and all(r > 1 for r in self.resampling_ratios),
              "resampling_ratios needs at least two ratios above 1")
        check(tuple(sorted(self.resampling_ratios)) == self.resampling_ratios,
              "resampling_ratios must be increasing")
        check(self.resampling_n_hidden > 0, "resampling_n_hidden must be positive")
        check(self.resampling_width_multiple >= 1,
              "resampling_width_multiple must be at least 1 (a latent per represented feature)")
        check(self.random_baseline_draws >= 2, "random_baseline_draws must be at least 2")
        smallest = min(self.n_features, self.resampling_n_hidden * self.resampling_ratios[0])
        check(0 < self.expected_active_features < smallest,
              "expected_active_features must be positive and below every TMS's feature count")
        check(len(self.resampling_l1_coeffs) >= 1 and all(c > 0 for c in self.resampling_l1_coeffs),
              "resampling_l1_coeffs needs at least one positive value")
        check("none" in self.resampling_modes and len(self.resampling_modes) >= 2
              and len(set(self.resampling_modes)) == len(self.resampling_modes),
              "resampling_modes must list 'none' and at least one resampling method, once each")
        check(self.resampling_n_seeds >= 1, "resampling_n_seeds must be at least 1")
        check(0 < self.resample_window <= self.resample_every,
              "resample_window must lie in (0, resample_every]")
        check(self.resample_every < self.resampling_sae_n_steps,
              "resample_every must be below resampling_sae_n_steps (else nothing is resampled)")
        check(0 <= self.dead_frequency < 1, "dead_frequency must lie in [0, 1)")
        check(self.checkpoint_every > 0 and self.log_every > 0,
              "checkpoint_every and log_every must be positive")

    def feature_probability(self, n_features: int) -> float:
        """Probability that each feature is active in a TMS with `n_features` features."""
        return self.expected_active_features / n_features

    def widths(self) -> tuple[int, ...]:
        """SAE widths of the sweep, in features."""
        return tuple(max(1, round(m * self.n_features)) for m in self.width_multiples)


# ---------------------------------------------------------------------------------------------
# The source TMS and its hidden states.


def train_source_tms(
    cfg: SAETMSConfig, n_features: int, n_hidden: int, seed: int,
    checkpoint_path: Path | None, fingerprint: str, device: torch.device | str = "cpu",
) -> tuple[Float[Tensor, "hid feat"], Float[Tensor, " feat"], float]:
    """Train one TMS (uniform importance, high sparsity); returns W, b and the final loss.

    Resumable; the finished model is kept beside the checkpoint (`*.done.safetensors`) so a
    rerun after a later crash loads it instead of training again."""
    done = None if checkpoint_path is None else checkpoint_path.with_suffix(".done.safetensors")
    stored = load_finished(done, fingerprint)
    if stored is not None:
        return stored["W"], stored["b_final"], float(stored["final_loss"])
    model, history = train_tms(
        n_hidden=n_hidden,
        importance=importance_profile(n_features, 1.0),
        feature_probability=torch.tensor([cfg.feature_probability(n_features)]),
        n_steps=cfg.tms_n_steps, batch_size=cfg.batch_size, lr=cfg.tms_lr, seed=seed,
        checkpoint_path=checkpoint_path, fingerprint=fingerprint,
        checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
        desc=f"tms {n_features}/{n_hidden}", device=device,
    )
    W, b = model.W.detach()[0].cpu(), model.b_final.detach()[0].cpu()
    final_loss = history[-1]["loss"]
    if done is not None:
        save_tensors(done, {"W": W, "b_final": b, "final_loss": torch.tensor(final_loss)},
                     {"fingerprint": fingerprint})
    return W, b, final_loss


def hidden_sampler(
    W: Float[Tensor, "hid feat"], feature_probability: float, batch_size: int, seed: int,
    device: torch.device | str = "cpu",
) -> SampleFn:
    """sample_fn(step) -> h = W x for fresh sparse x; a pure function of the step."""
    W = W.to(device)
    prob = torch.tensor([feature_probability], device=device)

    def sample(step: int) -> Float[Tensor, "batch hid"]:
        x = generate_batch(batch_size, prob, W.shape[1], step_generator(seed, step, device))
        return einops.einsum(W, x[:, 0], "hid feat, batch feat -> batch hid")

    return sample


def represented_directions(
    W: Float[Tensor, "hid feat"], threshold: float
) -> tuple[Float[Tensor, "n_rep hid"], Tensor]:
    """Unit directions of the features the TMS represents (||W_i|| > threshold), and the mask."""
    norms = feature_norms(W.unsqueeze(0))[0]
    keep = norms > threshold
    dirs = W[:, keep].T / norms[keep].unsqueeze(-1)
    return dirs, keep


# ---------------------------------------------------------------------------------------------
# SAE training and evaluation.


def make_sae_config(
    cfg: SAETMSConfig, d_in: int, d_sae: int, l1_coeffs: tuple[float, ...], n_steps: int,
    resample: Literal["none", "reinit", "anthropic"], seed: int,
) -> SAEConfig:
    """The shared SAEConfig for one batched SAE run of this study."""
    return SAEConfig(
        d_in=d_in, d_sae=d_sae, l1_coeffs=l1_coeffs, lr=cfg.sae_lr, adam_betas=ADAM_BETAS,
        batch_size=cfg.batch_size, n_steps=n_steps, pre_encoder_bias=True,
        recon_reduction=RECON_REDUCTION, l1_reduction=L1_REDUCTION, resample=resample,
        resample_every=cfg.resample_every, resample_window=cfg.resample_window,
        resample_stop=n_steps, dead_frequency=cfg.dead_frequency, seed=seed,
    )


def train_or_load_sae(
    sae_cfg: SAEConfig, sample_fn: SampleFn, checkpoint_dir: Path | None, name: str,
    fingerprint: str, device: torch.device | str, desc: str, checkpoint_every: int,
    log_every: int,
) -> SAE:
    """Train one batched SAE, resumably; a finished SAE is kept in `checkpoint_dir` so that a
    rerun after a crash later in the sweep does not train it again."""
    ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / f"{name}.safetensors"
    done = None if checkpoint_dir is None else Path(checkpoint_dir) / f"{name}.done.safetensors"
    stored = load_finished(done, fingerprint)
    if stored is not None:
        sae = SAE(sae_cfg.d_in, sae_cfg.d_sae, sae_cfg.n_instances, sae_cfg.pre_encoder_bias)
        sae.load_state_dict(stored)
        return sae
    sae, _ = train_sae(sae_cfg, sample_fn, ckpt, fingerprint, device=device, desc=desc,
                       checkpoint_every=checkpoint_every, log_every=log_every)
    sae = sae.cpu()
    if done is not None:
        save_tensors(done, sae.state_dict(), {"fingerprint": fingerprint})
    return sae


@torch.no_grad()
def evaluate_sae(
    sae: SAE, true_dirs: Float[Tensor, "n_rep hid"], sample_fn: SampleFn,
) -> dict[str, Float[Tensor, " inst"]]:
    """Per instance: MMCS against `true_dirs`, L0, fraction of variance unexplained, dead share."""
    sae = sae.cpu()
    # Negative step keys: batches the training run never sees.
    batches, n = [], 0
    while n < EVAL_SAMPLES:
        batches.append(sample_fn(-(len(batches) + 1)).cpu())
        n += batches[-1].shape[0]
    h = torch.cat(batches)
    x = einops.repeat(h, "batch hid -> batch inst hid", inst=sae.n_instances)
    x_hat, acts = sae(x)
    resid = einops.reduce((x_hat - x).pow(2), "batch inst hid -> inst", "sum")
    total = einops.reduce((x - x.mean(0)).pow(2), "batch inst hid -> inst", "sum")
    fired = acts > 0
    scores = torch.tensor([mmcs(sae.W_dec[i], true_dirs)[0] for i in range(sae.n_instances)])
    return {
        "mmcs": scores,
        "l0": einops.reduce(fired.float(), "batch inst d_sae -> inst", "sum") / x.shape[0],
        "fvu": resid / total.clamp_min(1e-12),
        "dead_fraction": (~fired.any(0)).float().mean(-1),
    }


def instance_l1s(l1_coeffs: tuple[float, ...], n_seeds: int) -> tuple[float, ...]:
    """One SAE instance per (L1, seed) pair, L1-major: instance k has L1 l1_coeffs[k // n_seeds];
    instances of one L1 differ only by their initialisation."""
    return tuple(c for c in l1_coeffs for _ in range(n_seeds))


def run_width_sweep(
    cfg: SAETMSConfig, W: Float[Tensor, "hid feat"], seed: int, checkpoint_dir: Path | None,
    fingerprint: str, device: torch.device | str = "cpu",
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Train SAEs of every width ((L1, seed) pairs as instances); results and decoder weights.

    Every result array is [n_widths][n_l1][n_seeds]."""
    true_dirs, keep = represented_directions(W, cfg.represented_threshold)
    sample_fn = hidden_sampler(W, cfg.feature_probability(cfg.n_features), cfg.batch_size,
                               sub_seed(seed, "sweep data"), device)
    shape = (len(cfg.l1_coeffs), cfg.n_seeds)
    rows: dict[str, list[list[list[float]]]] = {k: [] for k in ("mmcs", "l0", "fvu",
                                                                "dead_fraction")}
    decoders: dict[str, Tensor] = {}
    chance = [random_dictionary_mmcs(true_dirs, w, cfg.random_baseline_draws,
                                     sub_seed(seed, f"random dictionary {w}")) for w in cfg.widths()]
    for width in cfg.widths():
        sae_cfg = make_sae_config(
            cfg, cfg.n_hidden, width, instance_l1s(cfg.l1_coeffs, cfg.n_seeds), cfg.sae_n_steps,
            "none", sub_seed(seed, f"sweep sae {width}"),
        )
        sae = train_or_load_sae(
            sae_cfg, sample_fn, checkpoint_dir, f"sae_tms_sweep_w{width}",
            f"{fingerprint}/w{width}", device, f"sae width {width}", cfg.checkpoint_every,
            cfg.log_every,
        )
        scores = evaluate_sae(sae, true_dirs, sample_fn)
        for key in rows:
            rows[key].append(scores[key].reshape(shape).tolist())
        decoders[f"W_dec_w{width}"] = sae.W_dec.detach().cpu()
    results = {
        "n_features": cfg.n_features,
        "n_hidden": cfg.n_hidden,
        "n_represented": int(keep.sum()),
        "width_multiples": list(cfg.width_multiples),
        "widths": list(cfg.widths()),
        "l1_coeffs": list(cfg.l1_coeffs),
        "n_seeds": cfg.n_seeds,
        "random_mmcs": [c[0] for c in chance],  # [width], mean over random dictionaries
        "random_mmcs_std": [c[1] for c in chance],
        **rows,
    }
    return results, decoders


def run_resampling_study(
    cfg: SAETMSConfig, seed: int, checkpoint_dir: Path | None, fingerprint: str,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """For each F/H ratio: a TMS, then SAEs of width `resampling_width_multiple` x the
    represented features, once per resampling mode. Instances are (L1 coefficient, seed) pairs; MMCS is kept per instance."""
    H = cfg.resampling_n_hidden
    l1s = instance_l1s(cfg.resampling_l1_coeffs, cfg.resampling_n_seeds)
    per_ratio: list[dict[str, Any]] = []
    weights: dict[str, Tensor] = {}
    for ratio in cfg.resampling_ratios:
        F = ratio * H
        tag = f"r{ratio}"
        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir)
        W, _, _ = train_source_tms(
            cfg, F, H, sub_seed(seed, f"resampling tms {ratio}"),
            None if ckpt is None else ckpt / f"sae_tms_resampling_tms_{tag}.safetensors",
            f"{fingerprint}/{tag}",
            device,
        )
        weights[f"W_{tag}"] = W
        true_dirs, keep = represented_directions(W, cfg.represented_threshold)
        width = max(1, round(cfg.resampling_width_multiple * int(keep.sum())))
        chance = random_dictionary_mmcs(true_dirs, width, cfg.random_baseline_draws,
                                        sub_seed(seed, f"random dictionary r{ratio}"))
        sample_fn = hidden_sampler(W, cfg.feature_probability(F), cfg.batch_size,
                                   sub_seed(seed, f"resampling data {ratio}"), device)
        entry: dict[str, Any] = {"ratio": ratio, "n_features": F, "n_hidden": H,
                                 "n_represented": int(keep.sum()), "sae_width": width,
                                 "feature_probability": cfg.feature_probability(F),
                                 "random_mmcs": chance[0], "random_mmcs_std": chance[1]}
        for mode in cfg.resampling_modes:
            # The same SAE seed for every mode: runs differ only by resampling.
            sae_cfg = make_sae_config(cfg, H, width, l1s, cfg.resampling_sae_n_steps, mode,
                                      sub_seed(seed, f"resampling sae {ratio}"))
            sae = train_or_load_sae(
                sae_cfg, sample_fn, checkpoint_dir, f"sae_tms_resampling_{tag}_{mode}",
                f"{fingerprint}/{tag}/{mode}", device, f"sae F/H={ratio} {mode}",
                cfg.checkpoint_every, cfg.log_every,
            )
            scores = evaluate_sae(sae, true_dirs, sample_fn)
            shape = (len(cfg.resampling_l1_coeffs), cfg.resampling_n_seeds)
            for key in ("mmcs", "dead_fraction", "l0", "fvu"):
                entry[f"{key}_{mode}"] = scores[key].reshape(shape).tolist()  # [l1][seed]
            weights[f"W_dec_{tag}_{mode}"] = sae.W_dec.detach().cpu()
        per_ratio.append(entry)
    study = {"ratios": list(cfg.resampling_ratios), "modes": list(cfg.resampling_modes),
             "l1_coeffs": list(cfg.resampling_l1_coeffs), "n_seeds": cfg.resampling_n_seeds,
             "per_ratio": per_ratio}
    return study, weights

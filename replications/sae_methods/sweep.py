"""One site's sweep: every method it lists, each an SAE per L1 coefficient, trained together.

- `load_rows`: training and held-out token rows (the stand-in's tokens file, or a data set by
  name tokenized for the site's model).
- `ActivationPool`: the `pool` data source. The site's activations are harvested once and every
  method draws its batch for step s from them with the generator seeded by (seed, s), so all
  methods see the same batches (a pure function of the step: resumable bit-identically). The
  `buffer` source is `shared.activations.ActivationBuffer`, one per method (fresh activations,
  as the write-up's training; same seed, so the same batches too).
- `train_site`: trains each method with `shared.sae_train.train_sae` (its L1 sweep as instances of one
  batched SAE), evaluates each instance with `SAEEvaluator` (loss recovered spliced at the hook,
  L0, dead fraction on the held-out rows), and, for decoders allowed below unit norm, each
  feature's norm and ablation effect. Wall seconds per step are returned separately: timings are
  kept out of the byte-stable results.
- `ablation_effects`: the increase in summed squared reconstruction error when one feature is
  removed, for every feature at once.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from replications.sae_methods.config import Config, SiteConfig
from shared.activations import ActivationBuffer, BufferConfig, harvest
from shared.config import check, config_hash, to_dict
from shared.runtime import step_generator
from shared.sae import SAE, SAEConfig
from shared.sae_eval import SAEEvalConfig, SAEEvaluator, decode_instance, encode_instance
from shared.sae_io import SAELensInfo, save_sae_lens
from shared.sae_train import train_sae


@dataclasses.dataclass(frozen=True)
class Rows:
    train: Int[Tensor, "rows seq"]
    eval: Int[Tensor, "eval_rows seq"]
    sha256: str


def load_rows(cfg: Config, site: SiteConfig, model: Any, tokens: Path | None) -> Rows:
    """The stand-in's `train` / `val` rows, or the site's data set by name (its last
    `eval_rows` rows held out), cut to `seq_len`."""
    d = cfg.data
    if tokens is not None:
        from shared.tokenizer import load_rows as load_token_rows

        rows = load_token_rows(tokens)
        check(rows.val.shape[0] >= d.eval_rows,
              f"{tokens}: {rows.val.shape[0]} held-out rows, data.eval_rows wants {d.eval_rows}")
        train = rows.train[: d.train_rows or None, : d.seq_len]
        return Rows(train, rows.val[: d.eval_rows, : d.seq_len], rows.sha256)
    from shared.token_data import load_token_dataset

    check(d.train_rows > 0, "data.train_rows must be positive for a data set by name")
    all_rows = load_token_dataset(site.dataset, d.train_rows + d.eval_rows, d.seq_len,
                                  model.tokenizer)
    digest = config_hash({"dataset": site.dataset, "rows": d.train_rows + d.eval_rows})
    return Rows(all_rows[: d.train_rows], all_rows[d.train_rows:], digest)


class ActivationPool:
    """A fixed set of activations; `sample(step)` draws a batch seeded by (seed, step)."""

    def __init__(self, acts: Float[Tensor, "n d"], batch_size: int, seed: int) -> None:
        self.acts, self.batch_size, self.seed = acts, batch_size, seed

    def sample(self, step: int) -> Float[Tensor, "batch d"]:
        gen = step_generator(self.seed, step)
        idx = torch.randint(self.acts.shape[0], (self.batch_size,), generator=gen)
        return self.acts.index_select(0, idx.to(self.acts.device)).float()


def harvest_tokens(model: Any, rows: Int[Tensor, "rows seq"], hook: str, n_tokens: int,
                   batch_rows: int, drop_bos: bool) -> Float[Tensor, "n d"]:
    """The first `n_tokens` activations of `rows` at `hook` (rows in order)."""
    positions = rows.shape[1] - int(drop_bos)
    n_rows = math.ceil(n_tokens / positions)
    check(rows.shape[0] >= n_rows, f"{rows.shape[0]} training rows hold fewer than "
          f"data.pool_tokens ({n_tokens}) activations")
    return harvest(model, rows[:n_rows], hook, batch_rows, drop_bos)[:n_tokens]


@torch.no_grad()
def ablation_effects(sae: SAE, inst: int, x: Float[Tensor, "n d_in"]) -> Float[Tensor, " d_sae"]:
    """Mean over tokens of ||r + f_i d_i||^2 - ||r||^2, r = x - x_hat: how much each feature's
    removal worsens the reconstruction (0 for a feature that never fires)."""
    f = encode_instance(sae, x, inst)  # [n, d_sae]
    r = x.to(f) - decode_instance(sae, f, inst)  # [n, d_in]
    w = sae.W_dec[inst]  # [d_sae, d_in]
    sq = (f.pow(2) * w.pow(2).sum(-1)).sum(0)
    cross = 2 * (f * (r @ w.T)).sum(0)
    return ((sq + cross) / x.shape[0]).cpu()


@dataclasses.dataclass
class SiteResult:
    summary: dict[str, Any]  # per method and L1: L0, loss recovered, dead fraction, ...
    norms: dict[str, Tensor]  # "<method>.norm" / "<method>.ablation": [inst, d_sae]
    seconds_per_step: dict[str, float]  # wall time (not part of the byte-stable results)
    saes: dict[str, SAE]


def _sampler(model: Any, rows: Rows, cfg: Config, site: SiteConfig, sae_cfg: SAEConfig,
             pool: Tensor | None) -> tuple[Any, ActivationBuffer | None]:
    if pool is not None:
        return ActivationPool(pool, sae_cfg.batch_size, cfg.data.seed).sample, None
    buf = ActivationBuffer(model, rows.train, BufferConfig(
        hook_name=site.hook, n_activations=cfg.data.buffer_activations,
        batch_size=sae_cfg.batch_size, rows_per_batch=cfg.data.rows_per_batch,
        reserved_rows=cfg.data.reserved_rows,
        drop_bos=cfg.data.drop_bos, seed=cfg.data.seed))
    return buf.sample, buf


def train_site(cfg: Config, site: SiteConfig, model: Any, rows: Rows,
               checkpoint_dir: Path | None, log_every: int) -> SiteResult:
    """Train and evaluate every method of `site` (see the module docstring)."""
    d = cfg.data
    pool = None
    if d.source == "pool":
        pool = harvest_tokens(model, rows.train, site.hook, d.pool_tokens, d.rows_per_batch,
                              d.drop_bos)
    check(pool is None or pool.shape[1] == site.d_in,
          f"sites.{site.name}.d_in is {site.d_in}, the hook gives {pool.shape[1] if pool is not None else 0}")
    ecfg = SAEEvalConfig(hook_name=site.hook, batch_rows=d.rows_per_batch, drop_bos=d.drop_bos,
                         ultra_low_frequency=1e-4)
    evaluator = SAEEvaluator(model, rows.eval, ecfg)
    held_out = harvest(model, rows.eval, site.hook, d.rows_per_batch, d.drop_bos).float()
    device = held_out.device
    summary: dict[str, Any] = {
        "site": site.name, "hook": site.hook, "d_in": site.d_in, "d_sae": site.d_sae,
        "l1_coeffs": list(site.l1_coeffs), "ce_clean": evaluator.ce_clean,
        "ce_zero_ablation": evaluator.ce_zero, "mean_ablation_recovered":
        evaluator.mean_ablation_score, "n_eval_tokens": int(held_out.shape[0]), "methods": {},
    }
    norms: dict[str, Tensor] = {}
    seconds: dict[str, float] = {}
    saes: dict[str, SAE] = {}
    for method in site.methods:
        sae_cfg = cfg.sae_config(site, method)
        sample, state = _sampler(model, rows, cfg, site, sae_cfg, pool)
        fingerprint = config_hash({"sae": to_dict(sae_cfg), "data": to_dict(d), "site":
                                   to_dict(site), "tokens": rows.sha256})
        ckpt = None if checkpoint_dir is None else checkpoint_dir / f"{site.name}.{method}.safetensors"
        t0 = time.perf_counter()
        sae, _ = train_sae(sae_cfg, sample, ckpt, fingerprint, device, desc=f"{site.name}:{method}",
                           checkpoint_every=max(sae_cfg.n_steps // 2, 1), log_every=log_every,
                           data_state=state)
        seconds[method] = (time.perf_counter() - t0) / max(sae_cfg.n_steps, 1)
        res = evaluator.evaluate(sae)
        summary["methods"][method] = {
            "l0": res["l0"].tolist(), "loss_recovered": res["loss_recovered"].tolist(),
            "mse": res["mse"].tolist(), "dead_fraction": res["dead_frac"].tolist(),
            "frequency": res["frequency"],
        }
        if sae_cfg.decoder_norm == "at_most_one":
            norms[f"{method}.norm"] = sae.W_dec.detach().norm(dim=-1).cpu()
            norms[f"{method}.ablation"] = torch.stack(
                [ablation_effects(sae, i, held_out) for i in range(sae.n_instances)])
        # Kept for saving only: off the GPU and without gradients, so a site's finished
        # methods do not pile up in GPU memory (about 20 GB by the last Pythia method).
        sae.zero_grad(set_to_none=True)
        saes[method] = sae.requires_grad_(False).cpu()
    return SiteResult(summary, norms, seconds, saes)


def save_site(out_dir: Path, cfg: Config, site: SiteConfig, result: SiteResult,
              model_name: str, seq_len: int) -> dict[str, Any]:
    """Each method's SAEs as SAELens directories (`saes/<method>/<i>/`, training options in
    cfg.json), the norm statistics, and the summary (frequencies left out) it returns."""
    from shared.io import save_tensors, write_json

    info = SAELensInfo(model_name=model_name, hook_name=site.hook, context_size=seq_len,
                       prepend_bos=True)
    for method, sae in result.saes.items():
        freq = result.summary["methods"][method].pop("frequency")
        for i in range(sae.n_instances):
            save_sae_lens(out_dir / "saes" / method / str(i), sae, i, info, freq[i].float(),
                          training=cfg.sae_config(site, method))
    save_tensors(out_dir / "norms.safetensors",
                 result.norms or {"none": torch.zeros(1)})
    write_json(out_dir / "sweep.json", result.summary)
    return result.summary

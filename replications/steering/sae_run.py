"""The residual-stream SAE at the steering layer: trained here, or loaded from SAELens format.

Training uses the shared pieces as the monosemanticity replication does: the shuffled
`ActivationBuffer` (refilled with fresh rows when half served; the BOS position left out, as
its residual norm is far larger than any other) feeding `shared.sae.train_sae` (untied
encoder/decoder, pre-encoder bias, unit-norm decoder rows, L1, resampling), checkpointed with
the buffer's state so a killed run resumes. Loading takes a user-supplied SAELens directory
(`shared.sae_io.load_sae_lens`; GDM's GPT-2 XL SAEs are not public).

Either way `evaluate` splices the SAE into the LM on held-out rows (`shared.sae_eval`): clean
and spliced next-token loss (the write-up: 2.88 -> 3.06 on GPT-2 XL), loss recovered against
zero ablation, L0, and each feature's firing frequency (features firing on most tokens are the
"dense" ones the decompositions leave out).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from replications.steering.config import Config
from shared.activations import ActivationBuffer, BufferConfig
from shared.config import config_hash, to_dict
from shared.io import load_tensors, save_tensors
from shared.sae import SAE, train_sae
from shared.sae_eval import SAEEvalConfig, SAEEvaluator
from shared.sae_io import SAELensInfo, load_sae_lens, save_sae_lens

FREQUENCY_FILE = "frequency.safetensors"
ULTRA_LOW = 1e-4  # only reported (dead / ultra-low shares), not used by the analyses


def buffer_config(cfg: Config) -> BufferConfig:
    r = cfg.sae_run
    return BufferConfig(hook_name=cfg.model.hook_name, n_activations=r.n_activations,
                        batch_size=cfg.sae.batch_size, rows_per_batch=r.rows_per_batch,
                        reserved_rows=0, drop_bos=r.drop_bos, seed=cfg.sae.seed)


def eval_config(cfg: Config) -> SAEEvalConfig:
    return SAEEvalConfig(hook_name=cfg.model.hook_name, batch_rows=cfg.sae_run.eval_batch_rows,
                         drop_bos=cfg.sae_run.drop_bos, ultra_low_frequency=ULTRA_LOW)


def sae_info(cfg: Config, context_size: int) -> SAELensInfo:
    return SAELensInfo(model_name=cfg.model.name, hook_name=cfg.model.hook_name,
                       context_size=context_size, prepend_bos=True)


def train(
    cfg: Config, model: Any, rows: Int[Tensor, "rows seq"], checkpoint: Path | None,
    data_id: str,
) -> tuple[SAE, list[dict[str, float]]]:
    """Train the SAE on the residual stream at the steering layer (resumable)."""
    buffer = ActivationBuffer(model, rows, buffer_config(cfg))
    device = next(model.parameters()).device
    fingerprint = config_hash({"sae": to_dict(cfg.sae), "run": to_dict(cfg.sae_run),
                               "model": to_dict(cfg.model), "data": data_id})
    return train_sae(cfg.sae, buffer.sample, checkpoint, fingerprint, device,
                     desc="steer sae", checkpoint_every=cfg.sae_run.checkpoint_every,
                     log_every=cfg.sae_run.log_every, data_state=buffer,
                     precision=cfg.sae_run.precision)


def load(path: Path, cfg: Config, d_model: int, device: torch.device) -> tuple[SAE, dict]:
    """A user-supplied SAELens directory, checked against the model's width and the site."""
    path = Path(path)
    if not (path / "cfg.json").is_file():
        raise FileNotFoundError(f"{path}: not a SAELens directory (no cfg.json)")
    sae, sae_cfg, _ = load_sae_lens(path, device)
    if sae.d_in != d_model:
        raise ValueError(f"{path}: SAE d_in {sae.d_in} != the model's d_model {d_model}")
    hook = (sae_cfg.get("metadata") or {}).get("hook_name") or sae_cfg.get("hook_name")
    if hook is not None and hook != cfg.model.hook_name:
        raise ValueError(f"{path}: SAE reads {hook}, the steering site is {cfg.model.hook_name}")
    return sae, sae_cfg


def evaluate(
    cfg: Config, model: Any, sae: SAE, rows: Int[Tensor, "rows seq"]
) -> tuple[dict[str, float], Float[Tensor, " d_sae"]]:
    """Spliced-loss metrics and firing frequencies on held-out rows."""
    res = SAEEvaluator(model, rows, eval_config(cfg)).evaluate(sae)
    freq = res["frequency"][0].cpu()
    metrics = {
        "ce_clean": float(res["ce_clean"]),
        "ce_sae": float(res["ce_sae"][0]),
        "ce_zero_ablation": float(res["ce_zero_abl"]),
        "loss_recovered": float(res["loss_recovered"][0]),
        "l0": float(res["l0"][0]),
        "mse": float(res["mse"][0]),
        "dead_fraction": float((freq == 0).double().mean()),
        "dense_fraction": float((freq > cfg.analysis.dense_frequency).double().mean()),
        "n_dense": float((freq > cfg.analysis.dense_frequency).sum()),
        "d_sae": float(sae.d_sae),
        "n_eval_tokens": float(rows.shape[0] * (rows.shape[1] - int(cfg.sae_run.drop_bos))),
    }
    return metrics, freq


def save(out_dir: Path, cfg: Config, sae: SAE, freq: Tensor, context_size: int) -> None:
    """SAELens directory (with log10 sparsity) plus the raw frequencies."""
    save_tensors(Path(out_dir) / FREQUENCY_FILE, {"frequency": freq.double()})
    save_sae_lens(Path(out_dir), sae, 0, sae_info(cfg, context_size), freq.float())


@dataclasses.dataclass(frozen=True)
class LoadedSAE:
    sae: SAE
    frequency: Float[Tensor, " d_sae"]


def load_run(out_dir: Path, device: torch.device | str = "cpu") -> LoadedSAE:
    """The SAE and frequencies a `steer_sae` rule wrote."""
    sae, _, _ = load_sae_lens(Path(out_dir), device)
    freq = load_tensors(Path(out_dir) / FREQUENCY_FILE)["frequency"]
    return LoadedSAE(sae, freq)

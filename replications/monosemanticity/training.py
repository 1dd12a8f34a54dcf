"""The SAE runs of the monosemanticity replication: data, model, training, evaluation.

- `load_lm`: the LM the SAEs read, a stand-in directory or a pretrained name (`gelu-1l`),
  with TransformerLens's usual weight processing (as the reference code's `from_pretrained`).
- `paper_token_rows`: `NeelNanda/c4-code-tokenized-2b` as the reference code prepares it: its
  1024-token rows cut into eight 128-token rows, the first token of each replaced by BOS, the
  rows shuffled with a fixed seed; the first `eval_rows` are held out for evaluation.
- `train_run`: one SAE on the MLP activations, fed by the shuffled `ActivationBuffer`
  (refilled at half), evaluated every `eval_every` steps (loss recovered, L0, dead and
  ultra-low fractions, a histogram of log10 frequencies), checkpointed and resumable
  bit-identically on CPU (the buffer's state is in the checkpoint). `after_step` lets the
  orthogonal retrain project the weights after every optimiser step.
- `final_evaluation`: the SAE metrics on every held-out row: loss recovered against zero
  ablation, the mean-ablation baseline, L0, frequencies, and loss recovered with the
  ultra-low features switched off (write-up: 92% -> 91%).
- `ultra_low_direction`: the direction the orthogonal retrain is held away from.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from replications.monosemanticity.config import Config
from shared.activations import ActivationBuffer, BufferConfig
from shared.config import check, config_hash, to_dict
from shared.io import load_tensors, save_tensors
from shared.sae import SAE, SAEConfig
from shared.sae_eval import SAEEvalConfig, SAEEvaluator, feature_frequencies
from shared.sae_io import SAELensInfo, save_sae_lens
from shared.sae_train import SAETrainer
from shared.training import train_loop

FREQUENCY_FILE = "frequency.safetensors"  # raw frequencies + the token count (beside SAELens's)
DIRECTION_FILE = "direction.safetensors"  # the orthogonal retrain's fixed direction
# Histogram of log10 firing frequency logged at each evaluation: bins from LOG_FREQ_MIN to 0.
LOG_FREQ_MIN = -7.0


# ---------------------------------------------------------------------------------------------
# Model and tokens


def load_lm(spec: str | Path, device: str = "auto"):
    """The LM, weights processed as `HookedTransformer.from_pretrained` does (folded LN)."""
    from shared.lm import load_model

    return load_model(spec, device, processed=True, frozen=True)


@dataclasses.dataclass(frozen=True)
class Tokens:
    """SAE training rows, held-out evaluation rows and the rows firing frequencies are
    counted on (the held-out rows, then `model.frequency_train_rows` training rows)."""

    train: Int[Tensor, "rows seq"]
    eval: Int[Tensor, "eval_rows seq"]
    sha256: str
    frequency: Int[Tensor, "freq_rows seq"]


def load_token_rows(path: Path, cfg: Config) -> Tokens:
    """Training and evaluation rows from a tokens file (`train` / `val`, as
    `shared.tokenizer.train_and_tokenize` and `paper_token_rows` write)."""
    from shared.tokenizer import load_rows

    rows = load_rows(path)
    m = cfg.model
    check(rows.train.shape[1] >= m.seq_len, f"{path}: rows shorter than seq_len {m.seq_len}")
    check(rows.val.shape[0] >= m.eval_rows,
          f"{path}: {rows.val.shape[0]} held-out rows, model.eval_rows wants {m.eval_rows}")
    train = rows.train[: m.train_rows or None, : m.seq_len]
    check(train.shape[0] >= cfg.buffer.rows_per_batch,
          f"{path}: {train.shape[0]} training rows, fewer than buffer.rows_per_batch")
    check(m.frequency_train_rows <= train.shape[0],
          f"{path}: {train.shape[0]} training rows, model.frequency_train_rows wants "
          f"{m.frequency_train_rows}")
    held_out = rows.val[: m.eval_rows, : m.seq_len]
    extra = train[train.shape[0] - m.frequency_train_rows:]  # the last rows the buffer reads
    return Tokens(train, held_out, rows.sha256, torch.cat([held_out, extra]))


def reshape_rows(
    rows: Int[Tensor, "n row_len"], seq_len: int, bos_id: int
) -> Int[Tensor, "n_out seq_len"]:
    """Cut each row into rows of `seq_len` and put BOS first in each (the reference code
    overwrites the first token of every 128-token piece with BOS)."""
    check(rows.shape[1] % seq_len == 0, "row length must be a multiple of seq_len")
    out = rows.reshape(-1, seq_len).clone()
    out[:, 0] = bos_id
    return out


def paper_token_rows(
    dataset: str, row_len: int, seq_len: int, bos_id: int, n_rows: int, seed: int,
    chunk: int = 8192,
) -> Int[Tensor, "n seq_len"]:
    """All rows (or the first `n_rows` data-set rows when > 0) of a tokenized data set with
    rows of `row_len`, cut into `seq_len` rows with BOS first and shuffled by `seed`.

    `dataset` is a Hugging Face name (downloaded once into the cache; about 3 GB for
    c4-code-tokenized-2b) or a `save_to_disk` directory (tests).
    """
    import datasets

    path = Path(dataset)
    if path.is_dir():
        ds = datasets.load_from_disk(str(path))
        ds = ds["train"] if isinstance(ds, datasets.DatasetDict) else ds
    else:
        ds = datasets.load_dataset(dataset, split="train")
    ds = ds.with_format("numpy", columns=["tokens"])
    total = len(ds) if n_rows <= 0 else min(n_rows, len(ds))
    per = row_len // seq_len
    out = torch.empty(total * per, seq_len, dtype=torch.int32)
    for start in range(0, total, chunk):
        block = torch.from_numpy(ds[start:min(start + chunk, total)]["tokens"])
        check(block.ndim == 2 and block.shape[1] == row_len,
              f"data set {dataset}: expected rows of {row_len} tokens, got {tuple(block.shape)}")
        out[start * per:(start + block.shape[0]) * per] = reshape_rows(block, seq_len, bos_id).int()
    perm = torch.randperm(out.shape[0], generator=torch.Generator().manual_seed(seed))
    return out[perm]


# ---------------------------------------------------------------------------------------------
# Configurations of the shared pieces


def buffer_config(cfg: Config, sae_cfg: SAEConfig) -> BufferConfig:
    return BufferConfig(
        hook_name=cfg.model.hook_name, n_activations=cfg.buffer.n_activations,
        batch_size=sae_cfg.batch_size, rows_per_batch=cfg.buffer.rows_per_batch,
        reserved_rows=0, drop_bos=cfg.buffer.drop_bos, seed=sae_cfg.seed,
    )


def eval_config(cfg: Config) -> SAEEvalConfig:
    return SAEEvalConfig(
        hook_name=cfg.model.hook_name, batch_rows=cfg.train.eval_batch_rows,
        drop_bos=cfg.buffer.drop_bos, ultra_low_frequency=cfg.analysis.ultra_low_threshold,
    )


def sae_info(cfg: Config) -> SAELensInfo:
    return SAELensInfo(model_name=cfg.model.name, hook_name=cfg.model.hook_name,
                       context_size=cfg.model.seq_len, prepend_bos=True)


# ---------------------------------------------------------------------------------------------
# Training


def frequency_histogram(freq: Float[Tensor, " d_sae"], bin_width: float) -> list[float]:
    """Counts of features per log10-frequency bin [LOG_FREQ_MIN, 0] (first bin: never fired
    or below LOG_FREQ_MIN), for the over-training heat map."""
    n_bins = int(round(-LOG_FREQ_MIN / bin_width))
    log_f = torch.log10(freq.double().clamp_min(10 ** (LOG_FREQ_MIN - 1)))
    idx = ((log_f - LOG_FREQ_MIN) / bin_width).floor().long().clamp(-1, n_bins - 1) + 1
    return torch.bincount(idx, minlength=n_bins + 1).double().tolist()


class PeriodicEval:
    """`eval_fn` for the trainer: the evaluator's metrics plus a log-frequency histogram."""

    def __init__(self, evaluator: SAEEvaluator, ultra_low: float, bin_width: float) -> None:
        self.evaluator, self.ultra_low, self.bin_width = evaluator, ultra_low, bin_width

    def __call__(self, sae: SAE) -> dict[str, float]:
        res = self.evaluator.evaluate(sae)
        freq = res["frequency"][0]
        out = {f"eval/{k}": float(res[k][0]) for k in
               ("loss_recovered", "l0", "mse", "dead_frac", "ultra_low_frac", "ce_sae")}
        out["eval/mean_abl_score"] = float(res["mean_abl_score"])
        for i, count in enumerate(frequency_histogram(freq, self.bin_width)):
            out[f"freq_hist/{i:03d}"] = count
        return out


class _ResampleLog(nn.Module):
    """Features resampled since the last history row (checkpointed with the run)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("pending", torch.zeros((), dtype=torch.int64))


@dataclasses.dataclass
class RunResult:
    sae: SAE
    history: list[dict[str, float]]
    seconds: float


def train_run(
    cfg: Config, sae_cfg: SAEConfig, model: Any, tokens: Tokens, checkpoint: Path | None,
    fingerprint_extra: Mapping[str, Any], desc: str,
    after_step: Callable[[SAE], None] | None = None,
) -> RunResult:
    """Train one SAE on the model's MLP activations (see the module docstring)."""
    buffer = ActivationBuffer(model, tokens.train, buffer_config(cfg, sae_cfg))
    evaluator = SAEEvaluator(model, tokens.eval[: cfg.model.train_eval_rows], eval_config(cfg))
    eval_fn = PeriodicEval(evaluator, cfg.analysis.ultra_low_threshold, cfg.figures.freq_hist_bin)
    device = next(model.parameters()).device
    trainer = SAETrainer(sae_cfg, buffer.sample, device, data_state=buffer, eval_fn=eval_fn,
                         eval_every=cfg.train.eval_every, log_every=cfg.train.log_every,
                         precision=cfg.train.precision)
    if after_step is not None:
        after_step(trainer.sae)  # start from weights that already satisfy the constraint
    resample_log = _ResampleLog()
    log_every = cfg.train.log_every

    def step_fn(step: int) -> Mapping[str, float | Tensor]:
        before = len(trainer.resampled)
        metrics = dict(trainer.step(step))
        if after_step is not None:
            after_step(trainer.sae)
        if len(trainer.resampled) > before:
            resample_log.pending += trainer.resampled[-1]
            print(f"[{desc}] step {step + 1}: resampled {trainer.resampled[-1]} features",
                  file=sys.stderr)
        if step % log_every == 0 or step == sae_cfg.n_steps - 1:
            metrics["resampled"] = float(resample_log.pending)
            resample_log.pending.zero_()
        return metrics

    fingerprint = config_hash({
        "sae": to_dict(sae_cfg), "buffer": to_dict(cfg.buffer), "model": to_dict(cfg.model),
        "train": to_dict(cfg.train), "tokens": tokens.sha256, **fingerprint_extra,
    })
    state = {**trainer.state(), "resample_log": resample_log}
    t0 = time.perf_counter()
    history = train_loop(step_fn, sae_cfg.n_steps, state, checkpoint, fingerprint,
                         checkpoint_every=cfg.train.checkpoint_every, log_every=log_every,
                         desc=desc, per_step=("tokens", sae_cfg.batch_size))
    return RunResult(trainer.sae, history, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# Final evaluation


@torch.no_grad()
def without_features(sae: SAE, mask: Bool[Tensor, " d_sae"]) -> SAE:
    """A copy of (single-instance) `sae` whose masked features never fire."""
    out = SAE(sae.d_in, sae.d_sae, 1, sae.pre_encoder_bias).to(sae.W_enc.device)
    out.load_state_dict(sae.state_dict())
    m = mask.to(out.W_enc.device)
    out.W_enc[0][:, m] = 0.0
    out.b_enc[0][m] = 0.0  # relu(0) = 0: the feature is off on every input
    out.W_dec[0][m] = 0.0
    return out


def final_evaluation(
    cfg: Config, model: Any, tokens: Tokens, sae: SAE
) -> tuple[dict[str, float], Float[Tensor, " d_sae"], int]:
    """SAE metrics on the held-out rows; returns (metrics, frequencies, token count).

    Firing frequencies use `tokens.frequency` (every held-out row and the last
    `frequency_train_rows` training rows; a forward pass that stops at the hook, then the
    encoder); the spliced-in cross-entropies the first `loss_eval_rows` held-out rows.
    """
    ecfg = eval_config(cfg)
    freq = feature_frequencies(model, sae, tokens.frequency, ecfg.hook_name, ecfg.batch_rows,
                               ecfg.drop_bos)[0].cpu()
    n_tokens = tokens.frequency.shape[0] * (tokens.frequency.shape[1] - int(cfg.buffer.drop_bos))
    evaluator = SAEEvaluator(model, tokens.eval[: cfg.model.loss_eval_rows], ecfg)
    res = evaluator.evaluate(sae)
    ultra = (freq > 0) & (freq < cfg.analysis.ultra_low_threshold)
    recovered = float(res["loss_recovered"][0])
    metrics = {
        "n_eval_tokens": float(n_tokens),
        "n_loss_eval_tokens": float(cfg.model.loss_eval_rows
                                    * (tokens.eval.shape[1] - int(cfg.buffer.drop_bos))),
        "ce_clean": float(res["ce_clean"]),
        "ce_zero_ablation": float(res["ce_zero_abl"]),
        "ce_mean_ablation": float(res["ce_mean_abl"]),
        "ce_sae": float(res["ce_sae"][0]),
        "loss_recovered": recovered,
        "mean_ablation_recovered": float(res["mean_abl_score"]),
        "recovered_minus_mean_ablation": recovered - float(res["mean_abl_score"]),
        "l0": float(res["l0"][0]),
        "mse": float(res["mse"][0]),
        "dead_fraction": float((freq == 0).double().mean()),
        "ultra_low_fraction": float(ultra.double().mean()),
        "n_ultra_low": float(ultra.sum()),
    }
    if ultra.any():
        masked = evaluator.evaluate(without_features(sae, ultra))
        without = float(masked["loss_recovered"][0])
    else:
        without = recovered  # nothing to switch off
    metrics["loss_recovered_without_ultra_low"] = without
    metrics["ultra_low_ablation_drop"] = recovered - without
    return metrics, freq, n_tokens


def save_run(
    out_dir: Path, cfg: Config, sae: SAE, freq: Float[Tensor, " d_sae"], n_tokens: int
) -> None:
    """The SAE in SAELens format (log10 sparsity included) plus the raw frequencies."""
    out_dir = Path(out_dir)
    save_tensors(out_dir / FREQUENCY_FILE, {"frequency": freq.double(),
                                            "n_tokens": torch.tensor(n_tokens)})
    save_sae_lens(out_dir, sae, 0, sae_info(cfg), freq.float())


def load_frequency(sae_dir: Path) -> tuple[Float[Tensor, " d_sae"], int]:
    t = load_tensors(Path(sae_dir) / FREQUENCY_FILE)
    return t["frequency"].double(), int(t["n_tokens"])


# ---------------------------------------------------------------------------------------------
# The orthogonal retrain's direction


@dataclasses.dataclass(frozen=True)
class Direction:
    vector: Float[Tensor, " d_in"]  # unit
    from_ultra_low: bool  # False: the fallback (rarest firing features)
    n_features: int  # encoder vectors averaged


def ultra_low_direction(
    sae: SAE, freq: Float[Tensor, " d_sae"], cfg: Config
) -> Direction:
    """Unit mean encoder vector of the ultra-low features (>= `orthogonal.min_cluster` of
    them), else of the `orthogonal.fallback_fraction` rarest features that fired."""
    enc = sae.W_enc[0].detach().cpu().double().T  # [d_sae, d_in]
    freq = freq.double().cpu()
    ultra = (freq > 0) & (freq < cfg.analysis.ultra_low_threshold)
    if int(ultra.sum()) >= cfg.orthogonal.min_cluster:
        idx, from_ultra = ultra.nonzero().flatten(), True
    else:
        alive = (freq > 0).nonzero().flatten()
        k = max(1, math.ceil(cfg.orthogonal.fallback_fraction * len(alive)))
        idx, from_ultra = alive[freq[alive].argsort(stable=True)[:k]], False
    mean = enc[idx].mean(0)
    return Direction((mean / mean.norm().clamp_min(1e-12)).float(), from_ultra, len(idx))

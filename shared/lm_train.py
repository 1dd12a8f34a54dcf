"""Training the stand-in language models (the model zoo's `zoo_lm` rule).

- `StandInConfig` = {"model": `shared.lm.LMConfig`, "train": `LMTrainConfig`}.
- `train_lm`: AdamW with warmup then cosine or linear decay on rows of the tokenized corpus.
  Each step's batch is drawn with `step_generator(seed, step)` and `shared.training.train_loop`
  owns checkpoints, so a killed run resumes bit-identically on CPU.
- `plot_loss_curve`, `write_history`: what a training run leaves beside the weights.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

import torch
from jaxtyping import Int
from torch import Tensor, nn

from shared.config import check, check_at_least, check_positive, config_hash, to_dict
from shared.io import write_json
from shared.lm import LMConfig, build_model
from shared.runtime import step_generator
from shared.training import train_loop

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


@dataclasses.dataclass(frozen=True)
class LMTrainConfig:
    """Optimisation of a stand-in."""

    n_steps: int
    batch_size: int  # rows of `seq_len` tokens per step
    lr: float  # peak learning rate, reached after warmup
    min_lr_fraction: float  # the decay ends at lr * this
    warmup_steps: int
    schedule: Literal["cosine", "linear"]
    weight_decay: float  # on matrices only (not biases, norms)
    adam_betas: tuple[float, float]
    grad_clip: float  # max global gradient norm
    log_every: int  # history rows (train loss averaged since the previous row)
    eval_every: int  # validation loss; a multiple of log_every
    eval_rows: int  # validation rows used for each evaluation (the first ones)
    checkpoint_every: int
    seed: int

    def __post_init__(self) -> None:
        check(self.n_steps >= 1 and self.batch_size >= 1, "n_steps and batch_size must be >= 1")
        check(self.lr > 0 and 0 <= self.min_lr_fraction <= 1,
              "lr must be positive and min_lr_fraction in [0, 1]")
        check(0 <= self.warmup_steps < self.n_steps, "warmup_steps must be in [0, n_steps)")
        check_at_least(self, "", weight_decay=0)
        check(all(0 <= b < 1 for b in self.adam_betas), "adam_betas must lie in [0, 1)")
        check_positive(self, "", "grad_clip")
        check(self.log_every >= 1 and self.eval_every % self.log_every == 0 and self.eval_every > 0,
              "eval_every must be a positive multiple of log_every")
        check(self.eval_rows >= 1 and self.checkpoint_every >= 1,
              "eval_rows and checkpoint_every must be positive")
        check_at_least(self, "", seed=0)


@dataclasses.dataclass(frozen=True)
class StandInConfig:
    """One stand-in model: its architecture and its training (a write-up's `lm` section)."""

    model: LMConfig
    train: LMTrainConfig

# ---------------------------------------------------------------------------------------------
# Training


class _Meter(nn.Module):
    """Running sum of the training loss since the last history row (checkpointed)."""

    total: Tensor  # buffers, declared so type checkers know they are tensors
    count: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("total", torch.zeros((), dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    def take(self) -> float:
        mean = (self.total / self.count.clamp_min(1)).item()
        self.total.zero_()
        self.count.zero_()
        return mean


def lr_at(cfg: LMTrainConfig, step: int) -> float:
    """Linear warmup to `lr`, then cosine or linear decay to `lr * min_lr_fraction`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.n_steps - 1 - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
    return cfg.lr * (cfg.min_lr_fraction + (1 - cfg.min_lr_fraction) * shape)


class LMTrainer:
    """Owns a stand-in, its AdamW state and the loss meter; `step` is one optimiser step."""

    def __init__(
        self, cfg: StandInConfig, train_rows: Int[Tensor, "rows seq"],
        val_rows: Int[Tensor, "val_rows seq"], d_vocab: int, device: torch.device | str = "cpu",
    ) -> None:
        check(train_rows.shape[0] >= 1 and val_rows.shape[0] >= 1, "no token rows to train on")
        self.cfg, self.device = cfg, torch.device(device)
        self.seq_len = min(cfg.model.n_ctx, train_rows.shape[1])
        self.train_rows = train_rows
        self.val_rows = val_rows[: cfg.train.eval_rows, : self.seq_len]
        self.model = build_model(cfg.model, d_vocab, cfg.train.seed, self.device)
        tc = cfg.train
        # Decay matrices only: decaying norm gains and biases towards zero only hurts.
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(
            [{"params": [p for p in params if p.ndim >= 2], "weight_decay": tc.weight_decay},
             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
            lr=tc.lr, betas=tc.adam_betas,
        )
        self.meter = _Meter()

    def state(self) -> dict[str, Any]:
        return {"model": self.model, "opt": self.opt, "meter": self.meter}

    def batch(self, step: int) -> Int[Tensor, "batch seq"]:
        """The rows of `step`: a pure function of (seed, step), so resumed runs see the same."""
        gen = step_generator(self.cfg.train.seed, step)
        idx = torch.randint(self.train_rows.shape[0], (self.cfg.train.batch_size,), generator=gen)
        return self.train_rows[idx, : self.seq_len].long().to(self.device)

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean next-token loss on the fixed validation rows."""
        total, n = 0.0, 0
        bs = self.cfg.train.batch_size
        for start in range(0, self.val_rows.shape[0], bs):
            rows = self.val_rows[start:start + bs].long().to(self.device)
            total += self.model(rows, return_type="loss").item() * rows.shape[0]
            n += rows.shape[0]
        return total / n

    def step(self, step: int) -> dict[str, float]:
        tc = self.cfg.train
        lr = lr_at(tc, step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        loss = self.model(self.batch(step), return_type="loss")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        self.opt.step()
        self.meter.add(loss.item())
        last = step == tc.n_steps - 1
        metrics: dict[str, float] = {}
        # train_loop records exactly these steps; the meter averages over the interval.
        if step % tc.log_every == 0 or last:
            metrics["loss"] = self.meter.take()
        if step % tc.eval_every == 0 or last:
            metrics["val_loss"] = self.evaluate()
        metrics["lr"] = lr
        return metrics


def fingerprint(cfg: StandInConfig, d_vocab: int, data_id: str) -> str:
    """Identifies a training run: a checkpoint written for anything else is not resumed."""
    return config_hash({"cfg": to_dict(cfg), "d_vocab": d_vocab, "data": data_id})


def train_lm(
    cfg: StandInConfig,
    train_rows: Int[Tensor, "rows seq"],
    val_rows: Int[Tensor, "val_rows seq"],
    d_vocab: int,
    checkpoint_path: Path | None,
    data_id: str,
    device: torch.device | str = "cpu",
    desc: str = "lm",
) -> tuple["HookedTransformer", list[dict[str, float]], float]:
    """Train a stand-in (resuming from `checkpoint_path` if it holds a matching checkpoint).

    `data_id` names the token rows (e.g. their sha256) for the checkpoint fingerprint.
    Returns the model, the history and the training throughput in tokens/s (this process).
    """
    trainer = LMTrainer(cfg, train_rows, val_rows, d_vocab, device)
    started, t0 = None, time.perf_counter()

    def step_fn(step: int) -> dict[str, float]:
        nonlocal started
        started = step if started is None else started
        return trainer.step(step)

    history = train_loop(
        step_fn, cfg.train.n_steps, trainer.state(), checkpoint_path,
        fingerprint(cfg, d_vocab, data_id), checkpoint_every=cfg.train.checkpoint_every,
        log_every=cfg.train.log_every, desc=desc,
        per_step=("tokens", cfg.train.batch_size * trainer.seq_len),
    )
    steps_run = cfg.train.n_steps - (started if started is not None else cfg.train.n_steps)
    elapsed = time.perf_counter() - t0
    tokens_per_s = steps_run * cfg.train.batch_size * trainer.seq_len / max(elapsed, 1e-9)
    return trainer.model, history, tokens_per_s


def plot_loss_curve(
    history: Sequence[dict[str, float]], tokens_per_step: int, png_path: Path, provenance: Any,
    title: str,
) -> None:
    """Train (interval mean) and validation loss against tokens seen, via shared.figures."""
    from shared.figures import apply_style, plt, save_figure

    apply_style()
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    # A history row at step s was logged after s + 1 optimiser steps.
    train = [((r["step"] + 1) * tokens_per_step, r["loss"]) for r in history if "loss" in r]
    val = [((r["step"] + 1) * tokens_per_step, r["val_loss"]) for r in history if "val_loss" in r]
    ax.plot([s for s, _ in train], [v for _, v in train], label="train (mean since last point)")
    ax.plot([s for s, _ in val], [v for _, v in val], marker="o", markersize=3, label="validation")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("next-token loss (nats)")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, png_path, provenance)

def write_history(path: Path, history: Sequence[dict[str, float]], extra: dict[str, Any]) -> None:
    """The training history as JSON (deterministic content: no timings)."""
    write_json(Path(path), {"history": list(history), **extra})


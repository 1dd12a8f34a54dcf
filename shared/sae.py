"""Sparse autoencoder and its trainer, shared by every write-up.

The SAE has untied encoder and decoder, an optional pre-encoder bias (subtract `b_dec` before
encoding), unit-norm decoder rows (the gradient's component parallel to each row is removed
before the Adam step and rows are renormalised after it) and an L1 penalty on feature
activations. Several SAEs of one width train at once as `instances` (a leading axis), each
with its own L1 coefficient: sweeps are one batched run instead of a Python loop.

Resampling of rarely-firing features follows either the monosemanticity replication
(`reinit`: Kaiming re-initialisation) or Anthropic's loss-weighted variant (`anthropic`).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable, Literal

import einops
import torch
from jaxtyping import Float
from torch import Tensor, nn

from shared.config import check
from shared.runtime import step_generator
from shared.training import train_loop

SampleFn = Callable[[int], Float[Tensor, "batch *inst d_in"]]


@dataclasses.dataclass(frozen=True)
class SAEConfig:
    """Architecture and optimisation settings of an SAE (or a batch of instances)."""

    d_in: int
    d_sae: int
    l1_coeffs: tuple[float, ...]  # one per instance
    lr: float
    adam_betas: tuple[float, float]
    batch_size: int
    n_steps: int
    pre_encoder_bias: bool
    # Reconstruction error summed or averaged over d_in; L1 averaged or summed over the batch.
    recon_reduction: Literal["sum", "mean"]
    l1_reduction: Literal["mean_batch", "sum_batch"]
    resample: Literal["none", "reinit", "anthropic"]
    resample_every: int
    resample_window: int
    resample_stop: int
    dead_frequency: float  # resample features whose firing frequency in the window is <= this
    seed: int

    def __post_init__(self) -> None:
        check(self.d_in > 0 and self.d_sae > 0, "d_in and d_sae must be positive")
        check(len(self.l1_coeffs) > 0, "l1_coeffs needs at least one value (one per instance)")
        check(all(c >= 0 for c in self.l1_coeffs), "l1_coeffs must be non-negative")
        check(self.lr > 0, "lr must be positive")
        check(all(0 <= b < 1 for b in self.adam_betas), "adam_betas must lie in [0, 1)")
        check(self.batch_size > 0 and self.n_steps >= 0, "batch_size > 0 and n_steps >= 0")
        check(
            self.resample == "none" or 0 < self.resample_window <= self.resample_every,
            "resample_window must be in (0, resample_every]",
        )

    @property
    def n_instances(self) -> int:
        return len(self.l1_coeffs)


class SAE(nn.Module):
    """`n_instances` independent SAEs of one shape, evaluated together."""

    def __init__(self, d_in: int, d_sae: int, n_instances: int = 1, pre_encoder_bias: bool = True,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.d_in, self.d_sae, self.n_instances = d_in, d_sae, n_instances
        self.pre_encoder_bias = pre_encoder_bias
        self.W_enc = nn.Parameter(torch.empty(n_instances, d_in, d_sae))
        self.W_dec = nn.Parameter(torch.empty(n_instances, d_sae, d_in))
        self.b_enc = nn.Parameter(torch.zeros(n_instances, d_sae))
        self.b_dec = nn.Parameter(torch.zeros(n_instances, d_in))
        with torch.no_grad():
            for inst in range(n_instances):
                _kaiming_(self.W_enc[inst], fan_in=d_sae, generator=generator)
                _kaiming_(self.W_dec[inst], fan_in=d_in, generator=generator)
            self.normalise_decoder_()

    def encode(self, x: Float[Tensor, "batch inst d_in"]) -> Float[Tensor, "batch inst d_sae"]:
        if self.pre_encoder_bias:
            x = x - self.b_dec
        pre = einops.einsum(x, self.W_enc, "batch inst d_in, inst d_in d_sae -> batch inst d_sae")
        return torch.relu(pre + self.b_enc)

    def decode(self, f: Float[Tensor, "batch inst d_sae"]) -> Float[Tensor, "batch inst d_in"]:
        out = einops.einsum(f, self.W_dec, "batch inst d_sae, inst d_sae d_in -> batch inst d_in")
        return out + self.b_dec

    def forward(
        self, x: Float[Tensor, "batch inst d_in"]
    ) -> tuple[Float[Tensor, "batch inst d_in"], Float[Tensor, "batch inst d_sae"]]:
        f = self.encode(x)
        return self.decode(f), f

    @torch.no_grad()
    def normalise_decoder_(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def remove_parallel_grad_(self) -> None:
        """Project out the gradient component along each (unit) decoder row."""
        if self.W_dec.grad is None:
            return
        parallel = (self.W_dec.grad * self.W_dec).sum(-1, keepdim=True)
        self.W_dec.grad.sub_(parallel * self.W_dec)


def _kaiming_(w: Tensor, fan_in: int, generator: torch.Generator | None) -> None:
    # Kaiming-uniform with a=sqrt(5), as nn.Linear does; drawn from our generator for resumability.
    bound = 1.0 / math.sqrt(fan_in)
    w.uniform_(-bound, bound, generator=generator)


def sae_losses(
    sae: SAE, x: Float[Tensor, "batch inst d_in"], l1_coeffs: Float[Tensor, " inst"],
    recon_reduction: str, l1_reduction: str,
) -> dict[str, Tensor]:
    """Per-instance reconstruction and L1 losses (shape [inst]) and the activations."""
    x_hat, f = sae(x)
    sq = (x_hat - x).pow(2)
    recon_per = sq.sum(-1) if recon_reduction == "sum" else sq.mean(-1)  # [batch, inst]
    l1_per = f.abs().sum(-1)  # [batch, inst]
    recon = recon_per.mean(0)
    l1 = l1_per.mean(0) if l1_reduction == "mean_batch" else l1_per.sum(0)
    loss = recon + l1_coeffs * l1
    return {"loss": loss, "recon": recon, "l1": l1, "acts": f, "x_hat": x_hat,
            "per_example_sq": sq.sum(-1)}


def _as_instances(x: Tensor, n_instances: int) -> Float[Tensor, "batch inst d_in"]:
    if x.ndim == 2:
        return einops.repeat(x, "batch d -> batch inst d", inst=n_instances)
    return x


class SAETrainer:
    """Owns an SAE, its Adam state and the firing counts used for resampling."""

    def __init__(self, cfg: SAEConfig, sample_fn: SampleFn, device: torch.device | str = "cpu"):
        self.cfg, self.sample_fn, self.device = cfg, sample_fn, torch.device(device)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.sae = SAE(cfg.d_in, cfg.d_sae, cfg.n_instances, cfg.pre_encoder_bias, gen).to(device)
        self.opt = torch.optim.Adam(self.sae.parameters(), lr=cfg.lr, betas=cfg.adam_betas)
        self.l1 = torch.tensor(cfg.l1_coeffs, dtype=torch.float32, device=self.device)
        # Features that fired during the current resampling window, per instance.
        self.counts = _Counts(torch.zeros(cfg.n_instances, cfg.d_sae, device=self.device))
        self.resampled: list[int] = []

    def state(self) -> dict[str, object]:
        return {"sae": self.sae, "opt": self.opt, "counts": self.counts}

    def step(self, step: int) -> dict[str, Tensor]:
        cfg = self.cfg
        x = _as_instances(self.sample_fn(step).to(self.device), cfg.n_instances)
        out = sae_losses(self.sae, x, self.l1, cfg.recon_reduction, cfg.l1_reduction)
        self.opt.zero_grad(set_to_none=True)
        out["loss"].sum().backward()
        self.sae.remove_parallel_grad_()
        self.opt.step()
        self.sae.normalise_decoder_()
        fired = (out["acts"] > 0).float()
        if self._in_window(step):
            self.counts.value += fired.sum(0)
        if self._is_resample_step(step + 1):
            self.resample(step + 1)
        # Scalar tensors: train_loop reads them only on logged steps (no per-step device sync).
        return {
            "loss": out["loss"].detach().mean(),
            "recon": out["recon"].detach().mean(),
            "l0": fired.sum(-1).mean(),
        }

    def _is_resample_step(self, step: int) -> bool:
        cfg = self.cfg
        return (
            cfg.resample != "none" and step % cfg.resample_every == 0
            and 0 < step <= cfg.resample_stop and step < cfg.n_steps
        )

    def _in_window(self, step: int) -> bool:
        cfg = self.cfg
        if cfg.resample == "none":
            return False
        return (step % cfg.resample_every) >= cfg.resample_every - cfg.resample_window

    @torch.no_grad()
    def resample(self, step: int) -> None:
        """Re-initialise features whose firing frequency in the window was <= dead_frequency."""
        cfg = self.cfg
        freq = self.counts.value / (cfg.resample_window * cfg.batch_size)
        dead = freq <= cfg.dead_frequency  # [inst, d_sae]
        self.counts.value.zero_()
        if not dead.any():
            return
        self.resampled.append(int(dead.sum().item()))
        gen = step_generator(cfg.seed, step + 10_000_019)
        sae = self.sae
        if cfg.resample == "reinit":
            new_enc = torch.empty_like(sae.W_enc)
            new_dec = torch.empty_like(sae.W_dec)
            for inst in range(cfg.n_instances):
                _kaiming_(new_enc[inst], cfg.d_sae, gen)
                _kaiming_(new_dec[inst], cfg.d_in, gen)
            new_dec = new_dec / new_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        else:
            new_enc, new_dec = self._anthropic_directions(dead, step, gen)
        dead_enc = einops.rearrange(dead, "inst d_sae -> inst 1 d_sae")
        dead_dec = einops.rearrange(dead, "inst d_sae -> inst d_sae 1")
        sae.W_enc.copy_(torch.where(dead_enc, new_enc, sae.W_enc))
        sae.W_dec.copy_(torch.where(dead_dec, new_dec, sae.W_dec))
        sae.b_enc.copy_(torch.where(dead, torch.zeros_like(sae.b_enc), sae.b_enc))
        # Reset Adam's moments for the re-initialised weights so stale momentum does not undo it.
        for param, mask in ((sae.W_enc, dead_enc), (sae.W_dec, dead_dec), (sae.b_enc, dead)):
            st = self.opt.state.get(param, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st:
                    st[key].masked_fill_(mask.expand_as(st[key]), 0.0)

    def _anthropic_directions(
        self, dead: Tensor, step: int, gen: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Inputs drawn with probability proportional to their squared reconstruction loss."""
        cfg, sae = self.cfg, self.sae
        pool = torch.cat(
            [_as_instances(self.sample_fn(-(step * 64 + j + 1)).to(self.device), cfg.n_instances)
             for j in range(max(1, 8192 // cfg.batch_size))]
        )  # [pool, inst, d_in]
        sq = sae_losses(sae, pool, self.l1, cfg.recon_reduction, cfg.l1_reduction)
        weights = sq["per_example_sq"].T.clamp_min(1e-12) ** 2  # [inst, pool]; prop. to loss^2
        alive = ~dead
        new_enc = sae.W_enc.clone()
        new_dec = sae.W_dec.clone()
        for inst in range(cfg.n_instances):
            n_dead = int(dead[inst].sum())
            if n_dead == 0:
                continue
            idx = torch.multinomial(weights[inst], n_dead, replacement=True, generator=gen)
            x = pool[idx, inst]  # [n_dead, d_in]
            x_unit = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-8)
            enc_norms = sae.W_enc[inst].norm(dim=0)  # [d_sae]
            scale = 0.2 * (enc_norms[alive[inst]].mean() if alive[inst].any() else 1.0)
            new_dec[inst, dead[inst]] = x_unit
            new_enc[inst][:, dead[inst]] = (x_unit * scale).T
        return new_enc, new_dec


class _Counts(nn.Module):
    """Firing counts as a buffer, so they are checkpointed with everything else."""

    def __init__(self, value: Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value)


def train_sae(
    cfg: SAEConfig,
    sample_fn: SampleFn,
    checkpoint_path: Path | None,
    fingerprint: str,
    device: torch.device | str = "cpu",
    desc: str = "sae",
    checkpoint_every: int = 1000,
    log_every: int = 100,
) -> tuple[SAE, list[dict[str, float]]]:
    """Train an SAE (all instances at once) on batches from `sample_fn(step)`; resumable.

    `sample_fn` must be a pure function of the step index (e.g. seeded by
    `step_generator(seed, step)`), returning [batch, d_in] or [batch, inst, d_in].
    """
    trainer = SAETrainer(cfg, sample_fn, device)
    history = train_loop(
        trainer.step, cfg.n_steps, trainer.state(), checkpoint_path, fingerprint,
        checkpoint_every=checkpoint_every, log_every=log_every, desc=desc,
    )
    return trainer.sae, history


@torch.no_grad()
def mmcs(
    learned: Float[Tensor, "n_learned d"], true: Float[Tensor, "n_true d"]
) -> tuple[float, Float[Tensor, " n_true"]]:
    """Mean max cosine similarity: for each true direction, its best-matching learned direction.

    Returns the mean and the per-true-direction maxima.
    """
    a = learned / learned.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    b = true / true.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    best = (b @ a.T).max(dim=-1).values
    return best.mean().item(), best

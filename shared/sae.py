"""Sparse autoencoder, its losses and MMCS, shared by every write-up (trainer: `shared.sae_train`).

The SAE has untied encoder and decoder, an optional pre-encoder bias (subtract `b_dec` before
encoding), unit-norm decoder rows (the gradient's component parallel to each row is removed
before the Adam step and rows are renormalised after it) and an L1 penalty on feature
activations. Several SAEs of one width train at once as `instances` (a leading axis), each
with its own L1 coefficient: sweeps are one batched run instead of a Python loop.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import einops
import torch
from jaxtyping import Float
from torch import Tensor, nn

from shared import runtime
from shared.config import check


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
    # Options of "SAE training methods" (GDM progress update), each off by default.
    # Ghost grads (Anthropic, Jan 2024): an auxiliary loss on dead features' exp-activated
    # pre-activations, fitting the live SAE's residual. "original": scaled (as a constant) to
    # equal the reconstruction loss; "rescaled": that times the fraction of dead features;
    # "dead_only_rescaled": the fraction of dead features alone (no reconstruction-loss scale).
    ghost_grads: Literal["none", "original", "rescaled", "dead_only_rescaled"] = "none"
    ghost_activation: Literal["exp", "exp_min0"] = "exp"  # exp(x) or exp(min(x, 0))
    ghost_dead_window: int = 1000  # dead: not fired in this many steps
    ghost_all_steps: int = 0  # every feature counts as dead for the first K steps
    # "unit": decoder rows of norm one (the gradient's parallel part projected out);
    # "at_most_one": rows rescaled only when their norm exceeds one, no projection.
    decoder_norm: Literal["unit", "at_most_one"] = "unit"
    decoder_weight_decay: float = 0.0  # L2 on W_dec: (wd / 2) * ||W_dec||^2 added to the loss

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
        check(self.ghost_grads in ("none", "original", "rescaled", "dead_only_rescaled"),
              "ghost_grads must be none, original, rescaled or dead_only_rescaled")
        check(self.ghost_activation in ("exp", "exp_min0"), "ghost_activation must be exp or "
              "exp_min0")
        check(self.ghost_dead_window > 0 and self.ghost_all_steps >= 0,
              "ghost_dead_window must be positive and ghost_all_steps non-negative")
        check(self.decoder_norm in ("unit", "at_most_one"),
              "decoder_norm must be unit or at_most_one")
        check(self.decoder_weight_decay >= 0, "decoder_weight_decay must be non-negative")
        # On unit-norm rows the decay is parallel to each row and projected out: only rounding
        # noise would remain, which Adam would amplify to full-size steps.
        check(self.decoder_weight_decay == 0 or self.decoder_norm == "at_most_one",
              "decoder_weight_decay needs decoder_norm at_most_one")

    @property
    def n_instances(self) -> int:
        return len(self.l1_coeffs)

    def check_one_per_run(self, buffer: str, n_activations: int) -> None:
        """For a write-up that trains one SAE per run from an activation buffer of
        `n_activations` (its `buffer` section): one L1 coefficient, and room for two batches
        (the buffer refills once half served)."""
        check(self.n_instances == 1, "sae.l1_coeffs: one SAE per run (one coefficient)")
        check(n_activations // 2 >= self.batch_size,
              f"{buffer}.n_activations must be at least twice sae.batch_size")


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
                kaiming_uniform_(self.W_enc[inst], d_sae, generator)
                kaiming_uniform_(self.W_dec[inst], d_in, generator)
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
    def clamp_decoder_norm_(self) -> None:
        """Rescale decoder rows whose norm exceeds one back to one; shorter rows stay."""
        self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1.0))

    @torch.no_grad()
    def remove_parallel_grad_(self) -> None:
        """Project out the gradient component along each (unit) decoder row."""
        if self.W_dec.grad is None:
            return
        _project_out_parallel_(self.W_dec.grad, self.W_dec.detach())


def _project_out_parallel_(grad: Tensor, w: Tensor) -> None:
    # One pass for the row dot products, one in-place addcmul: no [inst, d_sae, d_in] temporaries.
    parallel = torch.linalg.vecdot(grad, w).unsqueeze(-1)
    grad.addcmul_(parallel, w, value=-1.0)


def kaiming_uniform_(w: Tensor, fan_in: int, generator: torch.Generator | None) -> None:
    """Kaiming-uniform init in place (a=sqrt(5), as nn.Linear), from `generator`."""
    # Kaiming-uniform with a=sqrt(5), as nn.Linear does; drawn from our generator for resumability.
    bound = 1.0 / math.sqrt(fan_in)
    runtime.uniform_(w, -bound, bound, generator)


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

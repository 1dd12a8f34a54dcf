"""Evaluating an SAE trained on a language model's activations.

- Feature firing frequencies over an evaluation token set; the fraction of dead features
  (never fired there) and of ultra-low-frequency ones (fired, but with frequency below a
  threshold, 1e-4 in the monosemanticity replication; the two sets are disjoint).
- L0 (mean number of active features per token) and the reconstruction MSE.
- Loss recovered: the SAE's reconstruction is spliced in at the hook point and the LM's
  next-token cross-entropy compared with the clean and the zero-ablated model,
  (CE_zero - CE_sae) / (CE_zero - CE_clean), as SAELens's `ce_loss_score`. The mean-ablation
  baseline is the same score with the activation replaced by its mean over the evaluation set
  (the replication reports 92% for its SAE and 25% for mean ablation).

`SAEEvaluator` computes the SAE-independent numbers (clean, zero- and mean-ablated CE, the mean
activation) once, so calling it during training costs one forward pass per batch of rows and
per SAE instance. Positions left out of SAE training (`drop_bos`) keep their clean activation in
every patched run.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from shared.activations import harvest, model_device
from shared.config import check
from shared.sae import SAE


@dataclasses.dataclass(frozen=True)
class SAEEvalConfig:
    """Where and how to evaluate an SAE on a language model."""

    hook_name: str
    batch_rows: int  # token rows per forward pass
    drop_bos: bool  # position 0 was left out of SAE training: keep it clean in patched runs
    ultra_low_frequency: float  # "ultra-low": fires, but with frequency below this

    def __post_init__(self) -> None:
        check(self.batch_rows > 0, "batch_rows must be positive")
        check(0 < self.ultra_low_frequency < 1, "ultra_low_frequency must lie in (0, 1)")


def encode_instance(
    sae: SAE, x: Float[Tensor, "n d_in"], inst: int
) -> Float[Tensor, "n d_sae"]:
    """Feature activations of one SAE instance."""
    return torch.relu(pre_activations(sae, x, inst))


def pre_activations(
    sae: SAE, x: Float[Tensor, "n d_in"], inst: int
) -> Float[Tensor, "n d_sae"]:
    """Encoder pre-activations of one SAE instance (a feature fires where this is > 0)."""
    x = x.to(sae.W_enc.dtype)
    if sae.pre_encoder_bias:
        x = x - sae.b_dec[inst]
    return torch.addmm(sae.b_enc[inst], x, sae.W_enc[inst])


def decode_instance(
    sae: SAE, f: Float[Tensor, "n d_sae"], inst: int
) -> Float[Tensor, "n d_in"]:
    """Reconstruction of one SAE instance from its feature activations."""
    return torch.addmm(sae.b_dec[inst], f, sae.W_dec[inst])


def loss_recovered(ce_ablated: float, ce_patched: float, ce_clean: float) -> float:
    """(CE_ablated - CE_patched) / (CE_ablated - CE_clean): 1 = as good as clean, 0 = ablated."""
    return (ce_ablated - ce_patched) / (ce_ablated - ce_clean)


def dead_and_ultra_low(
    freq: Float[Tensor, "*inst d_sae"], ultra_low_frequency: float
) -> tuple[Float[Tensor, " *inst"], Float[Tensor, " *inst"]]:
    """Fractions of features never firing, and firing with 0 < frequency < threshold."""
    dead = (freq == 0).float().mean(-1)
    ultra = ((freq > 0) & (freq < ultra_low_frequency)).float().mean(-1)
    return dead, ultra


@torch.no_grad()
def feature_frequencies(
    model: HookedTransformer, sae: SAE, tokens: Int[Tensor, "rows ctx"], hook_name: str,
    batch_rows: int, drop_bos: bool,
) -> Float[Tensor, "inst d_sae"]:
    """Fraction of evaluation tokens on which each feature of each instance fires."""
    counts = torch.zeros(sae.n_instances, sae.d_sae, device=sae.W_enc.device)
    n_tokens = 0
    for start in range(0, tokens.shape[0], batch_rows):
        # Harvesting stops the forward pass at the hook: no unembedding, no loss.
        x = harvest(model, tokens[start:start + batch_rows], hook_name, batch_rows, drop_bos)
        x = x.to(sae.W_enc.device)
        for inst in range(sae.n_instances):
            # relu(v) > 0 exactly where v > 0: counting there skips the relu and sign passes
            # over [rows, d_sae] and gives the same counts (float32 sums of ones are exact).
            counts[inst] += (pre_activations(sae, x, inst) > 0).sum(0)
        n_tokens += x.shape[0]
    return counts / n_tokens


Patch = Callable[[Float[Tensor, "n d"]], Float[Tensor, "n d"]]


class SAEEvaluator:
    """LM-specific SAE metrics on a fixed evaluation token set; call it with an SAE.

    Calling returns a flat `{"eval/<metric>[/<instance>]": float}` dict (instance suffixes only
    when the SAE has several), suitable as `train_sae(eval_fn=...)`.
    """

    def __init__(
        self, model: HookedTransformer, tokens: Int[Tensor, "rows ctx"], cfg: SAEEvalConfig
    ) -> None:
        if cfg.hook_name not in model.hook_dict:
            raise ValueError(f"unknown hook {cfg.hook_name!r} for this model")
        self.model, self.tokens, self.cfg = model, tokens, cfg
        self.device = model_device(model)
        sums: dict[str, Any] = {}

        def accumulate(x: Tensor) -> Tensor:
            sums["act"] = sums.get("act", 0) + x.double().sum(0)
            sums["n"] = sums.get("n", 0) + x.shape[0]
            return x

        self.ce_clean = self._cross_entropy(accumulate)
        self.mean_act: Float[Tensor, " d"] = (sums["act"] / sums["n"]).float()
        self.ce_zero = self._cross_entropy(torch.zeros_like)
        self.ce_mean = self._cross_entropy(lambda x: self.mean_act.to(x).expand_as(x))
        self.mean_ablation_score = loss_recovered(self.ce_zero, self.ce_mean, self.ce_clean)

    @torch.no_grad()
    def _cross_entropy(self, patch: Patch | None) -> float:
        """Mean next-token CE over the evaluation set, with `patch` applied at the hook."""
        total, count = 0.0, 0
        skip = int(self.cfg.drop_bos)

        def hook(module: torch.nn.Module, inputs: object, act: Tensor) -> Tensor:
            assert patch is not None
            kept = act[:, skip:]
            flat = einops.rearrange(kept, "rows pos ... -> (rows pos) (...)")
            new = patch(flat).to(act).reshape(kept.shape)
            return torch.cat([act[:, :skip], new], dim=1) if skip else new

        # A plain PyTorch forward hook (its return value replaces the activation), removed by
        # its handle so hooks the caller added to the model stay in place.
        handle = None
        if patch is not None:
            handle = self.model.hook_dict[self.cfg.hook_name].register_forward_hook(hook)
        try:
            for start in range(0, self.tokens.shape[0], self.cfg.batch_rows):
                batch = self.tokens[start:start + self.cfg.batch_rows].to(self.device)
                losses = self.model(batch, return_type="loss", loss_per_token=True)
                total += losses.double().sum().item()
                count += losses.numel()
        finally:
            if handle is not None:
                handle.remove()
        return total / count

    def patched_loss_recovered(self, patch: Patch) -> tuple[float, float]:
        """Loss recovered and CE with `patch` replacing the hook's activations ([n, d] -> [n, d],
        e.g. an SAE's reconstruction from codes found by inference-time optimisation)."""
        ce = self._cross_entropy(patch)
        return loss_recovered(self.ce_zero, ce, self.ce_clean), ce

    @torch.no_grad()
    def evaluate(self, sae: SAE) -> dict[str, Tensor | float]:
        """Per-instance metrics ([inst] tensors) and the SAE-independent baselines (floats)."""
        n_inst = sae.n_instances
        counts = torch.zeros(n_inst, sae.d_sae, dtype=torch.float64)
        l0, sq, n_tok = torch.zeros(n_inst), torch.zeros(n_inst), torch.zeros(n_inst)
        ce_sae = torch.zeros(n_inst)
        sae_device = sae.W_enc.device
        for inst in range(n_inst):

            def splice(x: Tensor, inst: int = inst) -> Tensor:
                f = encode_instance(sae, x.to(sae_device), inst)
                x_hat = decode_instance(sae, f, inst)
                fired = torch.sign(f).sum(0)
                counts[inst] += fired.double().cpu()
                l0[inst] += fired.sum().item()
                sq[inst] += (x_hat - x.to(x_hat)).pow(2).sum().item()
                n_tok[inst] += x.shape[0]
                return x_hat

            ce_sae[inst] = self._cross_entropy(splice)
        freq = (counts / n_tok[:, None].double()).float()
        dead, ultra = dead_and_ultra_low(freq, self.cfg.ultra_low_frequency)
        recovered = (self.ce_zero - ce_sae) / (self.ce_zero - self.ce_clean)
        return {
            "ce_clean": self.ce_clean, "ce_zero_abl": self.ce_zero, "ce_mean_abl": self.ce_mean,
            "mean_abl_score": self.mean_ablation_score,
            "ce_sae": ce_sae, "loss_recovered": recovered, "l0": l0 / n_tok,
            "mse": sq / n_tok, "dead_frac": dead, "ultra_low_frac": ultra, "frequency": freq,
        }

    def __call__(self, sae: SAE) -> dict[str, float]:
        """Flat metrics for a training history (frequencies left out: see `evaluate`)."""
        out: dict[str, float] = {}
        for key, value in self.evaluate(sae).items():
            if key == "frequency":
                continue
            if isinstance(value, Tensor):
                for inst, v in enumerate(value.tolist()):
                    out[f"eval/{key}" + (f"/{inst}" if sae.n_instances > 1 else "")] = float(v)
            else:
                out[f"eval/{key}"] = float(value)
        return out

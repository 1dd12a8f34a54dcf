"""Anthropic's toy model of superposition (ReLU-output variant), batched over instances.

The model compresses `n_features` sparse features into `n_hidden` dimensions with one matrix W and
reads them back with its transpose: out = ReLU(W^T W x + b). Each instance has its own feature
probability, so a sparsity sweep is one batched training run. The analysis functions measure how
the learned columns of W share the hidden space (norms, superposition, feature dimensionality).
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from pathlib import Path

import einops
import torch
from jaxtyping import Float
from torch import Tensor, nn

from shared import runtime
from shared.config import check, check_at_least, check_open_interval, check_positive
from shared.io import load_metadata, load_tensors
from shared.runtime import step_generator
from shared.training import train_loop

# The sticky fractions of feature dimensionality that Anthropic's paper reports (1, 3/4, ...).
STICKY_FRACTIONS: tuple[tuple[int, int], ...] = ((1, 1), (3, 4), (2, 3), (1, 2), (2, 5), (1, 3))


@dataclasses.dataclass(frozen=True)
class TMSSweepConfig:
    """One sparsity sweep: a model shape, an importance profile and the probabilities to sweep."""

    n_features: int
    n_hidden: int
    importance_decay: float  # importance of feature i is decay**i (1.0: uniform importance)
    n_instances: int  # one feature probability per instance
    min_probability: float  # probabilities are log-spaced from 1 down to this over the instances
    n_steps: int

    def __post_init__(self) -> None:
        check(self.n_features > 0 and self.n_hidden > 0, "n_features and n_hidden must be positive")
        check(0 < self.importance_decay <= 1, "importance_decay must lie in (0, 1]")
        check(self.n_instances >= 2, "n_instances must be at least 2 (a sweep)")
        check_open_interval(self, "", min_probability=(0, 1))
        check_at_least(self, "", n_steps=1)


@dataclasses.dataclass(frozen=True)
class TMSConfig:
    """The two TMS experiments: (a) 5/2 geometry across sparsity, (b) feature dimensionality."""

    geometry: TMSSweepConfig
    dimensionality: TMSSweepConfig
    batch_size: int
    lr: float
    represented_threshold: float  # a feature counts as represented when ||W_i|| exceeds this
    checkpoint_every: int
    log_every: int

    def __post_init__(self) -> None:
        check_positive(self, "", "batch_size", "lr")
        check_open_interval(self, "", represented_threshold=(0, 1))
        check(self.checkpoint_every > 0 and self.log_every > 0,
              "checkpoint_every and log_every must be positive")


def sub_seed(seed: int, name: str) -> int:
    """A stable seed for one named part of an experiment (independent streams per part)."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31 - 1)


def sweep_probabilities(n_instances: int, min_probability: float) -> Float[Tensor, " inst"]:
    """Feature probabilities log-spaced from 1 (dense) to `min_probability` (sparse)."""
    exponents = torch.linspace(0.0, 1.0, n_instances, dtype=torch.float64)
    return (min_probability**exponents).float()


def importance_profile(n_features: int, decay: float) -> Float[Tensor, " feat"]:
    """Importance decay**i for feature i."""
    return decay ** torch.arange(n_features, dtype=torch.float32)


class TMSModel(nn.Module):
    """`n_instances` independent ReLU-output toy models of one shape."""

    def __init__(self, n_instances: int, n_hidden: int, n_features: int,
                 generator: torch.Generator) -> None:
        super().__init__()
        # Xavier-normal on each [n_hidden, n_features] matrix, drawn from our generator.
        std = math.sqrt(2.0 / (n_hidden + n_features))
        w = torch.randn(n_instances, n_hidden, n_features, generator=generator) * std
        self.W = nn.Parameter(w)
        self.b_final = nn.Parameter(torch.zeros(n_instances, n_features))

    def hidden(self, x: Float[Tensor, "batch inst feat"]) -> Float[Tensor, "batch inst hid"]:
        return einops.einsum(self.W, x, "inst hid feat, batch inst feat -> batch inst hid")

    def forward(self, x: Float[Tensor, "batch inst feat"]) -> Float[Tensor, "batch inst feat"]:
        h = self.hidden(x)
        out = einops.einsum(self.W, h, "inst hid feat, batch inst hid -> batch inst feat")
        return torch.relu(out + self.b_final)


def generate_batch(
    batch_size: int, feature_probability: Float[Tensor, " inst"], n_features: int,
    generator: torch.Generator,
) -> Float[Tensor, "batch inst feat"]:
    """Features uniform on [0, 1], each kept independently with its instance's probability.

    One uniform draw u per entry does both jobs: the feature is kept when u < p, and then u / p
    is uniform on [0, 1) and independent of the keep decision (half the random numbers).
    """
    n_inst = feature_probability.shape[0]
    u = runtime.rand((batch_size, n_inst, n_features), generator, feature_probability.device)
    prob = einops.rearrange(feature_probability, "inst -> 1 inst 1")
    return torch.where(u < prob, u / prob, torch.zeros_like(u))


def weighted_mse(
    out: Float[Tensor, "batch inst feat"], x: Float[Tensor, "batch inst feat"],
    importance: Float[Tensor, " feat"],
) -> Float[Tensor, " inst"]:
    """Importance-weighted squared error, averaged over batch and features, per instance."""
    err = importance * (out - x).pow(2)
    return einops.reduce(err, "batch inst feat -> inst", "mean")


def train_tms(
    *,
    n_hidden: int,
    importance: Float[Tensor, " feat"],
    feature_probability: Float[Tensor, " inst"],
    n_steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    checkpoint_path: Path | None,
    fingerprint: str,
    checkpoint_every: int,
    log_every: int,
    desc: str = "tms",
    device: torch.device | str = "cpu",
) -> tuple[TMSModel, list[dict[str, float]]]:
    """Train one batched TMS (Adam, constant lr); resumable, batches drawn per step from `seed`."""
    device = torch.device(device)
    n_features = importance.shape[0]
    model = TMSModel(
        feature_probability.shape[0], n_hidden, n_features, torch.Generator().manual_seed(seed)
    ).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    importance = importance.to(device)
    prob = feature_probability.to(device)

    def step_fn(step: int) -> dict[str, Tensor]:
        x = generate_batch(batch_size, prob, n_features, step_generator(seed, step, device))
        per_instance = weighted_mse(model(x), x, importance)
        opt.zero_grad(set_to_none=True)
        # Summing over instances keeps their gradients independent of one another.
        per_instance.sum().backward()
        opt.step()
        # A tensor: train_loop reads it (a device sync) only on logged steps.
        return {"loss": per_instance.detach().mean()}

    history = train_loop(
        step_fn, n_steps, {"model": model, "opt": opt}, checkpoint_path, fingerprint,
        checkpoint_every=checkpoint_every, log_every=log_every, desc=desc,
        per_step=("samples", batch_size),
    )
    return model, history


def load_finished(path: Path | None, fingerprint: str) -> dict[str, Tensor] | None:
    """Tensors of a finished run kept at `path` for the same settings (fingerprint), else None.

    Scripts that train several models in a row keep each finished one in the checkpoint folder,
    so a rerun after a crash loads those instead of training them again."""
    if path is None or not Path(path).is_file():
        return None
    if load_metadata(path).get("fingerprint") != fingerprint:
        return None
    return load_tensors(path)


@torch.no_grad()
def evaluate_loss(
    W: Float[Tensor, "inst hid feat"], b_final: Float[Tensor, "inst feat"],
    importance: Float[Tensor, " feat"], feature_probability: Float[Tensor, " inst"],
    n_samples: int, seed: int,
) -> Float[Tensor, " inst"]:
    """Importance-weighted loss per instance on `n_samples` fresh inputs."""
    x = generate_batch(n_samples, feature_probability, W.shape[-1], step_generator(seed, -1))
    h = einops.einsum(W, x, "inst hid feat, batch inst feat -> batch inst hid")
    out = torch.relu(einops.einsum(W, h, "inst hid feat, batch inst hid -> batch inst feat")
                     + b_final)
    return weighted_mse(out, x, importance)


# ---------------------------------------------------------------------------------------------
# Analysis of the learned W (columns W_i are the feature directions).


def feature_norms(W: Float[Tensor, "inst hid feat"]) -> Float[Tensor, "inst feat"]:
    """||W_i|| for every feature of every instance."""
    return einops.reduce(W.pow(2), "inst hid feat -> inst feat", "sum").sqrt()


def _overlaps_sq(W: Float[Tensor, "inst hid feat"]) -> Float[Tensor, "inst feat feat2"]:
    """(W_hat_i . W_j)^2 for all pairs (i, j); zero rows for features with zero norm."""
    unit = W / feature_norms(W).clamp_min(1e-12).unsqueeze(1)
    dots = einops.einsum(unit, W, "inst hid feat, inst hid feat2 -> inst feat feat2")
    return dots.pow(2)


def superposition(W: Float[Tensor, "inst hid feat"]) -> Float[Tensor, "inst feat"]:
    """sum_{j != i} (W_hat_i . W_j)^2: how much other features interfere along W_i."""
    sq = _overlaps_sq(W)
    diag = torch.diagonal(sq, dim1=-2, dim2=-1)
    return einops.reduce(sq, "inst feat feat2 -> inst feat", "sum") - diag


def feature_dimensionality(W: Float[Tensor, "inst hid feat"]) -> Float[Tensor, "inst feat"]:
    """D_i = ||W_i||^2 / sum_j (W_hat_i . W_j)^2 (zero for features the model drops)."""
    denom = einops.reduce(_overlaps_sq(W), "inst feat feat2 -> inst feat", "sum")
    return feature_norms(W).pow(2) / denom.clamp_min(1e-12)


def dimensions_per_feature(W: Float[Tensor, "inst hid feat"]) -> Float[Tensor, " inst"]:
    """n_hidden / ||W||_F^2: the hidden dimensions the model spends per (unit-norm) feature."""
    frob = einops.reduce(W.pow(2), "inst hid feat -> inst", "sum")
    return W.shape[1] / frob


def n_represented(W: Float[Tensor, "inst hid feat"], threshold: float) -> Float[Tensor, " inst"]:
    """How many features per instance have ||W_i|| above `threshold`."""
    return (feature_norms(W) > threshold).sum(-1).float()


def polygon_angle_error(W: Float[Tensor, "hid feat"], threshold: float) -> float:
    """For a 2-D model: max deviation (degrees) of the gaps between represented feature angles
    from a regular polygon (360/k each); 0 for a perfect k-gon, NaN when fewer than 3 features."""
    if W.shape[0] != 2:
        raise ValueError(f"polygon_angle_error needs a 2-D hidden space, got {W.shape[0]}")
    keep = feature_norms(W.unsqueeze(0))[0] > threshold
    k = int(keep.sum())
    if k < 3:
        return float("nan")
    angles = torch.atan2(W[1, keep], W[0, keep]).double().rad2deg().sort().values
    gaps = torch.diff(torch.cat([angles, angles[:1] + 360.0]))
    return float((gaps - 360.0 / k).abs().max())


def geometry_metrics(W: torch.Tensor, prob: torch.Tensor, threshold: float) -> dict[str, float]:
    """Represented features at the densest / sparsest setting, and the polygon check."""
    rep = n_represented(W, threshold)
    out = {
        "tms_geometry_n_represented_densest": float(rep[0]),
        "tms_geometry_n_represented_sparsest": float(rep[-1]),
        "tms_geometry_probability_densest": float(prob[0]),
        "tms_geometry_probability_sparsest": float(prob[-1]),
        "tms_geometry_n_features": float(W.shape[-1]),
    }
    if W.shape[1] == 2:
        out["tms_geometry_sparsest_polygon_angle_error_deg"] = polygon_angle_error(W[-1], threshold)
    return out


STICKY_WINDOW = 0.05  # a dimensionality 'sits at' a sticky fraction when this close to it


def sticky_windows_measure(lo: float, hi: float, window: float = STICKY_WINDOW) -> float:
    """Length of [lo, hi] covered by the windows around the sticky fractions (overlaps once)."""
    spans = sorted((n / d - window, n / d + window) for n, d in STICKY_FRACTIONS)
    covered, reach = 0.0, lo
    for a, b in spans:
        a, b = max(a, reach), min(b, hi)
        if b > a:
            covered += b - a
            reach = b
    return covered


def sticky_share(dims: Float[Tensor, " n"], window: float = STICKY_WINDOW) -> tuple[float, float]:
    """(share of `dims` within `window` of a sticky fraction, the same share by chance).

    Chance: dimensionalities spread uniformly over the range they span, [min, max]. The windows
    cover about half of [0, 1], so without a chance baseline a share near 0.5 says nothing.
    """
    if dims.numel() == 0:
        return float("nan"), float("nan")
    sticky = torch.tensor([n / d for n, d in STICKY_FRACTIONS], dtype=dims.dtype)
    near = (dims.unsqueeze(-1) - sticky).abs().min(-1).values < window
    lo, hi = float(dims.min()), float(dims.max())
    if hi - lo < 1e-6:
        chance = float(near.float().mean())  # one value: no spread to compare against
    else:
        chance = sticky_windows_measure(lo, hi, window) / (hi - lo)
    return float(near.float().mean()), chance


def excess_over_chance(share: float, chance: float) -> float:
    """(share - chance) / (1 - chance): 0 at chance, 1 when every value sits at a fraction."""
    if math.isnan(share) or math.isnan(chance) or chance >= 1.0:
        return float("nan")
    return (share - chance) / (1.0 - chance)


def dimensionality_metrics(W: torch.Tensor, prob: torch.Tensor,
                           threshold: float) -> dict[str, float]:
    """Dimensions per feature at the extremes, and how many represented features sit near a
    sticky fraction (within STICKY_WINDOW) in the intermediate-sparsity instances, against the
    share a uniform spread over the same range would put there."""
    dims = feature_dimensionality(W)
    dpf = dimensions_per_feature(W)
    represented = feature_norms(W) > threshold
    # Intermediate: instances whose dimensions-per-feature lie strictly between the extremes.
    middle = (dpf < 0.95) & (dpf > float(dpf[-1]) + 0.02)
    mask = represented & middle.unsqueeze(-1)
    frac, chance = sticky_share(dims[mask])
    return {
        "tms_dimensionality_dims_per_feature_densest": float(dpf[0]),
        "tms_dimensionality_dims_per_feature_sparsest": float(dpf[-1]),
        "tms_dimensionality_n_represented_densest": float(represented[0].sum()),
        "tms_dimensionality_n_represented_sparsest": float(represented[-1].sum()),
        "tms_dimensionality_fraction_near_sticky": frac,
        "tms_dimensionality_chance_near_sticky": chance,
        "tms_dimensionality_sticky_excess_over_chance": excess_over_chance(frac, chance),
        "tms_dimensionality_n_features": float(W.shape[-1]),
        "tms_dimensionality_n_hidden": float(W.shape[1]),
    }

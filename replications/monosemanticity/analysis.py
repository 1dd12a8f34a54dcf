"""Analyses of an MLP SAE, after the open-source replication of Towards Monosemanticity.

Every function takes tensors (SAE weights, the model's W_out / W_U, feature frequencies,
tokens) and returns numbers or arrays; `plots.py` turns the results into figures and
`analysis_results.summary_metrics` flattens them into the metrics the claims read. This module
holds the settings, an SAE's weights, feature frequencies (section 1) and the ultra-low cluster
(section 2); the neuron-basis analyses (sections 3-4) are in `neuron_basis.py`, running every
analysis of one SAE in `analysis_results.py`, the case studies in `case_studies.py`. The definitions follow the
write-up (Nanda 2023, "Open Source Replication & Commentary on Anthropic's Dictionary Learning
Paper"):

* feature frequency: share of evaluation tokens on which a feature fires (activation > 0);
  *ultra-low* = fires, but on fewer than 1e-4 of tokens; *dead* = never fires;
* the ultra-low cluster: encoder vectors (columns of W_enc) of ultra-low features, their mean
  direction, each one's cosine with it and projection onto it, and how much of the squared norm
  the top singular direction explains, for encoder vectors and decoder rows;
* neuron-basis sparsity of decoder rows (non-ultra-low features): fraction of the squared norm
  in the top neuron (fve_top_1) and the next 9 (fve_next_9); dense (fve_top_10 < 0.35),
  1-sparse (fve_top_1 > 0.35 and fve_next_9 < 0.1), 10-ish-sparse (the rest);
* neuron kurtosis: excess kurtosis of each decoder row over neurons, against Gaussian rows;
* encoder-decoder cosine per feature, and the share of each vector's squared norm in the null
  space of W_out against random directions;
* case studies (top-activating contexts and logit effects) live in `case_studies.py`.

Shapes follow shared/sae.py for one instance: W_enc [d_in, d_sae] (a feature's encoder vector is
a column), W_dec [d_sae, d_in] (its decoder vector is a row); d_in = d_mlp here.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Callable, Iterator, Mapping

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from shared.config import check
from shared.sae import SAE

# The write-up's published values, shown beside ours in figure titles.
PUBLISHED: Mapping[str, float] = {
    "ultra_low_fraction": 0.60,
    "dead_fraction": 0.0,
    "ultra_low_cos_gt_095_share": 0.975,
    "seed_mean_cosine": 0.96,
    "dense_share": 0.921,
    "one_sparse_share": 0.039,
    "ten_sparse_share": 0.040,
    "median_enc_dec_cosine": 0.5,
    "nullspace_random_mean": 0.75,
    "nullspace_random_std": 0.013,
    "kurtosis_clip": 1700.0,  # the write-up's red tail went up to this before clipping
}

# Sparsity classes of decoder rows (codes stored in NeuronSparsity.classes).
DENSE, ONE_SPARSE, TEN_SPARSE = 0, 1, 2
CLASS_NAMES: tuple[str, ...] = ("dense", "1-sparse", "10-ish-sparse")

ActsFn = Callable[[Int[Tensor, "batch pos"]], Float[Tensor, "batch pos d_in"]]
EncodeFn = Callable[[Float[Tensor, "batch pos d_in"]], Float[Tensor, "batch pos feat"]]


# ---------------------------------------------------------------------------------------------
# Settings.


@dataclasses.dataclass(frozen=True)
class AnalysisSettings:
    """Thresholds of the write-up's definitions and sizes of the random baselines."""

    ultra_low_threshold: float  # write-up: 1e-4
    cluster_cosine_threshold: float  # write-up: 0.95
    dense_max_fve_top_10: float  # write-up: 0.35
    one_sparse_min_fve_top_1: float  # write-up: 0.35
    one_sparse_max_fve_next_9: float  # write-up: 0.1
    n_random_baseline: int  # random directions drawn for the null-space baseline
    n_singular_directions: int  # length of the singular spectra kept for the figure
    seed: int  # seeds the Gaussian and random-direction baselines

    def __post_init__(self) -> None:
        check(0 < self.ultra_low_threshold < 1, "ultra_low_threshold must lie in (0, 1)")
        check(-1 < self.cluster_cosine_threshold < 1,
              "cluster_cosine_threshold must lie in (-1, 1)")
        for name in ("dense_max_fve_top_10", "one_sparse_min_fve_top_1",
                     "one_sparse_max_fve_next_9"):
            check(0 < getattr(self, name) < 1, f"{name} must lie in (0, 1)")
        check(self.n_random_baseline >= 2, "n_random_baseline must be at least 2")
        check(self.n_singular_directions >= 1, "n_singular_directions must be at least 1")


def sub_generator(seed: int, name: str) -> torch.Generator:
    """An independent CPU generator for one named baseline, stable across runs."""
    return torch.Generator().manual_seed(
        (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31 - 1))


# ---------------------------------------------------------------------------------------------
# SAE weights of one instance.


@dataclasses.dataclass(frozen=True)
class SAEWeights:
    """One SAE's weights, detached, in float32 on the CPU (SAELens layout)."""

    W_enc: Float[Tensor, "d_in d_sae"]
    W_dec: Float[Tensor, "d_sae d_in"]
    b_enc: Float[Tensor, " d_sae"]
    b_dec: Float[Tensor, " d_in"]
    pre_encoder_bias: bool  # subtract b_dec before encoding (ours and SAELens both do)

    @classmethod
    def from_sae(cls, sae: SAE, instance: int) -> "SAEWeights":
        """Weights of instance `instance` of a shared.sae.SAE."""
        return cls.from_tensors(
            {"W_enc": sae.W_enc[instance], "W_dec": sae.W_dec[instance],
             "b_enc": sae.b_enc[instance], "b_dec": sae.b_dec[instance]},
            sae.pre_encoder_bias,
        )

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, Tensor], pre_encoder_bias: bool) -> "SAEWeights":
        """From a mapping with keys W_enc, W_dec, b_enc, b_dec (e.g. an SAELens safetensors)."""
        def get(k: str) -> Tensor:
            return tensors[k].detach().to("cpu", torch.float32)

        return cls(get("W_enc"), get("W_dec"), get("b_enc"), get("b_dec"), pre_encoder_bias)

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    def encoder_vectors(self) -> Float[Tensor, "d_sae d_in"]:
        """Each feature's encoder vector as a row (the columns of W_enc)."""
        return einops.rearrange(self.W_enc, "d_in d_sae -> d_sae d_in")


def _unit(x: Float[Tensor, "... d"]) -> Float[Tensor, "... d"]:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _share(mask: Tensor) -> float:
    return float(mask.float().mean()) if mask.numel() else math.nan


# ---------------------------------------------------------------------------------------------
# 1. Feature frequencies.


@dataclasses.dataclass(frozen=True)
class FrequencySummary:
    """Firing frequencies split into dead, ultra-low and normal features."""

    freqs: Float[Tensor, " d_sae"]
    n_tokens: int  # evaluation tokens the frequencies were measured on
    threshold: float
    dead: Bool[Tensor, " d_sae"]  # never fired
    ultra_low: Bool[Tensor, " d_sae"]  # fired, but on fewer than `threshold` of tokens
    normal: Bool[Tensor, " d_sae"]  # frequency >= threshold

    @property
    def dead_fraction(self) -> float:
        return _share(self.dead)

    @property
    def ultra_low_fraction(self) -> float:
        return _share(self.ultra_low)

    @property
    def log10_freqs(self) -> Float[Tensor, " n_alive"]:
        """log10 frequency of the features that fired (dead ones have none)."""
        return self.freqs[~self.dead].log10()


def frequency_summary(
    freqs: Float[Tensor, " d_sae"], n_tokens: int, threshold: float
) -> FrequencySummary:
    """Split features by firing frequency (share of `n_tokens` tokens with activation > 0).

    The write-up calls everything below 1e-4 ultra-low and found no dead features; we keep the
    two apart (dead = never fired, ultra-low = fired but below `threshold`), so a stand-in SAE
    with dead features does not pass them off as the cluster.
    """
    check(n_tokens >= 1, "n_tokens must be at least 1")
    freqs = freqs.detach().to("cpu", torch.float64)
    dead = freqs <= 0
    ultra_low = (~dead) & (freqs < threshold)
    return FrequencySummary(freqs, n_tokens, threshold, dead, ultra_low, freqs >= threshold)


# ---------------------------------------------------------------------------------------------
# 2. The ultra-low cluster.


def singular_fve(vectors: Float[Tensor, "n d"], n_keep: int) -> Float[Tensor, " n_keep"]:
    """Share of the vectors' total squared norm along each of the top singular directions.

    Uncentred on purpose: the question is whether the vectors share one direction, and
    centring would remove exactly that shared mean.
    """
    out = torch.full((n_keep,), math.nan, dtype=torch.float64)
    if vectors.numel() == 0:
        return out
    v = vectors.double()
    # Squared singular values = eigenvalues of the smaller Gram matrix (cheaper than an SVD of
    # a 10k x 2048 matrix at paper scale).
    gram = v.T @ v if v.shape[0] >= v.shape[1] else v @ v.T
    s2 = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0)
    fve = s2 / s2.sum().clamp_min(1e-300)
    out[: min(n_keep, fve.numel())] = fve[:n_keep]
    return out


@dataclasses.dataclass(frozen=True)
class UltraLowCluster:
    """Geometry of the ultra-low features' encoder vectors and decoder rows."""

    indices: Int[Tensor, " n"]
    mean_direction: Float[Tensor, " d_in"]  # unit mean of the encoder vectors (nan if n = 0)
    enc_cos_with_mean: Float[Tensor, " n"]
    dec_cos_with_mean: Float[Tensor, " n"]  # decoder rows against their own mean
    projections: Float[Tensor, " n"]  # encoder vector . unit mean direction
    dec_norms: Float[Tensor, " n"]  # |decoder| (1 for a unit-norm SAE); |enc||dec| is the scale
    cos_threshold: float
    enc_spectrum: Float[Tensor, " k"]  # singular_fve of the encoder vectors
    dec_spectrum: Float[Tensor, " k"]
    gaussian_spectrum: Float[Tensor, " k"]  # Gaussian rows of the same shape, for reference

    @property
    def n(self) -> int:
        return int(self.indices.numel())

    @property
    def cos_gt_share(self) -> float:
        """Share of ultra-low encoder vectors with cosine > threshold to their mean (write-up:
        97.5%)."""
        return _share(self.enc_cos_with_mean > self.cos_threshold)


def ultra_low_cluster(
    weights: SAEWeights, ultra_low: Bool[Tensor, " d_sae"], settings: AnalysisSettings
) -> UltraLowCluster:
    """The write-up's ultra-low analysis: cosine of each encoder vector with the cluster mean,
    projections onto the mean direction, and the top singular direction's share of squared
    norm for encoder vectors vs decoder rows (write-up: encoders one direction, decoders not).
    """
    idx = ultra_low.nonzero().flatten()
    enc = weights.encoder_vectors()[idx].double()
    dec = weights.W_dec[idx].double()
    mean_dir = (_unit(enc.mean(0)) if len(idx)
                else torch.full((weights.d_in,), math.nan, dtype=torch.float64))
    dec_mean = _unit(dec.mean(0)) if len(idx) else mean_dir
    k = settings.n_singular_directions
    gauss = torch.randn(enc.shape, generator=sub_generator(settings.seed, "ultra-low gaussian"),
                        dtype=torch.float64)
    return UltraLowCluster(
        indices=idx,
        mean_direction=mean_dir,
        enc_cos_with_mean=_unit(enc) @ mean_dir,
        dec_cos_with_mean=_unit(dec) @ dec_mean,
        projections=enc @ mean_dir,
        dec_norms=dec.norm(dim=-1),
        cos_threshold=settings.cluster_cosine_threshold,
        enc_spectrum=singular_fve(enc, k),
        dec_spectrum=singular_fve(dec, k),
        gaussian_spectrum=singular_fve(gauss, k),
    )


def direction_cosine(a: Float[Tensor, " d"], b: Float[Tensor, " d"]) -> float:
    """Cosine between two directions, e.g. the ultra-low means of two seeds (write-up 0.96)."""
    return float(_unit(a.double()) @ _unit(b.double()))


@torch.no_grad()
def orthogonalise_(sae: SAE, direction: Float[Tensor, "*inst d_in"]) -> None:
    """Remove `direction` from every encoder vector and decoder row of `sae`, in place.

    Call after each optimiser step to train an SAE held orthogonal to the ultra-low direction
    (write-up: 'forcing the autoencoder weights to be orthogonal to this average ultra low
    feature direction at each time step'). Decoder rows are renormalised afterwards (scaling
    keeps them orthogonal) so the unit-norm constraint still holds. b_dec is left alone: it is
    not a feature direction, and removing the direction from it would stop the SAE even
    reconstructing the activations' mean along it.
    """
    u = _unit(direction.to(sae.W_enc.device, sae.W_enc.dtype))
    u = einops.repeat(u, "d_in -> inst d_in", inst=sae.n_instances) if u.ndim == 1 else u
    enc_along = einops.einsum(sae.W_enc, u, "inst d_in d_sae, inst d_in -> inst d_sae")
    sae.W_enc.sub_(einops.einsum(u, enc_along, "inst d_in, inst d_sae -> inst d_in d_sae"))
    dec_along = einops.einsum(sae.W_dec, u, "inst d_sae d_in, inst d_in -> inst d_sae")
    sae.W_dec.sub_(einops.einsum(dec_along, u, "inst d_sae, inst d_in -> inst d_sae d_in"))
    sae.normalise_decoder_()


@dataclasses.dataclass(frozen=True)
class OrthogonalRetrain:
    """The SAE retrained orthogonal to the old ultra-low direction, and its own cluster."""

    frequencies: FrequencySummary
    cluster: UltraLowCluster
    old_vs_new_mean_cosine: float  # ~0 by construction when the constraint held
    max_abs_enc_cos_with_old: float  # largest |cos| of any encoder vector with the old direction


def orthogonal_retrain_analysis(
    old_direction: Float[Tensor, " d_in"], weights: SAEWeights, frequencies: FrequencySummary,
    settings: AnalysisSettings,
) -> OrthogonalRetrain:
    """Does the retrained SAE form a new ultra-low cluster, and in which direction?"""
    cluster = ultra_low_cluster(weights, frequencies.ultra_low, settings)
    enc_cos = _unit(weights.encoder_vectors().double()) @ _unit(old_direction.double())
    return OrthogonalRetrain(
        frequencies=frequencies,
        cluster=cluster,
        old_vs_new_mean_cosine=direction_cosine(old_direction, cluster.mean_direction),
        max_abs_enc_cos_with_old=float(enc_cos.abs().max()),
    )


@torch.no_grad()
def max_cluster_cofiring(
    tokens: Int[Tensor, "seq pos"], acts_fn: ActsFn, weights: SAEWeights,
    cluster: Bool[Tensor, " d_sae"], batch_size: int,
) -> tuple[float, int, int]:
    """Largest share of the cluster's features firing together on one token, and where.

    Write-up: on one input 95% of the ultra-low features fired. Returns (share, seq, pos).
    """
    if not cluster.any():
        return math.nan, -1, -1
    encode = feature_encoder(weights, cluster.nonzero().flatten())
    best, where = -1.0, (-1, -1)
    for start, acts in batched_feature_acts(tokens, acts_fn, encode, batch_size):
        share = (acts > 0).float().mean(-1).cpu()  # [batch, pos]
        value = float(share.max())
        if value > best:
            flat = int(share.argmax())
            best, where = value, (start + flat // share.shape[1], flat % share.shape[1])
    return best, where[0], where[1]


# ---------------------------------------------------------------------------------------------
# Feature activations from the model's MLP (the cluster's co-firing; the case studies).


def feature_encoder(weights: SAEWeights, features: Int[Tensor, " feat"]) -> EncodeFn:
    """Activations of only the chosen features (cheaper than encoding all d_sae)."""
    W = weights.W_enc[:, features]
    b = weights.b_enc[features]
    b_pre = weights.b_dec if weights.pre_encoder_bias else torch.zeros_like(weights.b_dec)

    def encode(x: Float[Tensor, "batch pos d_in"]) -> Float[Tensor, "batch pos feat"]:
        # Runs where the activations are (a GPU at paper scale); the weights follow them.
        dev = x.device
        x = x.float() - b_pre.to(dev)
        pre = einops.einsum(x, W.to(dev), "batch pos d_in, d_in feat -> batch pos feat")
        return torch.relu(pre + b.to(dev))

    return encode


def hooked_acts_fn(model: torch.nn.Module, hook_name: str) -> ActsFn:
    """Activations at `hook_name` of a TransformerLens HookedTransformer, on the model's
    device; stops after that block so the unembedding is never computed."""
    layer = int(hook_name.split(".")[1])
    device = next(model.parameters()).device

    @torch.no_grad()
    def acts(tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_in"]:
        _, cache = model.run_with_cache(tokens.to(device), names_filter=hook_name,
                                        stop_at_layer=layer + 1)
        return cache[hook_name].detach().float()

    return acts


def batched_feature_acts(
    tokens: Int[Tensor, "seq pos"], acts_fn: ActsFn, encode: EncodeFn, batch_size: int
) -> Iterator[tuple[int, Float[Tensor, "batch pos feat"]]]:
    for start in range(0, tokens.shape[0], batch_size):
        with torch.no_grad():  # closed before yielding, so grad mode never leaks to the caller
            acts = encode(acts_fn(tokens[start:start + batch_size]))
        yield start, acts

"""Analyses of an MLP SAE, after the open-source replication of Towards Monosemanticity.

Every function takes tensors (SAE weights, the model's W_out / W_U, feature frequencies,
tokens) and returns numbers or arrays; `plots.py` turns the results into figures and
`summary_metrics` flattens them into the metrics the claims read. The definitions follow the
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
# 3. Neuron-basis sparsity and kurtosis of decoder rows.


@dataclasses.dataclass(frozen=True)
class NeuronSparsity:
    """Per-feature fraction of the decoder row's squared norm in its top neurons, and class."""

    fve_top_1: Float[Tensor, " n"]
    fve_next_9: Float[Tensor, " n"]
    classes: Int[Tensor, " n"]  # DENSE, ONE_SPARSE or TEN_SPARSE
    settings: AnalysisSettings

    @property
    def fve_top_10(self) -> Float[Tensor, " n"]:
        return self.fve_top_1 + self.fve_next_9

    def share(self, cls: int) -> float:
        return _share(self.classes == cls)


def neuron_sparsity(rows: Float[Tensor, "n d_mlp"], settings: AnalysisSettings) -> NeuronSparsity:
    """Classify decoder rows (in the neuron basis) as dense, 1-sparse or 10-ish-sparse.

    fve_top_1 / fve_next_9: share of the row's squared norm in its largest neuron / the next
    9. Dense: fve_top_10 < 0.35; 1-sparse: fve_top_1 > 0.35 and fve_next_9 < 0.1; the rest
    10-ish-sparse (write-up: 92.1 / 3.9 / 4.0 %). The write-up uses decoder rows, being closer
    to the feature's 'true' direction than the interference-aware encoder.
    """
    check(rows.shape[-1] >= 10, "neuron_sparsity needs at least 10 neurons")
    sq = rows.double().pow(2)
    top = sq.topk(10, dim=-1).values / sq.sum(-1, keepdim=True).clamp_min(1e-300)
    top_1, next_9 = top[:, 0], top[:, 1:].sum(-1)
    one_sparse = (top_1 > settings.one_sparse_min_fve_top_1) & (
        next_9 < settings.one_sparse_max_fve_next_9)
    dense = (top_1 + next_9) < settings.dense_max_fve_top_10
    classes = torch.full_like(top_1, TEN_SPARSE, dtype=torch.long)
    classes[one_sparse] = ONE_SPARSE
    classes[dense] = DENSE  # disjoint from 1-sparse: fve_top_1 > 0.35 implies fve_top_10 > 0.35
    return NeuronSparsity(top_1, next_9, classes, settings)


def excess_kurtosis(rows: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
    """Excess kurtosis of each row over its entries: m4 / m2^2 - 3 (mean-centred, biased
    moments, as scipy.stats.kurtosis). 0 for Gaussian entries, large for neuron-sparse rows."""
    x = rows.double()
    centred = x - x.mean(-1, keepdim=True)
    m2 = centred.pow(2).mean(-1)
    m4 = centred.pow(4).mean(-1)
    return m4 / m2.pow(2).clamp_min(1e-300) - 3.0


@dataclasses.dataclass(frozen=True)
class KurtosisComparison:
    """Neuron kurtosis of decoder rows and of Gaussian rows of the same shape."""

    real: Float[Tensor, " n"]
    gaussian: Float[Tensor, " n"]


def kurtosis_comparison(rows: Float[Tensor, "n d_mlp"], seed: int) -> KurtosisComparison:
    """Kurtosis of each decoder row vs a Gaussian baseline (a random rotation makes any row's
    entries Gaussian, so the baseline is what an unprivileged basis would give)."""
    gauss = torch.randn(rows.shape, generator=sub_generator(seed, "kurtosis gaussian"),
                        dtype=torch.float64)
    return KurtosisComparison(excess_kurtosis(rows), excess_kurtosis(gauss))


# ---------------------------------------------------------------------------------------------
# 4. Encoder vs decoder, and the null space of W_out.


def encoder_decoder_cosine(weights: SAEWeights) -> Float[Tensor, " d_sae"]:
    """Cosine between each feature's encoder vector and decoder row (write-up median 0.5)."""
    return einops.einsum(_unit(weights.encoder_vectors().double()), _unit(weights.W_dec.double()),
                         "d_sae d_in, d_sae d_in -> d_sae")


def row_space_basis(W_out: Float[Tensor, "d_mlp d_model"]) -> Float[Tensor, "d_mlp rank"]:
    """Orthonormal basis of the neuron-space directions W_out does not send to zero (its
    column space); the null space is their (d_mlp - rank)-dim orthogonal complement."""
    U, S, _ = torch.linalg.svd(W_out.double(), full_matrices=False)
    tol = S.max() * max(W_out.shape) * torch.finfo(torch.float64).eps
    return U[:, S > tol]


def nullspace_share(
    vectors: Float[Tensor, "n d_mlp"], W_out: Float[Tensor, "d_mlp d_model"]
) -> Float[Tensor, " n"]:
    """Share of each vector's squared norm in the null space of W_out (v @ W_out = 0 there):
    the part an MLP-activation direction contributes nothing to the residual stream with."""
    basis = row_space_basis(W_out)
    v = vectors.double()
    kept = einops.einsum(v, basis, "n d_mlp, d_mlp rank -> n rank").pow(2).sum(-1)
    return 1.0 - kept / v.pow(2).sum(-1).clamp_min(1e-300)


def random_nullspace_moments(d_mlp: int, rank: int) -> tuple[float, float]:
    """Exact mean and std of the null-space share of a uniformly random direction: the share
    is Beta((d_mlp - rank)/2, rank/2); gelu-1l (2048, 512) gives 0.75 and 0.0135."""
    a, b = (d_mlp - rank) / 2, rank / 2
    return a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))


@dataclasses.dataclass(frozen=True)
class NullspaceComparison:
    """Null-space shares of encoder vectors, decoder rows and random directions."""

    enc: Float[Tensor, " n"]
    dec: Float[Tensor, " n"]
    random: Float[Tensor, " n_random"]
    d_mlp: int
    rank: int

    @property
    def expected_random_mean(self) -> float:
        return random_nullspace_moments(self.d_mlp, self.rank)[0]

    @property
    def expected_random_std(self) -> float:
        return random_nullspace_moments(self.d_mlp, self.rank)[1]


def nullspace_comparison(
    weights: SAEWeights, features: Int[Tensor, " n"], W_out: Float[Tensor, "d_mlp d_model"],
    settings: AnalysisSettings,
) -> NullspaceComparison:
    """Null-space shares of the chosen features' encoder and decoder vectors, and of
    `n_random_baseline` random unit vectors (write-up baseline: mean 0.75, std 0.013)."""
    d_mlp = W_out.shape[0]
    check(weights.d_in == d_mlp, f"SAE d_in {weights.d_in} != W_out's d_mlp {d_mlp}")
    rand = torch.randn(settings.n_random_baseline, d_mlp, dtype=torch.float64,
                       generator=sub_generator(settings.seed, "nullspace random"))
    return NullspaceComparison(
        enc=nullspace_share(weights.encoder_vectors()[features], W_out),
        dec=nullspace_share(weights.W_dec[features], W_out),
        random=nullspace_share(rand, W_out),
        d_mlp=d_mlp,
        rank=row_space_basis(W_out).shape[1],
    )


# ---------------------------------------------------------------------------------------------
# Everything about one SAE's weights.


@dataclasses.dataclass(frozen=True)
class SAEAnalysis:
    """All weight-based analyses of one SAE (sections 1 to 4)."""

    frequencies: FrequencySummary
    cluster: UltraLowCluster
    normal_features: Int[Tensor, " n"]  # indices of the non-ultra-low, non-dead features
    sparsity: NeuronSparsity  # over normal_features
    kurtosis: KurtosisComparison  # over normal_features
    enc_dec_cosine: Float[Tensor, " n"]  # over normal_features
    nullspace: NullspaceComparison  # over normal_features


def analyse_sae(
    weights: SAEWeights, frequencies: FrequencySummary, W_out: Float[Tensor, "d_mlp d_model"],
    settings: AnalysisSettings,
) -> SAEAnalysis:
    """Run sections 1-4 on one SAE. Like the write-up, the decoder, kurtosis, cosine and
    null-space analyses use the non-ultra-low features only (dead ones are left out too)."""
    normal = frequencies.normal.nonzero().flatten()
    dec = weights.W_dec[normal]
    return SAEAnalysis(
        frequencies=frequencies,
        cluster=ultra_low_cluster(weights, frequencies.ultra_low, settings),
        normal_features=normal,
        sparsity=neuron_sparsity(dec, settings),
        kurtosis=kurtosis_comparison(dec, settings.seed),
        enc_dec_cosine=encoder_decoder_cosine(weights)[normal],
        nullspace=nullspace_comparison(weights, normal, W_out, settings),
    )


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


# ---------------------------------------------------------------------------------------------
# Metrics for the claims.


def _median(x: Tensor) -> float:
    return float(x.double().quantile(0.5)) if x.numel() else math.nan


def _mean(x: Tensor) -> float:
    return float(x.double().mean()) if x.numel() else math.nan


def _std(x: Tensor) -> float:
    return float(x.double().std()) if x.numel() > 1 else math.nan


def summary_metrics(
    analysis: SAEAnalysis,
    seed_mean_cosine: float | None,
    orthogonal: OrthogonalRetrain | None,
    cofiring: float | None,
) -> dict[str, float]:
    """Every number the claims need, flat. Names carry no dots (claims use dotted paths);
    NaN where a quantity is undefined (e.g. no ultra-low features), which write_json stores
    as null and the scorecard shows as missing."""
    fr, cl, sp, ku, ns = (analysis.frequencies, analysis.cluster, analysis.sparsity,
                          analysis.kurtosis, analysis.nullspace)
    gauss_p99 = float(torch.quantile(ku.gaussian, 0.99)) if ku.gaussian.numel() else math.nan
    random_std = _std(ns.random)
    out: dict[str, float] = {
        "n_features": float(fr.freqs.numel()),
        "n_eval_tokens": float(fr.n_tokens),
        "dead_fraction": fr.dead_fraction,
        "ultra_low_fraction": fr.ultra_low_fraction,
        "normal_fraction": _share(fr.normal),
        "median_log10_frequency_normal": _median(fr.freqs[fr.normal].log10()),
        "ultra_low_n": float(cl.n),
        "ultra_low_cos_gt_095_share": cl.cos_gt_share,
        "ultra_low_median_cos_with_mean": _median(cl.enc_cos_with_mean),
        "ultra_low_decoder_median_cos_with_mean": _median(cl.dec_cos_with_mean),
        "ultra_low_encoder_top_sv_fve": float(cl.enc_spectrum[0]),
        "ultra_low_decoder_top_sv_fve": float(cl.dec_spectrum[0]),
        "ultra_low_gaussian_top_sv_fve": float(cl.gaussian_spectrum[0]),
        "ultra_low_median_projection": _median(cl.projections),
        "dense_share": sp.share(DENSE),
        "one_sparse_share": sp.share(ONE_SPARSE),
        "ten_sparse_share": sp.share(TEN_SPARSE),
        "median_kurtosis": _median(ku.real),
        "median_gaussian_kurtosis": _median(ku.gaussian),
        "kurtosis_excess_over_gaussian": _median(ku.real) - _median(ku.gaussian),
        "kurtosis_above_gaussian_p99_share": _share(ku.real > gauss_p99),
        "max_kurtosis": float(ku.real.max()) if ku.real.numel() else math.nan,
        "median_enc_dec_cosine": _median(analysis.enc_dec_cosine),
        "nullspace_share_mean_enc": _mean(ns.enc),
        "nullspace_share_mean_dec": _mean(ns.dec),
        "nullspace_share_std_enc": _std(ns.enc),
        "nullspace_share_std_dec": _std(ns.dec),
        "nullspace_random_mean": _mean(ns.random),
        "nullspace_random_std": random_std,
        "nullspace_random_expected_mean": ns.expected_random_mean,
        "nullspace_random_expected_std": ns.expected_random_std,
        "nullspace_std_ratio_enc": _std(ns.enc) / random_std,
        "nullspace_std_ratio_dec": _std(ns.dec) / random_std,
        "seed_mean_cosine": math.nan if seed_mean_cosine is None else seed_mean_cosine,
        "ultra_low_max_cofiring_share": math.nan if cofiring is None else cofiring,
    }
    if orthogonal is not None:
        out |= {
            "orthogonal_retrain_ultra_low_fraction": orthogonal.frequencies.ultra_low_fraction,
            "orthogonal_retrain_dead_fraction": orthogonal.frequencies.dead_fraction,
            "orthogonal_retrain_cos_gt_095_share": orthogonal.cluster.cos_gt_share,
            "orthogonal_retrain_median_cos_with_mean":
                _median(orthogonal.cluster.enc_cos_with_mean),
            "orthogonal_new_vs_old_mean_cosine": orthogonal.old_vs_new_mean_cosine,
            "orthogonal_max_abs_enc_cos_with_old": orthogonal.max_abs_enc_cos_with_old,
        }
    else:
        out |= {k: math.nan for k in (
            "orthogonal_retrain_ultra_low_fraction", "orthogonal_retrain_dead_fraction",
            "orthogonal_retrain_cos_gt_095_share", "orthogonal_retrain_median_cos_with_mean",
            "orthogonal_new_vs_old_mean_cosine", "orthogonal_max_abs_enc_cos_with_old")}
    return out

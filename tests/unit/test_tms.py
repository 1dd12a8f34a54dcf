"""Unit tests of the TMS model helpers, analysis formulas, MMCS and config validation."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from replications.toy_models.sae_tms import SAETMSConfig, represented_directions
from replications.toy_models.sae_tms_metrics import (
    best_seed_mean_mmcs,
    cliff_fit,
    cliff_sharpness,
    random_dictionary_mmcs,
    resampling_metrics,
    sweep_metrics,
)
from replications.toy_models.sae_tms_metrics import (
    excess_over_chance as mmcs_excess_over_chance,
)
from replications.toy_models.tms import (
    TMSConfig,
    TMSSweepConfig,
    dimensionality_metrics,
    dimensions_per_feature,
    excess_over_chance,
    feature_dimensionality,
    feature_norms,
    generate_batch,
    importance_profile,
    n_represented,
    polygon_angle_error,
    sticky_share,
    sticky_windows_measure,
    superposition,
    sweep_probabilities,
)
from shared.config import ConfigError, build
from shared.runtime import step_generator
from shared.sae import mmcs

pytestmark = pytest.mark.unit


def polygon(k: int, radius: float = 1.0) -> torch.Tensor:
    """[2, k]: k unit vectors evenly spaced on the circle (a regular k-gon)."""
    angles = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    return (radius * torch.stack([angles.cos(), angles.sin()])).float()


SWEEP = dict(n_features=5, n_hidden=2, importance_decay=0.9, n_instances=4,
             min_probability=0.05, n_steps=10)
TMS = dict(geometry=SWEEP, dimensionality=SWEEP, batch_size=32, lr=1e-3,
           represented_threshold=0.5, checkpoint_every=10, log_every=5)
SAE_TMS = dict(
    n_features=6, n_hidden=3, expected_active_features=0.5, tms_n_steps=10, tms_lr=1e-3,
    batch_size=32, represented_threshold=0.5, width_multiples=(0.5, 1.0, 2.0),
    l1_coeffs=(0.01, 0.1), n_seeds=2, sae_n_steps=10, sae_lr=1e-3, resampling_ratios=(2, 4),
    resampling_n_hidden=2, resampling_width_multiple=1.5, resampling_l1_coeffs=(0.1,),
    resampling_n_seeds=2, resampling_modes=("none", "reinit"), resampling_sae_n_steps=20,
    resample_every=10, resample_window=5, dead_frequency=0.0, random_baseline_draws=8,
    checkpoint_every=10, log_every=5,
)


# --------------------------------------------------------------------------- data generator


def test_generate_batch_rate_and_range() -> None:
    prob = torch.tensor([1.0, 0.3, 0.05])
    x = generate_batch(20_000, prob, 10, step_generator(0, 3))
    assert x.shape == (20_000, 3, 10)
    assert x.min() >= 0 and x.max() <= 1
    rate = (x > 0).float().mean(dim=(0, 2))
    assert torch.allclose(rate, prob, atol=0.01)
    # Kept values are uniform on [0, 1]: mean 1/2, variance 1/12, at every probability.
    for k in range(3):
        kept = x[:, k][x[:, k] > 0]
        assert abs(kept.mean().item() - 0.5) < 0.01
        assert abs(kept.var().item() - 1 / 12) < 0.005


def test_generate_batch_is_a_pure_function_of_the_generator_seed() -> None:
    prob = torch.tensor([0.2, 0.7])
    a = generate_batch(64, prob, 5, step_generator(1, 7))
    b = generate_batch(64, prob, 5, step_generator(1, 7))
    c = generate_batch(64, prob, 5, step_generator(1, 8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sweep_probabilities_and_importance() -> None:
    p = sweep_probabilities(5, 0.01)
    assert p[0].item() == pytest.approx(1.0)
    assert p[-1].item() == pytest.approx(0.01)
    assert torch.all(p[1:] < p[:-1])
    assert torch.allclose(importance_profile(3, 0.9), torch.tensor([1.0, 0.9, 0.81]))


# --------------------------------------------------------------------------- analysis


def test_dimensionality_on_hand_made_matrices() -> None:
    # Orthogonal pair in 2-D (plus a dropped third feature): D = 1, 1, 0.
    W = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    assert torch.allclose(feature_dimensionality(W), torch.tensor([[1.0, 1.0, 0.0]]))
    # Antipodal pair in 1-D: each gets half a dimension.
    W = torch.tensor([[[1.0, -1.0]]])
    assert torch.allclose(feature_dimensionality(W), torch.tensor([[0.5, 0.5]]))
    # Regular triangle and pentagon in 2-D: 2/3 and 2/5 (norms do not matter).
    assert torch.allclose(feature_dimensionality(polygon(3, 1.7)[None]),
                          torch.full((1, 3), 2 / 3), atol=1e-5)
    assert torch.allclose(feature_dimensionality(polygon(5)[None]),
                          torch.full((1, 5), 2 / 5), atol=1e-5)
    # Dimensions per feature: m / ||W||_F^2 = 2 / 5 for the unit pentagon.
    assert dimensions_per_feature(polygon(5)[None]).item() == pytest.approx(0.4, abs=1e-5)


def test_sticky_share_against_chance() -> None:
    # The windows (+-0.05 around 1, 3/4, 2/3, 1/2, 2/5, 1/3) cover half of [0, 1].
    assert sticky_windows_measure(0.0, 1.0) == pytest.approx(0.5)
    assert sticky_windows_measure(0.45, 0.55) == pytest.approx(0.1)
    # Every value on a fraction: share 1, far above chance.
    on = torch.tensor([1.0, 0.75, 2 / 3, 0.5, 0.4, 1 / 3] * 5)
    share, chance = sticky_share(on)
    assert share == 1.0 and 0.4 < chance < 0.7
    assert excess_over_chance(share, chance) == pytest.approx(1.0)
    # The plausible wrong result: dimensionalities spread uniformly (no stickiness). The raw
    # share (~0.5) clears the old 30% threshold; the excess over chance is ~0.
    spread = torch.linspace(0.0, 1.0, 2001)
    share, chance = sticky_share(spread)
    assert share > 0.3
    assert excess_over_chance(share, chance) == pytest.approx(0.0, abs=0.01)
    assert math.isnan(excess_over_chance(*sticky_share(torch.tensor([]))))


def test_dimensionality_metrics_report_chance() -> None:
    # Instances: dense (4 orthogonal features in 4-D, 1 dimension per feature), two middles
    # (antipodal pairs in 2 of the 4 dims: D = 1/2, 0.44 dims per feature), sparsest (0.25).
    eye = torch.eye(4)
    square = torch.zeros(4, 4)
    square[:2, :] = polygon(4, 1.5)
    sparse = torch.zeros(4, 4)
    sparse[0, :] = torch.tensor([2.0, -2.0, 2.0, -2.0])
    W = torch.stack([eye, square, square, sparse])
    m = dimensionality_metrics(W, torch.ones(4), 0.5)
    assert m["tms_dimensionality_fraction_near_sticky"] == 1.0
    assert m["tms_dimensionality_chance_near_sticky"] == 1.0  # one value: no spread
    assert math.isnan(m["tms_dimensionality_sticky_excess_over_chance"])


def test_superposition_measure() -> None:
    W = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    assert torch.allclose(superposition(W), torch.zeros(1, 3))
    W = torch.tensor([[[1.0, -1.0]]])
    assert torch.allclose(superposition(W), torch.ones(1, 2))
    # Non-unit norms: (W_hat_0 . W_1)^2 = (2 cos 60)^2 = 1, (W_hat_1 . W_0)^2 = (cos 60)^2.
    W = torch.tensor([[[1.0, 2 * 0.5], [0.0, 2 * math.sqrt(3) / 2]]])
    assert torch.allclose(superposition(W), torch.tensor([[1.0, 0.25]]), atol=1e-6)
    # Pentagon: 2 * (cos 72)^2 + 2 * (cos 144)^2 = 1.5.
    assert torch.allclose(superposition(polygon(5)[None]), torch.full((1, 5), 1.5), atol=1e-5)


def test_norms_represented_and_polygon() -> None:
    W = torch.tensor([[[3.0, 0.1], [4.0, 0.0]]])
    assert torch.allclose(feature_norms(W), torch.tensor([[5.0, 0.1]]))
    assert n_represented(W, 0.5).tolist() == [1.0]
    assert polygon_angle_error(polygon(5), 0.5) == pytest.approx(0.0, abs=1e-3)
    squashed = polygon(5) * torch.tensor([[1.0], [0.5]])
    assert polygon_angle_error(squashed, 0.3) > 5
    assert math.isnan(polygon_angle_error(polygon(2), 0.5))
    dirs, keep = represented_directions(torch.tensor([[2.0, 0.0, 0.1], [0.0, 0.0, 0.0]]), 0.5)
    assert keep.tolist() == [True, False, False]
    assert torch.allclose(dirs, torch.tensor([[1.0, 0.0]]))


def test_mmcs_on_permuted_scaled_copy() -> None:
    gen = torch.Generator().manual_seed(0)
    true = torch.randn(12, 5, generator=gen)
    perm = torch.randperm(12, generator=gen)
    scales = torch.rand(12, 1, generator=gen) * 3 + 0.1
    learned = torch.cat([true[perm] * scales, torch.randn(4, 5, generator=gen)])  # extra rows
    score, per = mmcs(learned, true)
    assert score == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(per, torch.ones(12), atol=1e-6)
    # Drop two true directions: those two now match only something else.
    score, per = mmcs(true[perm][2:] * scales[2:], true)
    assert score < 1.0
    assert (per < 0.999).sum() == 2


# --------------------------------------------------------------------------- metrics


def test_sweep_and_resampling_metrics() -> None:
    # [width][l1][seed]: two L1 values, two seeds.
    mmcs_ = [[[0.5, 0.5], [0.6, 0.6]], [[0.8, 0.8], [0.7, 0.7]],
             [[1.0, 0.98], [0.9, 0.9]], [[1.0, 1.0], [0.95, 0.95]]]
    sweep = {"width_multiples": [0.5, 0.8, 1.0, 2.0], "mmcs": mmcs_, "n_represented": 10,
             "n_features": 10, "random_mmcs": [0.3, 0.35, 0.4, 0.5]}
    m = sweep_metrics(sweep)
    assert m["mmcs_below_true_width"] == pytest.approx(0.8)
    assert m["mmcs_at_true_width"] == pytest.approx(0.99)
    assert m["mmcs_above_true_width"] == pytest.approx(1.0)
    assert m["mmcs_cliff"] == pytest.approx(0.19)
    assert m["mmcs_at_true_width_best_seed"] == pytest.approx(1.0)
    assert m["fraction_seeds_recovered_at_true_width"] == pytest.approx(0.5)
    assert m["fraction_seeds_recovered_above_true_width"] == pytest.approx(1.0)
    # Slopes per unit multiple: 0.2 / 0.3 (0.5 -> 0.8), then 0.19 / 0.2 into F.
    assert m["mmcs_cliff_sharpness"] == pytest.approx(0.95 / (0.2 / 0.3))
    # Beside the random dictionary: (1.0 - 0.5) / (1 - 0.5) above F, (0.99 - 0.4) / 0.6 at F.
    assert m["random_mmcs_above_true_width"] == pytest.approx(0.5)
    assert m["mmcs_above_true_width_excess_over_random"] == pytest.approx(1.0)
    assert m["mmcs_at_true_width_excess_over_random"] == pytest.approx(0.59 / 0.6)
    entry = {"ratio": 2, "n_features": 4, "n_represented": 4, "sae_width": 6,
             "random_mmcs": 0.6, "mmcs_none": [[0.5, 0.7], [0.9, 0.8]],
             "mmcs_reinit": [[1.0, 1.0], [0.9, 0.9]]}
    mean, std, k = best_seed_mean_mmcs(entry, "none")
    assert (mean, k) == (pytest.approx(0.85), 1)
    assert std == pytest.approx(torch.tensor([0.9, 0.8]).std().item())
    high = {**entry, "ratio": 8, "mmcs_none": [[0.6, 0.6], [0.7, 0.7]]}
    r = resampling_metrics({"modes": ["none", "reinit"], "per_ratio": [entry, high]})
    assert r["mmcs_no_resample_low_ratio"] == pytest.approx(0.85)
    assert r["resampling_gain_at_highest_ratio"] == pytest.approx(0.3)
    assert r["resampling_gain_reinit_at_lowest_ratio"] == pytest.approx(0.15)
    assert r["resampling_best_gain"] == pytest.approx(0.3)
    assert r["resampling_best_gain_ratio"] == 8.0
    # Seed by seed at the best L1 of each mode: 1.0 - 0.7 on both seeds.
    assert r["resampling_gain_at_highest_ratio_min_over_seeds"] == pytest.approx(0.3)
    assert r["random_mmcs_high_ratio"] == pytest.approx(0.6)
    assert r["mmcs_no_resample_high_ratio_excess_over_random"] == pytest.approx(0.25)


def test_cliff_sharpness_fails_smooth_curves() -> None:
    mults = [0.5, 0.7, 0.8, 0.9, 1.0, 1.5, 2.0]
    # A cliff: a slow climb, then a jump into F.
    cliff = [0.40, 0.42, 0.43, 0.45, 0.98, 1.0, 1.0]
    assert cliff_sharpness(mults, cliff) > 10
    # The plausible wrong results: one more feature per extra latent (MMCS = m/F, then flat),
    # and a smooth saturating curve. Both pass the old 'at F minus below F >= 0.1'.
    linear = [min(m, 1.0) for m in mults]
    assert linear[4] - linear[3] >= 0.1 - 1e-9
    assert cliff_sharpness(mults, linear) == pytest.approx(1.0)
    smooth = [1 - math.exp(-3 * m) for m in mults]
    assert cliff_sharpness(mults, smooth) < 1.0
    # Undefined without a step below the one into F.
    assert math.isnan(cliff_sharpness([0.5, 1.0, 2.0], [0.5, 1.0, 1.0]))


def test_cliff_fit_tells_a_knee_at_f_from_smooth_and_misplaced_curves() -> None:
    mults = [0.5, 0.75, 1.0, 1.25, 2.0]
    # A knee at F (linear climb, flat from F on): the knee fits exactly, the smooth curve cannot.
    knee = [0.6 + 0.8 * (m - 0.5) if m < 1 else 1.0 for m in mults]
    fit = cliff_fit(mults, knee)
    assert fit["best_knee"] == 1.0 and fit["knee_rmse"] < 1e-9 and fit["fit_ratio"] > 5
    # A smooth saturating curve is fitted exactly by the alternative: ratio near 0, fails.
    smooth = [1 - 0.9 * math.exp(-m / 0.4) for m in mults]
    assert cliff_fit(mults, smooth)["fit_ratio"] < 0.5
    # A straight line (no bend) fails, and a knee at 1.25 F is placed there, not at F.
    assert cliff_fit(mults, [0.3 + 0.3 * m for m in mults])["fit_ratio"] < 2
    late = [0.5 + 0.6 * (m - 0.5) if m < 1.25 else 0.95 for m in mults]
    assert cliff_fit(mults, late)["best_knee"] == 1.25


def test_random_dictionary_mmcs_is_chance_level() -> None:
    dirs = torch.eye(20)
    mean, sd = random_dictionary_mmcs(dirs, 40, 64, seed=0)
    # Wider random dictionaries match better; never near perfect in 20 dimensions.
    assert 0.3 < mean < 0.8 and sd > 0
    assert random_dictionary_mmcs(dirs, 400, 16, seed=0)[0] > mean
    assert random_dictionary_mmcs(dirs, 40, 64, seed=0) == (mean, sd)  # seeded
    assert mmcs_excess_over_chance(mean, mean) == 0.0
    assert mmcs_excess_over_chance(1.0, mean) == pytest.approx(1.0)


# --------------------------------------------------------------------------- config


def test_configs_build_from_mappings() -> None:
    cfg = build(TMSConfig, TMS)
    assert cfg.geometry.n_features == 5
    scfg = build(SAETMSConfig, SAE_TMS)
    assert scfg.widths() == (3, 6, 12)
    assert scfg.feature_probability(10) == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("cls", "base", "change", "message"),
    [
        (TMSSweepConfig, SWEEP, {"n_hidden": 0}, "positive"),
        (TMSSweepConfig, SWEEP, {"min_probability": 1.0}, "min_probability"),
        (TMSSweepConfig, SWEEP, {"n_instances": 1}, "n_instances"),
        (TMSSweepConfig, SWEEP, {"importance_decay": 1.5}, "importance_decay"),
        (SAETMSConfig, SAE_TMS, {"n_features": 3}, "superposition"),
        (SAETMSConfig, SAE_TMS, {"width_multiples": (0.5, 2.0)}, "1.0"),
        (SAETMSConfig, SAE_TMS, {"width_multiples": (2.0, 1.0, 0.5)}, "increasing"),
        (SAETMSConfig, SAE_TMS, {"resampling_modes": ("reinit",)}, "none"),
        (SAETMSConfig, SAE_TMS, {"resample_window": 11}, "resample_window"),
        (SAETMSConfig, SAE_TMS, {"n_seeds": 0}, "n_seeds"),
        (SAETMSConfig, SAE_TMS, {"width_multiples": (0.95, 1.0, 2.0)}, "repeated SAE widths"),
        (SAETMSConfig, SAE_TMS, {"expected_active_features": 4.0}, "expected_active"),
    ],
)
def test_config_validation_errors(
    cls: type, base: dict[str, object], change: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        cls(**{**base, **change})


def test_config_rejects_missing_and_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="missing key 'lr'"):
        build(TMSConfig, {k: v for k, v in TMS.items() if k != "lr"})
    with pytest.raises(ConfigError, match="unknown key 'width'"):
        build(SAETMSConfig, {**SAE_TMS, "width": 3})
    # Frozen: a config cannot be changed after validation.
    with pytest.raises(dataclasses.FrozenInstanceError):
        build(TMSConfig, TMS).lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("profile", ["smoke", "default", "paper"])
def test_profiles_load(profile: str) -> None:
    from replications.toy_models.config import load

    cfg = load(profile)
    assert cfg.sae_tms.widths()[cfg.sae_tms.width_multiples.index(1.0)] == cfg.sae_tms.n_features
    assert cfg.tms.geometry.n_hidden == 2

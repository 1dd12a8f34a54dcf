"""SAE-methods write-up without a language model: configs and their methods, the Pareto gap,
the activation pool, ablation effects, the ITO code comparison, the analysis on planted
curves, and the hand-off of the monosemanticity stand-in."""

import dataclasses
import math

import pytest
import torch

from replications.sae_methods import analysis, ito_study, sweep
from replications.sae_methods import config as C
from shared.config import ConfigError
from shared.sae import SAE

pytestmark = pytest.mark.unit


def test_profiles_load_and_methods_change_only_their_options():
    for profile in ("smoke", "default", "paper", "default-seed2"):
        cfg = C.load(profile)
        for site in cfg.sites:
            for m in site.methods:
                sc = cfg.sae_config(site, m)
                assert sc.d_in == site.d_in and sc.l1_coeffs == site.l1_coeffs
    cfg = C.load("default")
    site = cfg.site("mlp_neurons")
    assert cfg.sae_config(site, "beta1_099").adam_betas == (0.99, 0.999)
    assert cfg.sae_config(site, "plain").adam_betas == (0.0, 0.999)
    assert cfg.sae_config(site, "no_bias_beta1_0").pre_encoder_bias is False
    assert cfg.sae_config(cfg.site("mlp_outputs"), "ghost_rescaled_k2").ghost_all_steps == 100
    assert cfg.sae_config(site, "norm_at_most_one").decoder_norm == "at_most_one"
    paper = C.load("paper")
    assert paper.sae["batch_size"] == 4096 and paper.comparisons.close_band == (20.0, 100.0)
    assert paper.site("pythia2p8b_l16_mlp_outputs").hook == "blocks.16.hook_mlp_out"
    assert paper.sae_config(paper.site("gelu1l_mlp_outputs"), "ghost_original_k2").ghost_all_steps == 100_000


def test_bad_methods_and_sites_are_config_errors():
    cfg = C.load("smoke")
    bad = {**cfg.methods, "oops": {"ghost_grad": "original"}}
    with pytest.raises(ConfigError, match="methods.oops on site .*unknown key .ghost_grad."):
        sites = (dataclasses.replace(cfg.sites[0], methods=("oops",)), cfg.sites[1])
        dataclasses.replace(cfg, methods=bad, sites=sites)
    with pytest.raises(ConfigError, match="decoder_weight_decay"):
        dataclasses.replace(cfg, methods={**cfg.methods, "norm_at_most_one": {
            "decoder_weight_decay": 1e-3}})
    with pytest.raises(ConfigError, match="sae.d_sae: set per site"):
        dataclasses.replace(cfg, sae={**cfg.sae, "d_sae": 64})
    with pytest.raises(ConfigError, match="unknown method"):
        dataclasses.replace(cfg, sites=(dataclasses.replace(cfg.sites[0], methods=("nope",)),
                                        cfg.sites[1]))
    with pytest.raises(ConfigError, match="reserved_rows"):
        dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, source="buffer"))
    with pytest.raises(ConfigError, match="model and dataset"):
        dataclasses.replace(cfg, sites=(dataclasses.replace(cfg.sites[0], model="gelu-1l"),
                                        cfg.sites[1]))


def test_frontier_gap_is_antisymmetric_and_measures_a_shift():
    a = ([2.0, 8.0, 32.0], [0.5, 0.7, 0.9])
    b = ([3.0, 10.0, 40.0], [0.4, 0.6, 0.8])  # the same curve shifted right: a is above
    gap = analysis.frontier_gap(a, b)
    assert gap is not None and gap > 0
    assert analysis.frontier_gap(b, a) == pytest.approx(-gap)
    same = analysis.frontier_gap(a, a)
    assert same == pytest.approx(0.0)
    # Parallel curves 0.1 apart on the same L0s: exactly 0.1.
    c = (a[0], [y - 0.1 for y in a[1]])
    assert analysis.frontier_gap(a, c) == pytest.approx(0.1)
    # Disjoint L0 ranges: nothing to compare.
    assert analysis.frontier_gap(a, ([100.0, 200.0], [0.9, 0.95])) is None
    # A band keeps only the points inside it.
    assert analysis.frontier_gap(a, c, band=(5.0, 10.0)) == pytest.approx(0.1)


def test_activation_pool_is_a_pure_function_of_the_step():
    acts = torch.randn(500, 6, generator=torch.Generator().manual_seed(0))
    pool = sweep.ActivationPool(acts, 32, seed=3)
    assert torch.equal(pool.sample(7), pool.sample(7))
    assert not torch.equal(pool.sample(7), pool.sample(8))
    other = sweep.ActivationPool(acts, 32, seed=4)
    assert not torch.equal(pool.sample(7), other.sample(7))


def test_ablation_effects_match_removing_each_feature():
    gen = torch.Generator().manual_seed(0)
    sae = SAE(8, 12, 1, pre_encoder_bias=True, generator=gen)
    with torch.no_grad():
        sae.b_enc.add_(0.2)
    x = torch.randn(50, 8, generator=gen)
    eff = sweep.ablation_effects(sae, 0, x)
    from shared.sae_eval import decode_instance, encode_instance

    sae.requires_grad_(False)
    f = encode_instance(sae, x, 0)
    base = (x - decode_instance(sae, f, 0)).pow(2).sum(-1).mean()
    for j in (0, 5, 11):
        g = f.clone()
        g[:, j] = 0
        without = (x - decode_instance(sae, g, 0)).pow(2).sum(-1).mean()
        assert float(eff[j]) == pytest.approx(float(without - base), rel=1e-4, abs=1e-6)


def test_compare_codes_on_an_orthogonal_dictionary():
    """With orthonormal atoms and codes the encoder reads exactly, ITO at the encoder's L0
    finds the same codes: every strong activation agrees and the scatter is the diagonal."""
    torch.manual_seed(0)
    d = 16
    sae = SAE(d, d, 1, pre_encoder_bias=True)
    with torch.no_grad():
        sae.W_dec[0].copy_(torch.eye(d))
        sae.W_enc[0].copy_(torch.eye(d))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    codes = torch.rand(200, d) * (torch.rand(200, d) < 0.2)
    cfg = dataclasses.replace(C.load("smoke").ito, min_fires=3)
    stats, tensors = ito_study.compare_codes(sae, codes, cfg)
    assert stats["p_ito_fires_strong"] == pytest.approx(1.0)
    assert stats["p_ito_fires_weak"] == pytest.approx(1.0)
    assert torch.allclose(tensors["scatter"][:, 0], tensors["scatter"][:, 1], atol=1e-5)
    assert stats["min_active_median"]["ito"] == pytest.approx(stats["min_active_median"]["encoder"],
                                                              rel=1e-4)


def _summary(curves):
    return {"methods": {m: {"l0": l0, "loss_recovered": lr, "dead_fraction": [0.0] * len(l0)}
                        for m, (l0, lr) in curves.items()}}


def test_ghost_and_k_metrics_on_planted_curves():
    cfg = C.load("default")
    l0 = [5.0, 10.0, 20.0, 40.0]

    def up(delta):
        return (l0, [0.6 + 0.05 * i + delta for i in range(4)])

    neurons = _summary({"plain": up(-0.1), "resampling": up(0.05), "ghost_original": up(-0.05),
                        "ghost_rescaled": up(0.0), "ghost_dead_only": up(0.01)})
    outputs = _summary({"plain": up(-0.1), "resampling": up(0.0), "ghost_original": up(-0.05),
                        "ghost_rescaled": up(0.02), "ghost_dead_only": up(0.02),
                        "ghost_original_k1": up(-0.03), "ghost_original_k2": up(-0.01),
                        "ghost_rescaled_k1": up(0.02), "ghost_rescaled_k2": up(0.025)})
    sweeps = {"mlp_neurons": neurons, "mlp_outputs": outputs}
    g = analysis.ghost_metrics(cfg, sweeps)
    assert g["rescaled_vs_original_min"] == pytest.approx(0.05)
    assert g["dead_only_vs_original_min"] == pytest.approx(0.06)
    assert g["rescaled_vs_plain_min"] == pytest.approx(0.1)
    assert g["rescaled_vs_resampling_max_abs"] == pytest.approx(0.05)
    assert g["site_effect"] == pytest.approx(0.05 - (-0.02))
    k = analysis.k_metrics(cfg, sweeps)
    assert k["original_k_effect"] == pytest.approx(0.04)
    assert k["original_k_monotone_min"] == pytest.approx(0.02)
    assert k["rescaled_k_effect_abs"] == pytest.approx(0.005)
    assert k["k_effect_difference"] == pytest.approx(0.035)


def test_ito_metrics_on_a_planted_study():
    targets = [2, 4, 8]

    def d(enc_l0, enc_lr, ito_lr, matched):
        return {"l1": 1.0, "targets": targets, "ito_l0": [2.0, 4.0, 8.0], "ito_lr": ito_lr,
                "topk_l0": [2.0, 4.0, 8.0], "topk_lr": [x - 0.05 for x in ito_lr],
                "encoder_l0": enc_l0, "encoder_lr": enc_lr, "matched_ito_lr": matched,
                "matched_ito_l0": enc_l0}

    ito = {"dictionaries": [d(7.0, 0.7, [0.6, 0.75, 0.9], 0.8), d(3.0, 0.5, [0.55, 0.65, 0.75], 0.6)],
           "random": {"ito_l0": [2.0, 4.0, 8.0], "ito_lr": [0.1, 0.15, 0.2]},
           "codes": {"p_ito_fires_strong": 0.9, "p_ito_fires_weak": 0.4, "corr_strong": 0.8,
                     "corr_weak": 0.1, "min_active_median": {"encoder": 0.1, "ito": 0.5}}}
    m = analysis.ito_metrics(ito)
    assert m["matched_gain_min"] == pytest.approx(0.1)
    assert m["high_l0_dictionary"] == 0
    assert m["high_l0_margin_lowest_target"] == pytest.approx(0.05)
    assert m["random_gap_min"] == pytest.approx(0.5)
    # Top-k of the high-L0 dictionary at L0 3 (interpolated in log L0) vs the low-L0 encoder.
    expect = 0.55 + (0.70 - 0.55) * math.log(3 / 2) / math.log(2) - 0.5
    assert m["topk_high_l0_vs_low_l0_encoder"] == pytest.approx(expect)
    assert m["strong_minus_weak"] == pytest.approx(0.5) and m["min_active_ratio"] == pytest.approx(5.0)


def test_reads_the_monosemanticity_stand_in_as_declared():
    from replications.monosemanticity import config as mono_config
    from shared import pipeline

    for profile in ("smoke", "default", "paper"):
        mono, saem = mono_config.load(profile), C.load(profile)
        stand_in = mono.model.source == "stand_in"
        assert (saem.model.source == "stand_in") == stand_in, profile
        lm = pipeline.handoff(profile, "sae_methods", "monosemanticity", "lm", stand_in)
        if stand_in:
            # The sites' widths are the stand-in's: d_mlp for neurons, d_model for outputs.
            widths = {s.hook: s.d_in for s in saem.sites}
            assert widths["blocks.0.mlp.hook_post"] == mono.lm.model.d_mlp
            assert widths["blocks.0.hook_mlp_out"] == mono.lm.model.d_model
        else:
            assert lm.spec == "gelu-1l"
            assert {s.model for s in saem.sites} == {"gelu-1l", "EleutherAI/pythia-2.8b"}
    assert pipeline.manifest("sae_methods").models == ("gelu-1l-stand-in",)

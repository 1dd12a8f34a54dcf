"""Monosemanticity analyses detect what is planted in synthetic SAEs; plots render."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from replications.monosemanticity import analysis as A
from replications.monosemanticity import analysis_results as AR
from replications.monosemanticity import case_studies as C
from replications.monosemanticity import neuron_basis as NB
from replications.monosemanticity import plots as P
from shared.sae import SAE

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_thread")]

SETTINGS = A.AnalysisSettings(
    ultra_low_threshold=1e-4, cluster_cosine_threshold=0.95, dense_max_fve_top_10=0.35,
    one_sparse_min_fve_top_1=0.35, one_sparse_max_fve_next_9=0.1, n_random_baseline=4000,
    n_singular_directions=8, seed=0,
)
# Wide enough that Gaussian rows count as dense (top-10 neurons hold < 35% of the norm).
D_MLP, D_MODEL = 256, 64
CASE = C.CaseStudySettings(
    n_features=3, min_activations=2, n_contexts=4, window_before=5, window_after=2,
    n_logit_tokens=4, batch_size=7, exclude_first_position=True,
)


@dataclasses.dataclass(frozen=True)
class Planted:
    weights: A.SAEWeights
    freqs: torch.Tensor
    role: torch.Tensor  # 0 normal dense, 1 one-sparse, 2 ten-sparse, 3 ultra-low, 4 dead
    direction: torch.Tensor  # the ultra-low encoder direction
    n_tokens: int


def planted_sae(d_in: int, d_sae: int, seed: int, direction: torch.Tensor | None = None) -> Planted:
    """An SAE with a planted ultra-low cluster (one shared encoder direction, random decoder
    rows), 1-sparse / 10-sparse / dense decoder rows, encoder = 0.5 decoder + orthogonal noise."""
    g = torch.Generator().manual_seed(seed)
    role = torch.tensor([0] * 6 + [1] * 2 + [2] * 2 + [3] * 9 + [4] * 1).repeat(d_sae // 20)
    role = role[torch.randperm(len(role), generator=g)]
    n = len(role)
    dec = torch.randn(n, d_in, generator=g)
    one = role == 1
    dec[one] = 0.05 * dec[one] / math.sqrt(d_in)
    dec[one, torch.randint(0, d_in, (int(one.sum()),), generator=g)] = 1.0
    ten = (role == 2).nonzero().flatten()
    dec[ten] = 0.02 * dec[ten] / math.sqrt(d_in)
    for i in ten.tolist():  # test setup only: ten random neurons of equal weight
        dec[i, torch.randperm(d_in, generator=g)[:10]] += 1.0
    dec = A._unit(dec)
    noise = A._unit(torch.randn(n, d_in, generator=g))
    noise = A._unit(noise - (noise * dec).sum(-1, keepdim=True) * dec)
    enc = 0.5 * dec + math.sqrt(0.75) * noise  # cosine 0.5 with the decoder row
    u = A._unit(torch.randn(d_in, generator=g)) if direction is None else A._unit(direction)
    ul = role == 3
    mags = torch.where(torch.rand(int(ul.sum()), generator=g) < 0.5, 0.5, 1.0)
    jitter = 0.02 * torch.randn(int(ul.sum()), d_in, generator=g) / math.sqrt(d_in)
    enc[ul] = mags[:, None] * u + jitter
    n_tokens = 10**6
    freqs = 10 ** (-3.5 + 2.5 * torch.rand(n, generator=g))
    freqs[ul] = 10 ** (-5.5 + 1.2 * torch.rand(int(ul.sum()), generator=g))
    freqs[role == 4] = 0.0
    freqs = torch.round(freqs * n_tokens) / n_tokens
    b_enc = torch.where(ul, -0.2, 0.0)  # the cluster stays off on small inputs
    weights = A.SAEWeights(enc.T.contiguous(), dec, b_enc, torch.zeros(d_in), True)
    return Planted(weights, freqs, role, u, n_tokens)


@pytest.fixture(scope="module")
def planted() -> Planted:
    return planted_sae(d_in=D_MLP, d_sae=400, seed=1)


@pytest.fixture(scope="module")
def W_out() -> torch.Tensor:
    return torch.randn(D_MLP, D_MODEL, generator=torch.Generator().manual_seed(2))


def test_frequency_split(planted):
    fr = A.frequency_summary(planted.freqs, planted.n_tokens, 1e-4)
    assert torch.equal(fr.dead, planted.role == 4)
    assert torch.equal(fr.ultra_low, planted.role == 3)
    assert fr.dead_fraction == pytest.approx(1 / 20)
    assert fr.ultra_low_fraction == pytest.approx(9 / 20)
    assert fr.log10_freqs.numel() == int((planted.role != 4).sum())


def test_planted_cluster_is_one_encoder_direction_not_one_decoder_direction(planted):
    cl = A.ultra_low_cluster(planted.weights, planted.role == 3, SETTINGS)
    assert cl.n == int((planted.role == 3).sum())
    assert cl.cos_gt_share == 1.0
    assert A.direction_cosine(cl.mean_direction, planted.direction) > 0.999
    assert cl.enc_spectrum[0] > 0.99
    assert cl.dec_spectrum[0] < 0.2  # random unit decoder rows
    assert set(np.round(cl.projections.numpy(), 1)) <= {0.5, 1.0}  # the planted magnitudes
    for shape in ((30, 8), (8, 30)):  # the Gram shortcut agrees with an SVD either way round
        v = torch.randn(shape, dtype=torch.float64)
        s2 = torch.linalg.svdvals(v).pow(2)
        assert torch.allclose(A.singular_fve(v, 3), (s2 / s2.sum())[:3])
    empty = A.ultra_low_cluster(planted.weights, torch.zeros_like(planted.role, dtype=torch.bool),
                                SETTINGS)
    assert empty.n == 0 and math.isnan(empty.cos_gt_share) and torch.isnan(empty.enc_spectrum).all()


def test_seed_cosine_of_shared_and_orthogonal_directions(planted):
    other = planted_sae(D_MLP, 400, seed=7, direction=planted.direction)
    a = A.ultra_low_cluster(planted.weights, planted.role == 3, SETTINGS).mean_direction
    b = A.ultra_low_cluster(other.weights, other.role == 3, SETTINGS).mean_direction
    assert A.direction_cosine(a, b) > 0.999
    assert A.direction_cosine(torch.tensor([1.0, 0]), torch.tensor([0.0, 3])) == 0.0


@pytest.mark.parametrize("shape", ["shared", "per_instance"])
def test_orthogonalise_removes_the_direction(shape):
    sae = SAE(32, 50, n_instances=2, generator=torch.Generator().manual_seed(0))
    u = torch.randn(2, 32, generator=torch.Generator().manual_seed(1))
    direction = u[0] * 3 if shape == "shared" else u
    A.orthogonalise_(sae, direction)
    unit = A._unit(direction if direction.ndim == 2 else direction.expand(2, -1))
    enc_along = torch.einsum("idf,id->if", sae.W_enc, unit)
    dec_along = torch.einsum("ifd,id->if", sae.W_dec, unit)
    assert enc_along.abs().max() < 1e-6 and dec_along.abs().max() < 1e-6
    assert torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(2, 50), atol=1e-5)


def test_orthogonal_retrain_finds_the_new_cluster(planted):
    old = planted.direction
    new_dir = A._unit(torch.randn(D_MLP, generator=torch.Generator().manual_seed(5)))
    new_dir = A._unit(new_dir - (new_dir @ old) * old)
    other = planted_sae(D_MLP, 400, seed=3, direction=new_dir)
    sae = SAE(D_MLP, 400)
    with torch.no_grad():
        sae.W_enc[0] = other.weights.W_enc
        sae.W_dec[0] = other.weights.W_dec
    A.orthogonalise_(sae, old)
    fr = A.frequency_summary(other.freqs, other.n_tokens, 1e-4)
    res = A.orthogonal_retrain_analysis(old, A.SAEWeights.from_sae(sae, 0), fr, SETTINGS)
    assert res.frequencies.ultra_low_fraction == pytest.approx(9 / 20)
    assert res.cluster.cos_gt_share == 1.0
    assert abs(res.old_vs_new_mean_cosine) < 1e-6 and res.max_abs_enc_cos_with_old < 1e-5
    assert A.direction_cosine(res.cluster.mean_direction, new_dir) > 0.999


def test_neuron_sparsity_classes(planted):
    sp = NB.neuron_sparsity(planted.weights.W_dec, SETTINGS)
    role = planted.role
    assert torch.equal(sp.classes[role == 1], torch.full_like(sp.classes[role == 1], A.ONE_SPARSE))
    assert torch.equal(sp.classes[role == 2], torch.full_like(sp.classes[role == 2], A.TEN_SPARSE))
    assert torch.equal(sp.classes[role == 0], torch.full_like(sp.classes[role == 0], A.DENSE))
    assert (sp.fve_top_1[role == 1] > 0.99).all()
    assert torch.allclose(sp.fve_top_10[role == 2], torch.ones(int((role == 2).sum()),
                                                              dtype=torch.float64), atol=0.01)
    # Hand-made rows at the boundaries.
    rows = torch.zeros(3, 20, dtype=torch.float64)
    rows[0] = 1.0  # flat: fve_top_10 = 0.5 -> not dense, top-1 0.05 -> 10-ish-sparse
    rows[1, 0], rows[1, 1:] = 0.7**0.5, (0.3 / 19) ** 0.5  # top-1 0.7, next-9 ~0.14 -> 10-ish
    rows[2, 0], rows[2, 1:] = 0.9**0.5, (0.1 / 19) ** 0.5  # top-1 0.9, next-9 ~0.047 -> 1-sparse
    assert NB.neuron_sparsity(rows, SETTINGS).classes.tolist() == [A.TEN_SPARSE, A.TEN_SPARSE,
                                                                  A.ONE_SPARSE]


def test_kurtosis_gaussian_zero_sparse_large():
    from scipy.stats import kurtosis

    g = torch.randn(1000, 512, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    k = NB.excess_kurtosis(g)
    assert abs(float(k.median())) < 0.05
    assert np.allclose(k.numpy(), kurtosis(g.numpy(), axis=-1, fisher=True, bias=True))
    one_hot = torch.zeros(1, 512)
    one_hot[0, 3] = 1
    assert NB.excess_kurtosis(one_hot)[0] > 400
    cmp = NB.kurtosis_comparison(g[:100], seed=0)
    assert cmp.gaussian.shape == (100,) and abs(float(cmp.gaussian.median())) < 0.1


def test_encoder_decoder_cosine_planted(planted):
    cos = NB.encoder_decoder_cosine(planted.weights)[planted.role < 3]
    assert torch.allclose(cos, torch.full_like(cos, 0.5), atol=1e-5)


def test_nullspace_shares(W_out):
    basis = NB.row_space_basis(W_out)
    assert basis.shape == (D_MLP, D_MODEL)
    in_row_space = torch.randn(10, D_MODEL, dtype=torch.float64) @ basis.T
    assert torch.allclose(NB.nullspace_share(in_row_space, W_out),
                          torch.zeros(10, dtype=torch.float64), atol=1e-10)
    null = torch.randn(10, D_MLP, dtype=torch.float64)
    null = null - (null @ basis) @ basis.T
    assert torch.allclose((null @ W_out.double()), torch.zeros(10, D_MODEL, dtype=torch.float64),
                          atol=1e-10)
    assert torch.allclose(NB.nullspace_share(null, W_out), torch.ones(10, dtype=torch.float64))
    mean, std = NB.random_nullspace_moments(2048, 512)
    assert mean == 0.75 and std == pytest.approx(0.0135, abs=3e-4)  # write-up: 0.75, 0.013


def test_random_baseline_matches_theory(planted, W_out):
    ns = NB.nullspace_comparison(planted.weights, torch.arange(10), W_out, SETTINGS)
    mean, std = NB.random_nullspace_moments(D_MLP, D_MODEL)
    assert ns.rank == D_MODEL and ns.expected_random_mean == (D_MLP - D_MODEL) / D_MLP
    assert float(ns.random.mean()) == pytest.approx(mean, abs=0.005)
    assert float(ns.random.std()) == pytest.approx(std, rel=0.08)


def test_bimodality_coefficient_separates_one_mode_from_two():
    from scipy.stats import kurtosis, skew

    g = torch.Generator().manual_seed(0)
    # The plausible wrong result: one Gaussian mode around 0.5 (BC ~ 1/3).
    one_mode = 0.5 + 0.1 * torch.randn(4000, generator=g, dtype=torch.float64)
    assert NB.bimodality_coefficient(one_mode) < NB.BIMODALITY_THRESHOLD
    # The write-up's shape: a big mode at 0.5 and a smaller one at 0.75.
    two_modes = torch.cat([0.5 + 0.04 * torch.randn(3000, generator=g, dtype=torch.float64),
                           0.75 + 0.04 * torch.randn(1500, generator=g, dtype=torch.float64)])
    bc = NB.bimodality_coefficient(two_modes)
    assert bc > NB.BIMODALITY_THRESHOLD
    x = two_modes.numpy()
    n = len(x)
    g1, k1 = skew(x, bias=False), kurtosis(x, bias=False)
    assert bc == pytest.approx((g1**2 + 1) / (k1 + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))
    assert math.isnan(NB.bimodality_coefficient(torch.ones(3)))


def test_outside_baseline_share():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(20000, generator=g, dtype=torch.float64)
    # Values drawn like the baseline: about 1% outside its central 99%.
    like = torch.randn(20000, generator=g, dtype=torch.float64)
    assert NB.outside_baseline_share(like, base) == pytest.approx(0.01, abs=0.004)
    # Twice the spread: |z| > 2.576 / 2, about 20% outside.
    wide = 2 * torch.randn(20000, generator=g, dtype=torch.float64)
    assert NB.outside_baseline_share(wide, base) == pytest.approx(0.198, abs=0.02)
    assert math.isnan(NB.outside_baseline_share(torch.ones(0), base))


def test_streaming_topk_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    acts = torch.relu(torch.randn(23, 9, 5, generator=g))
    acts[:, 0] += 10  # position 0 (BOS) would win everything if not excluded
    topk = C.StreamingTopK(5, 6)
    for start in range(0, 23, 4):
        topk.update(acts[start:start + 4], start, exclude_first_position=True)
    res = topk.result()
    per_seq, where = acts[:, 1:].max(dim=1)  # [seq, feat]
    want = per_seq.T.topk(6, dim=1)
    assert torch.equal(res.values, want.values)
    assert torch.equal(res.seq, want.indices)
    assert torch.equal(res.pos, where.T.gather(1, want.indices) + 1)
    few = C.StreamingTopK(5, 6)
    few.update(acts[:2], 0, exclude_first_position=False)
    assert torch.isinf(few.result().values[:, 2:]).all() and (few.result().seq[:, 2:] == -1).all()


@pytest.fixture(scope="module")
def tiny_model():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=1, d_model=16, d_mlp=D_MLP, d_head=4, n_heads=4,
                                  n_ctx=12, d_vocab=40, act_fn="gelu", normalization_type="LN",
                                  seed=0)
    return HookedTransformer(cfg).eval()


def test_case_studies_on_a_tiny_model(tiny_model, planted):
    tokens = torch.randint(0, 40, (30, 12), generator=torch.Generator().manual_seed(0))
    acts_fn = A.hooked_acts_fn(tiny_model, "blocks.0.mlp.hook_post")
    weights = dataclasses.replace(planted.weights, b_dec=0.1 * torch.randn(D_MLP))
    fr = A.frequency_summary(planted.freqs, planted.n_tokens, 1e-4)
    feats = C.select_case_features(fr, CASE)
    assert feats.tolist() == (planted.role < 3).nonzero().flatten()[:3].tolist()
    W_out, W_U = tiny_model.blocks[0].mlp.W_out.detach(), tiny_model.W_U.detach()
    cases = C.case_studies(weights, fr, feats, tokens, acts_fn, W_out, W_U,
                           tiny_model.ln_final.w.detach(), CASE, SETTINGS)
    full = A.feature_encoder(weights, feats)(acts_fn(tokens))  # [seq, pos, feat] brute force
    for i, case in enumerate(cases):
        per_seq = full[:, 1:, i].max(dim=1).values
        assert torch.allclose(case.max_acts, per_seq.topk(CASE.n_contexts).values)
        # The window's centre token is the max-activating one, and windows copy the tokens.
        assert torch.allclose(case.context_acts[:, case.centre], case.max_acts)
        width = CASE.window_before + 1 + CASE.window_after
        assert case.context_tokens.shape == (CASE.n_contexts, width)
    # Direct logit effects: top tokens agree with an explicit computation.
    d = weights.W_dec[feats[0]].double() @ W_out.double()
    eff = ((d - d.mean()) * tiny_model.ln_final.w.double()) @ W_U.double()
    assert cases[0].top_token_ids.tolist() == eff.topk(CASE.n_logit_tokens).indices.tolist()
    assert cases[0].bottom_token_ids.tolist() == (-eff).topk(CASE.n_logit_tokens).indices.tolist()


def test_context_windows_pad_outside_the_sequence():
    tokens = torch.arange(20).reshape(2, 10)
    topk = C.TopK(values=torch.tensor([[2.0, 1.0]]), seq=torch.tensor([[1, 0]]),
                  pos=torch.tensor([[1, 9]]))
    acts_fn = lambda t: t.float()[..., None]  # noqa: E731 - activation = token id
    ctx = C.context_windows(tokens, topk, acts_fn, lambda x: x, CASE)
    assert ctx.tokens[0, 0].tolist() == [-1, -1, -1, -1, 10, 11, 12, 13]
    assert ctx.tokens[0, 1].tolist() == [4, 5, 6, 7, 8, 9, -1, -1]
    assert ctx.acts[0, 1, ctx.centre] == 9.0


def test_logit_effects_find_the_planted_token():
    W_U = torch.eye(6)
    W_out = torch.zeros(4, 6)
    W_out[2, 5], W_out[2, 1] = 1.0, -1.0  # neuron 2 writes token 5 up, token 1 down
    eff = C.logit_effects(torch.eye(4)[[2]], W_out, W_U, None)
    assert int(eff.argmax()) == 5 and int(eff.argmin()) == 1
    assert abs(float(eff.sum())) < 1e-9


def test_max_cofiring_finds_the_planted_token(planted):
    cluster = planted.role == 3
    tokens = torch.zeros(3, 5, dtype=torch.long)

    def acts_fn(t: torch.Tensor) -> torch.Tensor:
        x = 0.01 * torch.randn(t.shape[0], 5, D_MLP, generator=torch.Generator().manual_seed(0))
        if t.shape[0] > 1:
            x[1, 3] = 5 * planted.direction  # sequence 1, position 3: along the cluster direction
        return x

    share, seq, pos = A.max_cluster_cofiring(tokens, acts_fn, planted.weights, cluster,
                                             batch_size=3)
    assert share == 1.0 and (seq, pos) == (1, 3)


def test_summary_metrics_keys(planted, W_out):
    weights = dataclasses.replace(planted.weights)
    fr = A.frequency_summary(planted.freqs, planted.n_tokens, 1e-4)
    res = AR.analyse_sae(weights, fr, W_out, SETTINGS)
    m = AR.summary_metrics(res, seed_mean_cosine=0.9, orthogonal=None, cofiring=None)
    for key in ("ultra_low_fraction", "dead_fraction", "ultra_low_cos_gt_095_share",
                "ultra_low_decoder_top_sv_fve", "seed_mean_cosine",
                "orthogonal_retrain_ultra_low_fraction", "orthogonal_new_vs_old_mean_cosine",
                "dense_share", "one_sparse_share", "ten_sparse_share", "median_kurtosis",
                "median_gaussian_kurtosis", "kurtosis_excess_over_gaussian",
                "median_enc_dec_cosine", "nullspace_share_mean_enc", "nullspace_share_mean_dec",
                "nullspace_random_mean", "nullspace_random_std", "nullspace_std_ratio_dec",
                "enc_dec_cosine_bimodality", "nullspace_outside_random_p99_share_dec",
                "kurtosis_above_gaussian_p99_share", "max_kurtosis",
                "log10_frequency_bimodality"):
        assert key in m, key
    assert all("." not in k and isinstance(v, float) for k, v in m.items())
    assert m["ultra_low_cos_gt_095_share"] == 1.0
    assert m["median_enc_dec_cosine"] == pytest.approx(0.5)
    assert m["dense_share"] == pytest.approx(6 / 10) and m["one_sparse_share"] == pytest.approx(0.2)
    # Planted: an ultra-low block (10^-5.5..10^-4.3) apart from the normal one (10^-3.5..10^-1).
    assert m["log10_frequency_bimodality"] > 5 / 9


def test_frequency_bimodality_unimodal_baseline(planted, W_out):
    """One log-normal mode of frequencies stays below the bimodality threshold (5/9)."""
    g = torch.Generator().manual_seed(3)
    freqs = 10 ** (-2.0 + 0.5 * torch.randn(planted.freqs.numel(), generator=g)).double()
    fr = A.frequency_summary(freqs, planted.n_tokens, 1e-4)
    res = AR.analyse_sae(dataclasses.replace(planted.weights), fr, W_out, SETTINGS)
    m = AR.summary_metrics(res, seed_mean_cosine=0.9, orthogonal=None, cofiring=None)
    assert m["log10_frequency_bimodality"] < 5 / 9


def test_escape_token():
    assert P.escape_token(" the\n", 10) == "·the↵"
    assert P.escape_token("\t$x$\x01", 10) == "⇥$x$\\x01"
    assert P.escape_token("abcdefghijkl", 5) == "abcd…"
    assert P.escape_token("", 5) == "∅"


def test_plots_render(planted, W_out):
    import matplotlib.pyplot as plt

    fr = A.frequency_summary(planted.freqs, planted.n_tokens, 1e-4)
    res = AR.analyse_sae(planted.weights, fr, W_out, SETTINGS)
    orth = A.orthogonal_retrain_analysis(res.cluster.mean_direction, planted.weights, fr, SETTINGS)
    case = C.CaseStudy(
        feature=3, frequency=1e-3, label="dense", context_tokens=torch.tensor([[1, 2, -1]]),
        context_acts=torch.tensor([[0.5, 1.0, 0.0]]), max_acts=torch.tensor([1.0]), centre=1,
        top_token_ids=torch.tensor([1, 2]), top_token_effects=torch.tensor([1.0, 0.5]),
        bottom_token_ids=torch.tensor([0, 3]), bottom_token_effects=torch.tensor([-1.0, -0.5]),
    )
    figs = [
        P.plot_frequency_histogram(fr),
        P.plot_ultra_low_cluster(res.cluster, 0.9),
        P.plot_orthogonal_retrain(fr, res.cluster, orth),
        P.plot_neuron_sparsity(res.sparsity),
        P.plot_kurtosis(res.kurtosis, 0.98),
        P.plot_enc_dec_cosine(res.enc_dec_cosine),
        P.plot_nullspace(res.nullspace),
        P.plot_case_studies([case], lambda t: [" a", "$b", "\n", "c"][t], 12, 7.0),
    ]
    for fig in figs:
        assert isinstance(fig, plt.Figure) and fig.axes
        plt.close(fig)

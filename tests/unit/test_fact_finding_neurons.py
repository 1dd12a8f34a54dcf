"""The neuron analyses' arithmetic on hand-made tensors (no model): non-linear excess, the GELU
share of it, ROC AUC, orthogonal remainders, the name grid and the parallelogram test."""

import dataclasses
import math
import types

import pytest
import torch
from sklearn.metrics import roc_auc_score

from replications.fact_finding import config
from replications.fact_finding import neuron_facts as NF
from replications.fact_finding import neuron_lookup as NL
from replications.fact_finding import neurons as N
from replications.fact_finding import selective_neuron as SN
from replications.fact_finding.facts import FactPrompts
from shared.config import ConfigError

pytestmark = pytest.mark.unit


def brute_excess(grid, a, b):
    n_f, n_s = grid.shape[:2]
    fs, ss = torch.arange(n_f), torch.arange(n_s)
    not_a, not_b = fs != a, ss != b
    return (grid[a, b] - grid[not_a, b].mean(0) - grid[a, not_b].mean(0)
            + grid[not_a][:, not_b].mean((0, 1)))


def test_nonlinear_excess_matches_definition_and_sign():
    gen = torch.Generator().manual_seed(0)
    grid = torch.randn(5, 4, 3, 2, generator=gen)
    first, last = torch.tensor([0, 4, 2]), torch.tensor([3, 0, 1])
    got = NL.nonlinear_excess(grid, first, last)
    for p in range(3):
        assert torch.allclose(got[p], brute_excess(grid, first[p], last[p]), atol=1e-6)
    # additive in the two tokens: zero; AND: +1; OR: -1 (post 3's worked values)
    u, v = torch.randn(5, generator=gen), torch.randn(4, generator=gen)
    additive = u[:, None] + v[None, :]
    assert NL.nonlinear_excess(additive, first, last).abs().max() < 1e-5
    fi, si = torch.arange(5)[:, None], torch.arange(4)[None, :]
    a_and_b = ((fi == 2) & (si == 1)).float()
    a_or_b = ((fi == 2) | (si == 1)).float()
    one = (torch.tensor([2]), torch.tensor([1]))
    assert float(NL.nonlinear_excess(a_and_b, *one)) == pytest.approx(1.0)
    assert float(NL.nonlinear_excess(a_or_b, *one)) == pytest.approx(-1.0)


def test_excess_ratio_separates_gelu_ands_from_boosted_ones():
    """Neuron 0 computes the AND with its non-linearity (ReLU(is_A + is_B - 1)): all of its
    excess is the GELU's. Neuron 1 only boosts an AND made upstream (its input already has it):
    none is. Post 3 counts the first and not the second."""
    fi, si = torch.arange(3)[:, None], torch.arange(3)[None, :]
    is_a, is_b = (fi == 0).float(), (si == 0).float()
    pre0 = is_a + is_b - 1
    post0 = pre0.clamp_min(0)  # = the AND
    pre1 = post1 = 3 * (is_a * is_b)
    pre = torch.stack([pre0, pre1], -1)[:, :, None]  # [f, s, layer=1, neuron=2]
    post = torch.stack([post0, post1], -1)[:, :, None]
    direct = torch.tensor([[[2.0, 1.0]], [[0.5, 0.5]]])  # [answers, layer, neuron]
    first, last, label = torch.tensor([0]), torch.tensor([0]), torch.tensor([0])
    res = NL.excess_ratio(pre, post, first, last, label, direct)
    assert float(res.gelu_part) == pytest.approx(2.0)  # 1 x direct effect 2
    assert float(res.total) == pytest.approx(2.0 + 3.0)  # 1 x 2 + 3 x 1
    assert float(res.ratio()) == pytest.approx(0.4)
    assert float(res.kept_fraction) == pytest.approx(0.5)
    # with the other answer's direction the same excess is weighted by 0.5
    res_b = NL.excess_ratio(pre, post, first, last, torch.tensor([1]), direct)
    assert float(res_b.total) == pytest.approx(0.5 * 4)


def test_roc_auc_matches_sklearn_with_ties():
    gen = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 5, (40, 3), generator=gen).float()
    positive = torch.rand(40, generator=gen) < 0.4
    got = SN.roc_auc(scores, positive)
    for j in range(3):
        assert float(got[j]) == pytest.approx(roc_auc_score(positive.numpy(), scores[:, j]),
                                              abs=1e-6)
    with pytest.raises(ValueError):
        SN.roc_auc(scores, torch.zeros(40, dtype=torch.bool))


def test_orthogonal_remainders_are_orthogonal_to_the_rest_of_their_group():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 10, generator=gen)
    r = SN.orthogonal_remainders(x, 8, torch.Generator().manual_seed(0))  # one group
    for i in range(6):
        others = torch.cat([x[:i], x[i + 1:]])
        sol = torch.linalg.lstsq(others.T.double(), x[i].double()).solution
        want = x[i].double() - others.T.double() @ sol
        assert torch.allclose(r[i].double(), want, atol=1e-4)
    # groups of at most max_span + 1 rows: each row is orthogonal to 2 others only
    x = torch.randn(9, 10, generator=gen)
    r = SN.orthogonal_remainders(x, 2, torch.Generator().manual_seed(0))
    dots = (r @ x.T).abs() < 1e-4
    assert (dots.sum(1) == 2).all()  # its own group's other two rows
    assert (r * x).sum(1).gt(0).all()  # the remainder keeps part of the row itself
    with pytest.raises(ValueError):
        SN.orthogonal_remainders(x, 10, torch.Generator())


def test_orthogonal_to_and_cosine():
    v = torch.tensor([1.0, 2.0, 3.0])
    w = SN.orthogonal_to(v, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
    assert torch.allclose(w, torch.tensor([0.0, -0.5, 0.5]), atol=1e-6)
    assert SN.cosine(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])) == pytest.approx(0.5**0.5)


def fake_known() -> tuple[FactPrompts, dict]:
    """Known people on a 4 x 3 name space; tokens: [BOS, Fact, first, last, tail, tail]."""
    firsts, lasts = ["Ann", "Bob", "Cy", "Di"], ["Ray", "Sue", "Tom"]
    people = [("Ann", "Ray", 0), ("Ann", "Sue", 1), ("Bob", "Ray", 2), ("Cy", "Tom", 0),
              ("Di", "Sue", 1), ("Bob", "Tom", 0)]
    toks = torch.tensor([[1, 2, 10 + firsts.index(f), 20 + lasts.index(s), 5, 6]
                         for f, s, _ in people])
    known = FactPrompts(relation="sport", names=tuple(f"{f} {s}" for f, s, _ in people),
                        tokens=toks, labels=torch.tensor([x for _, _, x in people]),
                        answers=("baseball", "basketball", "football"),
                        answer_ids=torch.tensor([30, 31, 32]), first_pos=2, last_pos=3,
                        final_pos=5)
    facts = {"unknown_names": [["Ann", "Tom"], ["Cy", "Ray"], ["Cy", "Sue"], ["Di", "Ray"],
                               ["Zed", "Ray"], ["Ann", "Ray"]]}
    return known, facts


def test_name_grid_rows_tokens_and_unknown_names():
    known, facts = fake_known()
    grid = N.name_grid(known, facts, max_names=10)
    assert grid.firsts == ("Ann", "Bob", "Cy", "Di") and grid.lasts == ("Ray", "Sue", "Tom")
    # commonest first: Ann and Bob (2 each) before Cy, Di; Ray, Sue, Tom twice each
    for p in range(len(known)):
        row = grid.row(grid.known_first[p], grid.known_last[p])
        assert torch.equal(grid.tokens[row], known.tokens[p])
    assert torch.equal(grid.known_label, known.labels)
    assert int(grid.unknown.sum()) == 4  # Zed is outside the grid; Ann Ray is known
    assert bool(grid.unknown[0, 2]) and not bool(grid.unknown[0, 0])
    small = N.name_grid(known, facts, max_names=3)
    assert small.firsts == ("Ann", "Bob", "Cy") and len(small.known_first) == 5


def test_parallelogram_pairs_and_ratio():
    known, facts = fake_known()
    grid = N.name_grid(known, facts, max_names=10)
    pairs = NL.parallelogram_pairs(grid, grid.known_first, grid.known_last, 50,
                                  torch.Generator().manual_seed(0))
    n_l = len(grid.lasts)
    for a, b, c, d in zip(pairs.a, pairs.b, pairs.c, pairs.d):
        fa, la, fb, lb = a // n_l, a % n_l, b // n_l, b % n_l
        assert fa != fb and la != lb
        assert int(c) == fa * n_l + lb and int(d) == fb * n_l + la
        assert bool(grid.unknown.flatten()[c]) and bool(grid.unknown.flatten()[d])
    assert pairs.n_candidates == len(pairs.a) >= 2
    assert grid.unknown.flatten()[pairs.c_rand].all()
    gen = torch.Generator().manual_seed(3)
    u, v = torch.randn(4, 2, 8, generator=gen), torch.randn(3, 2, 8, generator=gen)
    linear = (u[:, None] + v[None, :]).reshape(12, 2, 8)
    ratio = NL.parallelogram_ratio(linear, pairs)
    assert ratio.shape == (len(pairs.a), 2) and ratio.max() < 1e-5
    assert NL.parallelogram_ratio(torch.randn(12, 2, 8, generator=gen), pairs).min() > 0.05


def test_shuffled_mlps_permutes_entries_and_restores():
    torch.manual_seed(0)
    mlp = types.SimpleNamespace(**{n: torch.nn.Parameter(torch.randn(*s)) for n, s in
                                   [("W_in", (4, 6)), ("b_in", (6,)), ("W_out", (6, 4)),
                                    ("b_out", (4,))]})
    model = types.SimpleNamespace(blocks=[types.SimpleNamespace(mlp=mlp)])
    before = {n: getattr(mlp, n).detach().clone() for n in ("W_in", "b_in", "W_out", "b_out")}
    with NL.shuffled_mlps(model, [0], seed=0):
        for n, w in before.items():
            now = getattr(mlp, n).detach()
            assert not torch.equal(now, w)
            assert torch.equal(now.flatten().sort().values, w.flatten().sort().values)
    for n, w in before.items():
        assert torch.equal(getattr(mlp, n).detach(), w)


def test_replacement_values_and_lookup_direct_path():
    post = torch.arange(24, dtype=torch.float32).view(4, 2, 3)
    mean = NF.replacement_values(post, "mean", 5, torch.Generator(), torch.tensor([0]))
    assert mean.shape == (2, 3, 1) and torch.allclose(mean[..., 0], post.mean(0))
    res = NF.replacement_values(post, "resample", 6, torch.Generator().manual_seed(0),
                               torch.tensor([0, 1]))
    assert res.shape == (2, 3, 6)
    assert set(res[0, 0].tolist()) <= {post[2, 0, 0].item(), post[3, 0, 0].item()}
    assert N.Lookup((1, 2, 3), (3, 1), "surname").direct.tolist() == [True, True, False]
    # at the final token the unembedding reads every lookup MLP directly
    final = N.Lookup((1, 2, 3), (3, 1), "final")
    assert final.direct.tolist() == [True, True, True]
    assert final.pos(4, 7) == 7 and N.Lookup((1,), (3, 1), "surname").pos(4, 7) == 4


def test_entity_correlation_and_offdiagonal():
    gen = torch.Generator().manual_seed(4)
    base = torch.randn(1, 2, 50, generator=gen)
    eff = torch.cat([base, 2 * base, torch.randn(1, 2, 50, generator=gen)])
    e = NF.EntityEffects(("a", "b", "c"), ("x", "y", "z"), torch.zeros(3), eff, (1, 2))
    corr = e.correlation()
    assert float(corr[0, 1]) == pytest.approx(1.0, abs=1e-5)
    assert NF.offdiagonal(corr).shape == (3,)


def test_split_half_reliability_and_disattenuated_correlation():
    gen = torch.Generator().manual_seed(5)
    # Three facts with reliable, unshared per-neuron effects: each half = signal + small noise.
    signal = torch.randn(3, 2, 400, generator=gen)
    halves = torch.stack([signal + 0.1 * torch.randn(3, 2, 400, generator=gen)
                          for _ in range(2)])
    e = NF.EntityEffects(("a", "b", "c"), ("x", "y", "z"), torch.zeros(3), halves.mean(0),
                         (1, 2), halves)
    rel = e.reliability()
    assert rel is not None and bool((rel > 0.95).all())
    dis = NF.disattenuated_abs(e.correlation(), rel)
    assert float(dis.median()) < 0.2  # not shared, and measured: passes
    # The plausible wrong result: pure resampling noise. Raw |r| is just as low (it would pass
    # 'median |r| <= 0.3'), but the halves do not agree, so the disattenuated value is ~1.
    noise = torch.randn(2, 3, 2, 400, generator=gen)
    n = NF.EntityEffects(("a", "b", "c"), ("x", "y", "z"), torch.zeros(3), noise.mean(0),
                         (1, 2), noise)
    assert float(NF.offdiagonal(n.correlation()).abs().median()) < 0.3
    assert float(NF.disattenuated_abs(n.correlation(), n.reliability()).median()) > 0.3
    assert NF.EntityEffects(("a",), ("x",), torch.zeros(1), noise[0, :1], (1, 2)).reliability() \
        is None


def test_other_labels_are_always_wrong():
    label = torch.tensor([0, 1, 2] * 50)
    wrong = NL.other_labels(label, 3, torch.Generator().manual_seed(0))
    assert bool((wrong != label).all()) and set(wrong.tolist()) == {0, 1, 2}


def test_settings_checks_and_profiles():
    for profile in ("smoke", "default", "paper"):
        cfg = config.load(profile)
        assert cfg.neurons.target_value == "baseball"
    paper = config.load("paper")
    assert paper.neurons.entity_ablation == "mean" and paper.neurons.grid_max_names == 100
    assert paper.circuit.lookup_mlps == (2, 3, 4, 5, 6)
    good = config.load("default").neurons
    for bad in ({"orthogonal_rank_fraction": 1.0}, {"n_resample": 0}, {"grid_max_names": 2},
                {"target_value": ""}, {"n_linearity_pairs": 0},
                {"n_null_permutations": 0}):
        with pytest.raises(ConfigError):
            dataclasses.replace(good, **bad)


def test_null_max_auc_reuses_ranks():
    gen = torch.Generator().manual_seed(5)
    scores = torch.randn(60, 200, generator=gen)
    positive = torch.arange(60) < 25
    r = SN.ranks(scores)
    assert torch.allclose(SN.auc_from_ranks(r, positive), SN.roc_auc(scores, positive))
    null = SN.null_max_auc(r, positive, 4, torch.Generator().manual_seed(0))
    # the best of 200 noise columns is well above 0.5 (about 0.5 + 2.7 sd, sd ~ 0.076)
    assert null.shape == (4,) and (null > 0.6).all() and (null < 0.85).all()


def test_selective_neuron_unmeasured_only_when_one_class_is_empty():
    # A weak stand-in may know only people of other sports (smoke, seed 1): the selective
    # neuron is then reported as NaN with the reason, not a crash.
    settings = config.load("default").neurons
    circ = types.SimpleNamespace(direction_kind=lambda s: "unembed")
    answers = ("baseball", "basketball", "football")

    def known(labels: list[int]) -> types.SimpleNamespace:
        return types.SimpleNamespace(answers=answers, labels=torch.tensor(labels))

    assert SN.unmeasured_selective(known([0, 1, 2, 1]), settings, circ) is None
    for labels, n_target in (([1, 2, 2, 1], 0), ([0, 0, 0], 3)):
        m = SN.unmeasured_selective(known(labels), settings, circ)
        assert m is not None and m["n_target"] == n_target and m["n_people"] == len(labels)
        assert set(SN.SELECTIVE_NUMBERS) <= set(m)
        assert all(math.isnan(m[k]) for k in SN.SELECTIVE_NUMBERS)
        assert f"{n_target} of the {len(labels)} known people play baseball" in m["unmeasured"]

"""The circuit part without a model: probes, partners, settings, metrics and figures."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from replications.fact_finding import circuit as C
from replications.fact_finding import circuit_results as CR
from replications.fact_finding import circuit_steps as CS
from replications.fact_finding import plots as P
from replications.fact_finding.facts import FactPrompts
from replications.fact_finding.locus import Locus
from shared import probes
from shared.config import ConfigError
from shared.figures import Provenance

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_thread")]

SETTINGS = dict(
    relation="sport", n_patch_prompts=16, patch_batch_size=64, token_attn_layers=(0,),
    embedding_mlps=(0,), lookup_mlps=(1, 2, 3), read_position="surname", attribute_head="top_dla",
    head_readout="raw",
    reference_head=(16, 20), probe_layers=(0, 1, 2, 3, 4, 5), probe_splits=4,
    probe_train_fraction=0.8, probe_l2=1e-2, locus_layer=2, locus_reach_fraction=0.9,
    probe_max_iter=100, dtype="float32", seed=0,
)


def settings(**kw) -> C.CircuitSettings:
    return C.CircuitSettings(**{**SETTINGS, **kw})


# ---------------------------------------------------------------------------------- probes

def blobs(n: int, d: int, sep: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.randn(3, d, generator=g)
    return sep * centres[y] + torch.randn(n, d, generator=g), y


def test_probe_separates_blobs_and_not_noise():
    X, y = blobs(150, 16, 1.5, 0)
    noise = torch.randn(150, 16, generator=torch.Generator().manual_seed(1))
    perms = probes.splits(150, 5, 0.8, 0)
    acc = probes.cross_validated_accuracy(torch.stack([X, noise]), y, 3, perms, 0.8, 1e-2, 100)
    assert acc.shape == (2, 5)
    assert acc[0].mean() > 0.97
    assert abs(float(acc[1].mean()) - 1 / 3) < 0.15


def test_batched_probes_equal_separate_fits_and_are_deterministic():
    X, y = blobs(90, 8, 0.7, 2)
    X2, _ = blobs(90, 8, 0.3, 3)
    perms = probes.splits(90, 3, 0.8, 7)
    both = probes.cross_validated_accuracy(torch.stack([X, X2]), y, 3, perms, 0.8, 1e-2, 100)
    one = probes.cross_validated_accuracy(X[None], y, 3, perms, 0.8, 1e-2, 100)
    two = probes.cross_validated_accuracy(X2[None], y, 3, perms, 0.8, 1e-2, 100)
    assert torch.equal(both, torch.cat([one, two]))
    again = probes.cross_validated_accuracy(torch.stack([X, X2]), y, 3, perms, 0.8, 1e-2, 100)
    assert torch.equal(both, again)


def test_logistic_fit_reaches_the_regularised_optimum():
    X, y = blobs(60, 5, 1.0, 4)
    fit = probes.fit_logistic(X[None], y[None], 3, 0.1, 200)
    W = fit.W.clone().requires_grad_(True)
    b = fit.b.clone().requires_grad_(True)
    Z = (X[None] - fit.mean[:, None]) / fit.std[:, None]
    loss = torch.nn.functional.cross_entropy((Z @ W + b[:, None])[0], y) + 0.05 * W.pow(2).sum()
    loss.backward()
    assert W.grad.abs().max() < 1e-4 and b.grad.abs().max() < 1e-4


def test_splits_are_seeded_permutations():
    a = probes.splits(20, 3, 0.8, 5)
    assert torch.equal(a, probes.splits(20, 3, 0.8, 5))
    assert not torch.equal(a, probes.splits(20, 3, 0.8, 6))
    assert all(torch.equal(r.sort().values, torch.arange(20)) for r in a)
    with pytest.raises(ValueError, match="no train or val"):
        probes.n_train(3, 0.99)


# ------------------------------------------------------------------------ prompts and scores

def fake_prompts(firsts: list[int], lasts: list[int], labels: list[int]) -> FactPrompts:
    n = len(labels)
    toks = torch.zeros(n, 6, dtype=torch.long)
    toks[:, 2], toks[:, 3] = torch.tensor(firsts), torch.tensor(lasts)
    return FactPrompts("sport", tuple(f"p{i}" for i in range(n)), toks,
                       torch.tensor(labels), ("a", "b", "c"), torch.tensor([7, 8, 9]),
                       first_pos=2, last_pos=3, final_pos=5)


def test_partners_differ_in_answer_and_name_tokens():
    g = torch.Generator().manual_seed(0)
    n = 30
    pr = fake_prompts(torch.randint(0, 5, (n,), generator=g).tolist(),
                      torch.randint(0, 5, (n,), generator=g).tolist(), [i % 3 for i in range(n)])
    part = CS.corrupting_partners(pr, seed=1)
    assert torch.equal(part, CS.corrupting_partners(pr, seed=1))
    assert (pr.labels[part] != pr.labels).all()
    f, s = pr.tokens[:, 2], pr.tokens[:, 3]
    assert ((f[part] != f) & (s[part] != s)).float().mean() > 0.9
    with pytest.raises(ValueError, match="same answer"):
        CS.corrupting_partners(fake_prompts([1, 2], [3, 4], [0, 0]), seed=0)


def test_logit_diff_and_centred_readout():
    a = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    assert torch.allclose(C.logit_diff(a, torch.tensor([0, 1])), torch.tensor([2.5, -1.5]))
    scores = torch.tensor([[5.0, 0.0], [5.0, 1.0], [6.0, 0.0], [4.0, 1.5]])
    assert CS.head_predict(scores, centred=False).tolist() == [0, 0, 0, 0]
    # Minus the mean (5, 0.625): [0, -.625], [0, .375], [1, -.625], [-1, .875].
    assert CS.head_predict(scores, centred=True).tolist() == [0, 1, 0, 1]
    assert CS.head_predict(scores[None].repeat(2, 1, 1), True, scores).tolist() == [[0, 1, 0, 1]] * 2


def test_settings_errors_are_one_line():
    with pytest.raises(ConfigError, match="overlap"):
        settings(embedding_mlps=(1,))
    with pytest.raises(ConfigError, match="increasing order"):
        settings(lookup_mlps=(3, 2))
    with pytest.raises(ConfigError, match="at least 2"):
        settings(lookup_mlps=(2,))
    with pytest.raises(ConfigError, match="probe_train_fraction"):
        settings(probe_train_fraction=1.0)
    s = settings()
    assert s.end_layer == 3
    s.check_model(6, 4)
    with pytest.raises(ConfigError, match="layer 5 does not exist"):
        s.check_model(5, 4)
    with pytest.raises(ConfigError, match="L16H20"):
        settings(attribute_head="reference").check_model(6, 4)


# ---------------------------------------------------------------------- metrics and figures

def fabricated_results(s: C.CircuitSettings) -> CR.CircuitResults:
    L, H, P_ = 6, 4, 6
    effect = torch.zeros(3, L, P_)
    effect[0, :4, 1] = torch.tensor([0.9, 0.8, 0.7, 0.6])  # resid at the surname, early
    effect[0, 4:, 5] = 1.0  # resid at the final token, late
    effect[2, :, 1] = torch.tensor([0.5, 0.3, 0.2, 0.1, 0.05, 0.05])  # MLPs at the surname
    effect[1, 3, 5] = 0.6
    patching = CS.Patching(effect, 0.5 + 0.1 * effect, tuple(range(2, 8)), 2.0, -1.0, 0.7,
                          0.2, 40)
    dla = torch.zeros(L, H)
    dla[4, 2], dla[3, 1] = 0.5, 0.2
    heads = CS.HeadAttribution(dla, torch.full((L, H), 0.1), (4, 2))
    g = torch.Generator().manual_seed(0)
    means = {"summed_tokens": 0.5, **{f"full_{i}": 0.5 + 0.05 * i for i in range(L)},
             "effective_1": 0.6, "effective_2": 0.7, "effective_3": 0.8,
             "effective_no_lookup": 0.45}
    acc = {k: v + 0.02 * torch.randn(s.probe_splits, generator=g) for k, v in means.items()}
    k = len(s.lookup_mlps)
    mats = {}
    for m in C.PATH_METRICS:
        x = torch.full((k, k), float("nan"))
        for i in range(k):
            for j in range(i, k):
                x[i, j] = 0.1 * (j - i + 1) + (0.5 if i == 0 else 0.0)
        mats[m] = x
    clean = {m: 0.05 for m in C.PATH_METRICS}
    clean["kl"] = 0.0
    # The random-direction control moves the output a fifth as much as the path ablations.
    paths = CS.PathPatching(mats, clean, s.lookup_mlps, mats["kl"] / 5)
    eff = {"full_model_answer": 1.0, "full_model_head": 0.8, "effective_head": 0.75,
           "effective_head_raw": 0.75, "effective_head_centred": 0.7, "no_lookup_head": 0.4,
           "effective_probe": float(acc["effective_3"].mean()), "effective_probe_std": 0.02,
           "no_lookup_probe": 0.45, "chance": 1 / 3}
    probe = torch.full((2, L + 1, s.probe_splits), 0.4)
    locus = Locus(probe, torch.full_like(probe, 0.35),
                  {"surname_all": 0.3, "surname_late": 0.4, "surname_early": 0.9,
                   "first_all": 0.8, "first_late": 0.95}, 1.0)
    return CR.CircuitResults(patching, heads, (4, 2), eff, CS.ProbeResults(acc), paths, locus,
                             40, 3, 0.4, ("a", "b", "c"), {"patching": 1.0})


def test_summary_metrics_read_the_results():
    s = settings()
    m = CR.summary_metrics(fabricated_results(s), s)
    p = m["patching"]
    assert p["resid_surname_lookup"] == pytest.approx(0.7)  # layers 1-3 at the surname
    assert p["resid_final_lookup"] == pytest.approx(0.0)
    assert p["mlp_surname_lookup_share"] == pytest.approx(0.6 / 0.7)  # MLPs 1-3 of 1-5
    assert p["attn_final_peak_layer"] == 3
    h = m["attribute_head"]
    assert (h["layer"], h["head"], h["top_dla"]) == (4, 2, 0.5)
    assert "reference_rank" not in h  # L16H20 is not in a 6-layer model
    pr = m["probes"]
    rise = pr["lookup_last"] - pr["summed_tokens"]["mean"]
    assert pr["final_minus_summed"] == pytest.approx(rise)
    assert 0 < pr["max_step_share"] < 1 and pr["n_increasing_steps"] == 2
    pp = m["path_patching"]
    assert set(pp["pairs"]) == {"1_2", "1_3", "2_3"}
    assert pp["pairs"]["1_3"]["kl"] == pytest.approx(0.8)
    assert pp["max_kl"] == pytest.approx(0.8) and pp["from_first_kl_ratio"] > 1
    assert pp["whole_mlp"]["2"]["loss"] == pytest.approx(0.1)
    assert pp["kl_over_random"] == pytest.approx(5.0)
    assert pr["late_lookup_jump"] == pytest.approx(pr["effective_2"]["mean"]
                                                   - pr["effective_1"]["mean"])
    flat = repr(m)
    assert "nan" not in flat

    def no_dots(d: dict) -> None:
        for key, v in d.items():
            assert "." not in key
            if isinstance(v, dict):
                no_dots(v)
    no_dots(m)


def test_read_position_against_the_other_position():
    # Reading at the surname: the baseline is the final token, and the reverse.
    s = settings()
    res = fabricated_results(s)
    p = CR.summary_metrics(res, s)["patching"]
    assert p["resid_read_minus_other_lookup"] == pytest.approx(
        p["resid_surname_lookup"] - p["resid_final_lookup"])
    final = dataclasses.replace(s, read_position="final")
    q = CR.summary_metrics(res, final)["patching"]
    # The plausible wrong result: the fact at the surname, not the read position (final).
    assert q["resid_read_lookup"] == pytest.approx(0.0)
    assert q["resid_read_minus_other_lookup"] == pytest.approx(-0.7)


def test_same_norm_random_keeps_the_norms():
    delta = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    out = CS.same_norm_random(delta, torch.Generator().manual_seed(0))
    assert torch.allclose(out.norm(dim=-1), delta.norm(dim=-1))
    assert not torch.allclose(out[0] / 5, delta[0] / 5)


def test_centred_cosines_same_person_against_others():
    g = torch.Generator().manual_seed(0)
    people = torch.randn(30, 16, generator=g, dtype=torch.float64)
    shared = 5 * torch.randn(16, generator=g, dtype=torch.float64)
    # A context that adds the same vector to everyone plus a little noise: independent.
    ctx = people + shared + 0.1 * torch.randn(30, 16, generator=g, dtype=torch.float64)
    same, other = CS.centred_cosines(people, ctx)
    assert float(same.mean()) > 0.95 and abs(float(other.mean())) < 0.15
    # The plausible wrong result: the context replaces the name's representation.
    same, other = CS.centred_cosines(people, torch.randn(30, 16, generator=g,
                                                         dtype=torch.float64))
    assert abs(float(same.mean()) - float(other.mean())) < 0.15


def test_context_line_uses_another_relation():
    from replications.fact_finding.facts import context_line

    facts = {"known": {"sport": [["A", "B", "golf"]], "city": [["C", "D", "Rome"]]},
             "relations": {"sport": {"phrase": "plays the sport of"},
                           "city": {"phrase": "lives in the city of"}}}
    assert context_line(facts, "sport") == "Fact: C D lives in the city of Rome.\n"
    assert context_line({**facts, "known": {"sport": facts["known"]["sport"]}}, "sport") \
        == "Fact: A B plays the sport of golf.\n"


def test_reference_head_rank():
    dla = torch.tensor([[0.1, 0.5], [0.3, -0.2]])
    assert CS.head_rank(dla, (0, 1)) == 1 and CS.head_rank(dla, (1, 1)) == 4


def test_figures_render(tmp_path):
    # The two cheapest figures; the script test in tests/integration renders all five.
    s = settings()
    res = fabricated_results(s)
    prov = Provenance.make("fact_finding", "smoke", "test")
    P.plot_effective(res, s, tmp_path / "c.png", prov)
    P.plot_probes(res, s, tmp_path / "d.png", prov)
    for name in "cd":
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
        assert (tmp_path / f"{name}.pdf").is_file()


def test_result_tensors_are_flat_float():
    s = settings()
    t = CR.result_tensors(fabricated_results(s))
    assert t["patching.effect"].shape == (3, 6, 6)
    assert all(v.dtype == torch.float32 for v in t.values())
    assert not math.isnan(float(t["probes.summed_tokens"].mean()))
    assert dataclasses.is_dataclass(fabricated_results(s))

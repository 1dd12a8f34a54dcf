"""Post 4's toy models of memorisation: the task, the models, the probes, the figures."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from replications.fact_finding import toy_memorisation as M
from shared.config import ConfigError

pytestmark = pytest.mark.unit

TINY = M.MemorisationSettings(
    n_first=16, n_last=16, d_embed=16, d_mlp=16, depths=(1, 2), tasks=("random", "rule"),
    train_fraction=0.8, n_steps=200, lr=1e-2, log_every=50, probe_train_fraction=0.5,
    probe_c=1.0, probe_max_iter=100, seed=0,
)


@pytest.fixture(scope="module")
def results() -> dict:
    torch.set_num_threads(1)
    return M.run(TINY)


def test_task_pairs_labels_and_splits():
    task = M.make_task(TINY)
    n = TINY.n_first * TINY.n_last
    assert task.embed.shape == (n, TINY.d_embed)
    assert sorted(zip(task.first.tolist(), task.last.tolist())) == [
        (a, b) for a in range(16) for b in range(16)]
    # The embedding is the sum of one vector per first name and one per surname.
    same_first = task.embed[task.first == 3] - task.embed[task.first == 5]
    assert torch.allclose(same_first, same_first[:1].expand_as(same_first), atol=1e-6)
    rule = task.f_first[task.first] ^ task.g_last[task.last]
    assert torch.equal(task.labels["rule"], rule)
    assert 0.35 < task.labels["random"].float().mean() < 0.65
    assert int(task.train.sum()) == round(0.8 * n)
    assert not (task.probe_train & ~task.train).any()
    assert int(task.probe_train.sum()) == round(0.5 * round(0.8 * n))
    again = M.make_task(TINY)
    assert torch.equal(again.embed, task.embed) and torch.equal(again.train, task.train)
    other = M.make_task(dataclasses.replace(TINY, seed=1))
    assert not torch.equal(other.labels["random"], task.labels["random"])


def test_model_sites_and_residual_structure():
    model = M.ResidualMLP(8, 5, 2, torch.Generator().manual_seed(0))
    x = torch.randn(7, 8)
    cache: dict = {}
    logits = model(x, cache)
    assert list(cache) == M.sites(2) == ["embed", "mlp1", "resid1", "mlp2", "resid2", "logits"]
    assert cache["mlp1"].shape == (7, 5) and logits.shape == (7, 2)
    # resid2 = resid1 + block 2's output: the logits are a sum of per-block contributions.
    out2 = cache["mlp2"] @ model.W_out[1] + model.b_out[1]
    assert torch.allclose(cache["resid2"], cache["resid1"] + out2, atol=1e-6)
    assert M.sites(1) == ["embed", "mlp1", "resid1", "logits"]


def test_memorise_random_generalise_rule(results):
    s = results["summary"]
    assert s["random_min_train_accuracy"] == 1.0 and s["rule_min_train_accuracy"] == 1.0
    # Held-out random labels: chance (51 pairs, so a wide band).
    assert 0.25 <= s["random_min_heldout_accuracy"] <= s["random_max_heldout_accuracy"] <= 0.75
    assert s["rule_max_heldout_accuracy"] >= 0.75
    assert s["random_embed_label_probe"] <= 0.7
    assert s["random_final_label_probe"] >= 0.95
    assert s["random_first_probe_embed"] >= 0.8
    history = results["tasks"]["random"]["l2"]["history"]
    curve = [r["train_acc"] for r in history]
    assert curve[0] < 0.8 and curve[-1] == 1.0
    assert [r["step"] for r in history] == [0, 50, 100, 150, 200]


def test_run_is_deterministic(results):
    again = M.run(dataclasses.replace(TINY, tasks=("random",), depths=(2,)))
    a, b = again["tasks"]["random"]["l2"], results["tasks"]["random"]["l2"]
    assert a["history"] == b["history"]
    assert a["probe_label"] == b["probe_label"] and a["probe_first"] == b["probe_first"]


def test_probe_reads_a_planted_feature():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (200,), generator=gen)
    feats = torch.randn(200, 6, generator=gen)
    feats[:, 2] += 3.0 * (2 * y - 1)
    fit = torch.arange(200) < 100
    assert M.probe_accuracy(feats, y, fit, ~fit, 1.0, 100) > 0.95
    noise = torch.randn(200, 6, generator=gen)
    assert M.probe_accuracy(noise, y, fit, ~fit, 1.0, 100) < 0.7


@pytest.mark.parametrize("change, message", [
    ({"depths": (1, 1)}, "depths must be distinct"),
    ({"tasks": ()}, "tasks must be distinct"),
    ({"train_fraction": 1.0}, "train_fraction must lie in"),
    ({"log_every": 500}, "log_every in"),
    ({"n_first": 4, "n_last": 2}, "too few pairs for the probes"),
    ({"probe_c": 0.0}, "probe_c must be positive"),
])
def test_bad_settings_are_one_line_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(TINY, **change)


def test_figures_render(results, tmp_path):
    from replications.fact_finding import plots
    from shared.figures import Provenance, apply_style, save_figure

    apply_style()
    prov = Provenance("fact_finding", "smoke", "x", "test")
    for name, fig in (("t", plots.memorisation_training_figure(results)),
                      ("p", plots.memorisation_probes_figure(results))):
        png, pdf = save_figure(fig, tmp_path / f"{name}.png", prov)
        assert png.stat().st_size > 10_000 and pdf.is_file()

"""The locus analysis without a trained model: probes at the surname vs the final token on
planted residuals, its metrics, and the figure."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from replications.fact_finding import circuit as C
from replications.fact_finding.facts import FactPrompts
from replications.fact_finding.locus import (
    Locus,
    first_layer_reaching,
    knockout_jobs,
    locus_metrics,
    locus_probes,
)
from replications.fact_finding.plots_locus import plot_locus
from shared.figures import Provenance

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_thread")]

SETTINGS = C.CircuitSettings(
    relation="sport", n_patch_prompts=16, patch_batch_size=64, token_attn_layers=(0,),
    embedding_mlps=(0,), lookup_mlps=(1, 2, 3), read_position="final", attribute_head="top_dla",
    head_readout="raw", reference_head=(16, 20), probe_layers=(0, 1), probe_splits=4,
    probe_train_fraction=0.8, probe_l2=1e-2, locus_layer=1, locus_reach_fraction=0.9,
    probe_max_iter=100, dtype="float32", seed=0,
)


def planted(n: int = 120, L: int = 4, d: int = 12) -> tuple[SimpleNamespace, FactPrompts, C.CleanRun]:
    """Residuals in which the label is planted at the surname from block 1 on and at the final
    token from block 3 on; noise elsewhere."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 3
    centres = 3.0 * torch.randn(3, d, generator=g)
    resid = torch.randn(n, L, 3, d, generator=g)
    resid[:, 1:, 1] += centres[labels][:, None]
    resid[:, 3:, 2] += centres[labels][:, None]
    tokens = torch.randint(0, 50, (n, 6), generator=g)
    prompts = FactPrompts("sport", tuple(map(str, range(n))), tokens, labels, ("a", "b", "c"),
                          torch.tensor([7, 8, 9]), first_pos=2, last_pos=3, final_pos=5)
    zeros = torch.zeros(n, L, 3, d)
    clean = C.CleanRun(resid, zeros, zeros, torch.zeros(n, L, 1, 1), torch.zeros(n, L, 1),
                       torch.ones(n), torch.zeros(n, 60))
    model = SimpleNamespace(W_E=torch.randn(50, d, generator=g))
    return model, prompts, clean


def test_probes_find_the_planted_locus_and_shuffled_labels_do_not():
    model, prompts, clean = planted()
    acc, shuffled = locus_probes(model, prompts, clean, SETTINGS)
    assert acc.shape == shuffled.shape == (2, 5, SETTINGS.probe_splits)  # embed + 4 blocks
    m = acc.mean(-1)
    assert (m[0, 2:] > 0.95).all() and (m[0, :2] < 0.6).all()  # surname after block 1 on
    assert (m[1, 4:] > 0.95).all() and (m[1, :4] < 0.6).all()  # final after block 3 only
    assert shuffled.mean(-1).max() < 0.6
    loc = Locus(acc, shuffled, {k: 0.5 for k in knockout_jobs(4, 1)}, 1.0)
    met = locus_metrics(loc, SETTINGS)
    assert met["surname_reach_layer"] == 2 and met["final_reach_layer"] == 4
    assert met["final_lag_layers"] == 2
    assert met["surname_at_locus"] == pytest.approx(float(m[0, 2]))
    assert met["surname_at_locus_over_shuffled"] > 0.35
    assert met["surname_minus_final_at_locus"] > 0.35


def test_knockout_metrics_and_layers():
    jobs = knockout_jobs(6, 2)
    assert jobs["surname_early"][1] + jobs["surname_late"][1] == jobs["surname_all"][1]
    assert jobs["first_late"] == ("first", (3, 4, 5))
    acc = torch.full((2, 7, 3), 0.5)
    ko = {"surname_all": 0.3, "surname_late": 0.4, "surname_early": 0.9, "first_all": 0.8,
          "first_late": 0.95}
    s = dataclasses.replace(SETTINGS, locus_layer=2)
    met = locus_metrics(Locus(acc, acc - 0.2, ko, 1.0), s)
    assert met["knockout_surname_late_drop"] == pytest.approx(0.6)
    assert met["knockout_late_surname_minus_first"] == pytest.approx(0.55)
    assert met["shuffled_max"] == pytest.approx(0.3)
    assert first_layer_reaching(torch.tensor([0.1, 0.2]), 0.5) is None


def test_locus_figure_renders(tmp_path):
    model, prompts, clean = planted()
    acc, shuffled = locus_probes(model, prompts, clean, SETTINGS)
    ko = {"surname_all": 0.3, "surname_late": 0.4, "surname_early": 0.9, "first_all": 0.8,
          "first_late": 0.95}
    plot_locus(Locus(acc, shuffled, ko, 1.0), SETTINGS, 3, tmp_path / "l.png",
               Provenance.make("fact_finding", "smoke", "test"))
    assert (tmp_path / "l.png").stat().st_size > 10_000 and (tmp_path / "l.pdf").is_file()

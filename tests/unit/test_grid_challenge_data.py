"""Challenge 2: the reconstructed labelling function (pinned points, row patterns, counts), the
split, and the hand-set transformer's agreement with the labelling function."""

import collections

import pytest
import torch

from replications.grid_challenge import data, handset

pytestmark = pytest.mark.unit


def _label(x: int, y: int) -> int:
    return int(data.label(torch.tensor([x]), torch.tensor([y]))[0])


def test_the_posts_worked_rows():
    scans = data.scan_rows(data.grid())
    assert scans[16].pattern == "blue-red-blue" and scans[16].switches == (1.5, 48.5)
    assert scans[30].pattern == "blue-red" and scans[30].switches == (20.5,)
    assert scans[25].pattern == "blue-red" and scans[25].switches != scans[30].switches
    assert scans[36].pattern == scans[50].pattern == "blue-red-blue"
    assert scans[111].pattern == "all blue"
    assert all(scans[x].pattern == "red-blue" for x in range(104, 111))  # red left of orange
    # The post's look-ups: (111, *) blue; (30, 0) blue, (30, 40) red; (16, 0/40/90).
    assert [_label(111, y) for y in (0, 30, 99)] == [0, 0, 0]
    assert (_label(30, 0), _label(30, 40)) == (0, 1)
    assert (_label(16, 0), _label(16, 40), _label(16, 90)) == (0, 1, 0)


def test_boundaries_are_exact():
    # X^2 < 200 Y^0.5 at equality (X = 20, Y = 4: 400 = 200 * 2) is not right of green.
    assert not bool(data.right_of("green", torch.tensor(20), torch.tensor(4)))
    assert bool(data.right_of("green", torch.tensor(20), torch.tensor(5)))
    assert bool(data.right_of("orange", torch.tensor(100), torch.tensor(33)))
    assert not bool(data.right_of("orange", torch.tensor(100), torch.tensor(32)))
    assert data.switch_column("purple", 16) == 49  # 49^2 = 2401 > 600 * 4
    with pytest.raises(ValueError, match="must lie in"):
        data.label(torch.tensor([113]), torch.tensor([0]))


def test_six_patterns_and_region_counts():
    g = data.grid()
    assert g.shape == (113, 113) and int(g.sum()) == 6378  # 49.9% red
    counts = collections.Counter(s.pattern for s in data.scan_rows(g))
    assert set(counts) == set(data.PATTERNS)
    assert counts == {"blue-red-blue": 39, "blue-red": 22, "red-blue": 21, "red-blue-red": 14,
                      "all red": 9, "all blue": 8}
    bars = [x for x in range(113) if data.bar_colour(x) is not None]
    assert len(bars) == 16 and {b - a for a, b in zip(bars, bars[1:])} == {7, 8}


def test_active_switches_are_the_rows_colour_changes():
    scans = data.scan_rows(data.grid())
    for x in range(113):
        assert tuple(c for _, c in data.active_switches(x)) == scans[x].switches, x


def test_split_is_half_and_fixed_by_its_seed():
    a, b = data.split(0, 0.5), data.split(0, 0.5)
    assert torch.equal(a, b) and int(a.sum()) == 6384
    assert not torch.equal(a, data.split(1, 0.5))
    inputs = data.all_inputs()
    assert inputs.shape == (12769, 3) and bool((inputs[:, 2] == 113).all())
    assert inputs[30 * 113 + 40].tolist() == [30, 40, 113]


def test_handset_transformer_matches_the_labelling_function():
    model, neurons = handset.build()
    s, t = handset.evaluate(model, neurons)
    assert s["agreement"] == 1.0 and s["n_disagree"] == 0
    assert s["min_abs_logit_diff"] >= 0.5  # every cell decided with a margin
    assert s["n_neurons"] <= handset.D_MLP and s["n_patterns"] == 6
    assert torch.equal(t["handset_labels"], data.grid())


def test_handset_fails_on_a_wrong_program():
    """The agreement can fail: move one row's switch and the model disagrees there."""
    programs = handset.row_programs()
    programs[30] = [handset.Neuron(30, "blue-left", 40.5, -1.0),
                    handset.Neuron(30, "red-right", 40.5, 1.0)]
    s, _ = handset.evaluate(*handset.build(programs))
    assert s["n_disagree"] == 20  # Y = 21..40 of row 30

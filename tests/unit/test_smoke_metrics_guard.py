"""The smoke-metrics regression guard's own logic (tests/e2e/pin_smoke_metrics.py) on synthetic
metrics: it passes what is within tolerance and fails, listing every difference, on what is not,
so the e2e guard is shown able to fail."""

import json

import pytest

from tests.e2e import pin_smoke_metrics as guard

pytestmark = pytest.mark.unit


def _pin(values, **kw):
    return guard.Pin(values=dict(values), **kw)


PINNED = {"w:a.loss": 1.0, "w:a.steps": 100, "w:ok": True, "w:curve[0]": 0.5,
          "w:nan": None, "scorecard:w.c1": "pass"}


def test_flatten_takes_numeric_leaves_by_dotted_key_and_skips_strings():
    flat = guard.flatten({"a": {"b": 1.5, "c": [1, 2.0], "s": "text", "d": None}, "f": False})
    assert flat == {"a.b": 1.5, "a.c[0]": 1, "a.c[1]": 2.0, "a.d": None, "f": False}


def test_identical_and_within_tolerance_pass():
    pin = _pin(PINNED, default={"abs": 1e-6, "rel": 1e-4})
    assert guard.compare(pin, PINNED) == []
    # 1.0 -> 1.00005: inside 1e-6 + 1e-4 * 1.0
    assert guard.compare(pin, {**PINNED, "w:a.loss": 1.00005}) == []


def test_float_outside_tolerance_fails_with_its_tolerance():
    pin = _pin(PINNED, default={"abs": 1e-6, "rel": 1e-4})
    diffs = guard.compare(pin, {**PINNED, "w:a.loss": 1.001})
    assert [(d.key, d.pinned, d.got) for d in diffs] == [("w:a.loss", 1.0, 1.001)]
    assert "abs 1e-06 + rel 0.0001" in diffs[0].why


def test_integers_booleans_statuses_and_nulls_compare_exactly():
    pin = _pin(PINNED, default={"abs": 10.0, "rel": 1.0})  # loose floats do not loosen these
    got = {**PINNED, "w:a.steps": 101, "w:ok": False, "w:nan": 0.0, "scorecard:w.c1": "fail"}
    diffs = guard.compare(pin, got)
    assert {d.key for d in diffs} == {"w:a.steps", "w:ok", "w:nan", "scorecard:w.c1"}
    # a flag becoming a count, or a count becoming a float, is a change of type
    assert guard.compare(pin, {**PINNED, "w:ok": 1})[0].why == "type bool -> int"
    assert guard.compare(pin, {**PINNED, "w:a.steps": 100.0})[0].why == "type int -> float"


def test_nan_or_inf_against_a_finite_pin_fails():
    pin = _pin(PINNED, default={"abs": 1.0, "rel": 1.0})
    for bad in (float("nan"), float("inf")):
        assert [d.key for d in guard.compare(pin, {**PINNED, "w:a.loss": bad})] == ["w:a.loss"]


def test_missing_and_new_keys_fail():
    got = {k: v for k, v in PINNED.items() if k != "w:a.steps"} | {"w:new": 3.0}
    diffs = guard.compare(_pin(PINNED), got)
    assert [(d.key, d.why) for d in diffs] == [("w:a.steps", "missing"), ("w:new", "not pinned")]


def test_every_difference_is_listed_with_how_to_repin():
    got = {**PINNED, "w:a.loss": 2.0, "w:curve[0]": 0.7, "scorecard:w.c1": "fail"}
    del got["w:ok"]
    got["x:extra"] = 1
    diffs = guard.compare(_pin(PINNED), got)
    assert [d.key for d in diffs] == ["scorecard:w.c1", "w:a.loss", "w:curve[0]", "w:ok",
                                      "x:extra"]
    text = guard.report(diffs, "/tmp/clone/results/smoke")
    assert text.startswith("5 smoke metric(s) differ")
    for d in diffs:
        assert d.line() in text
    assert "python -m tests.e2e.pin_smoke_metrics /tmp/clone/results/smoke" in text


def test_overrides_loosen_one_key_exact_before_pattern():
    pin = _pin(PINNED, default={"abs": 0.0, "rel": 1e-6},
               overrides={"w:curve*": {"rel": 0.5}, "w:curve[0]": {"abs": 0.01}})
    assert pin.tolerance("w:curve[0]") == {"abs": 0.01, "rel": 1e-6}
    assert pin.tolerance("w:curve[1]") == {"abs": 0.0, "rel": 0.5}
    assert pin.tolerance("w:a.loss") == {"abs": 0.0, "rel": 1e-6}
    assert guard.compare(pin, {**PINNED, "w:curve[0]": 0.505}) == []
    assert [d.key for d in guard.compare(pin, {**PINNED, "w:curve[0]": 0.52, "w:a.loss": 1.01})
            ] == ["w:a.loss", "w:curve[0]"]


def test_excluded_keys_are_ignored_on_both_sides():
    pin = _pin(PINNED, exclude={"w:a.*": "varies run to run"})
    got = {k: v for k, v in PINNED.items() if k != "w:a.steps"} | {"w:a.seconds": 3.2}
    assert guard.compare(pin, {**got, "w:a.loss": 9.0}) == []


def test_repin_round_trips_and_keeps_tolerances_overrides_and_exclusions(tmp_path, monkeypatch):
    results = tmp_path / "results" / "smoke"
    (results / "w").mkdir(parents=True)
    (results / "scorecard").mkdir()
    metrics = {"a": {"loss": 0.1234567891, "steps": 3, "seconds": 4.5}, "ok": True,
               "tiny": 1e-12, "run": "a string"}
    (results / "w" / "metrics.json").write_text(json.dumps(metrics))
    (results / "scorecard" / "scorecard.json").write_text(json.dumps(
        {"profile": "smoke", "w": {"pass": 1, "claims": {"c1": {"reproduced": 3.0,
                                                                "status": "pass"}}}}))
    monkeypatch.setattr(guard.pipeline, "WRITEUPS", ("w",))
    pin_file = tmp_path / "pin.yaml"
    pin_file.write_text(guard.dump_pin(_pin({}, default={"abs": 1e-7, "rel": 1e-5},
                                            overrides={"w:tiny": {"abs": 1e-9, "why": "t"}},
                                            exclude={"w:*.seconds": "wall-clock time"})))
    guard.main([str(results), "--out", str(pin_file)])
    pin = guard.load_pin(pin_file)
    assert pin.values == {"w:a.loss": 0.1234567891, "w:a.steps": 3, "w:ok": True,
                          "w:tiny": 1e-12, "scorecard:w.c1": "pass"}
    assert pin.default == {"abs": 1e-7, "rel": 1e-5}
    assert pin.overrides == {"w:tiny": {"abs": 1e-9, "why": "t"}}
    assert pin.exclude == {"w:*.seconds": "wall-clock time"}
    assert pin_file.read_text().startswith(guard.HEADER)
    assert guard.compare(pin, guard.collect(results)) == []


def test_repin_refuses_a_folder_that_is_not_a_built_smoke_dag(tmp_path):
    with pytest.raises(SystemExit, match="not a built smoke results folder"):
        guard.main([str(tmp_path), "--out", str(tmp_path / "pin.yaml")])
    assert not (tmp_path / "pin.yaml").exists()


def test_repin_refuses_another_profiles_results(tmp_path, monkeypatch):
    monkeypatch.setattr(guard.pipeline, "WRITEUPS", ("w",))
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "metrics.json").write_text("{}")
    (tmp_path / "scorecard").mkdir()
    (tmp_path / "scorecard" / "scorecard.json").write_text('{"profile": "default"}')
    with pytest.raises(SystemExit, match="'default' profile's results, not smoke's"):
        guard.main([str(tmp_path), "--out", str(tmp_path / "pin.yaml")])
    assert not (tmp_path / "pin.yaml").exists()


def test_an_override_without_why_is_refused(tmp_path):
    pin_file = tmp_path / "pin.yaml"
    pin_file.write_text(guard.dump_pin(_pin({}, overrides={"w:tiny": {"abs": 1e-9}})))
    with pytest.raises(ValueError, match="needs a `why`"):
        guard.load_pin(pin_file)

"""Training curves (shared.curves): every history layout the training rules write, the
DVCLive logs (byte-stable: no timestamps), the figure's panels, and one-line errors."""

import json

import pytest

from shared.curves import curves_figure, load_run, main, rows_of, write_dvclive
from shared.io import BadInput

pytestmark = pytest.mark.unit

ROWS = [{"step": 0, "loss": 2.0, "l0": 9.0, "dead_frac": 0.0},
        {"step": 10, "loss": 1.0, "l0": 5.0, "dead_frac": 0.25}]


def test_rows_columns_and_nested_histories_agree(tmp_path):
    columns = {"step": [0, 10], "loss": [2.0, 1.0], "l0": [9.0, 5.0], "dead_frac": [0.0, 0.25]}
    assert rows_of(ROWS, "x") == rows_of(columns, "x") == rows_of({"history": ROWS}, "x")
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"geometry": {"history": columns, "final_loss": [1.0]}}))
    assert load_run(f"{path}#geometry") == rows_of(ROWS, "x")


@pytest.mark.parametrize("bad, message", [
    ({"step": [0, 1], "loss": [1.0]}, "columns of different lengths"),
    ([{"loss": 1.0}], "needs a 'step'"),
    ("text", "not a training history"),
])
def test_bad_histories_are_one_line(bad, message):
    with pytest.raises(BadInput, match=message):
        rows_of(bad, "h.json")


def test_missing_key_names_the_spec(tmp_path):
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"history": ROWS}))
    with pytest.raises(BadInput, match=r"log.json#geometry: no key 'geometry'"):
        load_run(f"{path}#geometry")


def test_dvclive_logs_every_metric_per_step_without_timestamps(tmp_path):
    write_dvclive({"sae": rows_of(ROWS, "x")}, tmp_path / "a")
    write_dvclive({"sae": rows_of(ROWS, "x")}, tmp_path / "b")
    tsv = (tmp_path / "a/sae/plots/metrics/l0.tsv").read_text()
    assert tsv == "step\tl0\n0\t9.0\n10\t5.0\n"
    assert json.loads((tmp_path / "a/sae/metrics.json").read_text())["loss"] == 1.0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                   if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*")
                           if p.is_file())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
               for f in files)


def test_figure_has_one_panel_per_kind_of_metric():
    runs = {"sae": rows_of(ROWS, "x"), "lm": [{"step": 0, "loss": 5.0, "val_loss": 5.5}]}
    fig = curves_figure(runs, "demo")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "L0", "dead fraction"]
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["sae", "lm: loss", "lm: val_loss"]
    with pytest.raises(BadInput, match="no run logs"):
        curves_figure({"x": [{"step": 0, "lr": 1.0}]}, "demo")


def test_cli_writes_figure_and_logs(tmp_path):
    path = tmp_path / "h.json"
    path.write_text(json.dumps(ROWS))
    main(["--writeup", "demo", "--profile", "smoke", "--run", "model", str(path), "--dvclive",
          str(tmp_path / "dvclive"), "--figure", str(tmp_path / "curves.png")])
    assert (tmp_path / "curves.png").is_file() and (tmp_path / "curves.pdf").is_file()
    assert (tmp_path / "dvclive/model/plots/metrics/loss.tsv").is_file()

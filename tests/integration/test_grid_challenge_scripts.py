"""Challenge 2 on the smoke profile: train -> handset -> analyse -> figures; bit-identical on a
fixed seed; the training forward pass equals the HookedTransformer's."""

import json
from pathlib import Path

import pytest
import torch

from replications.grid_challenge import config as C
from replications.grid_challenge import data, train
from replications.grid_challenge.scripts import analyse as analyse_script
from replications.grid_challenge.scripts import handset as handset_script
from replications.grid_challenge.scripts import make_figures as figures_script
from replications.grid_challenge.scripts import train as train_script
from shared import pipeline
from tests.conftest import assert_figures_written

pytestmark = pytest.mark.integration


def _train(tmp: Path, name: str) -> Path:
    out = tmp / f"{name}.safetensors"
    train_script.main(["--profile", "smoke", "--checkpoint-dir", str(tmp / "ckpt"),
                       "--out", str(out), "--history", str(tmp / f"{name}.json")])
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("grid")
    model = _train(tmp, "model")
    handset_script.main(["--profile", "smoke", "--out", str(tmp / "handset.json"),
                         "--tensors", str(tmp / "handset.safetensors")])
    analyse_script.main(["--profile", "smoke", "--model", str(model),
                         "--out", str(tmp / "analysis.json"),
                         "--tensors", str(tmp / "tensors.safetensors")])
    figures_script.main(["--profile", "smoke", "--analysis", str(tmp / "analysis.json"),
                         "--tensors", str(tmp / "tensors.safetensors"),
                         "--handset", str(tmp / "handset.json"),
                         "--handset-tensors", str(tmp / "handset.safetensors"),
                         "--figure-dir", str(tmp / "figures")])
    return tmp


def test_every_figure_and_the_claimed_metrics(built):
    assert_figures_written("grid_challenge", built / "figures")
    from shared.claims import load_claims, lookup

    metrics = {"analysis": json.loads((built / "analysis.json").read_text()),
               "handset": json.loads((built / "handset.json").read_text())}
    claims = load_claims(Path(pipeline.claims_path("grid_challenge")))
    for claim in claims.claims:
        if claim.metric.startswith("analysis.extended.") or claim.id.startswith("four_neurons"):
            continue  # the smoke model has no neuron above the family threshold
        assert lookup(metrics, claim.metric) is not None, claim.metric
    assert metrics["handset"]["agreement"] == 1.0


def test_training_is_bit_identical_on_a_fixed_seed(built, tmp_path):
    again = _train(tmp_path, "again")
    assert again.read_bytes() == (built / "model.safetensors").read_bytes()


def test_fast_forward_equals_the_hooked_transformer():
    cfg = C.load("smoke")
    model = train.build_model(cfg.model)
    with torch.no_grad():  # larger weights than at initialisation
        for p in model.parameters():
            p.mul_(3.0)
    tokens = data.all_inputs()[::37]
    fast = train.last_logits(model, tokens)
    with torch.no_grad():
        full = model(tokens)[:, -1]
    assert torch.allclose(fast, full, atol=1e-4, rtol=1e-4)


def test_a_damaged_model_is_one_error_line(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(SystemExit) as err:
        analyse_script.main(["--profile", "smoke", "--model", str(bad),
                             "--out", str(tmp_path / "a.json"),
                             "--tensors", str(tmp_path / "t.safetensors")])
    assert err.value.code == 1
    assert capsys.readouterr().err.strip().startswith("error:")

"""The model zoo's SAE declarations (`zoo_sae` in shared/common.smk): where a declared SAE's
files live, and one-line errors for a second declaration, an SAE its owner's manifest does not
list, and a published model without its tokens file. Checked by parsing a small Snakefile that
includes shared/common.smk, as the real Snakefile does."""

import json
import os

import pytest

from tests.conftest import ROOT, run

pytestmark = pytest.mark.unit

SNAKEFILE = """
import json
from types import SimpleNamespace
from shared import pipeline
PROFILE = "smoke"
include: "{common}"
{config}
{declarations}
rule nothing:
    output: "nothing"
"""
# The steering write-up's config, or (faster: no torch) a stand-in with its zoo_sae() method.
REAL_CONFIG = ("from replications.steering import config as steer_config\n"
               "STEER = steer_config.load('smoke')")
FAKE_CONFIG = "STEER = SimpleNamespace(zoo_sae=lambda: {'site': {'hook_name': 'h'}})"
DECLARE = ('zoo_sae("steering-resid-sae", "steering", STEER, model="gpt2-xl", '
           'tokens="t.safetensors")')


def _parse(tmp_path, declarations: str, config: str = FAKE_CONFIG):
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(SNAKEFILE.format(common=ROOT / "shared" / "common.smk", config=config,
                                          declarations=declarations))
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return run(["env", f"PYTHONPATH={path}", "snakemake", "-n", "-s", str(snakefile),
                "--directory", str(tmp_path), "nothing"], tmp_path, timeout=300)


def test_a_declared_sae_has_one_folder_under_its_owner(tmp_path):
    res = _parse(tmp_path, f"FILES = {DECLARE}\nprint('FILES', json.dumps(vars(FILES)))\n"
                           "print('ENTRY', json.dumps(ZOO_SAES['steering-resid-sae']))",
                 REAL_CONFIG)
    assert res.returncode == 0, res.stderr
    line = next(x for x in res.stdout.splitlines() if x.startswith("FILES "))
    files = json.loads(line.split(" ", 1)[1])
    folder = "results/smoke/steering/sae"
    assert files["dir"] == folder and files["metrics"] == f"{folder}/eval.json"
    assert sorted(files["inputs"]) == sorted(
        f"{folder}/{name}" for name in ("cfg.json", "sae_weights.safetensors",
                                        "sparsity.safetensors", "frequency.safetensors",
                                        "history.json", "eval.json"))
    line = next(x for x in res.stdout.splitlines() if x.startswith("ENTRY "))
    entry = json.loads(line.split(" ", 1)[1])
    assert entry["model"] == "gpt2-xl" and entry["model_inputs"] == []
    assert entry["tokens"] == "t.safetensors"
    settings = json.loads(entry["config"])
    assert sorted(settings) == ["evaluation", "rows", "run", "sae", "site"]
    # The owner's values, unchanged: the dense threshold is its analysis.dense_frequency.
    assert settings["evaluation"]["dense_frequency"] == 0.5
    assert settings["site"]["hook_name"] == "blocks.1.hook_resid_pre"  # smoke: model.layer 1


@pytest.mark.parametrize("declarations, message", [
    (f"{DECLARE}\n{DECLARE}",
     "config error: model zoo: SAE 'steering-resid-sae' or a second SAE of steering declared"),
    (DECLARE.replace("steering-resid-sae", "unlisted-sae"),
     "config error: model zoo: replications/steering/writeup.yaml does not list 'unlisted-sae'"),
    (DECLARE.replace(', tokens="t.safetensors"', ""),
     "config error: model zoo: SAE 'steering-resid-sae' reads the published model 'gpt2-xl': "
     "give its tokens file"),
])
def test_bad_sae_declarations_are_one_line(tmp_path, declarations, message):
    res = _parse(tmp_path, declarations)
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if "error" in line.lower()]
    assert errors == [message] or (len(errors) == 1 and errors[0].startswith(message)), \
        res.stderr

"""The script convention of shared.cli: how a script names itself in its report lines."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from shared.cli import log, script_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("module, name", [
    ("replications.fact_finding.scripts.neuron_lookup", "fact_finding.neuron_lookup"),
    ("shared.scripts.train_lm", "shared.train_lm"),
    ("tests.unit.test_cli", "tests.unit.test_cli"),
])
def test_script_name_drops_the_package_words(module, name):
    assert script_name(module) == name


def test_log_names_the_calling_module_on_stderr(capsys):
    # A test calls a script's main() directly: the report names the script module all the same.
    namespace = {"__spec__": importlib.util.spec_from_loader(
        "replications.demo.scripts.step", loader=None), "log": log}
    exec("log('3 facts')", namespace)
    out = capsys.readouterr()
    assert out.out == "" and out.err == "[demo.step] 3 facts\n"


def test_log_under_python_m_names_the_module_not_main(tmp_path):
    # `python -m` runs a script as __main__; its report must still carry the script's name.
    code = "from shared.cli import log\nlog('done')\n"
    pkg = tmp_path / "replications" / "demo" / "scripts"
    pkg.mkdir(parents=True)
    for d in (tmp_path / "replications", tmp_path / "replications" / "demo", pkg):
        (d / "__init__.py").write_text("")
    (pkg / "step.py").write_text(code)
    res = subprocess.run([sys.executable, "-m", "replications.demo.scripts.step"], cwd=tmp_path,
                         capture_output=True, text=True, env={"PYTHONPATH": f"{tmp_path}:"
                                                              + ":".join(sys.path)})
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip().splitlines()[-1] == "[demo.step] done"

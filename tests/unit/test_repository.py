"""Repository conventions: every test file carries its tier marker (so `-m unit|integration|e2e`
selects it), CI runs the linter, the type checker and the README's test command, and every figure
caption is valid reStructuredText (Snakemake's --report renders them)."""

import ast
import io

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

TIERS = ("unit", "integration", "e2e")


def _module_marker(path) -> str | None:
    """The tier a file's module-level `pytestmark` names: `pytest.mark.<tier>`, or a list of
    marks (e.g. with a `skipif`) holding one of the tiers."""
    for node in ast.parse(path.read_text()).body:
        if not (isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)):
            continue
        marks = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
        tiers = [m.attr for m in marks if isinstance(m, ast.Attribute) and m.attr in TIERS]
        return tiers[0] if len(tiers) == 1 else None
    return None


def test_every_test_file_is_marked_with_its_folders_tier():
    files = sorted((ROOT / "tests").glob("*/test_*.py"))
    assert files
    wrong = {}
    for path in files:
        tier = path.parent.name
        assert tier in TIERS, f"{path}: tests live in tests/unit, tests/integration or tests/e2e"
        marker = _module_marker(path)
        if marker != tier:
            wrong[str(path.relative_to(ROOT))] = marker
    assert not wrong, f"files without `pytestmark = pytest.mark.<tier>` of their folder: {wrong}"


def test_ci_runs_lint_types_and_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    command = "bash env/bootstrap.sh && . .venv/bin/activate && python -m pytest"
    assert command in readme
    lines = [line.strip() for line in ci.splitlines() if line.strip() and not line.startswith("#")]
    # The README's command, split over lines so each step stops CI on its own (set -e).
    assert "bash env/bootstrap.sh && . .venv/bin/activate" in lines
    assert lines[-1] == "python -m pytest"
    assert "ruff check ." in lines and "mypy shared" in lines


def test_conda_env_pins_the_lock_inline():
    # Snakemake copies a rule's conda file elsewhere: a relative `-r requirements.lock` inside
    # it would point nowhere, so the pins are written out (env/make_conda_yaml.py).
    import subprocess
    import sys

    import yaml

    res = subprocess.run([sys.executable, "env/make_conda_yaml.py", "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    pip = yaml.safe_load((ROOT / "env" / "conda.yaml").read_text())["dependencies"][2]["pip"]
    assert not any(p.startswith("-r") for p in pip)
    lock = {ln.strip() for ln in (ROOT / "env" / "requirements.lock").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")}
    assert lock <= set(pip) and "torch==2.13.0" in pip


def test_every_caption_is_valid_restructuredtext():
    # An unescaped |x| is a substitution reference to docutils: --report printed errors for it.
    from docutils.core import publish_doctree

    captions = sorted(ROOT.glob("replications/*/captions/*.rst")) + sorted(
        ROOT.glob("shared/captions/*.rst"))
    assert len(captions) > 20
    for path in captions:
        warnings = io.StringIO()
        publish_doctree(path.read_text(), source_path=str(path), settings_overrides={
            "warning_stream": warnings, "report_level": 2, "halt_level": 5})
        assert not warnings.getvalue(), warnings.getvalue()

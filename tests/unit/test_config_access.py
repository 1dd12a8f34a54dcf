"""Config sections as rule params, code as rule inputs, and `--config <write-up>=` overrides:
the guard on undeclared sections, the audit, the overrides, the static import closure, and that
every rule of every write-up is wired."""

import atexit
import json
import re
from pathlib import Path

import pytest

from shared import code_deps, config_access, pipeline
from shared.config import ConfigError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted(ROOT.glob("replications/*/rules.smk")) + sorted(
    ROOT.glob("replications/*/rules/*.smk"))


def _load(monkeypatch, sections, overrides=None, profile="smoke"):
    from replications.caesar_cipher import config as caesar_config

    monkeypatch.setenv(config_access.ENV, config_access.encode(sections, overrides or {}))
    return caesar_config.load(profile)


def test_undeclared_section_is_unreadable(monkeypatch):
    cfg = _load(monkeypatch, ["caesar_cipher.train"])
    assert cfg.train.epochs >= 1
    with pytest.raises(config_access.UndeclaredSectionError,
                       match=r"'caesar_cipher.model' is read but its Snakemake rule does not "
                             r"declare it \(declared: caesar_cipher.train\)"):
        _ = cfg.model
    assert isinstance(config_access.UndeclaredSectionError("x"), ConfigError)


def test_no_declaration_reads_everything(monkeypatch):
    monkeypatch.delenv(config_access.ENV, raising=False)
    from replications.caesar_cipher import config as caesar_config

    cfg = caesar_config.load("smoke")
    assert type(cfg).__getattribute__ is object.__getattribute__
    assert cfg.model.n_layers == 2


def test_guarded_config_keeps_its_type_and_values(monkeypatch):
    from replications.caesar_cipher import config as caesar_config

    plain = _load(monkeypatch, None)
    cfg = _load(monkeypatch, ["caesar_cipher.data", "caesar_cipher.model", "caesar_cipher.train",
                              "caesar_cipher.analysis"])
    assert isinstance(cfg, caesar_config.Config)
    assert (cfg.data, cfg.model, cfg.train, cfg.analysis) == (
        plain.data, plain.model, plain.train, plain.analysis)


def test_overrides_merge_onto_the_profile(monkeypatch):
    plain = _load(monkeypatch, None)
    cfg = _load(monkeypatch, None, {"caesar_cipher": {"train": {"epochs": 77}}})
    assert cfg.train.epochs == 77
    assert cfg.model == plain.model
    # Seed variants still shift an overridden seed.
    cfg = _load(monkeypatch, None, {"caesar_cipher": {"model": {"seed": 5}}}, "smoke-seed2")
    assert cfg.model.seed == 7


def test_bad_override_names_the_key(monkeypatch):
    with pytest.raises(ConfigError, match=r"--config caesar_cipher.train: unknown key 'epoch'"):
        _load(monkeypatch, None, {"caesar_cipher": {"train": {"epoch": 3}}})
    with pytest.raises(ConfigError, match=r"--config caesar_cipher.train.epochs: expected an "
                                          r"integer"):
        _load(monkeypatch, None, {"caesar_cipher": {"train": {"epochs": "many"}}})


def test_audit_records_what_is_read(monkeypatch, tmp_path):
    monkeypatch.setenv(config_access.AUDIT_ENV, str(tmp_path))
    monkeypatch.setattr(config_access, "_AUDIT", set())
    cfg = _load(monkeypatch, None)
    _ = cfg.train
    assert config_access._AUDIT == {"caesar_cipher.train"}
    atexit.unregister(config_access._flush_audit)
    config_access._flush_audit(tmp_path)
    (record,) = tmp_path.glob("*.txt")
    assert record.read_text() == "caesar_cipher.train\n"


def test_run_config_takes_write_up_overrides():
    run = pipeline.run_config({"caesar_cipher": {"train": {"epochs": 2}}})
    assert run.overrides == {"caesar_cipher": {"train": {"epochs": 2}}}
    assert run.overrides_args() == 'caesar_cipher=\'{"train": {"epochs": 2}}\''
    with pytest.raises(ConfigError, match="--config caesar_cipher=3: expected a mapping"):
        pipeline.run_config({"caesar_cipher": 3})
    with pytest.raises(ConfigError, match="unknown --config key 'caesar'"):
        pipeline.run_config({"caesar": {"train": {}}})


def test_command_line_strings_get_their_yaml_types():
    # Snakemake's --config parser leaves nested scalars as strings.
    run = pipeline.run_config({"caesar_cipher": {"train": {"epochs": "2", "lr": "0.5",
                                                           "name": "adam", "on": "true"}}})
    assert run.overrides["caesar_cipher"]["train"] == {"epochs": 2, "lr": 0.5, "name": "adam",
                                                       "on": True}


def test_code_closure_follows_project_imports_only():
    files = code_deps.closure("replications.caesar_cipher.scripts.train")
    assert "replications/caesar_cipher/scripts/train.py" in files
    assert "replications/caesar_cipher/train.py" in files  # imported by the script
    assert "shared/training.py" in files  # imported by replications/caesar_cipher/train.py
    assert "replications/caesar_cipher/__init__.py" in files
    assert not any("steering" in f or "grid_challenge" in f for f in files)
    assert all((ROOT / f).is_file() for f in files)
    with pytest.raises(ValueError, match="not a module of this project"):
        code_deps.closure("torch.nn")


def test_code_closure_resolves_relative_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "shared" / "pkg"
    pkg.mkdir(parents=True)
    (tmp_path / "shared" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\nfrom .c import thing\nimport numpy\n")
    (pkg / "b.py").write_text("")
    (pkg / "c.py").write_text("")
    monkeypatch.setattr(code_deps, "ROOT", tmp_path)
    code_deps._direct.cache_clear()
    try:
        assert code_deps.closure("shared.pkg.a") == [
            "shared/__init__.py", "shared/pkg/__init__.py", "shared/pkg/a.py", "shared/pkg/b.py",
            "shared/pkg/c.py"]
    finally:
        code_deps._direct.cache_clear()


def _rules(path: Path) -> dict[str, str]:
    blocks = re.split(r"(?m)^(?=(?:    )?rule \w+:)", path.read_text())
    return {re.search(r"rule (\w+):", b).group(1): b for b in blocks if b.lstrip().startswith("rule ")}


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_write_up_rule_declares_its_code_and_config(path):
    """A rule that runs a write-up script lists the script's import closure as inputs and runs
    it under its declared config sections."""
    checked = 0
    for name, block in _rules(path).items():
        m = re.search(r"python -m (replications\.[\w.]+)", block)
        if m is None:
            continue
        checked += 1
        assert f'code=code_inputs("{m.group(1)}")' in block, name
        assert "**config_params(" in block, name
        assert '"MI_CONFIG={params.mi_config:q} "' in block, name
        for section in re.findall(r'"(\w+\.\w+)"', block.split("**config_params(")[1].split(")")[0]):
            writeup, _, key = section.partition(".")
            assert writeup in pipeline.WRITEUPS, (name, section)
            default = (ROOT / "replications" / writeup / "config" / "default.yaml").read_text()
            assert re.search(rf"(?m)^{key}:", default), (name, section)
    assert checked, f"{path}: no rule runs a write-up script"


def test_encode_round_trips(monkeypatch):
    monkeypatch.setenv(config_access.ENV, config_access.encode(["a.b"], {"a": {"b": {"c": 1}}}))
    job = config_access.current()
    assert job.sections == frozenset({"a.b"}) and json.dumps(job.overrides) == '{"a": {"b": {"c": 1}}}'

"""The monosemanticity configuration: every profile loads, paper is the reference code's, and a
wrong value is a one-line error naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from replications.monosemanticity import config as mono_config
from shared import pipeline
from shared.config import ConfigError
from tests.conftest import config_copy

FIGURES = pipeline.figures("monosemanticity")

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_every_profile_loads_and_paper_is_the_reference_code():
    cfgs = {p: mono_config.load(p) for p in ("smoke", "default", "paper")}
    paper = cfgs["paper"]
    assert paper.model.source == "pretrained" and paper.model.name == "gelu-1l"
    assert paper.model.dataset == "NeelNanda/c4-code-tokenized-2b"
    assert paper.model.dataset_row_len == 1024 and paper.model.seq_len == 128
    assert paper.model.hook_name == "blocks.0.mlp.hook_post"
    s = paper.sae
    assert (s.d_in, s.d_sae, s.batch_size, s.seed) == (2048, 16384, 4096, 49)
    assert s.l1_coeffs == (3e-4,) and s.lr == 1e-4 and s.adam_betas == (0.9, 0.99)
    assert (s.recon_reduction, s.l1_reduction, s.resample) == ("sum", "sum_batch", "reinit")
    assert s.pre_encoder_bias
    assert s.n_steps * s.batch_size == pytest.approx(2e9, rel=1e-3)
    assert s.resample_every == 30000 and s.dead_frequency == pytest.approx(1e-5)
    assert paper.buffer.n_activations == 384 * 4096 and paper.buffer.rows_per_batch == 512
    assert paper.analysis.ultra_low_threshold == 1e-4
    assert paper.analysis.cluster_cosine_threshold == 0.95
    assert paper.case_studies.n_features == 8
    for name in ("smoke", "default"):
        c = cfgs[name]
        assert c.model.source == "stand_in" and c.sae.d_in == c.lm.model.d_mlp
        assert c.lm.model.n_layers == 1 and c.lm.model.act_fn == "gelu"
        assert c.lm.model.d_mlp == 4 * c.lm.model.d_model
        # The same L1 definition as the reference code in every profile.
        assert (c.sae.recon_reduction, c.sae.l1_reduction) == ("sum", "sum_batch")
    # Issue 13: default counts firing frequencies over >= 2M tokens (held-out + unseen training
    # rows), and the training rows it adds lie beyond what the buffer reads in a default run.
    d = cfgs["default"]
    freq_rows = d.model.eval_rows + d.model.frequency_train_rows
    assert freq_rows * d.model.seq_len >= 2_000_000
    read_rows = (d.sae.n_steps * d.sae.batch_size + d.buffer.n_activations) / d.model.seq_len
    assert read_rows + d.model.frequency_train_rows < 20_910  # the default corpus: 20,910 rows
    assert paper.model.eval_rows * paper.model.seq_len >= 2_000_000


def test_every_figure_has_a_caption():
    captions = ROOT / "replications" / "monosemanticity" / "captions"
    for name in FIGURES:
        text = (captions / f"{name}.rst").read_text()
        assert len(text) > 100, name


def _config_dir(tmp_path: Path, **profiles: dict) -> Path:
    return config_copy(mono_config.CONFIG_DIR, tmp_path / "config", **profiles)


@pytest.mark.parametrize("override, message", [
    ({"sae": {"d_in": 64}}, "sae.d_in (64) must equal lm.model.d_mlp"),
    ({"sae": {"l1_reduction": "sum_all"}}, "smoke.yaml.sae.l1_reduction"),
    ({"sae": {"l1_coeffs": [1e-3, 2e-3]}}, "one SAE per run"),
    ({"model": {"train_eval_rows": 10_000}}, "train_eval_rows must lie in"),
    ({"model": {"dataset": "NeelNanda/c4-code-tokenized-2b"}}, "must be empty"),
    ({"second_seed": {"seed": 49}}, "second_seed.seed must differ"),
    ({"model": {"hook_name": "blocks.0.hook_resid_post"}}, "MLP activation"),
    ({"orthogonal": {"fallback_fraction": 0.0}}, "fallback_fraction"),
    ({"modle": {}}, "unknown key 'modle'"),
])
def test_bad_values_are_one_line_errors(tmp_path, monkeypatch, override, message):
    monkeypatch.setattr(mono_config, "CONFIG_DIR", _config_dir(tmp_path, smoke=override))
    with pytest.raises(ConfigError) as err:
        mono_config.load("smoke")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_paper_needs_a_name_and_a_data_set(tmp_path, monkeypatch):
    bad = yaml.safe_load((mono_config.CONFIG_DIR / "paper.yaml").read_text())
    bad["model"]["dataset"] = ""
    monkeypatch.setattr(mono_config, "CONFIG_DIR", _config_dir(tmp_path, paper=bad))
    with pytest.raises(ConfigError, match="model.name and model.dataset"):
        mono_config.load("paper")

"""Pure functions of the Tracr part: labels, domains, accuracy, metrics, config validation."""

from __future__ import annotations

import math

import pytest
import torch

from replications.toy_models.tracr_compression import (
    CompressionConfig,
    accuracy,
    compression_metrics,
    init_compression,
    median,
    mid_width,
    smallest_adequate_width,
    smallest_reliable_width,
    sv_ratio,
    sv_top_to_median,
    sweep_widths,
    task_loss,
)
from replications.toy_models.tracr_models import (
    BOS,
    PAD,
    TracrConfig,
    TracrModelInfo,
    TracrSAEConfig,
    categorical_correct,
    clean_direction_name,
    encode_domain,
    enumerate_domain,
    frac_prevs_tolerance,
    numerical_correct,
    parse_residual_label,
)
from replications.toy_models.tracr_sae import (
    active_directions,
    short_variable_name,
    variable_recovery,
)
from shared.config import ConfigError, build

pytestmark = pytest.mark.unit

SAE_KW = dict(
    dict_mult=2.0, l1_coeffs=(0.1,), lr=1e-3, adam_betas=(0.9, 0.999), batch_size=8,
    n_steps=10, resample="none", resample_every=10, resample_window=5, active_eps=1e-3,
    recovery_threshold=0.9, random_baseline_draws=8,
)
TRACR_KW = dict(
    programs=("frac_prevs",), vocab=(1, 2, 3), max_seq_len=4, frac_prevs_token=1,
    mlp_exactness=100, check_atol=1e-4, causal=False,
)
COMP_KW = dict(
    programs=("frac_prevs",), min_width=1, width_stride=1, n_restarts=1, init="orthogonal",
    lr=1e-3, batch_size=8, n_steps=10, eval_chunk=4, mid_width_fraction=0.5,
    accuracy_target=0.95, checkpoint_every=5, log_every=5,
)


@pytest.mark.parametrize(
    "label, expected",
    [
        ("tokens:3", ("tokens", "3")),
        ("one", ("one", None)),
        ("frac_prevs", ("frac_prevs", None)),
        ("opp_idx-1:-4", ("opp_idx-1", "-4")),
        ("sequence_map:1.25", ("sequence_map", "1.25")),
        ("tokens:BOS", ("tokens", "BOS")),
    ],
)
def test_parse_residual_label(label: str, expected: tuple[str, str | None]) -> None:
    assert parse_residual_label(label) == expected


def test_parse_residual_label_rejects_empty_name() -> None:
    with pytest.raises(ConfigError):
        parse_residual_label(":3")


def test_clean_direction_name_strips_unique_ids() -> None:
    labels = {"length_5": "length", "x_1": "a", "x_12": "b", "tokens": "tokens"}
    assert clean_direction_name("length_5", labels) == "length"
    assert clean_direction_name("length_5_selector_width_attn_output", labels) == \
        "length_selector_width_attn_output"
    # 'x_12_...' extends label x_12, not x_1: the longest matching label wins.
    assert clean_direction_name("x_12_helper", labels) == "b_helper"
    assert clean_direction_name("x_1_helper", labels) == "a_helper"
    assert clean_direction_name("tokens", labels) == "tokens"
    assert clean_direction_name("one", labels) == "one"


def test_short_variable_name() -> None:
    assert short_variable_name("hist_selector_width_attn_output") == "hist (sw helper)"
    assert short_variable_name("tokens") == "tokens"


def test_enumerate_domain_counts_and_order() -> None:
    dom = enumerate_domain((3, 1, 2), 4)
    assert len(dom) == 3 + 9 + 27 + 81
    assert dom[0] == (1,) and dom[3] == (1, 1)  # shortest first, sorted vocab
    assert len(set(dom)) == len(dom)


def test_encode_domain_bos_pad_and_mask() -> None:
    tok_to_id = {1: 0, 2: 1, BOS: 2, PAD: 3}
    ids, mask = encode_domain([(1,), (2, 1, 2)], tok_to_id, 3)
    assert ids.tolist() == [[2, 0, 3, 3], [2, 1, 0, 1]]
    assert mask.tolist() == [[False, True, False, False], [False, True, True, True]]


def test_frac_prevs_tolerance_is_half_a_step() -> None:
    tol = frac_prevs_tolerance(4)
    assert math.isinf(tol[0].item())
    assert tol[1:].tolist() == pytest.approx([0.5, 0.25, 1 / 6])


def test_numerical_correct_uses_half_step() -> None:
    target = torch.tensor([[0.0, 1.0, 0.5, 1 / 3]])
    assert numerical_correct(target + torch.tensor([[9.0, 0.49, 0.24, 0.16]]), target).tolist() \
        == [[True, True, True, True]]
    assert numerical_correct(target + torch.tensor([[0.0, -0.51, 0.26, -0.17]]), target) \
        .tolist() == [[True, False, False, False]]


def test_categorical_correct() -> None:
    logits = torch.tensor([[[0.1, 0.9], [2.0, 1.0]]])
    assert categorical_correct(logits, torch.tensor([[1, 1]])).tolist() == [[True, False]]


def test_accuracy_counts_only_output_positions() -> None:
    # Two sequences, 3 positions (BOS + 2); the second has a pad at position 2.
    mask = torch.tensor([[False, True, True], [False, True, False]])
    target = torch.tensor([[-1, 0, 1], [-1, 1, -1]])
    logits = torch.zeros(2, 3, 2)
    logits[0, 1, 0] = logits[0, 2, 1] = 1.0  # first sequence right
    logits[1, 1, 0] = 1.0  # second wrong
    per_pos, per_seq = accuracy(logits, mask, target, torch.zeros(2, 3), categorical=True)
    assert per_pos.item() == pytest.approx(2 / 3)
    assert per_seq.item() == pytest.approx(0.5)


def test_task_loss_ce_and_mse() -> None:
    mask = torch.tensor([[False, True]])
    out = torch.tensor([[[[0.0, 0.0], [50.0, 0.0]]]])  # [inst, batch, pos, n_out]
    ce = task_loss(out, mask, torch.tensor([[-1, 0]]), torch.zeros(1, 2), categorical=True)
    assert ce.item() == pytest.approx(0.0, abs=1e-6)
    vals = torch.tensor([[[[5.0], [0.75]]]])
    mse = task_loss(vals, mask, torch.zeros(1, 2, dtype=torch.long),
                    torch.tensor([[0.0, 0.5]]), categorical=False)
    assert mse.item() == pytest.approx(0.0625)


def test_sweep_widths() -> None:
    assert sweep_widths(7, 1, 1) == (1, 2, 3, 4, 5, 6, 7)
    assert sweep_widths(14, 3, 4) == (6, 10, 14)
    with pytest.raises(ConfigError):
        sweep_widths(4, 5, 1)


def test_init_compression_orthonormal() -> None:
    gen = torch.Generator().manual_seed(0)
    w = init_compression(6, 4, "orthogonal", gen)
    assert torch.allclose(w.T @ w, torch.eye(4), atol=1e-5)
    full = init_compression(6, 6, "orthogonal", gen)
    assert torch.allclose(full @ full.T, torch.eye(6), atol=1e-5)


def test_summary_helpers() -> None:
    assert sv_ratio([4.0, 2.0, 1.0]) == 2.0
    assert sv_top_to_median([4.0, 2.0, 1.0]) == 2.0
    assert math.isinf(sv_ratio([3.0]))
    assert mid_width((2, 4, 6, 8), 10, 0.5) == 4  # |4-5| == |6-5|: the smaller
    assert smallest_adequate_width((2, 4, 6), (0.5, 0.96, 0.99), 0.95) == 4
    assert smallest_adequate_width((2, 4), (0.5, 0.6), 0.95) is None
    assert smallest_reliable_width((2, 4, 6, 8), (0.96, 0.5, 0.97, 0.99), 0.95) == 6
    assert smallest_reliable_width((2, 4), (0.99, 0.5), 0.95) is None
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([1.0, 2.0]) == 1.5 and median([]) is None


def test_compression_metrics_names() -> None:
    def fake(program: str, categorical: bool) -> dict:
        summary = {
            "program": program, "d_model": 10, "uncompressed_accuracy": 1.0,
            "accuracy_full_width": 0.9, "accuracy_at_half_width": 0.7, "half_width": 5,
            "smallest_width_at_target": 8, "smallest_width_at_target_fraction": 0.8,
            "accuracy_at_smallest_width_at_target": 0.96, "accuracy_min_width": 0.3,
            "smallest_reliable_width_at_target": 9,
            "sv_ratio_at_mid_width": 3.0 if categorical else 1.1, "mid_width": 5,
            "sv_ratio_median": 2.5, "top_output_share_at_mid_width": 0.9,
            "sv_top_to_median_at_mid_width": 4.0, "sv_top_to_median_median": 3.5,
            "top_output_share_median": 0.8, "accuracy_target": 0.95,
        }
        return {"program": program, "categorical": categorical, "summary": summary,
                "accuracy": [0.3, 0.9]}

    m = compression_metrics([fake("frac_prevs", False), fake("sort", True)])
    assert m["categorical_sv_ratio"] == 3.0 and m["numerical_sv_ratio"] == 1.1
    assert m["categorical_program"] == "sort" and m["numerical_program"] == "frac_prevs"
    assert m["sort_smallest_width_at_target"] == 8
    assert m["frac_prevs_accuracy_at_half_width"] == 0.7


def test_variable_recovery_and_active_directions() -> None:
    rec = variable_recovery(torch.tensor([1.0, 0.5, 0.9]), ["tokens", "tokens", "one"])
    assert rec == pytest.approx({"tokens": 0.75, "one": 0.9})
    data = torch.tensor([[0.0, 1.0, 1e-4], [0.0, 0.0, 0.0]])
    assert active_directions(data, 1e-3).tolist() == [False, True, False]


def test_model_info_json_round_trip() -> None:
    info = TracrModelInfo(
        program="hist", vocab=(1, 2), max_seq_len=2, categorical=True, output_variable="hist",
        residual_labels=("hist:1", "one"), residual_variables=("hist", "one"),
        input_tokens=(1, 2, BOS, PAD), output_values=(0, 1, 2), tl_config={"d_model": 2},
        check={"passed": True},
    )
    assert TracrModelInfo.from_json(info.to_json()) == info
    assert info.token_to_id[PAD] == 3 and info.d_model == 2 and info.n_pos == 3


def test_configs_build_from_yaml_values() -> None:
    sae = build(TracrSAEConfig, {**SAE_KW, "adam_betas": [0.9, 0.999], "l1_coeffs": [0.1]})
    assert sae.adam_betas == (0.9, 0.999)
    cfg = build(TracrConfig, {**TRACR_KW, "programs": ["frac_prevs"], "vocab": [1, 2, 3],
                              "sae": {**SAE_KW, "adam_betas": [0.9, 0.999]}})
    assert cfg.vocab == (1, 2, 3) and cfg.sae == sae


@pytest.mark.parametrize(
    "cls, base, override, message",
    [
        (TracrConfig, TRACR_KW, {"programs": ("sort_unique",)}, "unknown tracr program"),
        (TracrConfig, TRACR_KW, {"frac_prevs_token": 9}, "frac_prevs_token"),
        (TracrConfig, TRACR_KW, {"vocab": (1, 1)}, "duplicate"),
        (TracrConfig, TRACR_KW, {"max_seq_len": 0}, "max_seq_len"),
        (TracrSAEConfig, SAE_KW, {"recovery_threshold": 0.0}, "recovery_threshold"),
        (TracrSAEConfig, SAE_KW, {"l1_coeffs": ()}, "l1_coeffs"),
        (CompressionConfig, COMP_KW, {"mid_width_fraction": 1.0}, "mid_width_fraction"),
        (CompressionConfig, COMP_KW, {"n_restarts": 0}, "n_restarts"),
        (CompressionConfig, COMP_KW, {"min_width": 0}, "min_width"),
    ],
)
def test_config_validation_errors(cls: type, base: dict, override: dict, message: str) -> None:
    kwargs = {**base, **override}
    if cls is TracrConfig:
        kwargs["sae"] = TracrSAEConfig(**SAE_KW)
    with pytest.raises(ConfigError, match=message):
        cls(**kwargs)

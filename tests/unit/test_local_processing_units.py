"""Local processing: token categories, truncation batches, centred cosine, summaries, config."""

import math

import pytest
import torch

from replications.local_processing import analysis as A
from replications.local_processing import config as C
from replications.local_processing import harvest as H
from replications.local_processing.categories import CATEGORIES, categorise, category_of
from shared.config import ConfigError

pytestmark = pytest.mark.unit

COMMON = frozenset(["and", "of", "the", "i", "on", "a"])


@pytest.mark.parametrize("token, expected", [
    ("\n", "newline"), ("\n\n", "newline"), (" \n", "other"), (".", "full_stop"),
    (" .", "full_stop"), ("..", "other"), (",", "comma"), (" ,", "comma"),
    (" the", "common"), ("The", "common"), (" I", "common"), ("on", "common"),
    ("  the", "other"), (" there", "alpha"), ("Zeb", "alpha"), ("ing", "alpha"),
    (" élan", "alpha"), ("42", "other"), (" x2", "other"), ("<|endoftext|>", "other"),
    ("", "other"), (" ", "other"), ("(", "other"),
])
def test_category_of(token, expected):
    assert category_of(token, COMMON) == expected


def test_categorise_decodes_each_id_once():
    vocab = {5: " the", 7: ".", 9: " cat", 11: "\n"}
    calls = []

    def decode(i):
        calls.append(i)
        return vocab[i]

    ids = torch.tensor([9, 5, 9, 7, 11, 5])
    cat, strings = categorise(ids, decode, ["the"])
    assert [CATEGORIES[i] for i in cat] == ["alpha", "common", "alpha", "full_stop",
                                            "newline", "common"]
    assert sorted(calls) == [5, 7, 9, 11] and strings[9] == " cat"


def test_sample_positions_distinct_sorted_in_range_and_seeded():
    s = H.sample_positions(50, 40, 6, 12, seed=3)
    assert s.positions.shape == (50, 6) and len(s) == 300
    assert bool((s.positions >= 12).all() and (s.positions < 40).all())
    assert bool((s.positions[:, 1:] > s.positions[:, :-1]).all())  # distinct, increasing
    assert torch.equal(s.prompt[:7], torch.tensor([0] * 6 + [1]))
    assert torch.equal(s.positions, H.sample_positions(50, 40, 6, 12, seed=3).positions)
    assert not torch.equal(s.positions, H.sample_positions(50, 40, 6, 12, seed=4).positions)
    with pytest.raises(ConfigError):
        H.sample_positions(2, 20, 9, 12, seed=0)


ROWS = torch.arange(100, 160).reshape(3, 20).int()
ROWS[:, 0] = 0  # BOS


def test_truncated_tokens_are_bos_plus_the_last_c_tokens():
    prompt, position = torch.tensor([0, 2]), torch.tensor([11, 15])
    t = H.truncated_tokens(ROWS, prompt, position, 3, bos=0)
    assert t.tolist() == [[0, 109, 110, 111], [0, 153, 154, 155]]
    one = H.truncated_tokens(ROWS, prompt, position, 1, bos=0)
    assert one.tolist() == [[0, 111], [0, 155]]  # context 1: the token alone after BOS
    with pytest.raises(ConfigError):
        H.truncated_tokens(ROWS, prompt, torch.tensor([2, 15]), 3, bos=0)


def test_padded_truncations_hold_every_variant_sample_major():
    prompt, position = torch.tensor([1, 0]), torch.tensor([12, 10])
    toks, read = H.padded_truncations(ROWS, prompt, position, (1, 2, 4), bos=0, pad=-1)
    assert toks.shape == (6, 5) and read.tolist() == [1, 2, 4, 1, 2, 4]
    assert toks[0].tolist() == [0, 132, -1, -1, -1]
    assert toks[2].tolist() == [0, 129, 130, 131, 132]
    assert toks[4].tolist() == [0, 109, 110, -1, -1]
    for row, c in zip(toks, read):  # the token read is the sampled token itself
        assert row[c] in (132, 110)


def test_positions_processed_counts_padding():
    assert H.positions_processed(4, 128, 32, tuple(range(1, 11)), "by_length") == {
        "full": 512, "truncated": 32 * 65}
    assert H.positions_processed(4, 128, 32, tuple(range(1, 11)), "padded")["truncated"] == \
        32 * 110


def test_centred_cosine_uses_the_per_layer_mean():
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(3, 8, generator=gen) * 5  # a large shared mean per layer
    a = mean + torch.randn(10, 3, 8, generator=gen)
    b = mean + torch.randn(10, 3, 8, generator=gen)
    got = H.centred_cosine(a, b, mean)
    ref = torch.nn.functional.cosine_similarity(a.double() - mean.double(),
                                                b.double() - mean.double(), dim=-1)
    assert torch.allclose(got.double(), ref, atol=1e-6)
    raw = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    assert raw.mean() > 0.8 and got.abs().mean() < 0.5  # the shared mean inflates raw cosines
    # Layer l is centred with mean[l] only: shifting another layer's mean leaves it unchanged.
    shifted = mean.clone()
    shifted[1] += 3
    moved = H.centred_cosine(a, b, shifted)
    assert torch.allclose(moved[:, 0], got[:, 0], atol=1e-6)
    assert not torch.allclose(moved[:, 1], got[:, 1], atol=1e-3)
    assert torch.allclose(H.centred_cosine(a, a, mean), torch.ones(10, 3))


def test_trend_metrics_on_a_known_curve():
    # 7 layers, first third = layer 2: drop 0.9 -> 0.7, then 0.7 -> 0.68 by layer 5, uptick.
    med = torch.tensor([0.9, 0.8, 0.7, 0.69, 0.685, 0.68, 0.72])
    t = A.trend_metrics(med, 1 / 3)
    assert t["first_third_layer"] == 2
    assert t["early_drop"] == pytest.approx(0.2)
    assert t["early_slope"] == pytest.approx(0.1)
    assert t["late_slope"] == pytest.approx(0.02 / 3)
    assert t["late_over_early_slope"] == pytest.approx(0.02 / 3 / 0.1)
    assert t["early_max_step_share"] == pytest.approx(0.5)
    assert t["early_min_step"] == pytest.approx(0.1)
    assert t["final_uptick"] == pytest.approx(0.04)
    assert t["argmin_layer"] == 5
    assert A.first_third_layer(32, 0.3333) == 10


def test_tail_metrics_see_a_left_tail():
    x = torch.cat([torch.full((980,), 0.9) + torch.linspace(-0.01, 0.01, 980),
                   torch.linspace(-0.5, 0.5, 20)])
    t = A.tail_metrics(x, 0.01)
    assert t["left_over_right_tail"] > 10 and t["share_negative"] == pytest.approx(0.01)


def test_category_metrics_and_gaps():
    cat = torch.tensor([CATEGORIES.index(c) for c in
                        ["alpha"] * 4 + ["comma"] * 2 + ["common"] * 2 + ["other"] * 2
                        + ["newline"]])
    cos = torch.tensor([0.99, 0.98, 0.97, 0.96, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.4])
    m = A.category_metrics(cos, cat)
    assert m["count"] == {"newline": 1, "full_stop": 0, "comma": 2, "common": 2, "alpha": 4,
                          "other": 2, "punctuation": 3}
    assert math.isnan(m["median"]["full_stop"]) and m["median"]["comma"] == pytest.approx(0.55)
    assert m["median"]["punctuation"] == pytest.approx(0.5)  # newline and commas pooled
    assert m["alpha_minus_max_other"] == pytest.approx(0.975 - 0.875)
    assert m["alpha_minus_common"] == pytest.approx(0.975 - 0.75)
    assert m["punctuation_gap"] == pytest.approx(0.75 - 0.5)
    assert m["alpha_minus_punctuation"] == pytest.approx(0.475)


def _fake_harvest(n=60, layers=4, contexts=(1, 5, 10)):
    gen = torch.Generator().manual_seed(0)
    base = torch.tensor([0.95, 0.85, 0.8, 0.82])[:layers]
    bonus = torch.tensor([0.0, 0.03, 0.04])[: len(contexts)]
    cos = (base[None, None, :] + bonus[None, :, None] - 0.1
           + 0.02 * torch.randn(n, len(contexts), layers, generator=gen)).clamp(max=1)
    return A.Harvest(
        cos=cos, baseline=0.01 * torch.randn(n, layers, generator=gen),
        token=torch.arange(n), category=torch.arange(n) % len(CATEGORIES),
        prompt=torch.arange(n) // 4, position=torch.full((n,), 20), mean_norm=torch.ones(layers),
        contexts=contexts, info={"model": "m", "model_label": "m",
                                 "token_strings": {str(i): f"t{i}" for i in range(n)}})


def test_summarise_and_round_trip(tmp_path):
    h = _fake_harvest()
    h.save(tmp_path)
    back = A.Harvest.load(tmp_path)
    assert torch.equal(back.cos, h.cos.float()) and back.contexts == (1, 5, 10)
    cfg = C.load("default")
    s = A.summarise(back, cfg.analysis, cfg.categories, 8)
    assert s["n_tokens"] == 60 and s["n_prompts"] == 15 and s["n_layers"] == 4
    med5 = s["per_context"]["c5"]["median"]
    assert s["headline"]["layer0_focus"] == pytest.approx(med5[0])
    assert s["headline"]["layer0_focus_minus_contrast"] == pytest.approx(
        med5[0] - s["per_context"]["c1"]["median"][0])
    assert s["trend"]["final_uptick"] == pytest.approx(med5[3] - med5[2])
    assert len(s["outliers"]) == 40 and s["outliers"][0]["cos"] <= s["outliers"][1]["cos"]
    assert s["outliers"][0]["token"].startswith("t")
    counts = s["categories"]["count"]
    assert sum(v for k, v in counts.items() if k != "punctuation") == 60
    by_layer = s["categories"]["by_layer"]
    assert len(by_layer["median"]["alpha"]) == 4
    assert by_layer["gaps"]["punctuation_gap"][0] == pytest.approx(
        s["categories"]["punctuation_gap"])
    assert by_layer["mean_over_layers"]["alpha_minus_common"] == pytest.approx(
        sum(by_layer["gaps"]["alpha_minus_common"]) / 4)


def test_configs_load_and_reject_bad_values(tmp_path):
    for profile in ("smoke", "default", "paper"):
        cfg = C.load(profile)
        assert cfg.harvest.contexts == tuple(range(1, 11))
        assert cfg.data.min_position > max(cfg.harvest.contexts)
        assert "on" in cfg.categories.common_words and len(cfg.categories.common_words) == 23
    assert C.load("paper").data.dataset == "NeelNanda/pile-10k"
    import dataclasses
    d = C.load("default")
    with pytest.raises(ConfigError, match="min_position"):
        dataclasses.replace(d, data=dataclasses.replace(d.data, min_position=10))
    with pytest.raises(ConfigError, match="focus_context"):
        dataclasses.replace(d, analysis=dataclasses.replace(d.analysis, focus_context=11))
    with pytest.raises(ConfigError, match="increasing"):
        dataclasses.replace(d.harvest, contexts=(1, 3, 2))

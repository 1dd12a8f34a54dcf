"""Embedding studies without a model: Puzzle 1's statistics, Puzzle 2's tests on planted
numeric vs clustered features, position balancing, configs."""

import dataclasses

import pytest
import torch

from replications.embedding_studies import config as C
from replications.embedding_studies import directions, embeddings, positional
from shared.config import ConfigError

pytestmark = pytest.mark.unit


def test_shared_offset_makes_cosines_high_and_centring_removes_it():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(300, 32, generator=gen) + 6.0 * torch.ones(32)
    cfg = dataclasses.replace(C.load("smoke").puzzle1, n_tokens=300, remove_pcs=(1, 3))
    out = embeddings.embedding_study(X, cfg, bins=40)
    v = out["variants"]
    assert v["raw"]["mean"] > 0.9 and abs(v["centred"]["mean"]) < 0.01
    assert out["cos_with_mean"]["mean"] > 0.95 and sum(v["raw"]["hist"]) == 300 * 299 // 2
    # Isotropic vectors: near 0 already, nothing for centring to remove.
    iso = embeddings.embedding_study(torch.randn(300, 32, generator=gen), cfg, bins=40)
    assert abs(iso["variants"]["raw"]["mean"]) < 0.02
    # Removing k PCs leaves vectors orthogonal to the top k directions of the centred set.
    Y = embeddings.remove_top_pcs(X, 3)
    _, _, Vh = torch.linalg.svd(embeddings.centred(X), full_matrices=False)
    assert (Y @ Vh[:3].T).abs().max() < 1e-8


def _tokens(lengths):
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    return [(" " if i % 3 == 0 else "") + (alphabet[i % 26].upper() if i % 5 == 0 else
                                           alphabet[i % 26]) + "x" * (n - 1)
            for i, n in enumerate(lengths)]


@pytest.mark.parametrize("numeric", [True, False])
def test_length_tests_tell_a_numeric_direction_from_clusters(numeric):
    gen = torch.Generator().manual_seed(1)
    d, n = 48, 900
    lengths = torch.randint(1, 8, (n,), generator=gen)
    strings = _tokens(lengths.tolist())
    true_len = torch.tensor([len(s) for s in strings])
    if numeric:  # one direction, one step per character
        X = true_len[:, None] * torch.randn(d, generator=gen) + 0.3 * torch.randn(n, d, generator=gen)
    else:  # a random centroid per length: separable, but on no common axis
        centroids = torch.randn(20, d, generator=gen) * 3
        X = centroids[true_len] + 0.3 * torch.randn(n, d, generator=gen)
    cfg = C.load("default").directions
    out, t = directions.run(X, strings, cfg)
    ln = out["length"]
    assert t["pred_test"].shape == t["length_test"].shape == (ln["n_test"],)
    assert abs(ln["step_alignment_consecutive_shuffled"] + 0.5) < 0.2
    if numeric:
        assert ln["heldout_r2"] > 0.95 and ln["r2_gain_over_shuffled"] > 0.8
        assert ln["alignment_gain_over_shuffled"] > 1.2 and 0.9 < ln["unit_step"] < 1.1
        assert ln["monotone_fraction"] == 1.0
    else:
        assert ln["alignment_gain_over_shuffled"] < 0.3
    # The planted features are not in these embeddings: both probes stay near their baselines.
    assert out["space"]["gain_over_shuffled"] < 0.1


def test_binary_probe_finds_a_planted_direction():
    gen = torch.Generator().manual_seed(2)
    y = torch.rand(600, generator=gen) < 0.4
    X = torch.randn(600, 16, generator=gen) + y[:, None].float() * torch.ones(16)
    res = directions.binary_probe(X, y, C.load("default").directions, gen)
    assert res["heldout_acc"] > 0.9 and res["heldout_acc"] > res["shuffled_acc"] + 0.2


def test_token_filter_drops_degenerate_tokens():
    keep = [s for s in [" the", "\n", "   ", "a\ufffd", "x" * 30, "ok"]
            if directions.keep_token(s, 12)]
    assert keep == [" the", "ok"]


def test_balance_equalises_indices_at_every_position():
    gen = torch.Generator().manual_seed(3)
    pos = torch.randint(20, 30, (2000,), generator=gen)
    label = (pos - 20) // 2 + torch.randint(0, 3, (2000,), generator=gen)
    keep = positional.balance(pos, label, gen)
    for p in pos[keep].unique():
        counts = torch.bincount(label[keep][pos[keep] == p])
        assert len(set(counts[counts > 0].tolist())) == 1 and (counts > 0).sum() >= 2
    # Absolute position then carries no information: every index has the same positions.
    feats = positional.baseline_features(pos[keep], torch.zeros(len(keep), dtype=torch.bool),
                                         pos.unique())
    assert feats.shape == (len(keep), len(pos.unique()) + 1)


def test_prompts_mark_word_ends_and_indices():
    words = {1: [[5]], 2: [[6, 7]], 3: [[8, 9, 10]]}
    p = positional.make_prompts([1, 2], 0, words, 4, 7, torch.Generator().manual_seed(0))
    assert p.index.tolist() == list(range(7)) * 4
    for r, q, sp in zip(p.row.tolist(), p.pos.tolist(), p.space.tolist()):
        assert int(p.tokens[r, q]) in (5, 7, 10) and sp == (int(p.tokens[r, q]) == 5)
    assert (p.tokens[:, :3] == torch.tensor([0, 1, 2])).all()


def test_configs_load_and_bad_values_are_one_line():
    for profile in ("smoke", "default", "paper"):
        cfg = C.load(profile)
        assert (cfg.model.source == "pretrained") == (profile == "paper")
    assert C.load("paper").model.puzzle1 == "EleutherAI/gpt-neo-125M"
    assert C.load("paper").positional.layer == 3
    with pytest.raises(ConfigError, match="remove_pcs"):
        C.Puzzle1Config(n_tokens=100, remove_pcs=(3, 1), resid_tokens=100, hist_bins=20, seed=0)
    with pytest.raises(ConfigError, match="model.puzzle1"):
        C.ModelConfig(source="stand_in", puzzle1="gpt2", main="", device="auto")


def test_reads_the_steering_stand_in_as_declared():
    """The studies read steering's stand-in where it trains one (the files: test_pipeline's
    hand-off test); in paper the posts' models come by name from this config."""
    from replications.steering import config as steer_config
    from shared import pipeline

    for profile in ("smoke", "default", "paper"):
        steer, emb = steer_config.load(profile), C.load(profile)
        stand_in = steer.model.source == "stand_in"
        assert (emb.model.source == "stand_in") == stand_in, profile
        if not stand_in:
            assert (emb.model.puzzle1, emb.model.main) == ("EleutherAI/gpt-neo-125M", "gpt2")
    # The studies read steering's stand-in LM (not its zoo SAE).
    assert pipeline.manifest("embedding_studies").models == ("gpt2-steering-stand-in",)
    assert "gpt2-steering-stand-in" in pipeline.manifest("steering").models


@pytest.mark.parametrize("attn_types, label", [
    (None, "GPT-2-shaped stand-in"),
    (["global", "global"], "GPT-2-shaped stand-in"),
    (["local", "global", "global"], "stand-in (layer 0 local)"),
    (["local", "local", "global", "global"], "stand-in (layers 0-1 local)"),
])
def test_the_stand_in_label_names_its_local_layers(attn_types, label):
    from types import SimpleNamespace

    from replications.embedding_studies.scripts._common import _stand_in_label
    assert _stand_in_label(SimpleNamespace(cfg=SimpleNamespace(attn_types=attn_types))) == label

"""Steering replication, pieces without a trained model: ActAdd vectors and padding, the front-
position hook, cached vs uncached generation, the sampler, vocabulary counting, Pareto
frontiers, spliced-loss masking and the SAE-based vector constructions."""

import copy
import re

import numpy as np
import pytest
import torch

from replications.steering import actadd, evaluation, features, sampling
from replications.steering.docs import DocsConfig, generate_documents
from shared.lm import LMConfig, build_model
from shared.tokenizer import TokenizerConfig, hf_tokenizer, train_tokenizer

pytestmark = pytest.mark.unit

V = 60
HOOK = "blocks.1.hook_resid_pre"


@pytest.fixture(scope="module")
def model():
    cfg = LMConfig(n_layers=2, d_model=16, d_mlp=64, n_heads=2, d_head=8, act_fn="gelu_new",
                   normalization_type="LN", positional_embedding_type="standard", rotary_dim=0,
                   parallel_attn_mlp=False, n_ctx=48)
    torch.manual_seed(0)
    m = build_model(cfg, V, seed=0).eval()
    with torch.no_grad():  # larger biases: a less uniform next-token distribution
        for p in m.parameters():
            if p.ndim == 1:
                p.add_(0.3 * torch.randn_like(p))
    return m


@pytest.fixture(scope="module")
def tokenizer():
    texts = [("Anger. I think you're a fool. Calm. I talk about weddings constantly. "
             "I do not talk about weddings constantly. I went up to my friend and said hi.")] * 40
    tok = train_tokenizer(texts, TokenizerConfig(vocab_size=300, min_frequency=1,
                                                 split_digits=False, train_bytes=10**6,
                                                 seq_len=32))
    return hf_tokenizer(tok)


# ----------------------------------------------------------------------------- ActAdd vectors

def test_pad_pair_right_pads_the_shorter_with_the_pad_token():
    pair = actadd.pad_pair([0, 5, 6], [0, 7, 8, 9, 10], pad_id=3)
    assert pair.positive.tolist() == [0, 5, 6, 3, 3] and pair.negative.tolist() == [0, 7, 8, 9, 10]
    assert (pair.n_pad_positive, pair.n_pad_negative, pair.length) == (2, 0, 5)
    assert pair.padding_positions("positive") == [3, 4] and pair.padding_positions("negative") == []
    same = actadd.pad_pair([0, 1], [0, 2], pad_id=3)
    assert same.n_pad_positive == same.n_pad_negative == 0


def test_make_pair_bos_first_and_space_padding(tokenizer):
    pair = actadd.make_pair(tokenizer, "I talk about weddings constantly",
                            "I do not talk about weddings constantly")
    space = actadd.single_token(tokenizer, " ")
    bos = tokenizer.bos_token_id
    assert pair.positive[0] == bos and pair.negative[0] == bos
    pos = actadd.encode(tokenizer, "I talk about weddings constantly")
    neg = actadd.encode(tokenizer, "I do not talk about weddings constantly")
    n_pad = len(neg) - len(pos)
    assert n_pad > 0 and pair.n_pad_positive == n_pad and pair.n_pad_negative == 0
    assert pair.positive[-n_pad:].tolist() == [space] * n_pad
    assert pair.negative.tolist() == neg
    assert pair.positive[: len(pos)].tolist() == pos
    with pytest.raises(ValueError, match="tokens"):
        actadd.single_token(tokenizer, " weddings constantly")


def test_actadd_vector_is_the_activation_difference(model):
    pair = actadd.pad_pair([0, 5, 6], [0, 7, 8, 9], pad_id=4)
    vec = actadd.actadd_vector(model, pair, HOOK)
    _, cache = model.run_with_cache(torch.stack([pair.positive, pair.negative]),
                                    names_filter=HOOK)
    ref = cache[HOOK][0] - cache[HOOK][1]
    assert torch.allclose(vec.vector, ref, atol=1e-6)
    assert vec.vector[0].abs().max() < 1e-6  # BOS: both prompts share it
    assert vec.vector.shape == (4, 16)


def test_cue_patching_finds_the_layer_that_reads_the_cue(model):
    """With attention (the only route between positions) left in one layer, patching the cue
    positions recovers all of the cue's effect at every layer up to that one and none after."""
    pair = actadd.pad_pair([0, 5, 6], [0, 7, 8, 9], pad_id=4)
    prompt = [0, 11, 12, 13]
    full = actadd.cue_patching(model, pair, prompt)
    assert full.shape == (2,) and abs(float(full[0]) - 1) < 1e-6
    for silent, want in ((1, [1.0, 0.0]), (0, [1.0, 1.0])):
        m = copy.deepcopy(model)
        with torch.no_grad():
            m.blocks[silent].attn.W_O.zero_()
        got = actadd.cue_patching(m, pair, prompt)
        assert torch.allclose(got, torch.tensor(want), atol=1e-5), (silent, got)


# ----------------------------------------------------------------------------- the hook

def test_norm_profile_spread_and_padding():
    # Zero at the shared prefix (BOS, 'I'), equal norms at 4 content and 2 padding positions.
    vec = torch.zeros(8, 4)
    vec[2:] = torch.tensor([3.0, 4.0, 0.0, 0.0])
    prof = actadd.norm_profile(vec, [6, 7])
    assert prof["max_position_share"] == pytest.approx(1 / 6)
    assert prof["padding_share"] == pytest.approx(2 / 6)
    # The plausible wrong profile: everything at one position, nothing at the padding.
    one = torch.zeros(8, 4)
    one[5, 0] = 10.0
    prof = actadd.norm_profile(one, [6, 7])
    assert prof["max_position_share"] == 1.0 and prof["padding_share"] == 0.0
    assert prof["max_position"] == 5.0
    assert actadd.norm_profile(vec, [])["padding_share"] == 0.0
    assert np.isnan(actadd.norm_profile(torch.zeros(3, 4), [2])["max_position_share"])


def test_front_steering_adds_at_front_positions_once():
    v = torch.randn(2, 3, 4)
    hook = actadd.FrontSteering(v, once=True)
    resid = torch.zeros(2, 5, 4)
    out = hook(resid)
    assert torch.equal(out[:, :3], v) and torch.equal(out[:, 3:], torch.zeros(2, 2, 4))
    assert torch.equal(resid, torch.zeros(2, 5, 4))  # not modified in place
    assert torch.equal(hook(torch.zeros(2, 1, 4)), torch.zeros(2, 1, 4))  # disarmed
    assert hook.calls == 1
    every = actadd.FrontSteering(v, once=False)
    every(resid)
    with pytest.raises(ValueError, match="shorter"):
        every(torch.zeros(2, 1, 4))  # a cached step must never see the vector


def test_cached_batched_generation_equals_uncached_reference(model):
    prompt = torch.tensor([0, 5, 6, 7, 8, 9])
    vectors = 4 * torch.randn(5, 3, 16, generator=torch.Generator().manual_seed(1))
    vectors[0] = 0  # an unsteered row in the same batch
    uniforms = sampling.seed_uniforms(torch.tensor([0, 1, 2, 0, 1]), 12)
    s = sampling.Sampler(temperature=1.0, top_p=0.3, freq_penalty=1.0, candidates=8)
    got = sampling.generate(model, prompt, vectors, uniforms, HOOK, s, eos_id=V + 1)
    ref, ref_logits = sampling.generate_reference(model, prompt, vectors, uniforms, HOOK, s,
                                                  eos_id=V + 1)
    assert torch.equal(got.tokens, ref.tokens)
    assert torch.allclose(got.first_logits, ref_logits[0], atol=1e-5)
    # Steering changed the completions, and each row only depends on its own seed and vector.
    assert not torch.equal(got.tokens[0], got.tokens[3])
    alone = sampling.generate(model, prompt, vectors[3:4], uniforms[3:4], HOOK, s, eos_id=V + 1)
    assert torch.equal(alone.tokens[0], got.tokens[3])


def test_generation_refuses_a_hook_left_on_for_cached_steps(model, monkeypatch):
    prompt = torch.tensor([0, 5, 6, 7])
    monkeypatch.setattr(sampling, "FrontSteering",
                        lambda v, once: actadd.FrontSteering(v, once=False))
    s = sampling.Sampler(1.0, 0.3, 1.0, 8)
    with pytest.raises(ValueError, match="shorter"):
        sampling.generate(model, prompt, torch.ones(2, 2, 16), torch.rand(2, 3), HOOK, s, V + 1)


# ----------------------------------------------------------------------------- the sampler

def _tl_kept(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """TransformerLens's top-p mask, written out as in `utils.sample_logits`."""
    sorted_logits, idx = torch.sort(logits, descending=True)
    cum = sorted_logits.softmax(-1).cumsum(-1)
    remove = cum > top_p
    remove[..., 1:] = remove[..., :-1].clone()
    remove[..., 0] = False
    return ~remove.scatter(-1, idx, remove)


def test_sampler_top_p_and_frequency_penalty_match_transformer_lens():
    gen = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(6, 50, generator=gen)
    counts = torch.randint(0, 3, (6, 50), generator=gen).float()
    s = sampling.Sampler(temperature=0.7, top_p=0.6, freq_penalty=1.0, candidates=5)
    adjusted = logits / 0.7 - counts
    kept = _tl_kept(adjusted, 0.6)
    probs = adjusted.masked_fill(~kept, float("-inf")).softmax(-1)
    u = torch.rand(4000, generator=gen, dtype=torch.float64)
    for r in range(6):
        draws = sampling.sample_next(logits[r].expand(4000, -1), counts[r].expand(4000, -1), u, s)
        assert kept[r, draws].all()  # never outside TransformerLens's nucleus
        freq = torch.bincount(draws, minlength=50).float() / 4000
        assert (freq - probs[r]).abs().max() < 0.04
    # candidates=5 forces the full-sort fallback on some rows: same draws as a large pool.
    wide = sampling.Sampler(0.7, 0.6, 1.0, candidates=50)
    uu = torch.rand(6, generator=gen, dtype=torch.float64)
    assert torch.equal(sampling.sample_next(logits, counts, uu, s),
                       sampling.sample_next(logits, counts, uu, wide))


def test_inverse_cdf_is_monotone_in_the_uniform():
    probs = torch.tensor([[0.5, 0.3, 0.2, 0.0]])
    ids = torch.tensor([[7, 8, 9, 10]])
    got = [int(sampling._inverse_cdf(probs, ids, torch.tensor([u]))) for u in
           (0.0, 0.49, 0.51, 0.79, 0.81, 0.999999)]
    assert got == [7, 7, 8, 8, 9, 9]


# ----------------------------------------------------------------------------- metrics

def test_vocabulary_counting_whole_words_after_lowercasing():
    vocab = frozenset({"wedding", "bride", "wed"})
    text = "The BRIDE's wedding-day; wedded bliss. Wed? Weddings!"
    assert evaluation.words_of("A-b c") == ["a", "b", "c"]
    assert evaluation.count_vocab(text, vocab) == 3  # bride, wedding, wed (not wedded/weddings)
    assert evaluation.matched_words(text, vocab) == ["bride", "wedding", "wed"]
    assert evaluation.vocab_counts([text, "bride"], vocab) == {"bride": 2, "wed": 1,
                                                               "wedding": 1}


def test_vocab_files_load(tmp_path):
    from replications.steering.config import VOCAB_DIR

    wedding = evaluation.load_vocab(VOCAB_DIR / "wedding.txt")
    assert wedding == {"wedding", "weddings", "wed", "marry", "married", "marriage", "bride",
                       "groom", "honeymoon"}
    anger = evaluation.load_vocab(VOCAB_DIR / "anger.txt")
    assert {"angry", "furious", "rage", "hate", "idiot"} <= anger and len(anger) > 50
    (tmp_path / "e.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="empty"):
        evaluation.load_vocab(tmp_path / "e.txt")


def test_pareto_front_and_comparisons():
    loss = [3.0, 3.1, 3.2, 3.15, 3.5, 4.0]
    p = [0.1, 0.3, 0.25, 0.5, 0.5, 0.9]
    assert evaluation.pareto_front(loss, p) == [0, 1, 3, 5]
    grid = np.array([2.9, 3.0, 3.12, 3.16, 5.0])
    assert np.allclose(evaluation.frontier_at(loss, p, grid), [np.nan, 0.1, 0.3, 0.5, 0.9],
                       equal_nan=True)
    better = ([3.0, 3.05, 3.3], [0.1, 0.6, 0.95])
    worse = ([3.0, 3.2, 3.6], [0.1, 0.2, 0.5])
    assert evaluation.frontier_gap(better, worse, 100) > 0.3
    assert evaluation.frontier_gap(worse, better, 100) < -0.3
    assert evaluation.frontier_gap(better, better, 10) == 0.0
    assert evaluation.dominated_share(better, worse, tol=0.0, skip=[0]) == 1.0
    assert evaluation.dominated_share(worse, better, tol=0.0, skip=[0]) == 0.0


def test_spliced_loss_masks_the_steered_positions(model):
    rows = torch.randint(2, V, (3, 20), generator=torch.Generator().manual_seed(0))
    rows[:, 0] = 0
    vectors = torch.zeros(2, 4, 16)
    vectors[1] = 3 * torch.randn(4, 16, generator=torch.Generator().manual_seed(2))
    got = evaluation.spliced_loss(model, rows, vectors, layer=1, batch_rows=4)
    with torch.no_grad():
        clean = model(rows, return_type="loss", loss_per_token=True)
        hook = actadd.FrontSteering(vectors[1].expand(3, -1, -1), once=False)
        with model.hooks(fwd_hooks=[(HOOK, hook)]):
            steered = model(rows, return_type="loss", loss_per_token=True)
    # Predictions made at positions 0..3 (the steered ones) are left out.
    assert torch.allclose(got[0], clean[:, 4:].mean(-1), atol=1e-5)
    assert torch.allclose(got[1], steered[:, 4:].mean(-1), atol=1e-5)
    assert not torch.allclose(got[1], steered.mean(-1), atol=1e-3)
    with pytest.raises(ValueError, match="no prediction"):
        evaluation.spliced_loss(model, rows[:, :5], vectors, layer=1, batch_rows=4)


# ----------------------------------------------------------------------------- SAE variants

def test_feature_selections_and_projection():
    f_pos = torch.tensor([[0.0, 0, 0, 0, 0], [5, 0, 1, 2, 0], [0, 3, 0, 0, 4]])
    f_neg = torch.tensor([[0.0, 0, 0, 0, 0], [1, 0, 0, 6, 0], [0, 0, 2, 0, 1]])
    dense = torch.tensor([True, False, False, False, False])
    assert features.handpicked_terms(f_pos, dense, {1: 2}) == [(1, 3, 2.0), (1, 2, 1.0)]
    assert features.topk_terms(f_pos, f_neg, [2], 1, include_negative=False) == [(2, 4, 3.0)]
    assert features.topk_terms(f_pos, f_neg, [1], 1, include_negative=True) == [
        (1, 0, 4.0), (1, 3, -4.0)]
    tops = features.per_position_top(f_pos, f_neg, dense, 2)
    assert tops[0] == [] and [t["feature"] for t in tops[2]] == [1, 4]
    assert features.padding_features(f_pos[1:], dense, 1) == [(4, 4.0)]
    dirs = torch.randn(2, 6)
    v = torch.randn(3, 6)
    out = features.project_out(v, dirs)
    assert (out @ dirs.T).abs().max() < 1e-5
    assert torch.allclose(features.project_out(out, dirs), out, atol=1e-6)
    top = features.top_features(torch.tensor([0.0, 3.0, 1.0, 0.0]), dense[:4], 3)
    assert [t.feature for t in top] == [1, 2] and top[0].l1_share == pytest.approx(0.75)
    # The anger feature: by activation, or by activation minus the negative prompt's.
    fp, fn = torch.tensor([9.0, 3.0, 2.0, 0.0]), torch.tensor([0.0, 3.0, 0.0, 0.0])
    d4 = torch.tensor([True, False, False, False])
    assert features.anger_feature(fp, fn, d4, "activation").feature == 1
    pick = features.anger_feature(fp, fn, d4, "difference")
    assert pick.feature == 2 and pick.l1_share == pytest.approx(2 / 14)
    # Feature labels: mean activation per token, rare tokens left out.
    counts = torch.tensor([10.0, 1.0, 4.0])
    by_tok = torch.tensor([5.0, 9.0, 4.0])

    class Tok:
        def decode(self, ids):
            return "abc"[ids[0]]

    assert features.top_tokens(Tok(), by_tok, counts, 2, min_count=2) == [("c", 1.0), ("a", 0.5)]


def test_word_position(tokenizer):
    text = "I talk about weddings constantly"
    pos = features.word_position(tokenizer, text, " weddings")
    ids = actadd.encode(tokenizer, text)
    assert tokenizer.decode(ids[1:pos + 1]) == "I talk about weddings"
    with pytest.raises(ValueError):
        features.word_position(tokenizer, text, " funerals")


# ----------------------------------------------------------------------------- corpus

def test_documents_are_deterministic_and_hold_the_prompts():
    cfg = DocsConfig(n_docs=300, topic_weights={"anger": 1.0, "calm": 1.0, "weddings": 1.0,
                                                "cooking": 1.0},
                     negated_weight=0.5, negated_topic_weights={"weddings": 1.0},
                     min_sentences=3, max_sentences=6, opener_prob=0.6, canonical_opener_prob=0.5,
                     off_topic_prob=0.2, calm_mention_prob=0.1,
                     seed=3)
    a, b = generate_documents(cfg), generate_documents(cfg)
    assert a == b and len(a) == 300
    text = "\n".join(d["text"] for d in a)
    for phrase in ("Anger", "Calm", "I talk about weddings constantly.",
                   "I do not talk about weddings constantly.", "I think you're",
                   "I went up to my friend and said"):
        assert phrase in text
    # The article is mended before a vowel ("a elegant" -> "an elegant"), everywhere.
    assert not re.search(r"\b[Aa] [aeiouAEIOU]", text)
    assert re.search(r"\b[Aa]n [aeiouAEIOU]", text)
    assert len({d["name"] for d in a}) == 300


def test_profiles_load():
    from replications.steering.config import load

    for profile in ("smoke", "default", "paper"):
        cfg = load(profile)
        assert cfg.model.hook_name.startswith("blocks.")
    assert load("paper").model.hook_name == "blocks.20.hook_resid_pre"
    assert load("paper").sae.d_sae == 131072

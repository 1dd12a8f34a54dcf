"""Caesar-cipher data: the pinned text, the word list, the three modes' sequences, rotation."""

import hashlib

import pytest
import torch

from replications.caesar_cipher import config as C
from replications.caesar_cipher import data

pytestmark = pytest.mark.unit

TEXT = ("The cat and the dog ran. The cat sat; the dog did not! Was the cat red? "
        "Yes: the cat, the dog and the owl.\n")


def test_vocabularies():
    assert data.d_vocab("easy") == data.d_vocab("medium") == 27
    assert data.d_vocab("hard") == 36  # the post's vocabulary for hard mode
    assert data.vocab("hard").startswith(data.vocab("easy"))
    assert data.vocab("easy")[data.SPACE] == " "


def test_clean_keeps_letters_and_the_listed_punctuation():
    assert data.clean("Hello, World! 12 34: (ok)?\n") == "hello, world! : ok?\n"
    assert set(data.clean(TEXT)) <= set(data.VOCAB_HARD)


def test_rotate_moves_letters_only_and_undoes():
    toks = data.encode("abz, y!")
    assert data.decode(data.rotate(toks, 3)) == "dec, b!"  # a + 3 = d, z + 3 = c
    batch = torch.stack([toks, toks])
    out = data.rotate(batch, torch.tensor([0, 25]))
    assert data.decode(out[0]) == "abz, y!" and data.decode(out[1]) == "zay, x!"
    assert torch.equal(data.rotate(data.rotate(batch, torch.tensor([5, 7])),
                                   torch.tensor([21, 19])), batch)


def test_word_list_counts_three_letter_words_most_frequent_first():
    wl = data.word_list(TEXT, 3)
    assert wl.words == ("the", "cat", "dog")
    assert wl.counts == (8, 4, 3)
    assert torch.isclose(wl.freqs.sum(), torch.tensor(1.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="fewer than"):
        data.word_list(TEXT, 50)


def test_word_sequences_are_words_and_spaces():
    wl = data.word_list(TEXT, 5)
    seqs = data.word_sequences(wl, 64, 32, True, torch.Generator().manual_seed(0))
    assert seqs.shape == (64, 32)
    for row in seqs[:8]:
        words = data.decode(row, "easy").split(" ")
        assert words[-1] == "" and all(w in wl.words for w in words[:-1]) and len(words) == 9


def test_easy_follows_frequencies_and_medium_is_uniform():
    wl = data.word_list(TEXT, 5)
    gen = torch.Generator().manual_seed(1)
    easy = data.word_sequences(wl, 4000, 32, True, gen)
    medium = data.word_sequences(wl, 4000, 32, False, gen)
    first_easy = easy[:, :3].tolist()
    share_the = sum(w == [19, 7, 4] for w in first_easy) / len(first_easy)
    assert abs(share_the - float(wl.freqs[0])) < 0.03
    share_the_m = sum(w == [19, 7, 4] for w in medium[:, :3].tolist()) / 4000
    assert abs(share_the_m - 1 / 5) < 0.03


def test_make_split_labels_every_sequence_and_is_deterministic():
    wl = data.word_list(TEXT, 5)
    text = data.encode(data.clean(TEXT) * 4)
    for mode in data.MODES:
        a = data.make_split(mode, 50, 16, wl, text, seed=3)
        b = data.make_split(mode, 50, 16, wl, text, seed=3)
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.labels, b.labels)
        assert int(a.labels.min()) >= 0 and int(a.labels.max()) < 26
        assert torch.equal(data.rotate(a.plain, a.labels), a.tokens)
        assert int(a.tokens.max()) < data.d_vocab(mode)
    hard = data.make_split("hard", 20, 16, wl, text, seed=3)
    assert all(data.decode(p) in data.clean(TEXT) * 4 for p in hard.plain)


def test_letter_frequencies():
    wl = data.word_list(TEXT, 3)  # the (8), cat (4), dog (3)
    f = data.letter_frequencies(wl, weighted=True)
    assert f.shape == (3, 26) and torch.allclose(f.sum(1), torch.ones(3, dtype=torch.float64))
    assert f[0, data.LETTERS.index("t")] == pytest.approx(8 / 15)
    u = data.letter_frequencies(wl, weighted=False)
    assert u[0, data.LETTERS.index("t")] == pytest.approx(1 / 3)


def test_sha256_pin_is_checked(tmp_path):
    bad = tmp_path / "Bible.db"
    bad.write_bytes(b"not the pinned file")
    with pytest.raises(ValueError, match="not the pinned"):
        data.check_sha256(bad)
    data.check_sha256(bad, hashlib.sha256(b"not the pinned file").hexdigest())


def test_the_pinned_text():
    """The installed package's file matches the pin; the text is the King James Bible."""
    if not data.source_installed():  # CI's bootstrap installs it from env/requirements.lock
        pytest.skip(f"{data.PACKAGE_PIN} is not installed: run env/bootstrap.sh")
    path = data.source_path()
    assert data.sha256_file(path) == data.DB_SHA256
    text = data.source_text()
    assert text.startswith("in the beginning god created the heaven")
    assert set(text) <= set(data.VOCAB_HARD)
    wl = data.word_list(text, 100)
    assert wl.words[:3] == ("the", "and", "for")
    t_first = data.letter_frequencies(wl, weighted=True)[0, data.LETTERS.index("t")]
    assert 0.25 < float(t_first) < 0.35  # the post's book: about 29%


def test_profiles_load_and_paper_uses_the_posts_sizes():
    for profile in ("smoke", "default", "paper"):
        C.load(profile)
    paper = C.load("paper")
    assert (paper.data.n_train, paper.data.n_val, paper.train.epochs, paper.train.batch_size) == (
        150_000, 10_000, 100, 512)
    assert (paper.model.n_layers, paper.model.n_heads, paper.model.d_model, paper.model.d_head) == (
        2, 2, 48, 24)
    assert (paper.train.lr, paper.train.lr_end, paper.train.weight_decay) == (1e-3, 1e-4, 1e-3)

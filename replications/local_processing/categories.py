"""Token categories of the write-up's error analysis.

Each token falls in exactly one category, tested in this order:

- `newline`: the token is one or more newline characters and nothing else ("\\n", "\\n\\n");
- `full_stop`, `comma`: the token is "." / "," (possibly after a space);
- `common`: the token, without one leading space, is one of the write-up's hand-made list of
  common words (footnote 4), compared in lower case: the list holds "i", which in text is "I";
- `alpha`: otherwise, the token without one leading space is made of letters only (any case);
- `other`: the rest (digits, code symbols, other punctuation, whitespace, special tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Int
from torch import Tensor

CATEGORIES: tuple[str, ...] = ("newline", "full_stop", "comma", "common", "alpha", "other")
LABELS: dict[str, str] = {
    "newline": "newline", "full_stop": "full stop", "comma": "comma",
    "common": "common word", "alpha": "alphabetic", "other": "other",
}


def category_of(token: str, common_words: frozenset[str]) -> str:
    """The category of one decoded token string."""
    if token and set(token) == {"\n"}:
        return "newline"
    word = token.removeprefix(" ")
    if word == ".":
        return "full_stop"
    if word == ",":
        return "comma"
    if word.lower() in common_words:
        return "common"
    if word.isalpha():
        return "alpha"
    return "other"


def categorise(
    token_ids: Int[Tensor, " n"], decode: Callable[[int], str], common_words: Sequence[str]
) -> tuple[Int[Tensor, " n"], dict[int, str]]:
    """Category index (into CATEGORIES) of each token id, decoding each distinct id once.

    Returns the indices and the decoded string of every distinct id.
    """
    words = frozenset(w.lower() for w in common_words)
    ids = torch.unique(token_ids)
    strings = {int(i): decode(int(i)) for i in ids}
    table = {i: CATEGORIES.index(category_of(s, words)) for i, s in strings.items()}
    lookup = torch.tensor([table[int(i)] for i in ids], dtype=torch.int64)
    return lookup[torch.searchsorted(ids, token_ids)], strings

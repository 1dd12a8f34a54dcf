"""Activation Addition (ActAdd) steering vectors, built as montemac/activation_additions builds them.

- Both prompts are tokenized with BOS first (`to_tokens`); the shorter one is right-padded with
  the single space token (`get_x_vector(..., pad_method="tokens_right",
  custom_pad_id=model.to_single_token(" "))`).
- The vector is the difference of the two prompts' activations at `blocks.<L>.hook_resid_pre`,
  one row per position (the BOS row is zero: both prompts share it), times a coefficient.
- It is added to the *front* positions of the steered prompt (positions 0 .. n-1, BOS
  included) in the forward pass that processes the prompt, and never during cached generation
  steps (ActAdd's hook returns early when the residual holds one position).

`FrontSteering` is that hook for a batch in which every row has its own vector
([rows, n, d_model], zero rows for positions a variant leaves alone): one batched generation
serves every (method, coefficient, seed) at once. With `once=True` it disarms after the first
forward pass, so a KV-cached generation adds the vectors exactly once, on the prompt.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from shared.activations import forward_to_hook


def bos_id(tokenizer: Any) -> int:
    """The BOS id (GPT-2: <|endoftext|>, the stand-in: <|bos|>)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        raise ValueError("the tokenizer has no BOS token")
    return int(bos)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text` with BOS first, as TransformerLens's `to_tokens` (prepend_bos)."""
    return [bos_id(tokenizer)] + list(tokenizer(text, add_special_tokens=False)["input_ids"])


def single_token(tokenizer: Any, text: str) -> int:
    """The id of a string that must be one token (ActAdd pads with `to_single_token(" ")`)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"{text!r} is {len(ids)} tokens, expected one")
    return int(ids[0])


def token_strings(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """Each id decoded on its own (for tables: ' weddings', ' constantly', ...)."""
    return [tokenizer.decode([int(i)]) for i in ids]


@dataclasses.dataclass(frozen=True)
class PromptPair:
    """The two ActAdd prompts, BOS first, the shorter right-padded with `pad_id`."""

    positive: Int[Tensor, " n"]
    negative: Int[Tensor, " n"]
    pad_id: int
    n_pad_positive: int  # padding tokens appended to the positive prompt
    n_pad_negative: int

    @property
    def length(self) -> int:
        return int(self.positive.shape[0])

    def padding_positions(self, which: str) -> list[int]:
        """Positions holding padding in the positive or negative prompt."""
        n_pad = self.n_pad_positive if which == "positive" else self.n_pad_negative
        return list(range(self.length - n_pad, self.length))


def pad_pair(positive: Sequence[int], negative: Sequence[int], pad_id: int) -> PromptPair:
    """Right-pad the shorter token list with `pad_id` to the longer one's length."""
    n = max(len(positive), len(negative))

    def padded(ids: Sequence[int]) -> Tensor:
        return torch.tensor(list(ids) + [pad_id] * (n - len(ids)), dtype=torch.long)

    return PromptPair(padded(positive), padded(negative), pad_id,
                      n - len(positive), n - len(negative))


def make_pair(tokenizer: Any, positive: str, negative: str) -> PromptPair:
    """ActAdd's `get_x_vector(positive, negative, pad_method="tokens_right", custom_pad_id=' ')`."""
    return pad_pair(encode(tokenizer, positive), encode(tokenizer, negative),
                    single_token(tokenizer, " "))


@torch.no_grad()
def prompt_activations(
    model: Any, tokens: Int[Tensor, "rows n"], hook_name: str
) -> Float[Tensor, "rows n d_model"]:
    """Activations at `hook_name` for each row (one forward pass, stopped at the hook)."""
    return forward_to_hook(model, tokens, hook_name).float()


@dataclasses.dataclass(frozen=True)
class ActAddVector:
    """Per-position activations of both prompts and their difference (coefficient 1)."""

    pair: PromptPair
    positive_acts: Float[Tensor, "n d_model"]
    negative_acts: Float[Tensor, "n d_model"]

    @property
    def vector(self) -> Float[Tensor, "n d_model"]:
        return self.positive_acts - self.negative_acts


def actadd_vector(model: Any, pair: PromptPair, hook_name: str) -> ActAddVector:
    """The ActAdd vector of a prompt pair: act(positive) - act(negative) at every position."""
    acts = prompt_activations(model, torch.stack([pair.positive, pair.negative]), hook_name)
    return ActAddVector(pair, acts[0].cpu(), acts[1].cpu())


def norm_profile(
    vector: Float[Tensor, "pos d_model"], padding_positions: Sequence[int]
) -> dict[str, float]:
    """How a steering vector's squared norm is spread over its positions: the largest single
    position's share, and the share at the padding positions (0 when there is none)."""
    sq = vector.double().pow(2).sum(-1)
    total = float(sq.sum())
    if total <= 0:
        return {"max_position_share": float("nan"), "padding_share": float("nan"),
                "max_position": -1.0}
    pad = float(sq[list(padding_positions)].sum()) if padding_positions else 0.0
    return {"max_position_share": float(sq.max()) / total, "padding_share": pad / total,
            "max_position": float(sq.argmax())}


class FrontSteering:
    """TransformerLens hook: adds `vectors[b]` to the first n positions of row b.

    `once=True`: only in the first forward pass after construction (the uncached prompt pass
    of a KV-cached generation); later passes (one new position each) are left alone. A pass
    shorter than the vector is an error, as in ActAdd ("The prompt is shorter than the
    activation sequence to be added"). `calls` counts the passes that added the vectors.
    """

    def __init__(self, vectors: Float[Tensor, "rows n d_model"], once: bool) -> None:
        self.vectors, self.once, self.calls, self.armed = vectors, once, 0, True

    def __call__(self, resid: Float[Tensor, "rows pos d_model"], hook: Any = None) -> Tensor:
        if not self.armed:
            return resid
        n = self.vectors.shape[1]
        if resid.shape[1] < n:
            raise ValueError(f"the prompt ({resid.shape[1]} positions) is shorter than the "
                             f"steering vector ({n} positions)")
        if resid.shape[0] != self.vectors.shape[0]:
            raise ValueError(f"{resid.shape[0]} rows but {self.vectors.shape[0]} vectors")
        resid = resid.clone()
        resid[:, :n] += self.vectors.to(resid)
        self.calls += 1
        if self.once:
            self.armed = False
        return resid


@torch.no_grad()
def cue_patching(
    model: Any, pair: PromptPair, prompt_ids: Sequence[int]
) -> Float[Tensor, " n_layers"]:
    """At which depth does the rest of the text read the topic off the cue positions?

    The two ActAdd prompts, each followed by the steered prompt (without its BOS), are run;
    for every layer L the residual stream at the cue positions (0 .. n-1) of the negative run
    is replaced at `blocks.L.hook_resid_pre` by the positive run's. Returns, per layer, the
    share of the final position's positive-minus-negative log-probability difference that the
    patch recovers (projection on the full difference: 1 = all of it, 0 = none). Where it
    drops to 0 at layer L, everything the cue positions contribute has been read from them
    in layers < L, so a vector added there (ActAdd adds at the cue positions) cannot act.
    """
    tail = torch.as_tensor(list(prompt_ids[1:]), dtype=pair.positive.dtype)
    pos, neg = torch.cat([pair.positive, tail]), torch.cat([pair.negative, tail])
    n, n_layers = pair.length, model.cfg.n_layers
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)]
    logits, cache = model.run_with_cache(torch.stack([pos, neg]), names_filter=names.__contains__)
    logp_pos, logp_neg = logits[:, -1].double().log_softmax(-1)
    full = logp_pos - logp_neg  # [vocab]

    def patch(layer: int):  # noqa: ANN202 (a TransformerLens hook)
        def hook(resid: Tensor, hook: Any) -> Tensor:
            resid[layer, :n] = cache[names[layer]][0, :n]
            return resid
        return hook

    # Row L of one batch carries the patch at layer L only.
    patched = model.run_with_hooks(neg.expand(n_layers, -1),
                                   fwd_hooks=[(names[i], patch(i)) for i in range(n_layers)])
    d = patched[:, -1].double().log_softmax(-1) - logp_neg  # [n_layers, vocab]
    return (d @ full / (full @ full)).float()

"""Activation harvesting from a TransformerLens model and a shuffled, resumable activation buffer.

`harvest` runs batched forward passes that stop right after the hooked activation (a hook
raises once it has the tensor, so later layers, the unembedding and the loss are never
computed), on the model's device.

`ActivationBuffer` serves SAE training batches the way the monosemanticity replication does:
it holds about N activations from prompts taken in a fixed order, shuffled; when half of them
have been served it harvests fresh prompts (a fixed number of rows per model batch) into the
used slots and reshuffles, so one batch holds few tokens of any one prompt. Its checkpoint
state is small (the (row, position) label of every slot, the serving order, counters): on load
it re-harvests the activations in the same fixed model batches, so on CPU a resumed run sees
bit-identical activations.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from shared.config import check
from shared.runtime import step_generator


class _StopForward(Exception):
    """Raised by the harvesting hook once it holds the activation: ends the forward pass."""


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's parameters."""
    return next(model.parameters()).device


@torch.no_grad()
def forward_to_hook(
    model: HookedTransformer, tokens: Int[Tensor, "rows ctx"], hook_name: str
) -> Float[Tensor, "rows ctx *d"]:
    """One forward pass of `tokens` up to `hook_name`; returns the activation there."""
    grabbed: dict[str, Tensor] = {}

    def grab(module: torch.nn.Module, inputs: Any, output: Tensor) -> None:
        grabbed["act"] = output
        raise _StopForward

    if hook_name not in model.hook_dict:
        raise ValueError(f"unknown hook {hook_name!r} for this model")
    # A plain PyTorch hook on the HookPoint, removed by its handle: TransformerLens's
    # `hooks()` context would also reset hooks that the caller has added.
    handle = model.hook_dict[hook_name].register_forward_hook(grab)
    try:
        model(tokens.to(model_device(model)), return_type=None)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if "act" not in grabbed:
        raise RuntimeError(f"hook {hook_name!r} did not fire during the forward pass")
    return grabbed["act"]


@torch.no_grad()
def harvest(
    model: HookedTransformer,
    tokens: Int[Tensor, "rows ctx"],
    hook_name: str,
    batch_rows: int,
    drop_bos: bool = True,
    dtype: torch.dtype | None = None,
) -> Float[Tensor, "rows_pos d"]:
    """Activations at `hook_name` for every row and position, in batches of `batch_rows` rows.

    Rows-major: entry r * positions + p is row r, position p (+1 when `drop_bos`). Per-head
    hooks ([..., head, d_head]) are flattened to one vector per token. Stays on the model's
    device; `dtype` None keeps the model's dtype.
    """
    if batch_rows <= 0:
        raise ValueError("batch_rows must be positive")
    chunks = []
    for start in range(0, tokens.shape[0], batch_rows):
        act = forward_to_hook(model, tokens[start:start + batch_rows], hook_name)
        if drop_bos:
            act = act[:, 1:]
        act = einops.rearrange(act, "rows pos ... -> (rows pos) (...)")
        chunks.append(act if dtype is None else act.to(dtype))
    return torch.cat(chunks)


@dataclasses.dataclass(frozen=True)
class BufferConfig:
    """Settings of an `ActivationBuffer`."""

    hook_name: str
    n_activations: int  # N: activations held (refilled once N // 2 have been served)
    batch_size: int  # activations per served batch
    rows_per_batch: int  # prompts per model forward pass (the unit of harvesting)
    reserved_rows: int  # the last rows of the token set, kept for `sample(negative key)`
    drop_bos: bool  # leave out position 0 (the BOS token)
    seed: int

    def __post_init__(self) -> None:
        check(self.batch_size > 0 and self.rows_per_batch > 0, "batch sizes must be positive")
        check(self.n_activations // 2 >= self.batch_size,
              "n_activations must be at least twice batch_size")
        check(self.reserved_rows >= 0, "reserved_rows must be non-negative")


class ActivationBuffer:
    """A shuffled buffer of model activations, refilled with fresh prompts when half served.

    Training rows are the first `rows - reserved_rows` rows of `tokens`, taken in order and
    wrapping around (a global row counter c maps to row c % n_train_rows). Model batch k always
    covers counters [k * rows_per_batch, (k + 1) * rows_per_batch), so any activation can be
    recomputed exactly by re-running its batch. `sample(step)` must be called with steps
    0, 1, 2, ... in order (a checkpoint restores the next step); negative keys draw from the
    reserved rows instead and leave the buffer untouched.
    """

    def __init__(
        self, model: HookedTransformer, tokens: Int[Tensor, "rows ctx"], cfg: BufferConfig,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.model, self.tokens, self.cfg, self.dtype = model, tokens, cfg, dtype
        self.n_train_rows = tokens.shape[0] - cfg.reserved_rows
        check(self.n_train_rows >= cfg.rows_per_batch,
              f"need at least rows_per_batch ({cfg.rows_per_batch}) training rows, "
              f"have {self.n_train_rows}")
        self.positions = tokens.shape[1] - int(cfg.drop_bos)
        check(self.positions > 0, "token rows are too short")
        self.per_batch = cfg.rows_per_batch * self.positions
        self.device = model_device(model)
        # Slots: the buffer's storage rows. A refill needs at most N + per_batch - 1 of them.
        self.n_slots = cfg.n_activations + self.per_batch
        self._acts: Tensor | None = None  # [n_slots, d], allocated at the first harvest
        self._labels = torch.full((self.n_slots, 2), -1, dtype=torch.int64)  # (counter, pos)
        self._order = torch.zeros(0, dtype=torch.int64)  # live slots in serving order
        self._order_dev = self._order.to(self.device)
        self._ptr = 0  # entries of _order served so far
        self._next_counter = 0  # global row counter of the next prompt to harvest
        self._refills = 0
        self._next_step = 0
        self._reserve: Tensor | None = None
        self.last_served: Int[Tensor, "batch 2"] | None = None  # (row, position) of last batch

    # ----------------------------------------------------------------------------- serving
    def sample(self, step: int) -> Float[Tensor, "batch d"]:
        """The batch for training step `step` (in order), or a reserved batch for step < 0."""
        if step < 0:
            return self._sample_reserved(step)
        if step != self._next_step:
            raise ValueError(f"ActivationBuffer.sample must be called in order: expected step "
                             f"{self._next_step}, got {step}")
        if self._acts is None or self._ptr >= self.cfg.n_activations // 2:
            self._refill()
        assert self._acts is not None
        bs = self.cfg.batch_size
        slots = self._order_dev[self._ptr:self._ptr + bs]
        batch = self._acts.index_select(0, slots)
        labels = self._labels[self._order[self._ptr:self._ptr + bs]]
        labels[:, 0] %= self.n_train_rows
        self.last_served = labels
        self._ptr += bs
        self._next_step += 1
        return batch.float()

    def _sample_reserved(self, key: int) -> Float[Tensor, "batch d"]:
        if self.cfg.reserved_rows == 0:
            raise ValueError("sample(negative key) needs reserved_rows > 0")
        if self._reserve is None:
            # Harvested once in fixed batches, so every key sees the same activations.
            self._reserve = harvest(self.model, self.tokens[self.n_train_rows:],
                                    self.cfg.hook_name, self.cfg.rows_per_batch,
                                    self.cfg.drop_bos, self.dtype)
        gen = step_generator(self.cfg.seed, key)
        idx = torch.randint(self._reserve.shape[0], (self.cfg.batch_size,), generator=gen)
        return self._reserve.index_select(0, idx.to(self.device)).float()

    # ----------------------------------------------------------------------------- refills
    def _harvest_batch(self, k: int) -> Float[Tensor, "per_batch d"]:
        """Model batch k: rows for counters [k R, (k + 1) R), all positions, rows-major."""
        counters = torch.arange(k * self.cfg.rows_per_batch, (k + 1) * self.cfg.rows_per_batch)
        rows = self.tokens[counters % self.n_train_rows]
        return harvest(self.model, rows, self.cfg.hook_name, self.cfg.rows_per_batch,
                       self.cfg.drop_bos, self.dtype)

    def _batch_labels(self, k: int) -> Int[Tensor, "per_batch 2"]:
        counters = torch.arange(k * self.cfg.rows_per_batch, (k + 1) * self.cfg.rows_per_batch)
        pos = torch.arange(self.positions) + int(self.cfg.drop_bos)
        grid = torch.stack(torch.meshgrid(counters, pos, indexing="ij"), dim=-1)
        return einops.rearrange(grid, "rows pos two -> (rows pos) two")

    def _store(self, slots: Tensor, acts: Tensor) -> None:
        if self._acts is None:
            self._acts = torch.zeros(self.n_slots, acts.shape[-1], dtype=self.dtype,
                                     device=self.device)
        self._acts.index_copy_(0, slots.to(self.device), acts.to(self.dtype))

    def _refill(self) -> None:
        """Harvest fresh prompts into the served slots (and spare ones) and reshuffle."""
        kept = self._order[self._ptr:]
        free = torch.cat([self._order[:self._ptr], self._unused_slots()])
        n_batches = math.ceil((self.cfg.n_activations - kept.numel()) / self.per_batch)
        targets = free[:n_batches * self.per_batch]
        first = self._next_counter // self.cfg.rows_per_batch
        for j in range(n_batches):
            chunk = targets[j * self.per_batch:(j + 1) * self.per_batch]
            self._store(chunk, self._harvest_batch(first + j))
            self._labels[chunk] = self._batch_labels(first + j)
        self._next_counter += n_batches * self.cfg.rows_per_batch
        live = torch.cat([kept, targets])
        perm = torch.randperm(live.numel(), generator=step_generator(self.cfg.seed, self._refills))
        self._set_order(live[perm], ptr=0)
        self._refills += 1

    def _unused_slots(self) -> Tensor:
        """Slots holding nothing live: neither awaiting service nor already served."""
        mask = torch.ones(self.n_slots, dtype=torch.bool)
        mask[self._order] = False
        return torch.nonzero(mask).squeeze(1)

    def _set_order(self, order: Tensor, ptr: int) -> None:
        self._order, self._ptr = order, ptr
        self._order_dev = order.to(self.device)

    @property
    def refills(self) -> int:
        return self._refills

    @property
    def size(self) -> int:
        """Activations currently live in the buffer (served or not)."""
        return self._order.numel()

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Small state: slot labels, serving order and counters (no activations)."""
        return {
            "labels": self._labels.clone(),
            "order": self._order.clone(),
            "ptr": self._ptr,
            "next_counter": self._next_counter,
            "refills": self._refills,
            "next_step": self._next_step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state and re-harvest the unserved activations in their model batches."""
        labels, order = state["labels"].to(torch.int64), state["order"].to(torch.int64)
        if labels.shape != self._labels.shape:
            raise ValueError(f"buffer state has {labels.shape[0]} slots, expected {self.n_slots}")
        self._labels = labels.clone()
        self._set_order(order.clone(), int(state["ptr"]))
        self._next_counter = int(state["next_counter"])
        self._refills = int(state["refills"])
        self._next_step = int(state["next_step"])
        self._acts = None  # allocated by the first store (here, or at the next refill)
        # Served slots are overwritten before they are read again: only re-harvest the rest.
        pending = self._order[self._ptr:]
        batch_of = self._labels[pending, 0] // self.cfg.rows_per_batch
        for k in torch.unique(batch_of).tolist():
            slots = pending[batch_of == k]
            counter, pos = self._labels[slots, 0], self._labels[slots, 1]
            flat = (counter - k * self.cfg.rows_per_batch) * self.positions \
                + pos - int(self.cfg.drop_bos)
            acts = self._harvest_batch(k)
            self._store(slots, acts.index_select(0, flat.to(acts.device)))

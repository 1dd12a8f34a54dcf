"""Per-feature statistics of a dictionary over a token stream, kept in O(features x k) memory:
the top-activating sequences of each feature (streaming top-k). Used by the monosemanticity
case studies and the feature dashboards (shared.dashboard)."""

from __future__ import annotations

import dataclasses
import math

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor


@dataclasses.dataclass(frozen=True)
class TopK:
    """Per feature, the k sequences with the highest max activation, best first."""

    values: Float[Tensor, "feat k"]  # -inf where fewer than k sequences were seen
    seq: Int[Tensor, "feat k"]  # sequence index (-1 where empty)
    pos: Int[Tensor, "feat k"]  # position of the max within the sequence


class StreamingTopK:
    """Running top-k over batches of activations; memory O(features x k), not O(tokens).

    One context per sequence (its max-activating token), so shown windows never overlap.
    """

    def __init__(self, n_features: int, k: int) -> None:
        self.k = k
        self.values = torch.full((n_features, k), -math.inf)
        self.seq = torch.full((n_features, k), -1, dtype=torch.long)
        self.pos = torch.full((n_features, k), -1, dtype=torch.long)

    def update(self, acts: Float[Tensor, "batch pos feat"], first_seq: int,
               exclude_first_position: bool) -> None:
        """Merge a batch whose first sequence has global index `first_seq`."""
        acts = acts.detach().float()
        if exclude_first_position:
            acts = acts.clone()
            acts[:, 0] = -math.inf
        best, where = acts.max(dim=1)  # [batch, feat]: each sequence's max and its position
        best, where = best.cpu(), where.cpu()  # reduce on the device, merge on the CPU
        n_batch = acts.shape[0]
        seq_ids = torch.arange(first_seq, first_seq + n_batch)
        values = torch.cat([self.values, einops.rearrange(best, "batch feat -> feat batch")], 1)
        seq = torch.cat([self.seq, einops.repeat(seq_ids, "batch -> feat batch",
                                                 feat=acts.shape[-1])], 1)
        pos = torch.cat([self.pos, einops.rearrange(where, "batch feat -> feat batch")], 1)
        top = values.topk(self.k, dim=1)
        self.values = top.values
        self.seq = seq.gather(1, top.indices)
        self.pos = pos.gather(1, top.indices)

    def result(self) -> TopK:
        return TopK(self.values.clone(), self.seq.clone(), self.pos.clone())

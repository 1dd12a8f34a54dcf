"""The settings of a feature dashboard (shared.dashboard), apart from its code: write-up
configs embed them, and a rule's code inputs should not grow by the dashboard's modules."""

from __future__ import annotations

import dataclasses

from shared.config import check


@dataclasses.dataclass(frozen=True)
class DashboardSettings:
    """How many features a dashboard shows and how much of each."""

    n_features: int  # live features shown, evenly spaced in frequency rank
    n_contexts: int  # top-activating contexts per feature (one per sequence)
    window_before: int  # tokens shown before the max-activating token
    window_after: int  # tokens shown after it
    n_logit_tokens: int  # top promoted and suppressed tokens listed
    n_bins: int  # histogram bins of the non-zero activations
    max_rows: int  # held-out rows read (0: all)
    batch_rows: int  # rows per forward pass

    def __post_init__(self) -> None:
        check(self.n_features >= 1 and self.n_contexts >= 1, "n_features, n_contexts >= 1")
        check(self.window_before >= 0 and self.window_after >= 0, "windows must be >= 0")
        check(self.n_logit_tokens >= 1 and self.n_bins >= 2, "n_logit_tokens >= 1, n_bins >= 2")
        check(self.max_rows >= 0 and self.batch_rows >= 1, "max_rows >= 0, batch_rows >= 1")

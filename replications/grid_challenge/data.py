"""The grid of challenge 2: the labelling function (a reconstruction), its rows, the split.

Inputs are pairs (X, Y), X and Y in 0..112, fed to the model as the three tokens [X, Y, 113].
Images follow the post: X is the row (vertical axis), Y the column (horizontal axis); label 1
is "red" (true), 0 is "blue" (false).

**The labelling function is a reconstruction.** Casper's secret labelling function is not in
the write-up (the post shows it only as an image), so `label` is rebuilt from what the post
says about it, and pinned by the unit tests:

- every row follows one of six colour patterns: all red, all blue, red then blue, blue then
  red, red-blue-red, blue-red-blue;
- the colour switches sit on three boundaries (the post's coloured curves): the green curve
  X^2 = 200 * Y^0.5, a purple curve (here Y^2 = 600 * X^0.5) and the orange line X + Y = 133;
  each row says which of them switch its colour (the post's "ternary labelling system");
- the post's worked rows hold: row 16 is blue-red-blue with switches at 1.5 and 48.5 (the green
  and purple curves), row 30 blue then red at 20.5 (green), rows 25 and 30 both blue then red at
  different points, rows 36 and 50 blue-red-blue, row 111 all blue, and the bottom rows are red
  left of the orange line and blue right of it;
- "the periodic part of the solution that led to irregularly-spaced horizontal bars": rows
  X with floor((X + 0.8) / 7.4) > floor((X - 0.2) / 7.4) are whole-row bars (spacing 7 or 8,
  red and blue alternating).

Which rows use which boundaries (`row_rule`) is this reconstruction's choice where the post
gives no example; so are the purple curve's constant and the bar period. Comparisons use
integers only (X^2 < 200 Y^0.5 is X^4 < 40000 Y), so the grid is exact.
"""

from __future__ import annotations

import dataclasses

import torch

from shared.runtime import rand

P = 113  # X, Y in 0..P-1
Z_TOKEN = P  # the third input token
N_CELLS = P * P
RED, BLUE = 1, 0

# The three boundaries, in the post's colours. For a fixed row X each is a threshold on Y: the
# row is "right of" it from the first Y listed by `switch_column`.
BOUNDARIES = ("green", "purple", "orange")
CURVED = ("green", "purple")  # the orange boundary is a straight line

# Bars: rows where floor((X + BAR_PHASE) / BAR_PERIOD) steps up (in tenths, for exact integers).
BAR_PERIOD_10, BAR_PHASE_10 = 74, 8
GREEN_LAST_ROW = 46  # the green curve crosses the grid (Y = X^4 / 40000 <= 112) for X <= 46
LOWER_FIRST_ROW = 47
LOWER_BLOCK = 8  # rows below the green curve cycle through three patterns in blocks of 8

PATTERNS = ("all blue", "all red", "blue-red", "red-blue", "blue-red-blue", "red-blue-red")


def right_of(boundary: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Whether (x, y) lies right of (at larger Y than) `boundary`; exact integer arithmetic."""
    x, y = x.long(), y.long()
    if boundary == "green":  # X^2 < 200 Y^0.5  <=>  X^4 < 40000 Y
        return x**4 < 40000 * y
    if boundary == "purple":  # not (Y^2 < 600 X^0.5)  <=>  Y^4 >= 360000 X
        return y**4 >= 360000 * x
    if boundary == "orange":  # X + Y >= 133
        return x + y >= 133
    raise ValueError(f"unknown boundary {boundary!r} (known: {', '.join(BOUNDARIES)})")


def switch_column(boundary: str, x: int) -> int:
    """The first Y of row `x` right of `boundary` (P when none in the grid)."""
    ys = torch.arange(P)
    right = right_of(boundary, torch.full((P,), x), ys)
    return int(ys[right][0]) if bool(right.any()) else P


@dataclasses.dataclass(frozen=True)
class RowRule:
    """A row's colour left of every boundary and the boundaries that switch it."""

    start: int  # RED or BLUE
    boundaries: tuple[str, ...]  # each flips the colour from its switch column on


def _bar_index(x: int) -> int:
    return (10 * x + BAR_PHASE_10) // BAR_PERIOD_10


def bar_colour(x: int) -> int | None:
    """RED or BLUE if row `x` is one of the periodic bars, else None."""
    k = _bar_index(x)
    if k == _bar_index(x - 1):
        return None
    return RED if k % 2 == 0 else BLUE


def row_rule(x: int) -> RowRule:
    """Which boundaries switch row `x` and its colour left of them (the reconstruction)."""
    if not 0 <= x < P:
        raise ValueError(f"row {x} is outside 0..{P - 1}")
    bar = bar_colour(x)
    if bar is not None:
        return RowRule(bar, ())
    if x <= GREEN_LAST_ROW:
        # Blue left of the green curve; in rows 11-20 and 31-40 also blue right of the purple one.
        purple = ((x - 1) // 10) % 2 == 1
        return RowRule(BLUE, ("green", "purple") if purple else ("green",))
    block = ((x - LOWER_FIRST_ROW) // LOWER_BLOCK) % 3
    if block == 0:
        return RowRule(BLUE, ("purple", "orange"))  # blue-red-blue
    if block == 1:
        return RowRule(RED, ("orange",))  # red left of the orange line, blue right of it
    return RowRule(RED, ("purple", "orange"))  # red-blue-red


def label(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The labelling function (a reconstruction; module docstring) on tensors of X and Y:
    1 (red) or 0 (blue). Each row starts in its rule's colour and flips at each of its
    boundaries that (x, y) lies right of."""
    x, y = torch.as_tensor(x).long(), torch.as_tensor(y).long()
    if x.shape != y.shape:
        x, y = torch.broadcast_tensors(x, y)
    if bool(((x < 0) | (x >= P) | (y < 0) | (y >= P)).any()):
        raise ValueError(f"inputs must lie in 0..{P - 1}")
    out = torch.empty(x.shape, dtype=torch.long)
    flat_x, flat_out = x.reshape(-1), out.view(-1)
    flat_y = y.reshape(-1)
    for row in torch.unique(flat_x).tolist():
        sel = flat_x == row
        rule = row_rule(row)
        colour = torch.full((int(sel.sum()),), rule.start, dtype=torch.long)
        for b in rule.boundaries:
            colour ^= right_of(b, flat_x[sel], flat_y[sel]).long()
        flat_out[sel] = colour
    return out


def grid() -> torch.Tensor:
    """The labels of the whole grid, [X, Y] (int64, 0 or 1)."""
    xs, ys = torch.meshgrid(torch.arange(P), torch.arange(P), indexing="ij")
    return label(xs, ys)


def all_inputs() -> torch.Tensor:
    """Every input [X, Y, 113] in row-major order (cell index X * 113 + Y), [12769, 3]."""
    xs, ys = torch.meshgrid(torch.arange(P), torch.arange(P), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1),
                        torch.full((N_CELLS,), Z_TOKEN)], dim=1)


@dataclasses.dataclass(frozen=True)
class RowScan:
    """A row of a label grid read left to right: its first colour and where it switches."""

    start: int
    switches: tuple[float, ...]  # half-integer columns, e.g. 20.5 between Y = 20 and Y = 21

    @property
    def pattern(self) -> str:
        colours = [self.start ^ (i % 2) for i in range(len(self.switches) + 1)]
        names = ["red" if c == RED else "blue" for c in colours]
        if len(names) == 1:
            return f"all {names[0]}"
        return "-".join(names)


def scan_rows(labels: torch.Tensor) -> list[RowScan]:
    """Every row of a [P, P] label grid as a RowScan."""
    out = []
    for row in labels.long():
        change = torch.nonzero(row[1:] != row[:-1]).reshape(-1)
        out.append(RowScan(int(row[0]), tuple(float(c) + 0.5 for c in change.tolist())))
    return out


def boundary_columns() -> dict[str, torch.Tensor]:
    """Each boundary's switch column per row (float; P where it lies beyond the grid), for
    drawing the curves and for distances to them."""
    return {b: torch.tensor([switch_column(b, x) for x in range(P)], dtype=torch.float64) - 0.5
            for b in BOUNDARIES}


def active_switches(x: int) -> list[tuple[str, float]]:
    """The switches of row `x` that change its colour: (boundary, half-integer column), left to
    right. Two boundaries at the same column cancel and are both left out."""
    rule = row_rule(x)
    cols: dict[float, list[str]] = {}
    for b in rule.boundaries:
        c = switch_column(b, x)
        if 0 < c < P:
            cols.setdefault(c - 0.5, []).append(b)
    kept = [(names[0], col) for col, names in cols.items() if len(names) % 2 == 1]
    return sorted(kept, key=lambda t: t[1])


def distance_to_switch(kinds: tuple[str, ...]) -> torch.Tensor:
    """[P, P]: each cell's distance along its row (in columns, from the cell's centre) to the
    nearest active switch of a boundary in `kinds` (inf where the row has none)."""
    out = torch.full((P, P), float("inf"), dtype=torch.float64)
    ys = torch.arange(P, dtype=torch.float64)
    for x in range(P):
        for b, col in active_switches(x):
            if b in kinds:
                out[x] = torch.minimum(out[x], (ys - col).abs())
    return out


def split(seed: int, train_fraction: float) -> torch.Tensor:
    """A boolean mask over the 12769 cells (row-major): True for the training half. The order
    is a permutation drawn from `seed` (uniform keys, ranked)."""
    gen = torch.Generator().manual_seed(seed)
    keys = rand((N_CELLS,), gen, "cpu", torch.float64)
    order = torch.argsort(keys, stable=True)
    n_train = int(train_fraction * N_CELLS)
    mask = torch.zeros(N_CELLS, dtype=torch.bool)
    mask[order[:n_train]] = True
    return mask

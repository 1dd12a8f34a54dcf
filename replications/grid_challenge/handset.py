"""The post's validation: a transformer of the same kind with hand-set weights that implements
the row-pattern algorithm, and its agreement with the labelling function.

The algorithm (the post's section 2): every row X has one of six colour patterns and, for the
patterns that change colour, one or two switch columns; the label of (X, Y) is the row's colour
at Y. `row_programs` reads the patterns and switch columns off the labelling function row by
row (the post's "human interpretable algorithm" knows them per row).

The weights (`build`), in a 1-layer HookedTransformer without LayerNorm, ReLU MLP, d_model 128,
8 heads of 16 (float64, so every comparison below is exact):

- embeddings: token t in 0..112 writes t and t^2 (two residual directions); token 113 writes
  nothing; position p writes a one-hot direction;
- attention: head 0 at position 2 puts all its attention on position 0 (a score of 60 on X's
  position, 0 elsewhere) and copies (X, X^2); head 1 attends to position 1 and copies Y; the
  other heads write nothing. The leak through e^-60 is far below the margins;
- MLP: one neuron per primitive of each row r, gated to that row by -M (X - r)^2, which is
  linear in (X, X^2): 0 on row r and at most -M elsewhere (M = 256 > any |Y - t|). The
  primitives are the post's: paint the row all red (a constant 0.5), paint some left portion
  blue (ReLU(t - Y)), paint some right portion blue (ReLU(Y - t)) or red (ReLU(Y - t));
- output: each neuron writes its weight (its primitive's colour and strength) on one direction
  that the unembedding reads as (logit red - logit blue).

Per pattern, as the post combines them ("2 *" = a larger weight): all red = red-all; all blue =
blue-left + blue-right over the whole row; blue then red = blue-left + red-right; red then blue
= red-all + 2 blue-right; blue-red-blue = 2 blue-left + red-all + 2 blue-right; red-blue-red =
red-all + 2 blue-right + k red-right with k = 4 (t2 - t1) + 2, large enough for the red right
portion to outweigh the blue one it starts inside.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from replications.grid_challenge import data

D_MODEL, N_HEADS, D_HEAD, D_MLP = 128, 8, 16, 1024
GATE = 256.0  # M: the row gate's penalty per unit of (X - r)^2
SCORE = 60.0  # attention score on the attended position
RED_ALL = 0.5
# Residual directions.
TOK_T, TOK_T2 = 0, 1  # what each token writes (at its own position)
POS = (2, 3, 4)  # one-hot positions
RES_X, RES_X2, RES_Y = 5, 6, 7  # what the two heads write at position 2
OUT = 8  # the MLP's output direction, read as the logit difference

PRIMITIVES = ("red-all", "blue-left", "blue-right", "red-right")


@dataclasses.dataclass(frozen=True)
class Neuron:
    row: int
    primitive: str  # one of PRIMITIVES
    t: float  # the switch column its ramp starts at (0 for red-all)
    weight: float  # positive: red; negative: blue


def row_programs(labels: torch.Tensor | None = None) -> list[list[Neuron]]:
    """The neurons of every row, from the row's pattern and switch columns (module docstring)."""
    labels = data.grid() if labels is None else labels
    out = []
    for r, scan in enumerate(data.scan_rows(labels)):
        sw, pattern = scan.switches, scan.pattern
        if pattern == "all red":
            program = [Neuron(r, "red-all", 0.0, 1.0)]
        elif pattern == "all blue":
            program = [Neuron(r, "blue-left", data.P - 0.5, -1.0),
                       Neuron(r, "blue-right", -0.5, -1.0)]
        elif pattern == "blue-red":
            program = [Neuron(r, "blue-left", sw[0], -1.0), Neuron(r, "red-right", sw[0], 1.0)]
        elif pattern == "red-blue":
            program = [Neuron(r, "red-all", 0.0, RED_ALL), Neuron(r, "blue-right", sw[0], -2.0)]
        elif pattern == "blue-red-blue":
            program = [Neuron(r, "blue-left", sw[0], -2.0), Neuron(r, "red-all", 0.0, RED_ALL),
                       Neuron(r, "blue-right", sw[1], -2.0)]
        elif pattern == "red-blue-red":
            k = 4 * (sw[1] - sw[0]) + 2
            program = [Neuron(r, "red-all", 0.0, RED_ALL), Neuron(r, "blue-right", sw[0], -2.0),
                       Neuron(r, "red-right", sw[1], k)]
        else:
            raise ValueError(f"row {r}: pattern {pattern!r} is not one of the six")
        out.append(program)
    return out


def _config() -> HookedTransformerConfig:
    return HookedTransformerConfig(
        n_layers=1, d_model=D_MODEL, n_heads=N_HEADS, d_head=D_HEAD, d_mlp=D_MLP,
        act_fn="relu", normalization_type=None, n_ctx=3, d_vocab=data.P + 1, d_vocab_out=2,
        device="cpu", default_prepend_bos=False, dtype=torch.float64,
    )


def build(programs: list[list[Neuron]] | None = None) -> tuple[HookedTransformer, list[Neuron]]:
    """The hand-set model and its neurons (in MLP order)."""
    programs = row_programs() if programs is None else programs
    neurons = [n for prog in programs for n in prog]
    if len(neurons) > D_MLP:
        raise ValueError(f"{len(neurons)} neurons do not fit d_mlp {D_MLP}")
    model = HookedTransformer(_config())
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    keep = {k for k in state if k.endswith(("mask", "IGNORE"))}
    for k in keep:
        state[k] = model.state_dict()[k]
    t = torch.arange(data.P, dtype=torch.float64)
    state["embed.W_E"][: data.P, TOK_T] = t
    state["embed.W_E"][: data.P, TOK_T2] = t**2
    for p, d in enumerate(POS):
        state["pos_embed.W_pos"][p, d] = 1.0
    scale = D_HEAD**0.5  # TransformerLens divides scores by sqrt(d_head)
    # Head 0: position 2 attends to position 0 and copies (t, t^2) -> (X, X^2).
    state["blocks.0.attn.W_Q"][0, POS[2], 0] = SCORE * scale
    state["blocks.0.attn.W_K"][0, POS[0], 0] = 1.0
    state["blocks.0.attn.W_V"][0, TOK_T, 0] = 1.0
    state["blocks.0.attn.W_V"][0, TOK_T2, 1] = 1.0
    state["blocks.0.attn.W_O"][0, 0, RES_X] = 1.0
    state["blocks.0.attn.W_O"][0, 1, RES_X2] = 1.0
    # Head 1: position 2 attends to position 1 and copies t -> Y.
    state["blocks.0.attn.W_Q"][1, POS[2], 0] = SCORE * scale
    state["blocks.0.attn.W_K"][1, POS[1], 0] = 1.0
    state["blocks.0.attn.W_V"][1, TOK_T, 0] = 1.0
    state["blocks.0.attn.W_O"][1, 0, RES_Y] = 1.0
    W_in, b_in = state["blocks.0.mlp.W_in"], state["blocks.0.mlp.b_in"]
    for i, n in enumerate(neurons):
        # Row gate: -M (X - r)^2 = -M X^2 + 2 M r X - M r^2.
        W_in[RES_X2, i], W_in[RES_X, i], b_in[i] = -GATE, 2 * GATE * n.row, -GATE * n.row**2
        if n.primitive == "red-all":
            b_in[i] += 1.0
        elif n.primitive == "blue-left":  # ReLU(t - Y)
            W_in[RES_Y, i], b_in[i] = -1.0, b_in[i] + n.t
        else:  # ReLU(Y - t)
            W_in[RES_Y, i], b_in[i] = 1.0, b_in[i] - n.t
        state["blocks.0.mlp.W_out"][i, OUT] = n.weight
    state["unembed.W_U"][OUT, 1], state["unembed.W_U"][OUT, 0] = 0.5, -0.5
    model.load_state_dict(state)
    model.eval()
    return model, neurons


def evaluate(model: HookedTransformer, neurons: list[Neuron]) -> tuple[dict[str, Any],
                                                                       dict[str, torch.Tensor]]:
    """Agreement of the hand-set model with the labelling function on every input; the
    logit difference, and each primitive's summed contribution, on the grid."""
    truth = data.grid()
    with torch.no_grad():
        logits, cache = model.run_with_cache(data.all_inputs(),
                                             names_filter=["blocks.0.mlp.hook_post"])
    diff = (logits[:, -1, 1] - logits[:, -1, 0]).reshape(data.P, data.P)
    labels = (diff > 0).long()
    post = cache["blocks.0.mlp.hook_post"][:, -1, : len(neurons)]
    w_out = model.blocks[0].mlp.W_out[: len(neurons), OUT]
    contrib = post * w_out  # [cell, neuron], in logit-difference units (W_U reads 0.5 - -0.5)
    by_primitive = torch.stack([
        contrib[:, [i for i, n in enumerate(neurons) if n.primitive == p]].sum(1)
        .reshape(data.P, data.P) for p in PRIMITIVES])
    wrong = labels != truth
    margin = diff.abs().min()
    counts = {p: sum(n.primitive == p for n in neurons) for p in PRIMITIVES}
    patterns: dict[str, int] = {}
    for scan in data.scan_rows(truth):
        patterns[scan.pattern] = patterns.get(scan.pattern, 0) + 1
    s = {
        "agreement": float((~wrong).double().mean()),
        "n_disagree": int(wrong.sum()),
        "min_abs_logit_diff": float(margin),
        "n_neurons": len(neurons),
        "primitive_counts": counts,
        "row_patterns": patterns,
        "n_patterns": len(patterns),
    }
    return s, {"handset_logit_diff": diff, "handset_labels": labels,
               "handset_by_primitive": by_primitive}

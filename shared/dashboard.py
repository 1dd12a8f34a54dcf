"""Feature dashboards: one self-contained HTML page per SAE with, for a spread of its live
features, the top-activating contexts (tokens shaded by the activation), a histogram of the
feature's non-zero activations and its direct logit effects.

Usage (a write-up's `*_dashboard` rule runs it):
    python -m shared.dashboard --model DIR_OR_NAME --sae SAE_DIR --tokens TOKENS --title T
        --settings JSON --out dashboard.html [--threads N]

The SAE is a SAELens-format directory or a zoo SAE folder (`shared.sae_io.load_sae`); its
`cfg.json` names the hook. Held-out rows (`val` of the tokens file) are read in batches; memory
stays O(features x k) besides the selected features' activations. Features are chosen by frequency rank (evenly spaced over the
live ones, densest first), so the page shows common and rare features alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
from pathlib import Path
from typing import Any, Callable

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from shared.cli import run
from shared.config import build
from shared.dashboard_config import DashboardSettings
from shared.feature_stats import StreamingTopK


@dataclasses.dataclass(frozen=True)
class FeatureCard:
    """What the page shows of one feature."""

    feature: int
    frequency: float  # fraction of held-out tokens it fires on
    max_act: float
    contexts: list[list[tuple[str, float]]]  # per context: (token text, activation)
    centre: int  # index of the max-activating token in each context
    hist_edges: list[float]
    hist_counts: list[int]
    promoted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]


def to_residual(directions: Float[Tensor, "feat d_in"], model: Any, hook: str
                ) -> Float[Tensor, "feat d_model"]:
    """Decoder directions as residual-stream writes: through W_out for an MLP's hidden
    activations, as they are for a hook on the residual stream or a sublayer's output."""
    if hook.endswith("mlp.hook_post"):
        layer = int(hook.split(".")[1])
        return einops.einsum(directions, model.W_out[layer].to(directions.dtype),
                             "feat d_mlp, d_mlp d_model -> feat d_model")
    if directions.shape[-1] != model.cfg.d_model:
        raise ValueError(f"hook {hook!r}: {directions.shape[-1]} dims is neither d_mlp behind "
                         "mlp.hook_post nor d_model")
    return directions


def logit_effects(directions: Float[Tensor, "feat d_in"], model: Any, hook: str
                  ) -> Float[Tensor, "feat d_vocab"]:
    """Direct logit effect of each direction: centred residual write @ W_U, centred over the
    vocabulary (the final LayerNorm's scale left out; its weight is folded into W_U)."""
    resid = to_residual(directions.double(), model, hook)
    resid = resid - resid.mean(-1, keepdim=True)
    logits = resid @ model.W_U.double()
    return logits - logits.mean(-1, keepdim=True)


def choose_features(frequency: Float[Tensor, " d_sae"], n: int) -> Int[Tensor, " n"]:
    """`n` live features evenly spaced in frequency rank, densest first."""
    live = (frequency > 0).nonzero().flatten()
    if len(live) == 0:
        raise ValueError("no feature fires on the held-out rows")
    order = live[frequency[live].argsort(descending=True, stable=True)]
    picks = torch.linspace(0, len(order) - 1, min(n, len(order))).round().long().unique()
    return order[picks]


@torch.no_grad()
def feature_cards(
    model: Any, encode: Callable[[Tensor], Tensor], W_dec: Float[Tensor, "d_sae d_in"], hook: str,
    rows: Int[Tensor, "rows pos"], decode: Callable[[int], str], s: DashboardSettings,
) -> tuple[list[FeatureCard], int]:
    """The cards of the chosen features, and the number of held-out tokens read."""
    from shared.activations import forward_to_hook  # TransformerLens: not at config import

    rows = rows[: s.max_rows or None]
    batches = [rows[i:i + s.batch_rows] for i in range(0, len(rows), s.batch_rows)]

    def feats(batch: Tensor) -> Float[Tensor, "b pos d_sae"]:
        return encode(forward_to_hook(model, batch, hook).float()).cpu()

    # Pass 1: how often each feature fires (to choose the features).
    counts = torch.zeros(W_dec.shape[0], dtype=torch.float64)
    for batch in batches:
        counts += (feats(batch) > 0).sum((0, 1)).double()
    n_tokens = rows.numel()
    frequency = counts / n_tokens
    chosen = choose_features(frequency, s.n_features)
    # Pass 2: the chosen features' activations, their top contexts.
    topk = StreamingTopK(len(chosen), s.n_contexts)
    acts = []
    for i, batch in enumerate(batches):
        a = feats(batch)[..., chosen]  # [b, pos, n]
        topk.update(a, i * s.batch_rows, exclude_first_position=True)
        acts.append(a)
    all_acts = torch.cat(acts)  # [rows, pos, n]
    top = topk.result()
    effects = logit_effects(W_dec[chosen].float(), model, hook)
    cards = []
    for j, f in enumerate(chosen.tolist()):
        a = all_acts[..., j]
        nz = a[a > 0]
        hist = torch.histc(nz, bins=s.n_bins, min=0.0, max=float(nz.max()))
        edges = torch.linspace(0, float(nz.max()), s.n_bins + 1)
        contexts = []
        for seq, pos in zip(top.seq[j].tolist(), top.pos[j].tolist()):
            if seq < 0:
                continue
            lo, hi = max(0, pos - s.window_before), min(rows.shape[1], pos + s.window_after + 1)
            pad = s.window_before - (pos - lo)
            contexts.append([("", 0.0)] * pad + [(shown(decode(int(t))), float(v)) for t, v in
                                                 zip(rows[seq, lo:hi], a[seq, lo:hi])])
        up = effects[j].topk(s.n_logit_tokens)
        down = (-effects[j]).topk(s.n_logit_tokens)
        cards.append(FeatureCard(
            feature=f, frequency=float(frequency[f]), max_act=float(nz.max()), contexts=contexts,
            centre=s.window_before, hist_edges=edges.tolist(), hist_counts=hist.long().tolist(),
            promoted=[(decode(int(t)), float(v)) for t, v in zip(up.indices, up.values)],
            suppressed=[(decode(int(t)), float(-v)) for t, v in zip(down.indices, down.values)],
        ))
    return cards, n_tokens


def shown(text: str) -> str:
    """A token as one line of a context: line breaks and tabs made visible."""
    return text.replace("\n", "⏎").replace("\t", "⇥")


def _histogram_svg(card: FeatureCard, width: int = 320, height: int = 90) -> str:
    peak = max(card.hist_counts) or 1
    bw = width / len(card.hist_counts)
    bars = "".join(
        f"<rect x='{i * bw:.1f}' y='{height - c / peak * height:.1f}' width='{bw - 1:.1f}' "
        f"height='{c / peak * height:.1f}' fill='#4c72b0'><title>[{card.hist_edges[i]:.3g}, "
        f"{card.hist_edges[i + 1]:.3g}): {c}</title></rect>"
        for i, c in enumerate(card.hist_counts))
    return (f"<svg width='{width}' height='{height + 14}' role='img' aria-label='activation "
            f"histogram'>{bars}<text x='0' y='{height + 12}' font-size='10'>0</text>"
            f"<text x='{width}' y='{height + 12}' font-size='10' text-anchor='end'>"
            f"{card.max_act:.3g}</text></svg>")


def _context_html(ctx: list[tuple[str, float]], centre: int, max_act: float) -> str:
    spans = []
    for i, (text, v) in enumerate(ctx):
        alpha = max(0.0, min(1.0, v / max_act)) if max_act > 0 else 0.0
        style = f"background:rgba(255,127,14,{alpha:.2f})" + (";outline:1px solid #333"
                                                              if i == centre else "")
        spans.append(f"<span title='{v:.3g}' style='{style}'>{html.escape(text)}</span>")
    return "<div class='ctx'>" + "".join(spans) + "</div>"


def _tokens_table(pairs: list[tuple[str, float]]) -> str:
    return "<table>" + "".join(f"<tr><td><code>{html.escape(repr(t))}</code></td>"
                               f"<td>{v:+.3f}</td></tr>" for t, v in pairs) + "</table>"


def render(cards: list[FeatureCard], title: str, note: str) -> str:
    """The page."""
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
             "padding:0 1em}section{border-top:1px solid #ccc;padding:0.5em 0}"
             ".ctx{font-family:monospace;white-space:pre;margin:2px 0;font-size:0.85em}"
             ".row{display:flex;gap:2em;flex-wrap:wrap}td{padding:0 0.5em;font-size:0.85em}"
             "nav a{margin-right:0.6em}")
    nav = " ".join(f"<a href='#f{c.feature}'>{c.feature}</a>" for c in cards)
    body = [f"<h1>{html.escape(title)}</h1><p>{html.escape(note)}</p><nav>{nav}</nav>"]
    for c in cards:
        body.append(
            f"<section id='f{c.feature}'><h2>Feature {c.feature}</h2><p>fires on "
            f"{c.frequency:.3%} of held-out tokens; max activation {c.max_act:.3g}</p>"
            "<div class='row'><div><h3>Top contexts</h3>"
            + "".join(_context_html(x, c.centre, c.max_act) for x in c.contexts)
            + "</div><div><h3>Activations (non-zero)</h3>" + _histogram_svg(c) + "</div></div>"
            "<div class='row'><div><h3>Promotes</h3>" + _tokens_table(c.promoted)
            + "</div><div><h3>Suppresses</h3>" + _tokens_table(c.suppressed)
            + "</div></div></section>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{style}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def main(argv: list[str] | None = None) -> None:
    from shared.io import BadInput
    from shared.lm import load_model
    from shared.runtime import set_threads
    from shared.sae_io import load_sae
    from shared.tokenizer import load_rows

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a stand-in's folder or a published name")
    ap.add_argument("--sae", type=Path, required=True, help="a zoo SAE folder or SAELens directory")
    ap.add_argument("--tokens", type=Path, required=True, help="tokens file with `val` rows")
    ap.add_argument("--title", required=True)
    ap.add_argument("--settings", required=True, help="DashboardSettings as JSON")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    settings = build(DashboardSettings, json.loads(args.settings), "--settings")
    set_threads(args.threads)
    loaded = load_sae(args.sae)
    sae, hook = loaded.sae, loaded.hook_name
    if hook is None:
        raise BadInput(f"{args.sae}: cfg.json names no hook_name")
    model = load_model(args.model, device="auto", frozen=True, need_tokenizer=True)
    sae = sae.to(next(model.parameters()).device)
    rows = load_rows(args.tokens).val

    def encode(x: Float[Tensor, "b pos d_in"]) -> Float[Tensor, "b pos d_sae"]:
        flat = einops.rearrange(x, "b pos d -> (b pos) 1 d")
        return einops.rearrange(sae.encode(flat), "(b pos) 1 f -> b pos f", b=x.shape[0])

    tokenizer = model.tokenizer
    assert tokenizer is not None  # need_tokenizer=True

    def decode(t: int) -> str:
        return str(tokenizer.decode([t]))

    cards, n_tokens = feature_cards(model, encode, sae.W_dec[0].detach(), hook, rows, decode,
                                    settings)
    note = (f"SAE {args.sae} on {hook} of {args.model}: {sae.d_sae} features; "
            f"{len(cards)} live features shown, evenly spaced in frequency rank, from "
            f"{n_tokens:,} held-out tokens (position 0 left out of the top contexts). Logit "
            "effects: decoder row written to the residual stream, centred, @ W_U.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(cards, args.title, note))
    print(f"dashboard: {len(cards)} features -> {args.out}")


if __name__ == "__main__":
    run(main)

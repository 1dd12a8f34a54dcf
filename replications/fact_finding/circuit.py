"""The fact-lookup circuit (post 1's post-2 summary and post 3): where the sport is looked up.

On prompts "<prefix>Fact: <first> <surname> plays the sport of" for the names the model knows
(facts.json), the analyses of the write-up's three stages:

1. Activation patching (noising): each layer's residual (`hook_resid_pre`), attention output and
   MLP output at each name / relation position is replaced by its value on another known
   person's prompt (different sport, different first name and surname). The metric is the
   logit difference of the correct sport (its logit minus the mean of the two others, among
   the three answer tokens); a patch's effect is the share of the clean - corrupted logit
   difference it destroys (1: as bad as the corrupted run, 0: no effect).
2. The attribute-extracting head by direct logit attribution: each head's output at the final
   position (through the final LayerNorm scale) projected on the answers' unembedding
   directions, centred over the three answers; the head with the largest mean attribution to
   the correct sport (paper profile: the write-up's L16H20 is named in config).
3. The effective model: the name tokens, the attention layers that move the first name onto
   the surname (paper: 0-1), the MLPs that act as part of the token embedding (paper: MLP0) and
   the lookup MLPs (paper: 2-6); every other attention layer and MLP up to the last lookup
   layer is mean-ablated (mean over the prompts) at the two name positions. The sport is read
   from the residual after the last lookup layer at the surname with (a) the attribute head's
   OV circuit: LN(x) W_V W_O W_U[:, answers], argmax (the write-up's 86%), and (b) a logistic
   probe (10 random 80/20 splits).
4. Probes: logistic regression for the sport on the surname residual after each layer (full
   model) and after each lookup layer (effective model), and on the sum of the raw first-name
   and surname embeddings (the write-up's summed-token baseline).
5. Path patching between the lookup MLPs: for i < j, MLP_i's output at the surname is replaced
   by its mean only in MLP_j's input (`hook_mlp_in` of layer j), so MLP_i still reaches every
   later component directly. Effects on the head probe, a logistic probe (fitted on the clean
   residuals), the three-way and full-vocabulary accuracy, the answer's loss and the KL
   divergence from the clean next-token distribution. The diagonal holds whole-MLP mean
   ablation for reference.

All interventions run through `run_jobs`: a job is a set of edits (hook, position, per-prompt
values); rows of a batch are (job, prompt) pairs, so many layers / positions / paths are
patched in one batched forward pass. Patching starts each pass at the patched layer from the
cached clean residual, which halves the work of a layer sweep.

This module holds the settings, the batched interventions and the clean pass; the five
steps are in `circuit_steps.py`, running them all and the metrics in `circuit_results.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from replications.fact_finding.facts import FactPrompts
from shared.config import check

COMPONENTS: tuple[str, ...] = ("resid_pre", "attn_out", "mlp_out")
COMPONENT_LABELS: Mapping[str, str] = {
    "resid_pre": "residual stream (block input)", "attn_out": "attention output",
    "mlp_out": "MLP output",
}
# The write-up's numbers (Pythia 2.8B), shown beside ours in figures.
PUBLISHED: Mapping[str, float] = {"effective_head_accuracy": 0.86, "summed_tokens_probe": 0.50}
PUBLISHED_HEAD: tuple[int, int] = (16, 20)
SLOTS: tuple[str, ...] = ("first", "surname", "final")  # positions CleanRun keeps
PATH_METRICS: tuple[str, ...] = ("head_probe_accuracy", "logistic_probe_accuracy",
                                 "sport_accuracy", "vocab_accuracy", "loss", "kl")


def hook(component: str, layer: int) -> str:
    """TransformerLens hook name of `component` ("resid_pre", "attn_out", ...) in `layer`."""
    if component in ("z", "pattern"):
        return f"blocks.{layer}.attn.hook_{component}"
    return f"blocks.{layer}.hook_{component}"


# ---------------------------------------------------------------------------------------------
# Settings.


@dataclasses.dataclass(frozen=True)
class CircuitSettings:
    """The circuit analyses (the `circuit` section of the config)."""

    relation: str  # the relation studied (write-up: sport)
    n_patch_prompts: int  # prompts in the activation patching (a seeded subset)
    patch_batch_size: int  # (job, prompt) rows per patched forward pass
    token_attn_layers: tuple[int, ...]  # effective model: attention kept (paper 0, 1)
    embedding_mlps: tuple[int, ...]  # effective model: MLPs kept as token embedding (paper 0)
    lookup_mlps: tuple[int, ...]  # effective model: the lookup MLPs (paper 2-6)
    # where the looked-up attribute is read (probes, effective model, path patching): the
    # surname (the write-up) or the final token (a model that gathers the name there)
    read_position: Literal["surname", "final"]
    # head whose OV reads the sport: top_dla (largest direct logit attribution), top_dla_surname
    # (largest DLA x mean attention from the final token to the surname), reference (below)
    attribute_head: Literal["top_dla", "top_dla_surname", "reference"]
    # raw: argmax of the head's OV scores (the write-up's readout); centred: each answer's
    # score minus its mean over the prompts (drops the part common to everybody: a prior)
    head_readout: Literal["raw", "centred"]
    reference_head: tuple[int, int]  # the write-up's head (layer, head): L16H20
    probe_layers: tuple[int, ...]  # full-model residuals (after these layers) probed
    # locus.py: the layer after which the sport should be linearly decodable at the surname
    # (write-up: the early MLPs, 2-6 of 32); attention from the final token is knocked out
    # in the layers up to it and after it
    locus_layer: int
    locus_reach_fraction: float  # a position "has" the sport at this share of the best probe
    probe_splits: int  # random train/validation splits (write-up: 10)
    probe_train_fraction: float  # write-up: 0.8
    probe_l2: float  # weight of ||W||^2 / 2 beside the mean cross-entropy (standardised inputs)
    probe_max_iter: int  # L-BFGS iterations
    dtype: Literal["float32", "bfloat16"]  # model weights and activations (GPU: bfloat16 ok)
    seed: int  # patch subset, corrupting partners, probe splits

    def __post_init__(self) -> None:
        check(bool(self.relation), "circuit.relation must not be empty")
        check(self.n_patch_prompts >= 2 and self.patch_batch_size >= 1,
              "circuit.n_patch_prompts must be >= 2 and patch_batch_size >= 1")
        check(len(self.lookup_mlps) >= 2, "circuit.lookup_mlps needs at least 2 layers")
        for name in ("token_attn_layers", "embedding_mlps", "lookup_mlps", "probe_layers"):
            v = getattr(self, name)
            check(list(v) == sorted(set(v)) and all(x >= 0 for x in v),
                  f"circuit.{name} must be distinct non-negative layers in increasing order")
        check(not set(self.embedding_mlps) & set(self.lookup_mlps),
              "circuit.embedding_mlps and lookup_mlps must not overlap")
        check(len(self.probe_layers) >= 1, "circuit.probe_layers must not be empty")
        check(self.locus_layer >= 0 and 0 < self.locus_reach_fraction <= 1,
              "circuit.locus_layer must be >= 0 and locus_reach_fraction in (0, 1]")
        check(self.probe_splits >= 1 and 0 < self.probe_train_fraction < 1,
              "circuit.probe_splits must be >= 1 and probe_train_fraction in (0, 1)")
        check(self.probe_l2 >= 0 and self.probe_max_iter >= 1,
              "circuit.probe_l2 must be >= 0 and probe_max_iter >= 1")

    @property
    def end_layer(self) -> int:
        """The last lookup layer: the effective model's residual is read after it."""
        return self.lookup_mlps[-1]

    def check_model(self, n_layers: int, n_heads: int) -> None:
        """Raise ConfigError when a layer or head does not exist in the model."""
        layers = (*self.token_attn_layers, *self.embedding_mlps, *self.lookup_mlps,
                  *self.probe_layers, self.locus_layer)
        check(max(layers) < n_layers,
              f"circuit: layer {max(layers)} does not exist (the model has {n_layers} layers)")
        if self.attribute_head == "reference":
            layer, head = self.reference_head
            check(0 <= layer < n_layers and 0 <= head < n_heads,
                  f"circuit.reference_head L{layer}H{head} is not in a model with {n_layers} "
                  f"layers of {n_heads} heads")

    @property
    def read_slot(self) -> int:
        """Index of the read position in `CleanRun`'s (first name, surname, final) slots."""
        return SLOTS.index(self.read_position)

    @property
    def torch_dtype(self) -> torch.dtype:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16}[self.dtype]


# ---------------------------------------------------------------------------------------------
# Batched interventions.


@dataclasses.dataclass(frozen=True)
class Edit:
    """Set (or add to) the activation at `hook`, position `pos`, to `source[prompt]`."""

    hook: str
    pos: int
    source: Float[Tensor, "n d"]
    add: bool


Job = tuple[Edit, ...]
Capture = Callable[[Tensor], Tensor]  # activation of a chunk -> what to keep of it
ReadoutFn = Callable[[Float[Tensor, "b seq d"], Int[Tensor, " b"]], dict[str, Tensor]]


def _edit_hook(entries: list[tuple[int, int, Edit]], pidx: Int[Tensor, " b"]):  # noqa: ANN202
    def fn(act: Tensor, hook) -> Tensor:  # noqa: ANN001
        act = act.clone()
        for a, b, e in entries:
            v = e.source[pidx[a:b]].to(act.dtype)
            if e.add:
                act[a:b, e.pos] += v
            else:
                act[a:b, e.pos] = v
        return act
    return fn


def _keeper(kept: dict[str, Tensor], name: str, fn: Capture):  # noqa: ANN202
    def keep(act: Tensor, hook) -> None:  # noqa: ANN001
        kept[name] = fn(act).detach()
    return keep


@torch.inference_mode()
def run_jobs(
    model, start: Tensor, start_layer: int, stop_layer: int, jobs: Sequence[Job],  # noqa: ANN001
    batch_rows: int, readout: ReadoutFn | None = None,
    capture: Mapping[str, Capture] | None = None, desc: str | None = None,
) -> dict[str, Tensor]:
    """Run every job on every prompt; return readout and captures as [n_jobs, n_prompts, ...].

    `start` is tokens [n, seq] (start_layer 0) or the residual before `start_layer`
    [n, seq, d]; the pass stops after block `stop_layer - 1` and `readout` gets the residual
    there. Rows are (job, prompt) pairs in job-major order, `batch_rows` per forward pass.
    Captures see the activations after the edits."""
    n, n_jobs = start.shape[0], len(jobs)
    device = next(model.parameters()).device
    capture = dict(capture or {})
    out: dict[str, list[Tensor]] = {}
    total = n * n_jobs
    starts = range(0, total, batch_rows)
    for s in tqdm(starts, desc=desc, disable=desc is None or len(starts) < 3):
        rows = torch.arange(s, min(s + batch_rows, total))
        pidx, jidx = rows % n, rows // n
        by_hook: dict[str, list[tuple[int, int, Edit]]] = {}
        for j in torch.unique(jidx).tolist():
            where = torch.nonzero(jidx == j).flatten()
            a, b = int(where[0]), int(where[-1]) + 1
            for e in jobs[j]:
                by_hook.setdefault(e.hook, []).append((a, b, e))
        pidx_dev = pidx.to(device)
        hooks = [(name, _edit_hook(entries, pidx_dev)) for name, entries in by_hook.items()]
        kept: dict[str, Tensor] = {}
        hooks += [(name, _keeper(kept, name, fn)) for name, fn in capture.items()]
        x = start[pidx.to(start.device)].to(device)
        with model.hooks(fwd_hooks=hooks):
            resid = model(x, start_at_layer=start_layer if x.dim() == 3 else None,
                          stop_at_layer=stop_layer)
        got = dict(kept)
        if readout is not None:
            got.update(readout(resid, pidx_dev))
        for k, v in got.items():
            out.setdefault(k, []).append(v)
    return {k: torch.cat(v).view(n_jobs, n, *v[0].shape[1:]) for k, v in out.items()}


def final_logits(model, resid_final: Float[Tensor, "b d"]) -> Float[Tensor, "b vocab"]:  # noqa: ANN001
    """Logits from the last block's residual at one position (final LayerNorm, unembed)."""
    return model.unembed(model.ln_final(resid_final[:, None, :]))[:, 0].float()


def logit_diff(answer_logits: Float[Tensor, "b a"], labels: Int[Tensor, " b"]) -> Float[Tensor, " b"]:
    """Correct answer's logit minus the mean of the other answers' logits."""
    a = answer_logits.float()
    correct = a.gather(1, labels[:, None])[:, 0]
    return correct - (a.sum(1) - correct) / (a.shape[1] - 1)


# ---------------------------------------------------------------------------------------------
# The clean pass over a prompt set.


@dataclasses.dataclass(frozen=True)
class CleanRun:
    """What one clean pass over the prompts keeps (positions as in FactPrompts)."""

    # at the SLOTS positions (first name, surname, final token):
    resid_post: Float[Tensor, "n layer slot d"]  # after each block
    attn: Float[Tensor, "n layer slot d"]  # attention output
    mlp: Float[Tensor, "n layer slot d"]  # MLP output
    z_final: Float[Tensor, "n layer head d_head"]  # head values-mix at the final position
    pattern_surname: Float[Tensor, "n layer head"]  # attention final -> surname
    final_scale: Float[Tensor, " n"]  # final LayerNorm scale at the final position
    logits: Float[Tensor, "n vocab"]  # next-token logits at the final position


def slot_positions(prompts: FactPrompts) -> tuple[int, int, int]:
    """The prompt positions of SLOTS: first name, surname, final token."""
    return prompts.first_pos, prompts.last_pos, prompts.final_pos


def clean_run(model, prompts: FactPrompts, batch_size: int) -> CleanRun:  # noqa: ANN001
    """One batched pass over `prompts` keeping only what the analyses read."""
    L = model.cfg.n_layers
    f, s, e = prompts.first_pos, prompts.last_pos, prompts.final_pos
    cap: dict[str, Capture] = {}
    for layer in range(L):
        for c in ("resid_post", "attn_out", "mlp_out"):
            cap[hook(c, layer)] = lambda a: a[:, [f, s, e]]
        cap[hook("z", layer)] = lambda a: a[:, e]
        cap[hook("pattern", layer)] = lambda a: a[:, :, e, s]
    def readout(r: Tensor, _: Tensor) -> dict[str, Tensor]:
        x = r[:, e].float()
        scale = ((x - x.mean(-1, keepdim=True)).pow(2).mean(-1) + model.cfg.eps).sqrt()
        return {"logits": final_logits(model, r[:, e]), "scale": scale}

    got = run_jobs(model, prompts.tokens, 0, L, [()], batch_size, readout=readout, capture=cap,
                   desc="clean pass")
    got = {k: v[0] for k, v in got.items()}

    def stack(component: str) -> Tensor:
        return torch.stack([got[hook(component, layer)] for layer in range(L)], 1)

    return CleanRun(
        resid_post=stack("resid_post"), attn=stack("attn_out"), mlp=stack("mlp_out"),
        z_final=stack("z"), pattern_surname=stack("pattern").float(),
        final_scale=got["scale"], logits=got["logits"],
    )

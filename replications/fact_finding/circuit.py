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
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from replications.fact_finding import probes
from replications.fact_finding.facts import FactPrompts
from shared.config import check

COMPONENTS: tuple[str, ...] = ("resid_pre", "attn_out", "mlp_out")
COMPONENT_LABELS: Mapping[str, str] = {
    "resid_pre": "residual stream (block input)", "attn_out": "attention output",
    "mlp_out": "MLP output",
}
# The write-up's numbers (Pythia 2.8B), shown beside ours in figures.
WRITEUP: Mapping[str, float] = {"effective_head_accuracy": 0.86, "summed_tokens_probe": 0.50}
WRITEUP_HEAD: tuple[int, int] = (16, 20)
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
                  *self.probe_layers)
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


# ---------------------------------------------------------------------------------------------
# 1. Activation patching.


def corrupting_partners(prompts: FactPrompts, seed: int) -> Int[Tensor, " n"]:
    """For each prompt, another prompt with a different answer and, where there is one, a
    different first name and surname (a random choice among those)."""
    lab = prompts.labels
    first, last = prompts.tokens[:, prompts.first_pos], prompts.tokens[:, prompts.last_pos]
    other = lab[:, None] != lab[None]
    if not other.any(1).all():
        raise ValueError("every prompt has the same answer: there is no corrupting partner")
    strict = other & (first[:, None] != first[None]) & (last[:, None] != last[None])
    ok = torch.where(strict.any(1, keepdim=True), strict, other)
    gen = torch.Generator().manual_seed(seed)
    scores = torch.rand(ok.shape, generator=gen).masked_fill(~ok, -1.0)
    return scores.argmax(1)


@dataclasses.dataclass(frozen=True)
class Patching:
    """Noising effects: share of the logit difference destroyed, [component, layer, position]."""

    effect: Float[Tensor, "component layer pos"]
    prob_correct: Float[Tensor, "component layer pos"]  # P(correct) among the answers
    positions: tuple[int, ...]  # prompt positions patched (first name ... final token)
    clean_logit_diff: float
    corrupt_logit_diff: float
    clean_prob: float
    corrupt_prob: float
    n_prompts: int


def activation_patching(
    model, prompts: FactPrompts, settings: CircuitSettings, batch_size: int,  # noqa: ANN001
) -> Patching:
    """Patch each component at each position from first name to final token, layer by layer.

    Positions before the first name hold the same tokens in both runs (patching them does
    nothing), so they are left out. One capture pass over the patch prompts; then one batched
    pass per layer over (component, position, prompt) rows, started at that layer from the
    clean residual."""
    L = model.cfg.n_layers
    positions = tuple(range(prompts.first_pos, prompts.final_pos + 1))
    e = prompts.final_pos
    nan = torch.full((len(COMPONENTS), L, len(positions)), float("nan"))
    if len(torch.unique(prompts.labels)) < 2:
        # A small profile's model may know one answer only: no partner can corrupt it.
        print("warning: every patch prompt has the same answer; patching skipped (NaN)",
              file=sys.stderr)
        return Patching(nan, nan, positions, float("nan"), float("nan"), float("nan"),
                        float("nan"), len(prompts))
    partner = corrupting_partners(prompts, settings.seed)
    cap: dict[str, Capture] = {}
    for layer in range(L):
        cap[hook("resid_pre", layer)] = lambda a: a
        cap[hook("attn_out", layer)] = lambda a: a[:, list(positions)]
        cap[hook("mlp_out", layer)] = lambda a: a[:, list(positions)]
    got = run_jobs(model, prompts.tokens, 0, L, [()], batch_size,
                   readout=lambda r, _: {"ans": final_logits(model, r[:, e])},
                   capture=cap, desc="patching: capture")
    got = {k: v[0] for k, v in got.items()}
    device = got["ans"].device
    labels = prompts.labels.to(device)
    ids = prompts.answer_ids.to(device)
    partner = partner.to(device)
    clean_ans = got["ans"][:, ids]

    def prob(ans: Tensor) -> Tensor:
        return ans.softmax(-1).gather(1, labels[:, None])[:, 0]

    ld_clean = logit_diff(clean_ans, labels)
    ld_corrupt = logit_diff(clean_ans[partner], labels)

    def readout(r: Tensor, pidx: Tensor) -> dict[str, Tensor]:
        ans = final_logits(model, r[:, e])[:, ids]
        return {"ld": logit_diff(ans, labels[pidx]), "p": ans.softmax(-1).gather(
            1, labels[pidx][:, None])[:, 0]}

    denom = float(ld_clean.mean() - ld_corrupt.mean())
    if denom <= 0:
        print("warning: corrupted prompts do not lower the logit difference; patching "
              "skipped (NaN)", file=sys.stderr)
        return Patching(nan, nan, positions, float(ld_clean.mean()), float(ld_corrupt.mean()),
                        float(prob(clean_ans).mean()), float(prob(clean_ans[partner]).mean()),
                        len(prompts))
    effect = torch.zeros(len(COMPONENTS), L, len(positions))
    p_correct = torch.zeros_like(effect)
    for layer in tqdm(range(L), desc="patching"):
        jobs: list[Job] = []
        for c in COMPONENTS:
            for k, pos in enumerate(positions):
                act = got[hook(c, layer)]
                src = act[partner, pos] if c == "resid_pre" else act[partner, k]
                jobs.append((Edit(hook(c, layer), pos, src, add=False),))
        res = run_jobs(model, got[hook("resid_pre", layer)], layer, L, jobs,
                       settings.patch_batch_size, readout=readout)
        ld = res["ld"].mean(1).view(len(COMPONENTS), len(positions)).cpu()
        effect[:, layer] = (float(ld_clean.mean()) - ld) / denom
        p_correct[:, layer] = res["p"].mean(1).view(len(COMPONENTS), len(positions)).cpu()
    return Patching(effect, p_correct, positions, float(ld_clean.mean()),
                    float(ld_corrupt.mean()), float(prob(clean_ans).mean()),
                    float(prob(clean_ans[partner]).mean()), len(prompts))


# ---------------------------------------------------------------------------------------------
# 2. Direct logit attribution of heads.


@torch.no_grad()
def answer_directions(model, answer_ids: Int[Tensor, " a"]) -> Float[Tensor, "d a"]:  # noqa: ANN001
    """Unembedding directions of the answers, centred over the answers and over d_model (the
    final LayerNorm removes the mean over d_model)."""
    U = model.W_U[:, answer_ids.to(model.W_U.device)].float()
    U = U - U.mean(1, keepdim=True)
    return U - U.mean(0, keepdim=True)


@dataclasses.dataclass(frozen=True)
class HeadAttribution:
    dla: Float[Tensor, "layer head"]  # mean attribution to the correct answer (logit units)
    attention_to_surname: Float[Tensor, "layer head"]  # mean attention final -> surname
    top: tuple[int, int]  # largest attribution

    @property
    def top_surname(self) -> tuple[int, int]:
        """Largest attribution x attention to the surname: the head that moves the surname's
        attribute (a head with a large attribution may read another position)."""
        return _argmax2d(self.dla * self.attention_to_surname)

    def pick(self, choice: str, reference: tuple[int, int]) -> tuple[int, int]:
        """The attribute head for a `CircuitSettings.attribute_head` choice."""
        return {"top_dla": self.top, "top_dla_surname": self.top_surname,
                "reference": tuple(reference)}[choice]


def _argmax2d(x: Tensor) -> tuple[int, int]:
    flat = int(x.flatten().argmax())
    return flat // x.shape[1], flat % x.shape[1]


@torch.no_grad()
def head_attribution(model, clean: CleanRun, prompts: FactPrompts) -> HeadAttribution:  # noqa: ANN001
    """Each head's output at the final position, through the final LayerNorm scale, on the
    centred answer directions; mean over prompts of the correct answer's component."""
    U = answer_directions(model, prompts.answer_ids)
    W_OU = einops.einsum(model.W_O.float(), U, "l h dh d, d a -> l h dh a")
    proj = einops.einsum(clean.z_final.float(), W_OU, "n l h dh, l h dh a -> n l h a")
    proj = proj / clean.final_scale[:, None, None, None].to(proj.device)
    labels = prompts.labels.to(proj.device)
    idx = einops.repeat(labels, "n -> n l h 1", l=proj.shape[1], h=proj.shape[2])
    dla = proj.gather(-1, idx)[..., 0].mean(0).cpu()
    return HeadAttribution(dla, clean.pattern_surname.mean(0).cpu(), _argmax2d(dla))


def head_rank(dla: Float[Tensor, "layer head"], head: tuple[int, int]) -> int:
    """1-based rank of `head` by attribution (1 = largest)."""
    return int((dla > dla[head]).sum()) + 1


@torch.no_grad()
def ov_directions(model, head: tuple[int, int], answer_ids: Int[Tensor, " a"]) -> Float[Tensor, "d a"]:  # noqa: ANN001,E501
    """The residual directions that `head`'s OV circuit maps onto the centred answer logits."""
    layer, h = head
    W_OV = model.W_V[layer, h].float() @ model.W_O[layer, h].float()
    return W_OV @ answer_directions(model, answer_ids)


@dataclasses.dataclass(frozen=True)
class Readout:
    """How the attribute is read from a residual: LayerNorm, then centred answer directions."""

    ln: torch.nn.Module
    dirs: Float[Tensor, "d a"]
    dtype: torch.dtype  # the model's activations


def attribute_readout(model, settings: CircuitSettings, head: tuple[int, int],  # noqa: ANN001
                      answer_ids: Int[Tensor, " a"]) -> Readout:
    """Surname: the attribute head's OV circuit onto the answers (through its LayerNorm).
    Final token: the unembedding itself (through the final LayerNorm)."""
    dtype = next(model.parameters()).dtype
    if settings.read_position == "surname":
        return Readout(model.blocks[head[0]].ln1, ov_directions(model, head, answer_ids), dtype)
    return Readout(model.ln_final, answer_directions(model, answer_ids), dtype)


@torch.no_grad()
def head_scores(readout: Readout, resid: Float[Tensor, "... d"]) -> Float[Tensor, "... a"]:
    """The centred answer logits written from `resid` (for a head: as if it attended to
    `resid` with weight 1; no bias)."""
    ln, dirs = readout.ln, readout.dirs
    shape = resid.shape
    x = ln(resid.reshape(-1, 1, shape[-1]).to(dirs.device, readout.dtype))
    return (x[:, 0].float() @ dirs).view(*shape[:-1], dirs.shape[-1])


def head_predict(scores: Float[Tensor, "... n a"], centred: bool,
                 reference: Float[Tensor, "n a"] | None = None) -> Int[Tensor, "... n"]:
    """Argmax of the head's scores; `centred` first subtracts each answer's mean score over
    the prompts of `reference` (default: `scores` themselves), i.e. the part of the readout
    that is the same for every person."""
    if centred:
        ref = scores if reference is None else reference
        scores = scores - ref.mean(-2, keepdim=True)
    return scores.argmax(-1)


# ---------------------------------------------------------------------------------------------
# 3. The effective model.


def effective_edits(
    settings: CircuitSettings, clean: CleanRun, prompts: FactPrompts, n: int,
    ablate_lookup: bool,
) -> Job:
    """Mean-ablate, at both name positions (and the read position), attention outside
    `token_attn_layers` and MLPs outside `embedding_mlps` + `lookup_mlps` (+ the lookup MLPs
    too if `ablate_lookup`), up to the last lookup layer."""
    attn_mean, mlp_mean = clean.attn.float().mean(0), clean.mlp.float().mean(0)
    keep_mlp = set(settings.embedding_mlps)
    if not ablate_lookup:
        keep_mlp |= set(settings.lookup_mlps)
    slots = sorted({0, 1, settings.read_slot})
    positions = slot_positions(prompts)
    edits = []
    for layer in range(settings.end_layer + 1):
        for k, pos in ((k, positions[k]) for k in slots):
            if layer not in settings.token_attn_layers:
                edits.append(Edit(hook("attn_out", layer), pos,
                                  attn_mean[layer, k].expand(n, -1), add=False))
            if layer not in keep_mlp:
                edits.append(Edit(hook("mlp_out", layer), pos,
                                  mlp_mean[layer, k].expand(n, -1), add=False))
    return tuple(edits)


@dataclasses.dataclass(frozen=True)
class Effective:
    resid: Float[Tensor, "variant n layer d"]  # read-position residual after layers 0..end
    variants: tuple[str, ...]  # ("effective", "no_lookup")


@torch.no_grad()
def effective_model(
    model, prompts: FactPrompts, clean: CleanRun, settings: CircuitSettings, batch_size: int,  # noqa: ANN001,E501
) -> Effective:
    """The effective model and the same with the lookup MLPs ablated, in one batched pass."""
    n, s = len(prompts), slot_positions(prompts)[settings.read_slot]
    jobs = [effective_edits(settings, clean, prompts, n, ablate_lookup=False),
            effective_edits(settings, clean, prompts, n, ablate_lookup=True)]
    cap = {hook("resid_post", layer): (lambda a: a[:, s])
           for layer in range(settings.end_layer + 1)}
    got = run_jobs(model, prompts.tokens, 0, settings.end_layer + 1, jobs, batch_size,
                   capture=cap, desc="effective model")
    resid = torch.stack([got[hook("resid_post", layer)]
                         for layer in range(settings.end_layer + 1)], 2)
    return Effective(resid, ("effective", "no_lookup"))


# ---------------------------------------------------------------------------------------------
# 4. Probes.


@dataclasses.dataclass(frozen=True)
class ProbeResults:
    accuracy: dict[str, Float[Tensor, " split"]]  # feature set -> validation accuracy per split


@torch.no_grad()
def probe_features(
    model, prompts: FactPrompts, clean: CleanRun, eff: Effective, settings: CircuitSettings,  # noqa: ANN001,E501
) -> dict[str, Float[Tensor, "n d"]]:
    """The feature sets probed: summed raw name embeddings, the full model's surname residual
    after each probed layer, the effective model's after each lookup layer."""
    W_E = model.W_E.float()
    toks = prompts.tokens.to(W_E.device)
    feats = {"summed_tokens": W_E[toks[:, prompts.first_pos]] + W_E[toks[:, prompts.last_pos]]}
    for layer in settings.probe_layers:
        feats[f"full_{layer}"] = clean.resid_post[:, layer, settings.read_slot].float()
    for layer in settings.lookup_mlps:
        feats[f"effective_{layer}"] = eff.resid[0, :, layer].float()
    feats["effective_no_lookup"] = eff.resid[1, :, settings.end_layer].float()
    return feats


def run_probes(
    feats: Mapping[str, Tensor], labels: Int[Tensor, " n"], n_classes: int,
    settings: CircuitSettings,
) -> ProbeResults:
    perms = probes.splits(len(labels), settings.probe_splits, settings.probe_train_fraction,
                          settings.seed)
    X = torch.stack([x.float() for x in feats.values()])
    acc = probes.cross_validated_accuracy(X, labels, n_classes, perms,
                                          settings.probe_train_fraction, settings.probe_l2,
                                          settings.probe_max_iter)
    return ProbeResults(dict(zip(feats, acc)))


# ---------------------------------------------------------------------------------------------
# 5. Path patching between lookup MLPs.


@dataclasses.dataclass(frozen=True)
class PathPatching:
    """Metrics [metric][source i, target j] over the lookup MLPs (i < j: path i -> j mean-
    ablated; i == j: MLP i mean-ablated entirely; i > j: NaN) and the clean values."""

    matrices: dict[str, Float[Tensor, "i j"]]
    clean: dict[str, float]
    layers: tuple[int, ...]


@torch.no_grad()
def path_patching(
    model, prompts: FactPrompts, clean: CleanRun, settings: CircuitSettings,  # noqa: ANN001
    head: tuple[int, int], batch_size: int,
) -> PathPatching:
    n, e = len(prompts), prompts.final_pos
    s = slot_positions(prompts)[settings.read_slot]
    device = clean.logits.device
    lookup = settings.lookup_mlps
    mlp_s = clean.mlp[:, :, settings.read_slot].float()  # [n, layer, d] at the read position
    mean_s = mlp_s.mean(0)
    jobs: list[Job] = [()]
    pairs: list[tuple[int, int]] = []
    for a, i in enumerate(lookup):
        jobs.append((Edit(hook("mlp_out", i), s, mean_s[i].expand(n, -1), add=False),))
        pairs.append((a, a))
        for b, j in enumerate(lookup):
            if j > i:
                delta = mean_s[i][None] - mlp_s[:, i]
                jobs.append((Edit(hook("mlp_in", j), s, delta, add=True),))
                pairs.append((a, b))
    labels = prompts.labels.to(device)
    ids = prompts.answer_ids.to(device)
    answer_tok = ids[labels]
    clean_logp = clean.logits.float().log_softmax(-1)

    def readout(r: Tensor, pidx: Tensor) -> dict[str, Tensor]:
        logits = final_logits(model, r[:, e])
        logp = logits.log_softmax(-1)
        ref = clean_logp[pidx]
        tok = answer_tok[pidx]
        return {
            "sport_accuracy": (logits[:, ids].argmax(-1) == labels[pidx]).float(),
            "vocab_accuracy": (logits.argmax(-1) == tok).float(),
            "loss": -logp.gather(1, tok[:, None])[:, 0],
            "kl": (ref.exp() * (ref - logp)).sum(-1),
        }

    was = model.cfg.use_hook_mlp_in
    model.set_use_hook_mlp_in(True)
    try:
        got = run_jobs(model, prompts.tokens, 0, model.cfg.n_layers, jobs, batch_size,
                       readout=readout, capture={hook("resid_post", settings.end_layer):
                                                 lambda a: a[:, s]}, desc="path patching")
    finally:
        model.set_use_hook_mlp_in(was)
    resid = got.pop(hook("resid_post", settings.end_layer)).float()  # [job, n, d]
    scores = head_scores(attribute_readout(model, settings, head, prompts.answer_ids), resid)
    got["head_probe_accuracy"] = (head_predict(scores, settings.head_readout == "centred",
                                               scores[0]) == labels[None]).float()
    # A probe fitted on all the clean residuals, applied to the ablated ones.
    fit = probes.fit_logistic(resid[0][None], labels[None], len(ids), settings.probe_l2,
                              settings.probe_max_iter)
    got["logistic_probe_accuracy"] = (fit.logits(resid.reshape(1, -1, resid.shape[-1]))
                                      .argmax(-1).view(resid.shape[:2]) == labels[None]).float()
    k = len(lookup)
    matrices, clean_vals = {}, {}
    for name in PATH_METRICS:
        per_job = got[name].mean(1).cpu()
        m = torch.full((k, k), float("nan"))
        for (a, b), v in zip(pairs, per_job[1:]):
            m[a, b] = v
        matrices[name] = m
        clean_vals[name] = float(per_job[0])
    return PathPatching(matrices, clean_vals, lookup)


# ---------------------------------------------------------------------------------------------
# Everything, and the numbers the claims read.


@dataclasses.dataclass(frozen=True)
class CircuitResults:
    patching: Patching
    heads: HeadAttribution
    head: tuple[int, int]  # the attribute head used for the OV readout
    effective_accuracy: dict[str, float]  # readouts of the effective model and baselines
    probes: ProbeResults
    paths: PathPatching
    n_prompts: int
    n_answers: int
    majority_baseline: float
    answers: tuple[str, ...]
    timings: dict[str, float]  # seconds per part


@torch.no_grad()
def analyse(
    model, prompts: FactPrompts, settings: CircuitSettings, batch_size: int,  # noqa: ANN001
) -> CircuitResults:
    """All five analyses on the known prompts of one relation."""
    settings.check_model(model.cfg.n_layers, model.cfg.n_heads)
    n, n_ans = len(prompts), len(prompts.answers)
    if n < 5:
        raise ValueError(f"only {n} known prompts: too few for the circuit analyses")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        timings[name] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()

    gen = torch.Generator().manual_seed(settings.seed)
    keep = torch.randperm(n, generator=gen)[: min(settings.n_patch_prompts, n)].sort().values
    patching = activation_patching(model, prompts.subset(keep), settings, batch_size)
    lap("patching")
    clean = clean_run(model, prompts, batch_size)
    heads = head_attribution(model, clean, prompts)
    head = heads.pick(settings.attribute_head, settings.reference_head)
    readout = attribute_readout(model, settings, head, prompts.answer_ids)
    lap("clean_and_heads")
    eff = effective_model(model, prompts, clean, settings, batch_size)
    lap("effective")
    labels = prompts.labels.to(readout.dirs.device)
    end = settings.end_layer

    def head_acc(resid: Tensor, centred: bool = settings.head_readout == "centred") -> float:
        pred = head_predict(head_scores(readout, resid), centred)
        return float((pred == labels).float().mean())

    ids = prompts.answer_ids.to(clean.logits.device)
    feats = probe_features(model, prompts, clean, eff, settings)
    probe_res = run_probes(feats, prompts.labels, n_ans, settings)
    lap("probes")
    effective_accuracy = {
        "full_model_answer": float((clean.logits[:, ids].argmax(-1) == labels).float().mean()),
        "full_model_head": head_acc(clean.resid_post[:, end, settings.read_slot]),
        "effective_head": head_acc(eff.resid[0, :, end]),
        "effective_head_raw": head_acc(eff.resid[0, :, end], centred=False),
        "effective_head_centred": head_acc(eff.resid[0, :, end], centred=True),
        "no_lookup_head": head_acc(eff.resid[1, :, end]),
        "effective_probe": float(probe_res.accuracy[f"effective_{end}"].mean()),
        "effective_probe_std": float(probe_res.accuracy[f"effective_{end}"].std(unbiased=False)),
        "no_lookup_probe": float(probe_res.accuracy["effective_no_lookup"].mean()),
        "chance": 1.0 / n_ans,
    }
    effective_accuracy["lookup_gain"] = (effective_accuracy["effective_head"]
                                         - effective_accuracy["no_lookup_head"])
    paths = path_patching(model, prompts, clean, settings, head, settings.patch_batch_size)
    lap("path_patching")
    majority = float(torch.bincount(prompts.labels, minlength=n_ans).max()) / n
    return CircuitResults(patching, heads, head, effective_accuracy, probe_res, paths, n, n_ans,
                          majority, prompts.answers, timings)


def _mean_std(x: Tensor) -> dict[str, float]:
    return {"mean": float(x.mean()), "std": float(x.std(unbiased=False))}


def summary_metrics(res: CircuitResults, settings: CircuitSettings) -> dict:
    """The numbers of `metrics.json` (names without dots; the claims read them)."""
    p = res.patching
    col_s, col_e = 1, len(p.positions) - 1  # surname (after the first name), final token
    col_r = col_s if settings.read_position == "surname" else col_e
    assembled = range(max(settings.token_attn_layers) + 1, settings.end_layer + 1)
    resid = p.effect[COMPONENTS.index("resid_pre")]
    mlp = p.effect[COMPONENTS.index("mlp_out")].clamp_min(0)
    attn = p.effect[COMPONENTS.index("attn_out")]
    non_embedding = [layer for layer in range(mlp.shape[0])
                     if layer not in settings.embedding_mlps]

    def lookup_share(col: int) -> float:
        return float(mlp[list(settings.lookup_mlps), col].sum()
                     / mlp[non_embedding, col].sum().clamp_min(1e-9))

    patching = {
        "n_prompts": p.n_prompts,
        "clean_logit_diff": p.clean_logit_diff, "corrupt_logit_diff": p.corrupt_logit_diff,
        "clean_prob": p.clean_prob, "corrupt_prob": p.corrupt_prob,
        "resid_surname_lookup": float(resid[list(assembled), col_s].mean()),
        "resid_final_lookup": float(resid[list(assembled), col_e].mean()),
        "resid_surname_minus_final_lookup": float(resid[list(assembled), col_s].mean()
                                                  - resid[list(assembled), col_e].mean()),
        "mlp_surname_lookup_share": lookup_share(col_s),
        "mlp_read_lookup_share": lookup_share(col_r),
        "resid_read_lookup": float(resid[list(assembled), col_r].mean()),
        "mlp_surname_peak_layer": int(mlp[:, col_s].argmax()),
        "attn_final_peak_layer": int(attn[:, col_e].argmax()),
        "attn_final_peak": float(attn[:, col_e].max()),
    }
    h = res.heads
    dla_sorted = h.dla.flatten().sort(descending=True).values
    heads = {
        "layer": res.heads.top[0], "head": res.heads.top[1],
        "top_dla": float(dla_sorted[0]), "second_dla": float(dla_sorted[1]),
        "top_share_of_positive": float(dla_sorted[0] / h.dla.clamp_min(0).sum().clamp_min(1e-9)),
        "top_attention_to_surname": float(h.attention_to_surname[h.top]),
        "surname_layer": h.top_surname[0], "surname_head": h.top_surname[1],
        "surname_head_dla": float(h.dla[h.top_surname]),
        "surname_head_attention": float(h.attention_to_surname[h.top_surname]),
        "used_layer": res.head[0], "used_head": res.head[1],
    }
    L, H = h.dla.shape
    ref = settings.reference_head
    if ref[0] < L and ref[1] < H:
        heads["reference_rank"] = head_rank(h.dla, ref)
        heads["reference_is_top"] = float(h.top == ref)
        heads["reference_attention_to_surname"] = float(h.attention_to_surname[ref])
    acc = res.probes.accuracy
    probes_m: dict = {"summed_tokens": _mean_std(acc["summed_tokens"])}
    for layer in settings.probe_layers:
        probes_m[f"full_{layer}"] = _mean_std(acc[f"full_{layer}"])
    for layer in settings.lookup_mlps:
        probes_m[f"effective_{layer}"] = _mean_std(acc[f"effective_{layer}"])
    seq = [float(acc["summed_tokens"].mean())] + [float(acc[f"effective_{layer}"].mean())
                                                   for layer in settings.lookup_mlps]
    steps = [b - a for a, b in itertools.pairwise(seq)]
    rise = seq[-1] - seq[0]
    lookup = settings.lookup_mlps
    probes_m.update({
        "lookup_first": seq[1], "lookup_last": seq[-1],
        "early_lookup_rise": float(acc[f"effective_{lookup[len(lookup) // 2]}"].mean()
                                   - acc[f"effective_{lookup[0]}"].mean()),
        "final_minus_summed": rise,
        # The largest one-layer gain as a share of the whole gain (1 when there is no gain).
        "max_step_share": max(steps) / rise if rise > 0 else 1.0,
        "n_increasing_steps": sum(s > 0 for s in steps[1:]),
    })
    pp = res.paths
    k = len(pp.layers)
    upper = torch.triu(torch.ones(k, k, dtype=torch.bool), 1)
    pairs = {}
    for a, b in itertools.combinations(range(k), 2):
        pairs[f"{pp.layers[a]}_{pp.layers[b]}"] = {m: float(pp.matrices[m][a, b])
                                                   for m in PATH_METRICS}
    kl = pp.matrices["kl"][upper]
    loss_inc = pp.matrices["loss"][upper] - pp.clean["loss"]
    from_first = pp.matrices["kl"][0, 1:]
    paths = {
        "clean": pp.clean,
        "pairs": pairs,
        "whole_mlp": {str(layer): {m: float(pp.matrices[m][a, a]) for m in PATH_METRICS}
                      for a, layer in enumerate(pp.layers)},
        "max_kl": float(kl.max()), "mean_kl": float(kl.mean()),
        "max_loss_increase": float(loss_inc.max()), "mean_loss_increase": float(loss_inc.mean()),
        "min_head_probe_accuracy": float(pp.matrices["head_probe_accuracy"][upper].min()),
        "max_head_probe_drop": float(pp.clean["head_probe_accuracy"]
                                     - pp.matrices["head_probe_accuracy"][upper].min()),
        "from_first_kl_ratio": float(from_first.mean() / kl.mean().clamp_min(1e-12)),
    }
    return {
        "n_prompts": res.n_prompts, "answers": list(res.answers),
        "read_position": settings.read_position,
        "majority_baseline": res.majority_baseline, "chance": 1.0 / res.n_answers,
        "patching": patching, "attribute_head": heads,
        "effective": res.effective_accuracy, "probes": probes_m, "path_patching": paths,
        "seconds": res.timings,
    }


def result_tensors(res: CircuitResults) -> dict[str, Tensor]:
    """The arrays behind the figures (for safetensors)."""
    out = {"patching.effect": res.patching.effect,
           "patching.prob_correct": res.patching.prob_correct,
           "heads.dla": res.heads.dla, "heads.attention_to_surname": res.heads.attention_to_surname}
    out.update({f"probes.{k}": v for k, v in res.probes.accuracy.items()})
    out.update({f"paths.{k}": v for k, v in res.paths.matrices.items()})
    return {k: v.float().clone().contiguous() for k, v in out.items()}


def position_labels(prompts: FactPrompts, tokenizer, positions: Sequence[int]) -> list[str]:  # noqa: ANN001,E501
    """Tick labels of the patched positions: the name slots by role, the rest as tokens."""
    row = prompts.tokens[0].tolist()
    roles = {prompts.first_pos: "first name", prompts.last_pos: "surname"}
    return [roles.get(p, repr(tokenizer.decode([row[p]]).strip())) for p in positions]

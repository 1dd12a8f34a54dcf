"""The five steps of the fact-lookup circuit (stage `ff_circuit`; see `circuit.py`): activation
patching, the attribute head by direct logit attribution, the effective model, probes per
layer, and path patching between the lookup MLPs.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from replications.fact_finding.circuit import (
    COMPONENTS,
    PATH_METRICS,
    Capture,
    CircuitSettings,
    CleanRun,
    Edit,
    Job,
    final_logits,
    hook,
    logit_diff,
    run_jobs,
    slot_positions,
)
from replications.fact_finding.facts import FactPrompts
from shared import probes

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
    # KL of the control: path i -> j's edit replaced by one of the same norm per prompt in a
    # random direction (i < j; NaN elsewhere). None when not run.
    random_kl: Float[Tensor, "i j"] | None = None


def same_norm_random(delta: Float[Tensor, "n d"], gen: torch.Generator) -> Float[Tensor, "n d"]:
    """Per row, a random direction scaled to the row's norm (the control of a path ablation:
    as large a kick to the downstream MLP's input, in no particular direction)."""
    noise = torch.randn(delta.shape, generator=gen, dtype=torch.float32)
    noise = noise / noise.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (noise.to(delta.device, delta.dtype)
            * delta.norm(dim=-1, keepdim=True))


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
    controls: list[Job] = []
    control_pairs: list[tuple[int, int]] = []
    gen = torch.Generator().manual_seed(settings.seed)
    for a, i in enumerate(lookup):
        jobs.append((Edit(hook("mlp_out", i), s, mean_s[i].expand(n, -1), add=False),))
        pairs.append((a, a))
        for b, j in enumerate(lookup):
            if j > i:
                delta = mean_s[i][None] - mlp_s[:, i]
                jobs.append((Edit(hook("mlp_in", j), s, delta, add=True),))
                pairs.append((a, b))
                controls.append((Edit(hook("mlp_in", j), s, same_norm_random(delta, gen),
                                      add=True),))
                control_pairs.append((a, b))
    n_main = len(jobs)
    jobs += controls
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
        for (a, b), v in zip(pairs, per_job[1:n_main]):
            m[a, b] = v
        matrices[name] = m
        clean_vals[name] = float(per_job[0])
    random_kl = torch.full((k, k), float("nan"))
    for (a, b), v in zip(control_pairs, got["kl"].mean(1).cpu()[n_main:]):
        random_kl[a, b] = v
    return PathPatching(matrices, clean_vals, lookup, random_kl)


# ---------------------------------------------------------------------------------------------
# Independence from prior context (post 1: the lookup "just depends on the name, not on the
# prior context"; post 5: "adding 'Mr Michael Jordan' didn't substantially change the residual").


def centred_cosines(
    a: Float[Tensor, "n d"], b: Float[Tensor, "n d"]
) -> tuple[Float[Tensor, " n"], Float[Tensor, " n"]]:
    """Cosine of each row of `a` with the same row of `b` (same person, two contexts) and with
    the next row of `b` (another person, the baseline), each set centred on its mean over
    people first, so what every prompt shares does not count as similarity."""
    a = a.double() - a.double().mean(0)
    b = b.double() - b.double().mean(0)
    unit_a = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    unit_b = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    same = (unit_a * unit_b).sum(-1)
    other = (unit_a * unit_b.roll(1, dims=0)).sum(-1)
    return same.float(), other.float()


@torch.no_grad()
def prior_context_similarity(
    model, plain: FactPrompts, with_context: FactPrompts, layer: int,  # noqa: ANN001
    batch_size: int,
) -> dict[str, float]:
    """The residual after block `layer` at each person's surname, with and without a prior
    context line, compared per person against other people (`centred_cosines`)."""
    def at_surname(prompts: FactPrompts) -> Tensor:
        name = hook("resid_post", layer)
        got = run_jobs(model, prompts.tokens, 0, layer + 1, [()], batch_size,
                       capture={name: lambda act: act[:, prompts.last_pos]})
        return got[name][0].float().cpu()

    if plain.names != with_context.names:
        raise ValueError("prior_context_similarity needs the same people in both prompt sets")
    same, other = centred_cosines(at_surname(plain), at_surname(with_context))
    return {"layer": layer, "same_name_cosine": float(same.mean()),
            "other_name_cosine": float(other.mean()),
            "same_minus_other": float(same.mean() - other.mean()),
            "n_prompts": len(plain)}

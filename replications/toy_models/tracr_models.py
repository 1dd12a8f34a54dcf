"""Tracr models after conversion: configs, input domains, and running, saving, loading them.

Tracr compiles a RASP program into a transformer whose residual stream is a direct sum of
one-hot (categorical) or scalar (numerical) subspaces, one per program variable: every residual
dimension has a known meaning such as `tokens:3`, `indices:0`, `one` or `reverse:2`. We convert
the compiled Haiku model into a `HookedTransformer` (no LayerNorm, bidirectional attention, ReLU
MLPs; tracr_convert.py) and check it against tracr's own forward pass on every input of a small
domain (tracr_check.py): all token sequences over the vocabulary of length 1..max_seq_len, with
BOS first.

This module holds the configs, the pure helpers (residual labels, domains, correctness), the
converted model's metadata (`TracrModelInfo`, `describe`), running a converted model with PAD
masked, saving and loading it, and the domain with its RASP ground truth (`Domain`). Only the
compile step imports tracr / jax (lazily); loading a converted model needs neither.

Padding: sequences of different lengths share one batch, padded on the right with tracr's PAD
token. Tracr's intended semantics for padding (its `pad_token` mask) is that no query attends
to a PAD key; we apply that mask with a hook on every layer's attention scores. Outputs at real
positions are then identical to running each length on its own (checked in the tests).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from shared.config import check
from shared.io import load_tensors, read_json, save_tensors, write_json

# sort_unique is left out: it is undefined (None) on inputs with repeated tokens.
PROGRAMS: tuple[str, ...] = ("reverse", "sort", "frac_prevs", "hist", "length")
BOS = "BOS"
PAD = "PAD"
# Attention score given to PAD keys (tracr uses the same constant for masked logits).
MASKED_SCORE = -1e30



@dataclasses.dataclass(frozen=True)
class TracrSAEConfig:
    """SAEs trained on the residual stream of the (uncompressed) compiled models."""

    dict_mult: float  # SAE width = ceil(dict_mult * number of active residual directions)
    l1_coeffs: tuple[float, ...]  # one SAE instance per value
    lr: float
    adam_betas: tuple[float, float]
    batch_size: int
    n_steps: int
    resample: Literal["none", "reinit", "anthropic"]
    resample_every: int
    resample_window: int
    active_eps: float  # a residual direction is 'active' if |value| > active_eps somewhere
    recovery_threshold: float  # a variable is 'missed' if its mean max-cosine is below this
    random_baseline_draws: int  # random unit dictionaries of width d_sae: the chance MMCS

    def __post_init__(self) -> None:
        check(self.dict_mult > 0, "sae.dict_mult must be positive")
        check(self.random_baseline_draws >= 2, "sae.random_baseline_draws must be at least 2")
        check(len(self.l1_coeffs) > 0, "sae.l1_coeffs needs at least one value")
        check(all(c >= 0 for c in self.l1_coeffs), "sae.l1_coeffs must be non-negative")
        check(self.lr > 0, "sae.lr must be positive")
        check(all(0 <= b < 1 for b in self.adam_betas), "sae.adam_betas must lie in [0, 1)")
        check(self.batch_size > 0 and self.n_steps > 0, "sae.batch_size, sae.n_steps must be > 0")
        check(
            self.resample == "none" or 0 < self.resample_window <= self.resample_every,
            "sae.resample_window must be in (0, resample_every]",
        )
        check(self.active_eps >= 0, "sae.active_eps must be non-negative")
        check(0 < self.recovery_threshold <= 1, "sae.recovery_threshold must be in (0, 1]")


@dataclasses.dataclass(frozen=True)
class TracrConfig:
    """Which RASP programs to compile, on which input domain, and how strictly to check them."""

    programs: tuple[str, ...]
    vocab: tuple[int, ...]  # integer tokens (sort needs numerical keys)
    max_seq_len: int  # longest input, not counting BOS
    frac_prevs_token: int  # frac_prevs counts the fraction of previous tokens equal to this
    mlp_exactness: int  # tracr's MLP approximation parameter (its default is 100)
    check_atol: float  # max |tracr - converted| allowed on logits and residuals
    sae: TracrSAEConfig
    # Compile with causal attention (tracr's `causal=True`); the conversion keeps the mask.
    causal: bool

    def __post_init__(self) -> None:
        unknown = [p for p in self.programs if p not in PROGRAMS]
        check(not unknown, f"unknown tracr program {unknown[:1]} (known: {', '.join(PROGRAMS)})")
        check(len(self.programs) > 0, "tracr.programs needs at least one program")
        check(len(set(self.programs)) == len(self.programs), "tracr.programs has duplicates")
        check(len(self.vocab) >= 2, "tracr.vocab needs at least two tokens")
        check(len(set(self.vocab)) == len(self.vocab), "tracr.vocab has duplicate tokens")
        check(self.max_seq_len >= 1, "tracr.max_seq_len must be at least 1")
        check(self.frac_prevs_token in self.vocab, "tracr.frac_prevs_token must be in tracr.vocab")
        check(self.mlp_exactness >= 1, "tracr.mlp_exactness must be at least 1")
        check(self.check_atol > 0, "tracr.check_atol must be positive")


# ---------------------------------------------------------------------------------------------
# Pure helpers: labels, domains, accuracy.


def parse_residual_label(label: str) -> tuple[str, str | None]:
    """Split a residual label 'variable:value' into (variable, value); scalars have value None."""
    name, sep, value = label.partition(":")
    check(name != "", f"empty variable name in residual label {label!r}")
    return name, (value if sep else None)


def clean_direction_name(raw: str, label_to_name: dict[str, str]) -> str:
    """Replace tracr's expression label ('reverse_17') in a direction name by the plain name.

    Tracr names directions after expression *labels*, which end in a process-global counter, so
    the same program compiled twice can get different labels. Helper directions extend a label
    (e.g. 'length_5_selector_width_attn_output'); the longest matching label prefix wins.
    """
    if raw in label_to_name:
        return label_to_name[raw]
    prefixes = [lab for lab in label_to_name if raw.startswith(lab + "_")]
    if not prefixes:
        return raw
    best = max(prefixes, key=len)
    return label_to_name[best] + raw[len(best):]


def enumerate_domain(vocab: Sequence[int], max_seq_len: int) -> list[tuple[int, ...]]:
    """All sequences over `vocab` of length 1..max_seq_len, shortest first (no BOS)."""
    return [
        seq
        for length in range(1, max_seq_len + 1)
        for seq in itertools.product(sorted(vocab), repeat=length)
    ]


def encode_domain(
    domain: Sequence[Sequence[int]], token_to_id: dict[Any, int], max_seq_len: int
) -> tuple[Int[Tensor, "n pos"], Bool[Tensor, "n pos"]]:
    """Token ids with BOS first and PAD after the end, and the mask of output positions.

    Output positions are the real, non-BOS positions (pos 1..len).
    """
    bos, pad = token_to_id[BOS], token_to_id[PAD]
    ids = torch.full((len(domain), max_seq_len + 1), pad, dtype=torch.long)
    ids[:, 0] = bos
    for row, seq in enumerate(domain):
        ids[row, 1 : len(seq) + 1] = torch.tensor([token_to_id[t] for t in seq])
    lengths = torch.tensor([len(s) for s in domain])
    pos = torch.arange(max_seq_len + 1)
    out_mask = (pos[None, :] >= 1) & (pos[None, :] <= lengths[:, None])
    return ids, out_mask


def frac_prevs_tolerance(n_pos: int) -> Float[Tensor, " pos"]:
    """Half a step of the true fraction at each position: 0.5 / (number of tokens so far).

    At sequence position p (BOS is 0) the fraction is k / p for an integer k, so a prediction
    within 0.5 / p of the truth rounds to the right count. Position 0 (BOS) gets +inf.
    """
    pos = torch.arange(n_pos, dtype=torch.float32)
    return torch.where(pos > 0, 0.5 / pos.clamp_min(1.0), torch.full_like(pos, math.inf))


def numerical_correct(
    pred: Float[Tensor, "*batch pos"], target: Float[Tensor, "*batch pos"]
) -> Bool[Tensor, "*batch pos"]:
    """Whether a frac_prevs prediction lies strictly within half a step of the true fraction."""
    tol = frac_prevs_tolerance(pred.shape[-1]).to(pred.device)
    return (pred - target).abs() < tol


def categorical_correct(
    logits: Float[Tensor, "*batch pos n_out"], target: Int[Tensor, "*batch pos"]
) -> Bool[Tensor, "*batch pos"]:
    """Whether the argmax output equals the target class."""
    return logits.argmax(dim=-1) == target


def masked_mean(values: Tensor, mask: Tensor) -> float:
    """Mean of `values` over the positions where `mask` is true."""
    return (values.float() * mask).sum().item() / max(int(mask.sum().item()), 1)


# ---------------------------------------------------------------------------------------------
# Converted-model metadata.


@dataclasses.dataclass(frozen=True)
class TracrModelInfo:
    """Everything about a converted model besides its weights (saved as JSON)."""

    program: str
    vocab: tuple[int, ...]
    max_seq_len: int
    categorical: bool  # categorical output (argmax over one-hot) or one numerical dimension
    output_variable: str
    residual_labels: tuple[str, ...]  # one per residual dimension, e.g. 'tokens:3', 'one'
    residual_variables: tuple[str, ...]  # the variable each residual dimension belongs to
    input_tokens: tuple[Any, ...]  # token of each input id (vocab ints, 'BOS', 'PAD')
    output_values: tuple[Any, ...]  # value of each output logit (categorical); () if numerical
    tl_config: dict[str, Any]  # the HookedTransformerConfig fields we set
    check: dict[str, Any]  # equality check against tracr's own model

    @property
    def token_to_id(self) -> dict[Any, int]:
        return {tok: i for i, tok in enumerate(self.input_tokens)}

    @property
    def d_model(self) -> int:
        return len(self.residual_labels)

    @property
    def n_pos(self) -> int:
        return self.max_seq_len + 1

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TracrModelInfo":
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: data[k] for k in fields}
        for key in ("vocab", "residual_labels", "residual_variables", "input_tokens",
                    "output_values"):
            kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


# ---------------------------------------------------------------------------------------------
# Running a converted model (torch only).


def pad_mask_hook(pad_keys: Bool[Tensor, "batch pos"]) -> Callable[[Tensor, Any], Tensor]:
    """A hook on `hook_attn_scores` that stops every query from attending to PAD keys."""

    def hook(scores: Float[Tensor, "batch head q k"], hook: Any) -> Tensor:
        mask = einops.rearrange(pad_keys, "batch k -> batch 1 1 k")
        return scores.masked_fill(mask, MASKED_SCORE)

    return hook


def pad_hooks(model: Any, tokens: Int[Tensor, "batch pos"], pad_id: int) -> list[tuple[str, Any]]:
    """Forward hooks (name, fn) masking PAD keys in every attention layer."""
    hook = pad_mask_hook(tokens == pad_id)
    return [(f"blocks.{layer}.attn.hook_attn_scores", hook) for layer in range(model.cfg.n_layers)]


def run_converted(
    model: Any, tokens: Int[Tensor, "batch pos"], pad_id: int,
    extra_hooks: Sequence[tuple[str, Any]] = (),
) -> Float[Tensor, "batch pos n_out"]:
    """Output logits (categorical) or values (numerical, n_out = 1) of a converted model."""
    hooks = pad_hooks(model, tokens, pad_id) + list(extra_hooks)
    return model.run_with_hooks(tokens, fwd_hooks=hooks)


def residual_stack(
    model: Any, tokens: Int[Tensor, "batch pos"], pad_id: int
) -> Float[Tensor, "site batch pos d_model"]:
    """Residual stream at the embedding and after every attention and MLP sublayer.

    These are exactly the residual states tracr exposes (its `residuals` list, after the input
    embedding), so the full set of values every variable takes is covered.
    """
    names = ["blocks.0.hook_resid_pre"]
    for layer in range(model.cfg.n_layers):
        if not model.cfg.attn_only:
            names.append(f"blocks.{layer}.hook_resid_mid")
        names.append(f"blocks.{layer}.hook_resid_post")
    with torch.no_grad(), model.hooks(fwd_hooks=pad_hooks(model, tokens, pad_id)):
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    return torch.stack([cache[n] for n in names])


def build_hooked_transformer(tl_config: dict[str, Any]) -> Any:
    """An (untrained) HookedTransformer with the given config, built offline."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    return HookedTransformer(HookedTransformerConfig(**tl_config))


def save_converted(out_dir: Path, model: Any, info: TracrModelInfo) -> None:
    """Write `model.safetensors` (state dict) and `model.json` (config, labels, check)."""
    out_dir = Path(out_dir)
    save_tensors(out_dir / "model.safetensors", model.state_dict(),
                 {"program": info.program})
    write_json(out_dir / "model.json", info.to_json())


def load_converted(model_dir: Path) -> tuple[Any, TracrModelInfo]:
    """Load a converted model and its metadata (torch + TransformerLens only, no jax)."""
    model_dir = Path(model_dir)
    info = TracrModelInfo.from_json(read_json(model_dir / "model.json"))
    model = build_hooked_transformer(info.tl_config)
    model.load_state_dict(load_tensors(model_dir / "model.safetensors"), strict=True)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model, info


@dataclasses.dataclass(frozen=True)
class Domain:
    """The whole input domain of a program with the RASP ground truth."""

    tokens: Int[Tensor, "n pos"]
    out_mask: Bool[Tensor, "n pos"]  # real, non-BOS positions
    target_ids: Int[Tensor, "n pos"]  # categorical: output class (-1 where masked)
    target_values: Float[Tensor, "n pos"]  # numerical: true value (0 where masked)

    def save(self, path: Path) -> None:
        save_tensors(path, dataclasses.asdict(self))

    @classmethod
    def load(cls, path: Path) -> "Domain":
        return cls(**load_tensors(path))


def describe(info: TracrModelInfo) -> str:
    """One line about a converted model, for logs."""
    c = info.check
    return (
        f"{info.program}: d_model={info.d_model} layers={info.tl_config['n_layers']} "
        f"heads={info.tl_config['n_heads']} attn_only={info.tl_config['attn_only']} "
        f"inputs={c['n_inputs']} max|dlogit|={c['max_abs_diff_logits']:.2e} "
        f"max|dresid|={c['max_abs_diff_residual']:.2e} agree={c['decoded_agreement']:.4f} "
        f"rasp={c['rasp_agreement']:.4f}"
    )


__all__ = [
    "BOS", "PAD", "PROGRAMS", "Domain", "TracrConfig", "TracrModelInfo", "TracrSAEConfig",
    "build_hooked_transformer", "categorical_correct", "clean_direction_name", "describe",
    "encode_domain", "enumerate_domain",
    "frac_prevs_tolerance", "load_converted", "masked_mean", "numerical_correct", "pad_hooks",
    "parse_residual_label", "residual_stack", "run_converted", "save_converted",
]

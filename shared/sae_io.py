"""Saving and loading one SAE instance in the SAELens 6.x directory format.

A directory with
- `cfg.json`: a "standard" (ReLU) SAE config as `sae_lens.StandardSAE.save_model` writes it:
  d_in, d_sae, dtype, device, apply_b_dec_to_input (our pre-encoder bias),
  normalize_activations "none", reshape_activations "none", architecture "standard", and a
  metadata block (sae_lens_version >= 6 so SAELens does not apply its pre-6.0 key renaming;
  model_name, hook_name, hook_head_index, context_size, prepend_bos, seqpos_slice,
  model_from_pretrained_kwargs as SAELens's training runner records them);
- `sae_weights.safetensors`: W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc [d_sae],
  b_dec [d_in] (exactly the keys SAELens loads with a strict state dict);
- `cfg.json`'s metadata also holds `training_options` when the trainer's settings are given
  (`shared.sae_train.training_options`: L1 coefficient, Adam betas, ghost grads, decoder norm...;
  SAELens keeps unknown metadata keys as attributes);
- `sparsity.safetensors` (optional): key `sparsity`, log10 of each feature's firing frequency
  (SAELens adds 1e-10 before the log, so dead features read -10).

`sae_lens.SAE.load_from_disk(path)` loads it and encodes and decodes as our SAE does
(tests/integration/test_sae_lens_format.py).

A model-zoo SAE folder (shared/zoo.smk, shared.sae_zoo) is such a directory plus
`frequency.safetensors` (each feature's firing frequency on the held-out rows, float64),
`history.json` and `eval.json`. `load_sae(spec)` reads either: the one function every script
that uses a zoo SAE, or a published one in SAELens format, loads it with.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import torch
from jaxtyping import Float
from torch import Tensor

from shared.config import check
from shared.io import BadInput, load_tensors, read_json, save_tensors, write_json
from shared.sae import SAE, SAEConfig
from shared.sae_train import training_options

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
SPARSITY_FILENAME = "sparsity.safetensors"
# Beside a zoo SAE's SAELens files: the raw firing frequencies (key `frequency`).
FREQUENCY_FILE = "frequency.safetensors"
# The SAELens release the format was checked against (its loader treats < 6.0 as legacy).
SAE_LENS_FORMAT_VERSION = "6.54.12"
# SAELens's epsilon inside log10(frequency + eps) for sparsity.safetensors.
LOG_SPARSITY_EPS = 1e-10


@dataclasses.dataclass(frozen=True)
class SAELensInfo:
    """What SAELens records about where an SAE reads its activations."""

    model_name: str
    hook_name: str
    context_size: int
    prepend_bos: bool

    def __post_init__(self) -> None:
        check(bool(self.hook_name), "hook_name must be set")
        check(self.context_size > 0, "context_size must be positive")


def log_sparsity(frequency: Float[Tensor, " d_sae"]) -> Float[Tensor, " d_sae"]:
    """SAELens's stored sparsity: log10(frequency + 1e-10)."""
    return torch.log10(frequency.double() + LOG_SPARSITY_EPS).float()


def sae_lens_cfg(sae: SAE, info: SAELensInfo, training: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The cfg.json dict for one instance of `sae` (with its trainer settings when given)."""
    cfg: dict[str, Any] = {
        "architecture": "standard",
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": sae.pre_encoder_bias,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "sae_lens_version": SAE_LENS_FORMAT_VERSION,
            "sae_lens_training_version": None,  # trained by shared.sae, not by SAELens
            "model_name": info.model_name,
            "hook_name": info.hook_name,
            "hook_head_index": None,
            "context_size": info.context_size,
            "prepend_bos": info.prepend_bos,
            "seqpos_slice": [None],
            "model_from_pretrained_kwargs": {},
            "trained_with": "shared.sae (mechinterp-replications)",
        },
    }
    if training is not None:
        cfg["metadata"]["training_options"] = dict(training)
    return cfg


def save_sae_lens(
    path: Path, sae: SAE, instance: int, info: SAELensInfo,
    frequency: Float[Tensor, " d_sae"] | None, training: SAEConfig | None = None,
) -> None:
    """Write instance `instance` of `sae` as a SAELens directory (sparsity when given; the
    trainer's settings for that instance in cfg.json's metadata when `training` is given)."""
    if not 0 <= instance < sae.n_instances:
        raise ValueError(f"instance {instance} out of range for {sae.n_instances} instances")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    weights = {
        "W_enc": sae.W_enc[instance].float(),  # [d_in, d_sae]: SAELens's layout, like ours
        "W_dec": sae.W_dec[instance].float(),  # [d_sae, d_in]
        "b_enc": sae.b_enc[instance].float(),
        "b_dec": sae.b_dec[instance].float(),
    }
    save_tensors(path / WEIGHTS_FILENAME, weights)
    if frequency is not None:
        if frequency.shape != (sae.d_sae,):
            raise ValueError(f"frequency must have shape ({sae.d_sae},), "
                             f"got {tuple(frequency.shape)}")
        save_tensors(path / SPARSITY_FILENAME, {"sparsity": log_sparsity(frequency)})
    # The config last: a directory with a cfg.json is complete.
    options = training_options(training, instance) if training is not None else None
    write_json(path / CFG_FILENAME, sae_lens_cfg(sae, info, options))


def load_sae_lens(
    path: Path, device: torch.device | str = "cpu"
) -> tuple[SAE, dict[str, Any], Float[Tensor, " d_sae"] | None]:
    """Load a SAELens "standard" SAE directory into our SAE (one instance).

    Returns the SAE, the cfg.json dict and the log10 sparsity (None without the file).
    """
    path = Path(path)
    cfg = read_json(path / CFG_FILENAME)
    arch = cfg.get("architecture", "standard")
    if arch != "standard":
        raise ValueError(f"{path}: only 'standard' (ReLU) SAEs load into shared.sae.SAE, "
                         f"got {arch!r}")
    for key in ("normalize_activations", "reshape_activations"):
        if cfg.get(key, "none") not in ("none", None, False):
            raise ValueError(f"{path}: {key}={cfg[key]!r} is not supported (needs 'none')")
    missing = [k for k in ("d_in", "d_sae") if k not in cfg]
    if missing:
        raise BadInput(f"{path / CFG_FILENAME}: missing key {missing[0]!r}")
    weights = load_tensors(path / WEIGHTS_FILENAME)
    extra = sorted(set(weights) - {"W_enc", "W_dec", "b_enc", "b_dec"})
    if extra:
        raise ValueError(f"{path}: unexpected weights {extra} for a standard SAE")
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    expected = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,),
                "b_dec": (d_in,)}
    for name, shape in expected.items():
        got = tuple(weights[name].shape) if name in weights else None
        if got != shape:
            raise BadInput(f"{path}: {WEIGHTS_FILENAME} has {name} of shape {got}, but cfg.json "
                           f"(d_in {d_in}, d_sae {d_sae}) needs {shape}")
    sae = SAE(d_in, d_sae, 1,
              pre_encoder_bias=bool(cfg.get("apply_b_dec_to_input", True)))
    with torch.no_grad():
        for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
            getattr(sae, name)[0].copy_(weights[name].float())
    sparsity_path = path / SPARSITY_FILENAME
    sparsity = load_tensors(sparsity_path)["sparsity"] if sparsity_path.is_file() else None
    return sae.to(device), cfg, sparsity


@dataclasses.dataclass(frozen=True)
class LoadedSAE:
    """An SAE with where it reads and how often its features fire."""

    sae: SAE
    hook_name: str | None  # from cfg.json (None when it does not say)
    # A zoo folder's frequency.safetensors; else, for a plain SAELens directory, 10 ** its
    # log10 sparsity less SAELens's epsilon (None without sparsity.safetensors).
    frequency: Float[Tensor, " d_sae"] | None
    cfg: dict[str, Any]


def load_sae(spec: str | Path, device: torch.device | str = "cpu") -> LoadedSAE:
    """An SAE by where it is: a model-zoo SAE folder (shared/zoo.smk) or any SAELens
    "standard" directory. A missing folder or cfg.json is FileNotFoundError (one line)."""
    path = Path(spec)
    if not (path / CFG_FILENAME).is_file():
        raise FileNotFoundError(f"{path}: not a zoo SAE folder or SAELens directory "
                                f"(no {CFG_FILENAME})")
    sae, cfg, sparsity = load_sae_lens(path, device)
    hook = (cfg.get("metadata") or {}).get("hook_name") or cfg.get("hook_name")
    if (path / FREQUENCY_FILE).is_file():
        frequency = load_tensors(path / FREQUENCY_FILE)["frequency"]
    elif sparsity is not None:
        frequency = (10.0 ** sparsity.double() - LOG_SPARSITY_EPS).clamp_min(0.0)
    else:
        frequency = None
    if frequency is not None and frequency.shape != (sae.d_sae,):
        raise BadInput(f"{path}: {sae.d_sae} features but {tuple(frequency.shape)} frequencies")
    return LoadedSAE(sae, hook, frequency, cfg)

"""Language models for the LM write-ups: stand-ins built here, or the papers' models by name.

- `LMConfig` / `build_model`: a TransformerLens `HookedTransformer` from a validated config
  (the monosemanticity stand-in mirrors gelu-1l: one layer, GELU MLP 4x wide, LayerNorm,
  learned positions; Pythia-like stand-ins use rotary and parallel attention + MLP).
- `save_model` / `load_model`: stand-ins as `model.safetensors` + `lm_config.json` (+ the
  tokenizer); `load_model` also takes a Hugging Face name for the paper profile (`gpt2-xl`,
  `EleutherAI/pythia-2.8b`, `gelu-1l`): the one loader of every write-up. gelu-1l's weights are
  a pickle (`model_final.pth`): TransformerLens 3.9 opens it with `torch.load(weights_only=False)`,
  so it is fetched here and opened with `weights_only=True` instead.

Training lives in `shared.lm_train`, the papers' data sets in `shared.token_data`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from shared.config import build, check, to_dict
from shared.io import load_tensors, read_json, save_tensors, write_json
from shared.runtime import pick_device

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

LOCAL_FORMAT = "shared.lm/1"
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "lm_config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

# gelu-1l's repository holds a pickled state dict under this name (plus config.json).
NEEL_WEIGHTS_FILE = "model_final.pth"

@dataclasses.dataclass(frozen=True)
class LMConfig:
    """Architecture of a stand-in (the vocabulary size comes from the tokenizer)."""

    n_layers: int
    d_model: int
    d_mlp: int
    n_heads: int
    d_head: int
    act_fn: Literal["gelu", "gelu_new", "relu", "silu"]
    normalization_type: Literal["LN", "RMS"]
    positional_embedding_type: Literal["standard", "rotary"]
    rotary_dim: int  # dimensions of each head that rotate: 0 with standard positions
    parallel_attn_mlp: bool  # GPT-NeoX/Pythia: attention and MLP read the same residual
    n_ctx: int
    # GPT-Neo's local attention: the first `local_layers` layers see only the last
    # `local_window` positions (themselves included). Off (0) gives GPT-2's shape; the steering
    # stand-in uses it so that no layer before the steering depth can read a cue a few tokens back.
    local_layers: int = 0
    local_window: int = 2

    def __post_init__(self) -> None:
        check(self.n_layers >= 1, "lm.n_layers must be at least 1")
        check(min(self.d_model, self.d_mlp, self.n_heads, self.d_head) >= 1,
              "lm.d_model, d_mlp, n_heads and d_head must be positive")
        check(self.n_ctx >= 2, "lm.n_ctx must be at least 2")
        if self.positional_embedding_type == "rotary":
            check(0 < self.rotary_dim <= self.d_head and self.rotary_dim % 2 == 0,
                  "lm.rotary_dim must be even and in (0, d_head] with rotary positions")
        else:
            check(self.rotary_dim == 0, "lm.rotary_dim must be 0 with standard positions")
        check(0 <= self.local_layers <= self.n_layers,
              "lm.local_layers must be in [0, n_layers]")
        check(1 <= self.local_window < self.n_ctx, "lm.local_window must be in [1, n_ctx)")

# ---------------------------------------------------------------------------------------------
# Building


def _tl_config(cfg: LMConfig, d_vocab: int, seed: int, device: torch.device, fold_ln: bool):
    from transformer_lens import HookedTransformerConfig

    norm = cfg.normalization_type + ("Pre" if fold_ln else "")
    return HookedTransformerConfig(
        n_layers=cfg.n_layers, d_model=cfg.d_model, d_mlp=cfg.d_mlp, n_heads=cfg.n_heads,
        d_head=cfg.d_head, d_vocab=d_vocab, n_ctx=cfg.n_ctx, act_fn=cfg.act_fn,
        normalization_type=norm, positional_embedding_type=cfg.positional_embedding_type,
        rotary_dim=cfg.rotary_dim if cfg.positional_embedding_type == "rotary" else None,
        parallel_attn_mlp=cfg.parallel_attn_mlp, seed=seed, device=str(device),
        default_prepend_bos=True, **_local_attention(cfg),
    )


def _local_attention(cfg: LMConfig) -> dict[str, Any]:
    if cfg.local_layers == 0:
        return {}
    return {"use_local_attn": True, "window_size": cfg.local_window,
            "attn_types": ["local"] * cfg.local_layers
            + ["global"] * (cfg.n_layers - cfg.local_layers)}


def build_model(
    cfg: LMConfig, d_vocab: int, seed: int, device: torch.device | str = "cpu"
) -> "HookedTransformer":
    """A freshly initialised HookedTransformer (initialisation seeded by `seed`)."""
    from transformer_lens import HookedTransformer

    torch.manual_seed(seed)  # TransformerLens draws its initial weights from the global RNG
    return HookedTransformer(_tl_config(cfg, d_vocab, seed, torch.device(device), False))

# ---------------------------------------------------------------------------------------------
# Saving and loading


def save_model(
    model: "HookedTransformer", cfg: LMConfig, d_vocab: int, out_dir: Path,
    tokenizer_dir: Path | None, extra: dict[str, Any] | None = None,
) -> None:
    """Write `model.safetensors`, `lm_config.json` and (if given) the tokenizer files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Fixed masks and rotary tables are rebuilt from the config: store trained weights only.
    names = {n for n, _ in model.named_parameters()}
    state = {k: v for k, v in model.state_dict().items() if k in names}
    save_tensors(out_dir / MODEL_FILE, state, {"format": LOCAL_FORMAT})
    write_json(out_dir / CONFIG_FILE,
               {"format": LOCAL_FORMAT, "model": to_dict(cfg), "d_vocab": d_vocab,
                **(extra or {})})
    if tokenizer_dir is not None:
        for name in TOKENIZER_FILES:
            src = Path(tokenizer_dir) / name
            if src.is_file():
                shutil.copyfile(src, out_dir / name)


def is_local_model(spec: str | Path) -> bool:
    return (Path(spec) / CONFIG_FILE).is_file()


def _processing(processed: bool) -> dict[str, Any]:
    # TransformerLens's from_pretrained defaults; they leave log-probabilities unchanged.
    return {"fold_ln": processed, "center_writing_weights": processed,
            "center_unembed": processed, "fold_value_biases": processed}


def _load_local(path: Path, device: torch.device, processed: bool) -> "HookedTransformer":
    from transformer_lens import HookedTransformer

    meta = read_json(path / CONFIG_FILE)
    if meta.get("format") != LOCAL_FORMAT:
        raise ValueError(f"{path / CONFIG_FILE}: not a {LOCAL_FORMAT} model")
    cfg = build(LMConfig, meta["model"], str(path / CONFIG_FILE))
    tl_cfg = _tl_config(cfg, int(meta["d_vocab"]), 0, device, fold_ln=processed)
    tl_cfg.init_weights = False
    tokenizer = None
    if (path / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = HookedTransformer(tl_cfg, tokenizer=tokenizer, move_to_device=False)
    state = load_tensors(path / MODEL_FILE)
    if processed:
        model.load_and_process_state_dict(state, **_processing(True))
    else:
        missing, unexpected = model.load_state_dict(state, strict=False)
        # Only the fixed buffers (masks, rotary tables) may be absent from the file.
        params = {n for n, _ in model.named_parameters()}
        bad = [k for k in missing if k in params] + list(unexpected)
        if bad:
            raise ValueError(f"{path / MODEL_FILE}: weights do not match the config ({bad[0]})")
    return model.to(device).eval()


def _load_neel(official: str, device: torch.device, processed: bool) -> "HookedTransformer":
    """NeelNanda's models (gelu-1l): config.json and a pickled state dict, read safely."""
    from huggingface_hub import hf_hub_download
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as loading

    cfg = loading.get_pretrained_model_config(official, fold_ln=processed, device=device)
    weights = hf_hub_download(official, NEEL_WEIGHTS_FILE)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model = HookedTransformer(cfg, move_to_device=False)
    model.load_and_process_state_dict(state, **_processing(processed))
    return model.to(device).eval()


def load_model(
    spec: str | Path, device: str = "auto", processed: bool = True, frozen: bool = False,
    need_tokenizer: bool = False,
) -> "HookedTransformer":
    """A HookedTransformer from a stand-in directory (the model zoo's) or a Hugging Face model
    name: the one loader every write-up uses.

    `processed` applies TransformerLens's usual weight processing (fold LayerNorm, centre
    writing weights and unembedding), as `HookedTransformer.from_pretrained` does by default.
    `frozen` turns gradients off (for analyses that only read the model); `need_tokenizer`
    makes a model without a tokenizer a ValueError. Names are resolved through
    TransformerLens's alias table (`gelu-1l`, `gpt2-xl`, `EleutherAI/pythia-2.8b`, ...); the
    Hugging Face cache and `HF_HUB_OFFLINE` apply.
    """
    model = _load(spec, pick_device(device), processed)
    if frozen:
        model.requires_grad_(False)
    if need_tokenizer and model.tokenizer is None:
        raise ValueError(f"{spec}: the model has no tokenizer (needed for the prompts)")
    return model


def _load(spec: str | Path, dev: torch.device, processed: bool) -> "HookedTransformer":
    if is_local_model(spec):
        return _load_local(Path(spec), dev, processed)
    from transformer_lens import HookedTransformer
    from transformer_lens.loading_from_pretrained import get_official_model_name

    official = get_official_model_name(str(spec))
    if official.startswith("NeelNanda/"):
        return _load_neel(official, dev, processed)
    model = HookedTransformer.from_pretrained(official, device=str(dev), **_processing(processed))
    return model.eval()

def describe_model(model: "HookedTransformer") -> str:
    cfg = model.cfg
    n = sum(p.numel() for p in model.parameters())
    return json.dumps({"n_layers": cfg.n_layers, "d_model": cfg.d_model, "d_mlp": cfg.d_mlp,
                       "d_vocab": cfg.d_vocab, "params": n})

"""The challenge's transformer and its full-batch training.

The model is the challenge's: one layer, d_model 128, 8 heads of 16, d_mlp 1024, ReLU, no
LayerNorm, learned positions, inputs [X, Y, 113] (vocabulary 114), two outputs (blue, red) read
at the last position (a TransformerLens `HookedTransformer`). Training: AdamW (decoupled weight
decay), full batch on the training half, cross-entropy at the last position; the rate falls
linearly from `lr` to `lr_end` (equal in the paper profile: the challenge's constant rate).

The training step computes the last position's logits with `last_logits`, the same function as
the HookedTransformer's forward pass restricted to what the last position reads: everything
before the MLP depends only on (token, position), so keys, values and the heads' outputs are
computed once per token (114 x 3) instead of once per input (6384 x 3), and the MLP runs on the
last position only (the other positions' MLP outputs reach no logit that is trained). The
gradients are the full model's; a test checks the logits against `model(tokens)[:, -1]`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from transformer_lens import HookedTransformer, HookedTransformerConfig

from replications.grid_challenge import data
from replications.grid_challenge.config import Config, ModelConfig
from shared.config import config_hash, to_dict
from shared.io import load_metadata, load_tensors, save_tensors
from shared.training import train_loop

N_OUT = 2  # logits (blue, red); the label is red when logit 1 > logit 0


def tl_config(cfg: ModelConfig, device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.float32) -> HookedTransformerConfig:
    return HookedTransformerConfig(
        n_layers=1, d_model=cfg.d_model, n_heads=cfg.n_heads, d_head=cfg.d_head,
        d_mlp=cfg.d_mlp, act_fn="relu", normalization_type=None, n_ctx=3,
        d_vocab=data.P + 1, d_vocab_out=N_OUT, seed=cfg.seed, device=str(device),
        default_prepend_bos=False, dtype=dtype,
    )


def build_model(cfg: ModelConfig, device: torch.device | str = "cpu") -> HookedTransformer:
    """A freshly initialised model (TransformerLens draws from the global RNG: seeded here)."""
    torch.manual_seed(cfg.seed)
    return HookedTransformer(tl_config(cfg, device))


def last_logits(model: HookedTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """The logits at the last position of inputs [X, Y, 113], [batch, 2]: the model's forward
    pass computed per token where it can be (module docstring). Differentiable."""
    W_E, W_pos = model.embed.W_E, model.pos_embed.W_pos
    attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
    res = [W_E[: data.P] + W_pos[0], W_E[: data.P] + W_pos[1], W_E[data.Z_TOKEN] + W_pos[2]]
    z = res[2]
    q = torch.einsum("d,hde->he", z, attn.W_Q) + attn.b_Q  # [head, d_head]
    scores, outs = [], []
    for r in res:  # per (token, position): the key's score and each head's output
        k = torch.einsum("...d,hde->...he", r, attn.W_K) + attn.b_K
        v = torch.einsum("...d,hde->...he", r, attn.W_V) + attn.b_V
        scores.append((k * q).sum(-1) / attn.attn_scale)  # [..., head]
        outs.append(torch.einsum("...he,hed->...hd", v, attn.W_O))  # [..., head, d_model]
    x_tok, y_tok = tokens[:, 0], tokens[:, 1]
    s = torch.stack([scores[0][x_tok], scores[1][y_tok],
                     scores[2].expand(len(tokens), -1)], dim=-1)  # [batch, head, key]
    pattern = torch.softmax(s, dim=-1)
    # resid_mid = z + b_O + sum over heads and keys of pattern * the head's output; the MLP's
    # input weights are applied per token too, so no [batch, d_model] x [d_model, d_mlp] product.
    base = z + attn.b_O
    pre = base @ mlp.W_in + mlp.b_in + pattern[..., 2] @ (outs[2] @ mlp.W_in)
    skip = base @ model.unembed.W_U + pattern[..., 2] @ (outs[2] @ model.unembed.W_U)
    n_heads = attn.W_Q.shape[0]
    table = torch.cat([(outs[0] @ mlp.W_in).reshape(-1, mlp.W_in.shape[1]),
                       (outs[1] @ mlp.W_in).reshape(-1, mlp.W_in.shape[1])])
    heads = torch.arange(n_heads, device=tokens.device)
    bags = torch.cat([x_tok[:, None] * n_heads + heads,
                      (data.P + y_tok[:, None]) * n_heads + heads], dim=1)  # [batch, 2 heads]
    weights = torch.cat([pattern[..., 0], pattern[..., 1]], dim=1)
    pre = pre + F.embedding_bag(bags, table, per_sample_weights=weights, mode="sum")
    for k, tok in ((0, x_tok), (1, y_tok)):
        a_u = outs[k] @ model.unembed.W_U  # [token, head, 2]
        skip = skip + torch.einsum("bh,bhv->bv", pattern[..., k], a_u[tok])
    post = torch.relu(pre)
    # No LayerNorm: the unembedding is linear, so the MLP's output is read through W_out W_U.
    return (skip + post @ (mlp.W_out @ model.unembed.W_U)
            + mlp.b_out @ model.unembed.W_U + model.unembed.b_U)


def fingerprint(cfg: Config) -> str:
    """What a checkpoint must match: the data, model and training settings (not the analysis)."""
    return config_hash((cfg.data, cfg.model, cfg.train))


def train(cfg: Config, checkpoint_path: Path | None, device: torch.device | str = "cpu"
          ) -> tuple[HookedTransformer, list[dict[str, float]]]:
    """Train the challenge's model full-batch on the training half; returns it (eval mode) and
    the logged history (loss, training accuracy, held-out accuracy)."""
    t = cfg.train
    model = build_model(cfg.model, device)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 1.0 - (1.0 - t.lr_end / t.lr) * min(s, t.epochs) / t.epochs)
    tokens = data.all_inputs().to(device)
    labels = data.grid().reshape(-1).to(device)
    is_train = data.split(cfg.data.seed, cfg.data.train_fraction).to(device)
    x_train, y_train = tokens[is_train], labels[is_train]

    def step_fn(step: int) -> dict[str, torch.Tensor]:
        logits = last_logits(model, x_train)
        loss = F.cross_entropy(logits, y_train)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        out = {"loss": loss.detach()}
        if step % t.log_every == 0 or step == t.epochs - 1:
            with torch.no_grad():
                pred = last_logits(model, tokens).argmax(-1) == labels
                out["train_acc"] = pred[is_train].float().mean()
                out["test_acc"] = pred[~is_train].float().mean()
        return out

    model.train()
    history = train_loop(step_fn, t.epochs, {"model": model, "opt": opt, "sched": sched},
                         checkpoint_path,
                         fingerprint(cfg), checkpoint_every=t.checkpoint_every,
                         log_every=t.log_every, desc="grid",
                         per_step=("sequences", int(x_train.shape[0])))
    model.eval()
    return model, history


def save_model(model: HookedTransformer, cfg: Config, out: Path) -> None:
    """Weights as safetensors (parameters only); the model settings in the metadata."""
    names = {n for n, _ in model.named_parameters()}
    state = {k: v for k, v in model.state_dict().items() if k in names}
    save_tensors(out, state, {"grid_model": json.dumps(to_dict(cfg.model))})


def load_model(path: Path, device: torch.device | str = "cpu") -> HookedTransformer:
    """A model saved by `save_model`, frozen, in eval mode."""
    meta = load_metadata(Path(path))
    if "grid_model" not in meta:
        raise ValueError(f"{path}: not a challenge-2 model (no grid_model in its metadata)")
    mcfg = ModelConfig(**json.loads(meta["grid_model"]))
    model = HookedTransformer(tl_config(mcfg, device))
    result = model.load_state_dict(load_tensors(Path(path), device), strict=False)
    buffers = {n for n, _ in model.named_buffers()}
    wrong = list(result.unexpected_keys) + [k for k in result.missing_keys if k not in buffers]
    if wrong:
        raise ValueError(f"{path}: does not fit the model ({wrong[0]})")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model

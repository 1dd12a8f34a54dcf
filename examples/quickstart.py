# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # Quickstart: a stand-in model and its SAE from Python
#
# After `snakemake --cores all figures/` (or `--config profile=smoke` for a minute's build),
# this loads the steering write-up's stand-in LM as a TransformerLens `HookedTransformer` and its
# SAE with SAELens's own loader, runs a prompt through both, shows the features that fire with
# their top contexts and logit effects, and regenerates one figure by calling the library.
#
# Run it as a script (`python examples/quickstart.py [results/<profile>]`) or open it as a
# notebook with jupytext (`jupytext --to notebook examples/quickstart.py`).

# %%
import sys
from pathlib import Path

import torch
from sae_lens import SAE

from shared.io import load_tensors
from shared.lm import load_model

RESULTS = Path(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-")
               else "results/default")
OUT = Path("examples/out")
if not (RESULTS / "steering" / "sae" / "cfg.json").is_file():
    sys.exit(f"error: {RESULTS}/steering/sae not built: run `snakemake --cores all figures/` "
             "(add `--config profile=smoke` for a quick build) first")
torch.set_grad_enabled(False)

# %% [markdown]
# ## The stand-in LM and its SAE
# `load_model` is the loader every write-up uses: a stand-in's folder or a published name.

# %%
model = load_model(RESULTS / "steering" / "lm", device="cpu", frozen=True)
sae = SAE.load_from_disk(RESULTS / "steering" / "sae", device="cpu")
hook = sae.cfg.metadata.hook_name
print(f"model: {model.cfg.n_layers} layers, d_model {model.cfg.d_model}, "
      f"vocabulary {model.cfg.d_vocab}")
print(f"SAE on {hook}: {sae.cfg.d_in} -> {sae.cfg.d_sae} features")

# %% [markdown]
# ## Features of a prompt
# The SAE encodes the residual stream at its hook; the features most active on the last token:

# %%
prompt = "I hate you because"
_, cache = model.run_with_cache(prompt, names_filter=hook)
acts_pos_d = cache[hook][0]  # [pos, d_model]
feats_pos_f = sae.encode(acts_pos_d)  # [pos, d_sae]
recon = sae.decode(feats_pos_f)
fvu = ((recon - acts_pos_d) ** 2).sum() / ((acts_pos_d - acts_pos_d.mean(0)) ** 2).sum()
last_f = feats_pos_f[-1]
top = torch.topk(last_f, k=5)
print(f"prompt {prompt!r}: L0 {int((last_f > 0).sum())} on the last token, "
      f"fraction of variance unexplained {float(fvu):.3f}")
print("top features on the last token:")
for value, index in zip(top.values.tolist(), top.indices.tolist()):
    print(f"  feature {index:4d}  activation {value:.3f}")

# %% [markdown]
# ## Top contexts and logit effect of the strongest feature
# Held-out text from the stand-in's corpus, in windows; the windows where the feature fires
# most, and the tokens its decoder direction promotes through the unembedding.

# %%
feature = int(top.indices[0])
text = (RESULTS / "steering" / "corpus" / "val.txt").read_text()[:20000]
tokens = model.to_tokens(text, prepend_bos=False)[0]
window = 24
rows_w = tokens[: len(tokens) // window * window].reshape(-1, window)[:64]
_, cache = model.run_with_cache(rows_w, names_filter=hook)
f_acts = sae.encode(cache[hook])[..., feature]  # [row, pos]
best = torch.topk(f_acts.flatten(), k=3)
print(f"feature {feature}: top contexts (the token it fires on in [brackets])")
for value, flat in zip(best.values.tolist(), best.indices.tolist()):
    r, p = divmod(flat, window)
    before = model.to_string(rows_w[r, max(0, p - 8): p])
    print(f"  {value:.3f}  ...{before!r} [{model.to_string(rows_w[r, p: p + 1])!r}]")
logits_v = sae.W_dec[feature] @ model.W_U
print(f"feature {feature}: promotes {[model.to_string(t) for t in logits_v.topk(5).indices]}, "
      f"suppresses {[model.to_string(t) for t in (-logits_v).topk(5).indices]}")
frequency = load_tensors(RESULTS / "steering" / "sae" / "frequency.safetensors")
print(f"feature {feature} fires on {float(next(iter(frequency.values()))[feature]):.2%} of "
      "training tokens")

# %% [markdown]
# ## Regenerate one figure by calling the library
# The toy-models write-up's TMS geometry figure from its trained weights, with the function its
# DAG rule calls; it matches the DAG's own PNG byte for byte.

# %%
from replications.toy_models import config as toy_config  # noqa: E402
from replications.toy_models import plots  # noqa: E402
from replications.toy_models.scripts._common import provenance  # noqa: E402
from shared.figures import apply_style, save_figure  # noqa: E402

profile = RESULTS.name  # results/<profile>
cfg = toy_config.load(profile)
weights = load_tensors(RESULTS / "toy_models" / "tms" / "weights.safetensors")
apply_style()
figure = plots.geometry_figure(weights["geometry.W"], weights["geometry.probability"],
                               weights["geometry.importance"], cfg.tms.represented_threshold)
png, _ = save_figure(figure, OUT / "tms_geometry.png", provenance(profile, cfg.tms))
same = png.read_bytes() == (RESULTS / "toy_models" / "figures" / "tms_geometry.png").read_bytes()
print(f"wrote {png} ({'identical to' if same else 'differs from'} the DAG's figure)")

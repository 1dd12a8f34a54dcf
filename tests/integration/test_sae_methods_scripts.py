"""SAE-methods scripts on tiny models: sweep -> ito -> analyse -> figures on a gelu-1l-shaped
stand-in folder (smoke profile, a shrunken config), and the paper path offline: a tiny
gelu-1l in a local Hugging Face cache under NeelNanda/GELU_1L512W_C4_Code and a tiny GPT-NeoX
saved as EleutherAI/pythia-2.8b, data sets from local directories, loaded by name through
shared.lm.load_model in a fresh offline process, as in the paper profile."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from replications.sae_methods import config as saem_config
from shared import lm
from shared.io import read_json, save_tensors
from tests.conftest import (
    assert_figures_written,
    config_copy,
    gelu_1l_in_hub,
    hf_cache_repo,
    offline_hf_env,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SMALL = {
    "data": {"seq_len": 16, "pool_tokens": 600, "rows_per_batch": 8, "eval_rows": 8},
    "sae": {"batch_size": 32, "n_steps": 12, "resample_every": 6, "resample_window": 3,
            "resample_stop": 10, "ghost_dead_window": 3},
    "methods": {"ghost_original_k1": {"ghost_all_steps": 2},
                "ghost_original_k2": {"ghost_all_steps": 6},
                "ghost_rescaled_k1": {"ghost_all_steps": 2},
                "ghost_rescaled_k2": {"ghost_all_steps": 6}},
    "ito": {"target_l0s": [1, 2, 4], "eval_rows": 4, "batch_rows": 4, "min_fires": 1},
}


def _sites(d_mlp, d_model, neurons=("", "", "blocks.0.mlp.hook_post"),
           outputs=("", "", "blocks.0.hook_mlp_out"), extra=()):
    base = saem_config.load("smoke")
    out = []
    for spec, d_in, site in ((neurons, d_mlp, base.sites[0]), (outputs, d_model, base.sites[1])):
        model, dataset, hook = spec
        out.append({"name": site.name, "model": model, "dataset": dataset, "hook": hook,
                    "d_in": d_in, "d_sae": 24, "l1_coeffs": list(site.l1_coeffs),
                    "methods": list(site.methods)})
    return out + list(extra)


def _run_all(code_prefix: str, config_dir: Path, out: Path, model_args: dict, env=None,
             profile="smoke"):
    """Every script of the write-up in a fresh process that reads `config_dir`."""
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "import replications.sae_methods.config as c\n"
        "c.CONFIG_DIR = Path(sys.argv[1])\n"
        "from replications.sae_methods.scripts import analyse, ito, make_figures, sweep\n"
        "out = Path(sys.argv[2]); P = sys.argv[3]; models = json.loads(sys.argv[4])\n"
        "cfg = c.load(P)\n"
        + code_prefix +
        "for s in cfg.sites:\n"
        "    sweep.main(['--profile', P, '--site', s.name, *models[s.name], '--out-dir',\n"
        "                str(out / 'sweep' / s.name), '--checkpoint-dir', str(out / 'ckpt'),\n"
        "                '--timing', str(out / f'{s.name}.timing.json'), '--log-every', '4'])\n"
        "ito.main(['--profile', P, *models[cfg.ito.site], '--sweep',\n"
        "          str(out / 'sweep' / cfg.ito.site), '--out-dir', str(out / 'ito')])\n"
        "dirs = [str(out / 'sweep' / s.name) for s in cfg.sites]\n"
        "analyse.main(['--profile', P, '--sweeps', *dirs, '--ito', str(out / 'ito'),\n"
        "              '--out', str(out / 'analysis.json')])\n"
        "make_figures.main(['--profile', P, '--sweeps', *dirs, '--ito', str(out / 'ito'),\n"
        "                   '--analysis', str(out / 'analysis.json'), '--figure-dir',\n"
        "                   str(out / 'figures')])\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(config_dir), str(out), profile,
                          json.dumps(model_args)], check=False, cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


def _check_outputs(out: Path, cfg_sites: list[dict]):
    for site in cfg_sites:
        s = read_json(out / "sweep" / site["name"] / "sweep.json")
        assert set(s["methods"]) == set(site["methods"])
        for m, v in s["methods"].items():
            assert len(v["l0"]) == len(site["l1_coeffs"]) and all(x >= 0 for x in v["l0"])
        # Each method's SAEs in SAELens format with their training options recorded.
        cfg = read_json(out / "sweep" / site["name"] / "saes" / site["methods"][-1] / "1" / "cfg.json")
        assert cfg["d_in"] == site["d_in"] and cfg["metadata"]["hook_name"] == site["hook"]
        timing = read_json(out / f"{site['name']}.timing.json")["seconds_per_step"]
        assert set(timing) == set(site["methods"]) and min(timing.values()) > 0
    ito = read_json(out / "ito" / "ito.json")
    for d in ito["dictionaries"]:
        # ITO never exceeds its target L0 (mean over tokens at most the target).
        assert all(l0 <= t + 1e-9 for l0, t in zip(d["ito_l0"], d["targets"]))
        assert d["matched_ito_l0"] <= d["encoder_l0"] + 1e-9
    res = read_json(out / "analysis.json")
    assert {"ghost", "k", "improvements", "ito"} <= set(res)
    assert_figures_written("sae_methods", out / "figures")


def test_scripts_on_a_tiny_stand_in(tmp_path):
    from shared.tokenizer import TokenizerConfig, hf_tokenizer, train_tokenizer

    texts = [f"the bride said {i} words in anger to the groom, then sat down" for i in range(300)]
    tok = train_tokenizer(texts, TokenizerConfig(vocab_size=300, min_frequency=1,
                                                 split_digits=True, train_bytes=10**6, seq_len=16))
    hf_tokenizer(tok).save_pretrained(str(tmp_path / "tok"))
    tok.save(str(tmp_path / "tok" / "tokenizer.json"))
    cfg = lm.LMConfig(n_layers=1, d_model=16, d_mlp=64, n_heads=2, d_head=8, act_fn="gelu",
                      normalization_type="LN", positional_embedding_type="standard",
                      rotary_dim=0, parallel_attn_mlp=False, n_ctx=16)
    model = lm.build_model(cfg, tok.get_vocab_size(), seed=0)
    lm.save_model(model, cfg, tok.get_vocab_size(), tmp_path / "lm", tmp_path / "tok")
    gen = torch.Generator().manual_seed(0)
    rows = torch.randint(3, tok.get_vocab_size(), (80, 16), generator=gen)
    rows[:, 0] = 0
    save_tensors(tmp_path / "tokens.safetensors",
                 {"train": rows[:60].clone(), "val": rows[60:].clone(), "bos_id": torch.tensor(0),
                  "eos_id": torch.tensor(1), "pad_id": torch.tensor(2),
                  "vocab_size": torch.tensor(tok.get_vocab_size())})
    sites = _sites(64, 16)
    config_dir = config_copy(saem_config.CONFIG_DIR, tmp_path / "config",
                             smoke={**SMALL, "sites": sites})
    stand_in = ["--model", str(tmp_path / "lm"), "--tokens", str(tmp_path / "tokens.safetensors")]
    out = tmp_path / "out"
    _run_all("", config_dir, out, {s["name"]: stand_in for s in sites})
    _check_outputs(out, sites)
    # Resuming from the checkpoints gives the same results (every method's last checkpoint).
    first = read_json(out / "sweep" / "mlp_outputs" / "sweep.json")
    _run_all("", config_dir, out, {s["name"]: stand_in for s in sites})
    assert read_json(out / "sweep" / "mlp_outputs" / "sweep.json") == first
    # Each method's options reach its SAEs: beta1 0.99 and no pre-encoder bias are recorded.
    opts = read_json(out / "sweep" / "mlp_neurons" / "saes" / "no_bias_beta1_099" / "0" /
                     "cfg.json")["metadata"]["training_options"]
    assert opts["adam_betas"] == [0.99, 0.999] and opts["pre_encoder_bias"] is False


def test_paper_profile_path_offline(tmp_path):
    """gelu-1l (both MLP sites) and a Pythia-shaped model (its layer-1 MLP output) by name."""
    import datasets
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    d_vocab, d_mlp, seq_len = 300, 64, 16
    hub = tmp_path / "hub"
    texts = [f"the bride said {i} words in anger to the groom" for i in range(200)]
    _, tok = gelu_1l_in_hub(hub, d_vocab, d_mlp, seq_len, texts)
    hf = GPTNeoXForCausalLM(GPTNeoXConfig(
        hidden_size=32, num_attention_heads=4, num_hidden_layers=2, intermediate_size=128,
        rotary_pct=0.25, use_parallel_residual=True, vocab_size=len(tok),
        max_position_embeddings=64, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id)).eval()
    pythia = hf_cache_repo(hub, "EleutherAI/pythia-2.8b")
    hf.save_pretrained(str(pythia))
    tok.save_pretrained(str(pythia))
    gen = torch.Generator().manual_seed(1)
    rows = torch.randint(3, d_vocab, (120, 4 * seq_len), generator=gen)
    datasets.Dataset.from_dict({"tokens": rows.tolist()}).save_to_disk(str(tmp_path / "c4"))
    datasets.Dataset.from_dict({"text": texts * 3}).save_to_disk(str(tmp_path / "pile"))

    gelu = ("gelu-1l", str(tmp_path / "c4"))
    pyth = {"name": "pythia_l1_mlp_outputs", "model": "EleutherAI/pythia-2.8b",
            "dataset": str(tmp_path / "pile"), "hook": "blocks.1.hook_mlp_out", "d_in": 32,
            "d_sae": 24, "l1_coeffs": [0.3, 1.2],
            "methods": ["resampling", "ghost_original", "ghost_rescaled", "ghost_dead_only"]}
    sites = _sites(d_mlp, 16, neurons=(*gelu, "blocks.0.mlp.hook_post"),
                   outputs=(*gelu, "blocks.0.hook_mlp_out"), extra=[pyth])
    names = [s["name"] for s in sites]
    paper = {**SMALL, "data": {**SMALL["data"], "source": "buffer", "buffer_activations": 256,
                               "train_rows": 60, "eval_rows": 8, "reserved_rows": 8},
             "sites": sites, "model": {"source": "pretrained", "device": "cpu"},
             "comparisons": {"ghost_sites": names, "k_site": names[1],
                             "improvements_site": names[0]},
             "ito": {**SMALL["ito"], "site": names[0], "scatter_dictionary": 0}}
    config_dir = config_copy(saem_config.CONFIG_DIR, tmp_path / "config", paper=paper)
    out = tmp_path / "out"
    models = {s["name"]: ["--model", s["model"]] for s in sites}
    _run_all("", config_dir, out, models, env=offline_hf_env(tmp_path), profile="paper")
    _check_outputs(out, sites)
    s = read_json(out / "sweep" / "pythia_l1_mlp_outputs" / "saes" / "resampling" / "0" / "cfg.json")
    assert s["metadata"]["model_name"] == "EleutherAI/pythia-2.8b" and s["d_in"] == 32

"""Steering replication on tiny models: the DAG scripts end to end (smoke profile; the SAE from
the model zoo's script with the write-up's settings), and the paper path (GPT-2 by name from an
offline Hugging Face cache, whose pad token is its EOS = BOS). Loading a user-supplied SAELens
SAE: tests/integration/test_zoo_sae.py."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from replications.steering.config import load
from replications.steering.docs import generate_documents
from shared import pipeline
from shared.config import to_dict
from shared.corpus import CorpusConfig, Document, assemble, write_corpus
from shared.corpus_sources import Source
from shared.io import read_json
from shared.lm import build_model, save_model
from shared.scripts import train_sae
from shared.tokenizer import train_and_tokenize
from tests.conftest import hf_cache_repo, offline_hf_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> Path:
    """A random-weight model of the smoke profile's shape with a tokenizer trained on the
    smoke profile's synthetic documents, and its token rows."""
    torch.set_num_threads(1)
    cfg = load("smoke")
    root = tmp_path_factory.mktemp("steer")
    docs = [Document("s", d["name"], d["text"]) for d in generate_documents(cfg.docs)]
    registry = {"s": Source("prose", lambda _: (docs, []), "synthetic")}
    ccfg = CorpusConfig(sources=("s",), code_fraction=0.0, max_bytes=10**7, max_doc_bytes=4000,
                        val_fraction=0.2, seed=0)
    write_corpus(assemble(ccfg, registry=registry), root / "corpus")
    train_and_tokenize(cfg.tokenizer, root / "corpus", root / "tok")
    vocab = json.loads((root / "tok" / "manifest.json").read_text())["vocab_size"]
    model = build_model(cfg.lm.model, vocab, seed=0)
    save_model(model, cfg.lm.model, vocab, root / "lm", root / "tok")
    return root


def _run(module: str, args: list[str]) -> None:
    import importlib

    importlib.import_module(f"replications.steering.scripts.{module}").main(args)


def test_scripts_end_to_end_on_a_tiny_model(stand_in):
    root = stand_in
    common = ["--profile", "smoke", "--threads", "1"]
    model = ["--model", str(root / "lm")]
    tokens = ["--tokens", str(root / "tok" / "tokens.safetensors")]
    zoo = ["--config", json.dumps(to_dict(load("smoke").zoo_sae())), "--writeup", "steering"]
    train_sae.main(zoo + model + tokens + ["--out-dir", str(root / "sae"),
                                           "--checkpoint-dir", str(root / "ckpt")])
    ev = read_json(root / "sae" / "eval.json")
    assert ev["source"] == "train" and 0 < ev["l0"] < 128 and ev["ce_sae"] > 0
    assert (root / "sae" / "cfg.json").is_file()
    _run("build_vectors", common + model + tokens + ["--sae", str(root / "sae"),
                                                     "--out-dir", str(root / "vec")])
    an = read_json(root / "vec" / "analysis.json")
    cfg = load("smoke")
    assert an["anger"]["methods"] == ["vector", "feature"]
    assert an["weddings"]["methods"] == ["original", "handpicked", "reconstruction", "topk_pos",
                                         "topk_pos_neg", "projected"]
    assert an["anger"]["conditions"][0]["method"] == "unsteered"
    n_w = 1 + 4 * (len(cfg.weddings.vector_coeffs) - 1) + (len(cfg.weddings.handpicked_coeffs) - 1)
    assert len(an["weddings"]["conditions"]) == n_w + len(cfg.weddings.vector_coeffs) - 1
    assert an["weddings"]["positive_tokens"][0] == an["weddings"]["negative_tokens"][0]
    assert an["weddings"]["padded_prompt"] == "positive"
    _run("rollouts", common + model + ["--vectors", str(root / "vec"),
                                       "--out", str(root / "rollouts.json")])
    ro = read_json(root / "rollouts.json")
    first = ro["anger"]["conditions"][0]
    assert first["n"] == cfg.sampling.n_seeds == len(first["completions"])
    assert 0 <= first["p_success"] <= 1
    _run("spliced_loss", common + model + tokens + ["--vectors", str(root / "vec"),
                                                    "--out", str(root / "loss.json")])
    lo = read_json(root / "loss.json")
    assert [c["coeff"] for c in lo["weddings"]["conditions"]] == \
        [c["coeff"] for c in ro["weddings"]["conditions"]]
    _run("frontiers", common + ["--rollouts", str(root / "rollouts.json"), "--loss",
                                str(root / "loss.json"), "--analysis",
                                str(root / "vec" / "analysis.json"),
                                "--out", str(root / "frontiers.json")])
    fr = read_json(root / "frontiers.json")
    assert set(fr["anger"]["feature_vs_vector"]) == {"frontier_gap", "dominated", "dominates"}
    assert fr["weddings"]["methods"]["original"]["coeff"] == list(cfg.weddings.vector_coeffs)
    assert 0 <= fr["anger"]["decomposition"]["feature_l1_share"] <= 1
    _run("layer_sweep", common + model + ["--out", str(root / "sweep.json")])
    sw = read_json(root / "sweep.json")
    assert sw["layers"] == list(cfg.layer_sweep.layers)
    assert len(sw["anger"]["p_success"]) == len(cfg.layer_sweep.layers)
    _run("make_figures", common + ["--vectors", str(root / "vec"), "--rollouts",
                                   str(root / "rollouts.json"), "--frontiers",
                                   str(root / "frontiers.json"), "--sweep",
                                   str(root / "sweep.json"), "--figure-dir", str(root / "fig")])
    FIGURES = pipeline.figures("steering")

    for name in FIGURES:
        assert (root / "fig" / f"{name}.png").stat().st_size > 2000
        assert (root / "fig" / f"{name}.pdf").is_file()


# ------------------------------------------------------------------ paper path, offline

_PAPER_CODE = """
import sys, torch
torch.set_num_threads(1)
from replications.steering.scripts._common import load_lm
from replications.steering import actadd, evaluation, sampling
m = load_lm('gpt2-xl', 'cpu')
tok = m.tokenizer
assert tok.bos_token_id == tok.eos_token_id == tok.pad_token_id
pair = actadd.make_pair(tok, 'the bride said', 'the groom said nothing at all')
assert pair.positive[0] == tok.bos_token_id and pair.n_pad_positive > 0
vec = actadd.actadd_vector(m, pair, 'blocks.1.hook_resid_pre')
eos = tok.eos_token_id
# An EOS (GPT-2's pad token) inside the prompt: the cached pass must not mask it.
prompt = torch.tensor([eos] + actadd.encode(tok, 'the bride')[1:] + [eos, 5, 6, 7])
vectors = torch.stack([torch.zeros_like(vec.vector), 3 * vec.vector])
u = sampling.seed_uniforms(torch.tensor([0, 0]), 10)
s = sampling.Sampler(1.0, 0.3, 1.0, 16)
got = sampling.generate(m, prompt, vectors, u, 'blocks.1.hook_resid_pre', s, eos_id=-1)
ref, _ = sampling.generate_reference(m, prompt, vectors, u, 'blocks.1.hook_resid_pre', s, -1)
assert torch.equal(got.tokens, ref.tokens), (got.tokens, ref.tokens)
rows = torch.randint(3, 300, (2, 24)); rows[:, 0] = eos
loss = evaluation.spliced_loss(m, rows, vectors, 1, 4)
recovered = actadd.cue_patching(m, pair, actadd.encode(tok, 'the bride went up to the door'))
assert recovered.shape == (m.cfg.n_layers,) and abs(float(recovered[0]) - 1) < 1e-4, recovered
assert loss.shape == (2, 2) and torch.isfinite(loss).all()
print('ok', vec.vector.shape[0])
"""


def test_paper_path_gpt2_by_name(tmp_path):
    """GPT-2 loaded by name offline (as gpt2-xl is in the paper profile): ActAdd pair with
    BOS = EOS = pad, cached steered generation equal to the uncached reference, spliced loss,
    cue patching."""
    from tokenizers import Tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from shared.tokenizer import EOS, TokenizerConfig, train_tokenizer

    torch.manual_seed(0)
    texts = [f"the bride said {i} words to the groom, nothing at all" for i in range(200)]
    tok = train_tokenizer(texts, TokenizerConfig(vocab_size=320, min_frequency=1,
                                                 split_digits=True, train_bytes=10**6,
                                                 seq_len=32))
    assert isinstance(tok, Tokenizer)
    eos_id = tok.token_to_id(EOS)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=320,
                                    n_positions=64, n_ctx=64, bos_token_id=eos_id,
                                    eos_token_id=eos_id)).eval()
    snap = hf_cache_repo(tmp_path / "hub", "gpt2-xl")
    hf.save_pretrained(str(snap))
    # GPT-2's tokenizer: one <|endoftext|> for BOS, EOS and padding.
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=EOS,
                            unk_token=None).save_pretrained(str(snap))
    env = offline_hf_env(tmp_path)
    proc = subprocess.run([sys.executable, "-c", _PAPER_CODE], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("ok")


def test_rollout_benchmark_runs_on_a_tiny_config(tmp_path):
    """benchmarks/steering_rollouts.py (the GPU run uses --arch gpt2-xl --device cuda)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" /
                                                  "steering_rollouts.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.ARCHS["gpt2-xl"][0].n_layers == 48 and bench.ARCHS["gpt2-xl"][1] == 50257
    bench.main(["--arch", "tiny", "--batch-rows", "4", "8", "--rounds", "1", "--baseline-rows",
                "2", "--new-tokens", "3", "--out", str(tmp_path / "b.json")])
    report = read_json(tmp_path / "b.json")
    assert [r["batch_rows"] for r in report["results"]] == [4, 8, 2]
    assert all(r["completions_per_s"] > 0 for r in report["results"])
    assert (tmp_path / "b.md").is_file()

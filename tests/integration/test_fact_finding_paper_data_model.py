"""The paper profile's fact filtering, end to end, on a tiny Pythia-architecture model by name.

A tiny GPT-NeoX (rotary on a quarter of each head, parallel attention + MLP, as Pythia) is
taught the sports of some two-token athletes from the repository's table, with the paper's
one-shot prefix, and saved with a tiny BPE tokenizer into a Hugging Face cache under
`EleutherAI/pythia-2.8b`. In a fresh offline process, `shared.lm.load_model` loads it by that
name and `known_facts` filters the paper table (`paper_data.load`) as the write-up does: one-shot
prompt, two-token names, keep what the model answers right. The test recomputes each step
independently (tokenizer pieces, the Hugging Face model's own logits).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from replications.fact_finding import config as ff_config
from replications.fact_finding import paper_data as P
from replications.fact_finding.facts import make_prompts
from shared.tokenizer import TokenizerConfig, hf_tokenizer, train_tokenizer
from tests.conftest import hf_cache_repo, offline_hf_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "replications" / "fact_finding"
NAME = "EleutherAI/pythia-2.8b"
N_TAUGHT = 80



# In the fresh process: exactly what the ff_facts rule does in the paper profile.
CHILD = """
import json, sys, torch
from pathlib import Path
from replications.fact_finding import config, paper_data
from replications.fact_finding.facts import known_facts
from shared.lm import load_model
torch.set_num_threads(1)
cfg = config.load("paper")
table = paper_data.load(cfg, Path(sys.argv[2]))
model = load_model(sys.argv[1], "cpu")
facts = known_facts(model, model.tokenizer, table.relations, table.people, table.made_up,
                    cfg.model.prompt_prefix, model.tokenizer.bos_token_id, cfg.model.batch_size)
facts["entity"] = table.entities[0]
facts["arch"] = {"rotary_dim": model.cfg.rotary_dim, "parallel": model.cfg.parallel_attn_mlp,
                 "bos": model.tokenizer.bos_token_id}
Path(sys.argv[3]).write_text(json.dumps(facts))
"""


def test_paper_filtering_on_tiny_pythia(tmp_path):
    torch.set_num_threads(1)
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    cfg = ff_config.load("paper")
    prefix = cfg.model.prompt_prefix
    table = P.load(cfg, PACKAGE)
    people = [(f, s, a["sport"]) for f, s, a in table.people]
    # A vocabulary small enough that only some surnames are one token (a fifth of the names
    # end up two tokens), as Pythia's tokenizer splits rarer names.
    lines = [f"{prefix}Fact: {f} {s} plays the sport of {v}\n" for f, s, v in people]
    tok = hf_tokenizer(train_tokenizer(lines, TokenizerConfig(
        vocab_size=1500, min_frequency=1, split_digits=True, train_bytes=10**7, seq_len=32)))
    prompts, dropped = make_prompts(tok, "sport", P.SPORT.phrase, people, P.SPORTS, prefix,
                                    tok.bos_token_id)
    assert len(prompts) + len(dropped) == len(people)

    # Teach the sports of N_TAUGHT two-token athletes (answer token only, full batch).
    taught = torch.randperm(len(prompts), generator=torch.Generator().manual_seed(0))[:N_TAUGHT]
    torch.manual_seed(0)
    hf = GPTNeoXForCausalLM(GPTNeoXConfig(
        hidden_size=32, num_attention_heads=4, num_hidden_layers=2, intermediate_size=128,
        rotary_pct=0.25, use_parallel_residual=True, vocab_size=len(tok),
        max_position_embeddings=64, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id))
    x, y = prompts.tokens[taught], prompts.answer_ids[prompts.labels[taught]]
    opt = torch.optim.Adam(hf.parameters(), lr=1e-2)
    for _ in range(80):
        hidden = hf.gpt_neox(x).last_hidden_state[:, prompts.final_pos]
        loss = torch.nn.functional.cross_entropy(hf.get_output_embeddings()(hidden), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    hf.eval()
    with torch.no_grad():
        ref = hf(prompts.tokens).logits[:, prompts.final_pos][:, prompts.answer_ids]
    snap = hf_cache_repo(tmp_path / "hub", NAME)
    hf.save_pretrained(str(snap))
    tok.save_pretrained(str(snap))

    env = offline_hf_env(tmp_path)
    out = tmp_path / "facts.json"
    proc = subprocess.run([sys.executable, "-c", CHILD, NAME, str(PACKAGE), str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads(out.read_text())

    # Pythia's architecture, loaded by name, with the tokenizer's BOS first.
    assert facts["arch"] == {"rotary_dim": 2, "parallel": True, "bos": tok.bos_token_id}
    assert facts["prefix"] == prefix and list(facts["relations"]) == ["sport"]
    # Two-token filter: the same names as the tokenizer's own pieces give.
    counts = facts["counts"]["sport"]
    assert counts == {"people": len(people), "two_token": len(prompts),
                      "dropped": len(dropped), "known": len(facts["known"]["sport"])}
    assert 0.1 < len(prompts) / len(people) < 0.4  # 169 of 876 with this tokenizer
    # Keep-correct: exactly the names the Hugging Face model answers right (TransformerLens's
    # weight processing shifts logits by a constant, so only near-ties could differ).
    correct = ref.argmax(-1) == prompts.labels
    top2 = ref.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-3
    known = {f"{f} {s}" for f, s, _ in facts["known"]["sport"]}
    expected = {prompts.names[i] for i in torch.nonzero(correct & clear).flatten().tolist()}
    unclear = {prompts.names[i] for i in torch.nonzero(~clear).flatten().tolist()}
    assert known - unclear == expected
    assert all(v == dict(zip(prompts.names, (P.SPORTS[i] for i in prompts.labels.tolist())))[
        f"{f} {s}"] for f, s, v in facts["known"]["sport"])
    # What it was taught it knows; the rest it guesses.
    taught_names = {prompts.names[i] for i in taught.tolist()}
    assert len(taught_names & known) / N_TAUGHT >= 0.95
    rest = set(prompts.names) - taught_names
    assert len(rest & known) / len(rest) < 0.7
    acc = facts["accuracy"]["sport"]
    assert acc["held_in"] == pytest.approx(counts["known"] / counts["two_token"])
    # Made-up names: two-token pairs of table tokens that are nobody's name.
    real = {f"{f} {s}" for f, s, _ in people}
    unknown = {f"{f} {s}" for f, s in facts["unknown_names"]}
    assert unknown and not unknown & real
    assert unknown <= {f"{f} {s}" for f, s, _ in table.made_up}
    # The entity's prompts carry the one-shot prefix.
    assert facts["entity"]["facts"][0]["prompt"] == (
        f"{prefix}Fact: Michael Jordan plays the sport of")

"""The fact-finding neuron analyses end to end on a tiny random Pythia-shaped model.

A tiny tokenizer learns the names and phrases as single tokens, a random 6-layer model (the smoke profile's layer choices apply) with
rotary and parallel attention is saved and loaded like the stand-in (LayerNorm folded), and a
fabricated facts.json names known people, unknown names and an entity with four facts. The
model knows nothing, but every code path runs: batched neuron patching (checked against one
neuron patched by hand), the name grid, the shuffled-MLP pass, the scripts and their figures.
"""

import itertools
import json

import pytest
import torch

from replications.fact_finding import neuron_facts as NF
from replications.fact_finding import neuron_lookup as NL
from replications.fact_finding import neurons as N
from replications.fact_finding import selective_neuron as SN
from replications.fact_finding.facts import FACTS_FORMAT, known_prompts
from tests.conftest import tiny_pythia, user_error

pytestmark = pytest.mark.integration

FIRSTS = ["Michael", "David", "James", "John", "Robert", "Mary", "Anna", "Sarah"]
LASTS = ["Smith", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor", "Clark"]
SPORTS = ["baseball", "basketball", "football"]
RELATIONS = {
    "sport": {"phrase": "plays the sport of", "values": SPORTS},
    "city": {"phrase": "lives in the city of", "values": ["Paris", "London", "Rome"]},
    "pet": {"phrase": "keeps a pet that is a", "values": ["dog", "cat", "horse"]},
    "colour": {"phrase": "has the favourite colour of", "values": ["red", "blue", "green"]},
}


def fabricated_facts() -> dict:
    """40 known people (sports cycling), 12 unknown names, an entity with every relation."""
    pairs = list(itertools.product(FIRSTS, LASTS))
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(pairs), generator=gen).tolist()
    known = [pairs[i] for i in order[:40]]
    unknown = [list(pairs[i]) for i in order[40:52]]
    entity = " ".join(known[0])
    return {
        "format": FACTS_FORMAT, "prefix": "", "relations": RELATIONS,
        "known": {"sport": [[f, s, SPORTS[i % 3]] for i, (f, s) in enumerate(known)]},
        "unknown_names": unknown, "accuracy": {}, "counts": {},
        "entity": {"name": entity, "facts": [
            {"relation": r, "prompt": f"Fact: {entity} {v['phrase']}",
             "answer": f" {v['values'][0]}", "known": True} for r, v in RELATIONS.items()]},
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ff_neurons")
    texts = [f"Fact: {f} {s} {r['phrase']} {v}."
             for f, s in itertools.product(FIRSTS, LASTS) for r in RELATIONS.values()
             for v in r["values"]] * 2
    loaded = tiny_pythia(root, texts, 600)
    facts = fabricated_facts()
    (root / "facts.json").write_text(json.dumps(facts))
    return root, loaded, facts


def settings(**kw) -> N.NeuronSettings:
    base = {"sport_direction": "head_ov", "target_value": "baseball",
            "entity_ablation": "resample", "n_resample": 2, "neuron_batch": 48,
            "grid_max_names": 8, "n_linearity_pairs": 30, "n_null_permutations": 3,
            "orthogonal_rank_fraction": 0.6,
            "seed": 0}
    return N.NeuronSettings(**{**base, **kw})


def test_batched_patching_matches_one_neuron_by_hand(tiny):
    _, model, facts = tiny
    known = known_prompts(facts, "sport", model.tokenizer, model.tokenizer.bos_token_id)
    toks = known.tokens[:3]
    layer, neuron, value = 2, 17, 1.5
    _, cache = model.run_with_cache(toks, names_filter=lambda n: n == N.hook_name(layer, "resid_pre"))
    answers = known.answer_ids[known.labels[:3]]
    got = N.patched_answer_logprobs(
        model, cache[N.hook_name(layer, "resid_pre")], layer, known.last_pos, known.final_pos,
        answers, torch.tensor([5, neuron]), torch.full((3, 2, 1), value), batch_size=4)

    def patch(act, hook):
        act[:, known.last_pos, neuron] = value
        return act

    with torch.no_grad(), model.hooks(fwd_hooks=[(N.hook_name(layer, "post"), patch)]):
        ref = model(toks)[:, known.final_pos].log_softmax(-1)
    want = ref[torch.arange(3), answers]
    assert torch.allclose(got[:, 1, 0], want, atol=1e-5)
    assert not torch.allclose(got[:, 0, 0], want, atol=1e-5)  # neuron 5 is a different patch


def test_entity_effects_and_lookup(tiny):
    _, model, facts = tiny
    known = known_prompts(facts, "sport", model.tokenizer, model.tokenizer.bos_token_id)
    s = settings()
    N.check_inputs(model, facts, s)
    effects, m = NF.run_entity(model, facts, known, s, (1, 2), batch_size=16,
                              read_position="surname")
    assert effects.effects.shape == (4, 2, 64) and m["n_facts"] == 4
    assert effects.effects.abs().max() > 0
    corr = effects.correlation()
    assert torch.allclose(corr.diagonal(), torch.ones(4), atol=1e-5)
    assert 0 <= m["corr_median_abs"] <= m["corr_max_abs"] <= 1

    # the grid holds every known person and its unknown names; shuffling restores the weights
    before = model.blocks[1].mlp.W_in.detach().clone()
    result, lm_ = NL.run_lookup(model, facts, known, s, N.Lookup((1, 2), (2, 1), "surname"),
                              batch_size=16)
    assert torch.equal(model.blocks[1].mlp.W_in, before)
    assert lm_["nonlinear_excess"]["n_people"] == 40
    assert lm_["norms"]["n_known"] == 40 and lm_["norms"]["n_unknown"] == 12
    sel = lm_["selective_neuron"]
    assert 0.5 <= sel["auc"] <= 1 and sel["auc"] >= sel["second_best_auc"]
    assert 0.5 < sel["null_max_auc"] < 1  # the best of 128 random neurons beats 0.5 by chance
    assert sel["layer"] in (1, 2) and 0 <= sel["neuron"] < 64
    assert sel["loss_clean"] > 0 and sel["n_target"] == 14
    # the selective neuron's AUC is recomputed from its activations
    again = SN.roc_auc(result.selective.acts[:, None], result.selective.positive)
    assert float(again) == pytest.approx(sel["auc"], abs=1e-6)
    for key in ("mlp", "mlp_shuffled", "resid", "mlp_unknown_names"):
        assert result.linearity[key].shape[1] == 2
        assert (result.linearity[key] >= 0).all()
    assert lm_["linearity"]["n_pairs"] >= 1
    assert lm_["read_position"] == "surname" and m["read_position"] == "surname"


def test_final_mode_reads_the_last_position(tiny):
    """read_position final: the cached activations, the ablations and the read-out are at the
    last prompt token (not the surname), and every lookup MLP has a direct path."""
    _, model, facts = tiny
    known = known_prompts(facts, "sport", model.tokenizer, model.tokenizer.bos_token_id)
    assert known.final_pos == known.tokens.shape[1] - 1 != known.last_pos
    circ = N.Lookup((1, 2), (2, 1), "final")
    hook = N.hook_name(2, "post")
    run = N.run_at(model, known.tokens[:5], circ.pos(known.last_pos, known.final_pos),
                   known.final_pos, [hook], known.answer_ids, batch_size=4)
    _, cache = model.run_with_cache(known.tokens[:5], names_filter=lambda n: n == hook)
    assert torch.allclose(run.acts[hook], cache[hook][:, -1], atol=1e-6)
    assert not torch.allclose(run.acts[hook], cache[hook][:, known.last_pos], atol=1e-3)
    # the lookup analyses read there too (the selective neuron's activations)
    s = settings()
    result, m = NL.run_lookup(model, facts, known, s, circ, batch_size=16)
    assert m["read_position"] == "final" and result.where == "at the final token"
    assert m["nonlinear_excess"]["direction"] == "unembed" and result.direction == "unembed"
    assert m["nonlinear_excess"]["direct_layers"] == [1, 2]
    sel = result.selective
    post = model.run_with_cache(known.tokens, names_filter=lambda n: n == N.hook_name(
        sel.layer, "post"))[1][N.hook_name(sel.layer, "post")][:, -1, sel.neuron]
    assert torch.allclose(sel.acts, post, atol=1e-5)
    # entity ablations at each prompt's last token differ from those at the surname
    eff_f, mf = NF.run_entity(model, facts, known, s, (1, 2), batch_size=16, read_position="final")
    eff_s, _ = NF.run_entity(model, facts, known, s, (1, 2), batch_size=16,
                            read_position="surname")
    assert mf["read_position"] == "final"
    assert not torch.allclose(eff_f.effects, eff_s.effects, atol=1e-4)


def test_scripts_write_metrics_and_figures(tiny, tmp_path, capsys):
    """Both scripts under the smoke profile (the circuit part's lookup MLPs and head), in process."""
    from replications.fact_finding.scripts import neuron_facts, neuron_lookup

    root, _, _ = tiny
    common = ["--profile", "smoke", "--model", str(root / "lm"), "--facts",
              str(root / "facts.json"), "--threads", "1"]
    fig = tmp_path / "fig"
    neuron_facts.main([*common, "--out-dir", str(tmp_path / "facts"),
                       "--figure", str(fig / "corr.png")])
    neuron_lookup.main([*common, "--out-dir", str(tmp_path / "lookup"),
                        *[x for n in ("excess", "selective", "norms", "linearity")
                          for x in (f"--{n}-figure", str(fig / f"{n}.png"))]])
    m = json.loads((tmp_path / "lookup" / "metrics.json").read_text())
    assert {"nonlinear_excess", "selective_neuron", "norms", "linearity"} <= set(m)
    from replications.fact_finding.config import load

    assert m["selective_neuron"]["layer"] in load("smoke").circuit.lookup_mlps
    assert json.loads((tmp_path / "facts" / "metrics.json").read_text())["n_facts"] == 4
    for name in ("corr", "excess", "selective", "norms", "linearity"):
        assert (fig / f"{name}.png").stat().st_size > 10_000 and (fig / f"{name}.pdf").is_file()
    # a missing facts file: one line naming it, no traceback
    missing = [x if x != str(root / "facts.json") else str(tmp_path / "none.json")
               for x in common]
    assert "none.json" in user_error(capsys, lambda: neuron_facts.main(
        [*missing, "--out-dir", str(tmp_path / "bad"), "--figure", str(fig / "bad.png")]))

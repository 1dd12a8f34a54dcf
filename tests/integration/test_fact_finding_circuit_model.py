"""The circuit analyses on a tiny random Pythia-shaped model (rotary, parallel attention + MLP).

A tokenizer learns the names and phrases as single tokens; a random 6-layer model is saved and
loaded like the stand-in (LayerNorm folded). The facts file calls "known" the answers the random
model happens to give, so the clean run beats every corrupted one and every code path runs:
the batched interventions are checked against hand-written hooked runs, the attribution
against TransformerLens's own head results, and the script writes what the rule declares.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import pytest
import torch

from replications.fact_finding import circuit as C
from replications.fact_finding import circuit_results as CR
from replications.fact_finding import circuit_steps as CS
from replications.fact_finding.facts import (
    FACTS_FORMAT,
    answer_logits,
    known_prompts,
    make_prompts,
)
from shared import lm
from shared.lm import LMConfig
from tests.conftest import tiny_pythia, user_error

pytestmark = pytest.mark.integration

FIRSTS = ["Michael", "David", "James", "John", "Robert", "Mary", "Anna", "Sarah"]
LASTS = ["Smith", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor", "Clark"]
SPORTS = ["baseball", "basketball", "football"]
PHRASE = "plays the sport of"
SETTINGS = dict(
    relation="sport", n_patch_prompts=20, patch_batch_size=256, token_attn_layers=(0,),
    embedding_mlps=(0,), lookup_mlps=(1, 2, 3), read_position="surname", attribute_head="top_dla",
    head_readout="raw",
    reference_head=(16, 20), probe_layers=(0, 2, 5), probe_splits=3,
    probe_train_fraction=0.8, probe_l2=1e-2, locus_layer=2, locus_reach_fraction=0.9,
    probe_max_iter=50, dtype="float32", seed=0,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ff_circuit")
    texts = [f"Fact: {f} {s} {PHRASE} {v}."
             for f, s in itertools.product(FIRSTS, LASTS) for v in SPORTS] * 2
    loaded = tiny_pythia(root, texts, 400)
    loaded.requires_grad_(False)
    # "Known": the answer the random model favours for each name more than for the others
    # (its plain argmax is one answer for everybody), so clean runs beat corrupted ones.
    people = [(f, s, SPORTS[0]) for f, s in itertools.product(FIRSTS, LASTS)]
    pr, dropped = make_prompts(loaded.tokenizer, "sport", PHRASE, people, SPORTS, "",
                               loaded.tokenizer.bos_token_id)
    assert not dropped
    logits = answer_logits(loaded, pr, 64)
    pred = (logits - logits.mean(0)).argmax(-1)
    assert torch.bincount(pred, minlength=3).min() >= 5
    facts = {
        "format": FACTS_FORMAT, "prefix": "",
        "relations": {"sport": {"phrase": PHRASE, "values": SPORTS}},
        "known": {"sport": [[*n.split(" "), SPORTS[int(y)]] for n, y in zip(pr.names, pred)]},
        "unknown_names": [], "accuracy": {}, "counts": {},
    }
    (root / "facts.json").write_text(json.dumps(facts))
    prompts = known_prompts(facts, "sport", loaded.tokenizer, loaded.tokenizer.bos_token_id)
    return root, loaded, prompts


def settings(**kw) -> C.CircuitSettings:
    return C.CircuitSettings(**{**SETTINGS, **kw})


def ld_of(model, prompts, hooks) -> torch.Tensor:  # noqa: ANN001
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        ans = model(prompts.tokens)[:, prompts.final_pos][:, prompts.answer_ids]
    return C.logit_diff(ans, prompts.labels)


def test_batched_jobs_match_hooked_runs(tiny):
    """Patching from a cached residual at layer l, many jobs per pass, equals one hooked run
    per job on the tokens; path patching equals an edited MLP input by hand."""
    _, model, prompts = tiny
    pr = prompts.subset(range(12))
    partner = CS.corrupting_partners(pr, 0)
    _, cache = model.run_with_cache(pr.tokens)
    s, e = pr.last_pos, pr.final_pos
    layer = 2
    cases = [("resid_pre", s), ("attn_out", e), ("mlp_out", s), ("resid_pre", e)]
    jobs = [(C.Edit(C.hook(c, layer), p, cache[C.hook(c, layer)][partner, p], add=False),)
            for c, p in cases]

    def readout(r, pidx):  # noqa: ANN001, ANN202
        ans = C.final_logits(model, r[:, e])[:, pr.answer_ids]
        return {"ld": C.logit_diff(ans, pr.labels[pidx])}

    got = C.run_jobs(model, cache[C.hook("resid_pre", layer)], layer, 6, [(), *jobs],
                     batch_rows=10, readout=readout)["ld"]
    assert torch.allclose(got[0], ld_of(model, pr, []), atol=1e-4)
    for k, (c, p) in enumerate(cases):
        def patch(act, hook, c=c, p=p):  # noqa: ANN001, ANN202
            act[:, p] = cache[C.hook(c, layer)][partner, p]
            return act
        assert torch.allclose(got[k + 1], ld_of(model, pr, [(C.hook(c, layer), patch)]),
                              atol=1e-4)
    assert not torch.allclose(got[1], got[0], atol=1e-3)

    # path MLP1 -> MLP3 with its mean, by hand
    mlp1 = cache[C.hook("mlp_out", 1)][:, s]
    delta = mlp1.mean(0)[None] - mlp1
    model.set_use_hook_mlp_in(True)
    try:
        path = C.run_jobs(model, pr.tokens, 0, 6, [(C.Edit(C.hook("mlp_in", 3), s, delta,
                                                           add=True),)], 5, readout)["ld"][0]

        def add(act, hook):  # noqa: ANN001, ANN202
            act[:, s] += delta
            return act
        want = ld_of(model, pr, [(C.hook("mlp_in", 3), add)])
    finally:
        model.set_use_hook_mlp_in(False)
    assert torch.allclose(path, want, atol=1e-4)


def test_head_attribution_matches_transformer_lens(tiny):
    _, model, prompts = tiny
    clean = C.clean_run(model, prompts, batch_size=16)
    heads = CS.head_attribution(model, clean, prompts)
    _, cache = model.run_with_cache(prompts.tokens)
    res, labels = cache.stack_head_results(layer=-1, pos_slice=prompts.final_pos,
                                           apply_ln=True, return_labels=True)
    U = CS.answer_directions(model, prompts.answer_ids)  # [d, a]
    want = (res @ U)[..., :].gather(  # [head, n, a] -> correct answer
        -1, prompts.labels[None, :, None].expand(res.shape[0], -1, 1))[..., 0].mean(1)
    assert torch.allclose(heads.dla.flatten(), want, atol=1e-4)
    assert labels[int(want.argmax())] == f"L{heads.top[0]}H{heads.top[1]}"
    patt = cache["pattern", 3][:, :, prompts.final_pos, prompts.last_pos].mean(0)
    assert torch.allclose(heads.attention_to_surname[3], patt, atol=1e-5)
    # the logits of the clean pass are the model's
    ref = model(prompts.tokens)[:, prompts.final_pos]
    assert torch.allclose(clean.logits, ref, atol=1e-4)


def test_effective_model_keeps_and_ablates_what_it_says(tiny):
    _, model, prompts = tiny
    clean = C.clean_run(model, prompts, batch_size=16)
    # nothing ablated: the effective model is the full model
    keep_all = settings(token_attn_layers=(0, 1, 2, 3), embedding_mlps=(0,))
    assert CS.effective_edits(keep_all, clean, prompts, len(prompts), False) == ()
    eff = CS.effective_model(model, prompts, clean, keep_all, batch_size=16)
    assert torch.allclose(eff.resid[0, :, 3], clean.resid_post[:, 3, 1], atol=1e-4)
    # the default mapping: attention 1-3 and no MLP but 0-3 ablated at both name positions
    s = settings()
    edits = CS.effective_edits(s, clean, prompts, len(prompts), ablate_lookup=False)
    assert {(e.hook, e.pos) for e in edits} == {
        (C.hook("attn_out", layer), p) for layer in (1, 2, 3)
        for p in (prompts.first_pos, prompts.last_pos)}
    more = CS.effective_edits(s, clean, prompts, len(prompts), ablate_lookup=True)
    assert len(more) == len(edits) + 6
    eff = CS.effective_model(model, prompts, clean, s, batch_size=16)
    # the ablated attention output at the surname equals its mean over the prompts
    assert not torch.allclose(eff.resid[0, :, 3], clean.resid_post[:, 3, 1], atol=1e-3)
    assert torch.allclose(eff.resid[0, :, 0], clean.resid_post[:, 0, 1], atol=1e-5)


def test_analyse_is_deterministic_and_consistent(tiny):
    _, model, prompts = tiny
    s = settings()
    res = CR.analyse(model, prompts, s, batch_size=16)
    m = CR.summary_metrics(res, s)
    acc = float((answer_logits(model, prompts, 64).argmax(-1) == prompts.labels).float().mean())
    assert m["effective"]["full_model_answer"] == pytest.approx(acc)
    p = res.patching
    assert p.effect.shape == (3, 6, len(p.positions)) and p.clean_logit_diff > p.corrupt_logit_diff
    # the final token is the same in both runs: its embedding cannot matter
    assert p.effect[0, 0, -1].abs() < 1e-5
    # patching the whole residual after the last layer at the final token is the corrupted run
    assert p.effect[0, 5, -1] > 0.5
    pp = res.paths
    assert pp.clean["kl"] == pytest.approx(0.0, abs=1e-5)
    assert pp.clean["sport_accuracy"] == pytest.approx(acc)
    assert torch.isnan(pp.matrices["kl"][1, 0]) and pp.matrices["kl"][0, 1] >= 0
    assert set(res.probes.accuracy) == {"summed_tokens", "full_0", "full_2", "full_5",
                                        "effective_1", "effective_2", "effective_3",
                                        "effective_no_lookup"}
    again = CR.summary_metrics(CR.analyse(model, prompts, s, batch_size=16), s)
    assert json.dumps(again) == json.dumps(m)  # deterministic on CPU, and no timings inside
    other = CR.summary_metrics(CR.analyse(model, prompts, s, batch_size=7), s)
    for key in ("clean_logit_diff", "resid_surname_lookup", "mlp_surname_lookup_share"):
        assert other["patching"][key] == pytest.approx(m["patching"][key], abs=1e-4)
    assert other["path_patching"]["max_kl"] == pytest.approx(m["path_patching"]["max_kl"],
                                                             rel=1e-3, abs=1e-6)


def test_read_at_the_final_token(tiny):
    """read_position final: ablations, probes and paths at the final token; read after the
    last layer through the unembedding, the readout is the model's own answer."""
    _, model, prompts = tiny
    s = settings(read_position="final", token_attn_layers=(0, 3), lookup_mlps=(1, 2, 4, 5),
                 probe_layers=(5,))
    clean = C.clean_run(model, prompts, batch_size=32)
    edits = CS.effective_edits(s, clean, prompts, len(prompts), ablate_lookup=False)
    assert {(e.hook, e.pos) for e in edits} == {
        (C.hook(c, layer), p) for c, layer in [("attn_out", 1), ("attn_out", 2),
                                               ("attn_out", 4), ("attn_out", 5),
                                               ("mlp_out", 3)]
        for p in (prompts.first_pos, prompts.last_pos, prompts.final_pos)}
    res = CR.analyse(model, prompts, s, batch_size=32)
    eff = res.effective_accuracy
    assert eff["full_model_head"] == pytest.approx(eff["full_model_answer"])
    assert res.paths.clean["head_probe_accuracy"] == pytest.approx(eff["full_model_answer"])
    assert set(res.probes.accuracy) >= {"full_5", "effective_4", "effective_5"}
    m = CR.summary_metrics(res, s)
    assert m["read_position"] == "final"
    assert set(m["path_patching"]["pairs"]) == {"1_2", "1_4", "1_5", "2_4", "2_5", "4_5"}


def test_attention_knockout_matches_hooked_runs(tiny):
    """Each knockout predicts what a hand-written run blocking the same scores predicts (labels
    set to that run's answers: accuracy 1), and blocking moves the logits; with no layer
    blocked (locus_layer = the last layer: no later layers) it is the clean run."""
    from replications.fact_finding.locus import attention_knockout, knockout_jobs

    _, model, prompts = tiny
    L, e = model.cfg.n_layers, prompts.final_pos
    with torch.no_grad():
        clean_ans = model(prompts.tokens)[:, e][:, prompts.answer_ids]
    _, clean = attention_knockout(model, prompts, 2, batch_rows=50)
    assert clean == pytest.approx(float((clean_ans.argmax(-1) == prompts.labels).float().mean()))
    keys = {"surname": prompts.last_pos, "first": prompts.first_pos}
    for name, (where, layers) in knockout_jobs(L, 2).items():
        def block(scores, hook, key=keys[where]):  # noqa: ANN001
            scores[:, :, e, key] = float("-inf")
            return scores
        hooks = [(f"blocks.{layer}.attn.hook_attn_scores", block) for layer in layers]
        with torch.no_grad(), model.hooks(fwd_hooks=hooks):
            ans = model(prompts.tokens)[:, e][:, prompts.answer_ids]
        assert (ans - clean_ans).abs().max() > 1e-3, name  # the knockout does something
        relabelled = dataclasses.replace(prompts, labels=ans.argmax(-1))
        got, _ = attention_knockout(model, relabelled, 2, batch_rows=50)
        assert got[name] == 1.0, name
    mine = dataclasses.replace(prompts, labels=clean_ans.argmax(-1))
    none_late, _ = attention_knockout(model, mine, L - 1, batch_rows=64)
    assert none_late["surname_late"] == 1.0


def test_one_answer_only_skips_patching(tiny, capsys):
    """A small profile's model may know one sport only: patching is NaN, the rest runs."""
    _, model, prompts = tiny
    same = dataclasses.replace(prompts.subset(range(12)), labels=torch.zeros(12, dtype=torch.long))
    p = CS.activation_patching(model, same, settings(), batch_size=16)
    assert torch.isnan(p.effect).all() and "patching skipped" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_paper_settings_on_a_deep_tiny_model(tiny, dtype):
    """The paper profile's circuit section (attention 0-1, MLPs 2-6 at the surname, L16H20,
    probes after layers 0-12) on a random 17-layer, 21-head model, in float32 and bfloat16."""
    from replications.fact_finding import config as ff_config

    _, small, prompts = tiny
    s = dataclasses.replace(ff_config.load("paper").circuit, dtype=dtype, n_patch_prompts=6,
                            probe_max_iter=30, probe_splits=2)
    cfg = LMConfig(n_layers=17, d_model=32, d_mlp=64, n_heads=21, d_head=4, act_fn="gelu",
                   normalization_type="LN", positional_embedding_type="rotary", rotary_dim=4,
                   parallel_attn_mlp=True, n_ctx=32)
    model = lm.build_model(cfg, small.cfg.d_vocab, seed=1)
    model.requires_grad_(False)
    with torch.no_grad():
        for p in model.parameters():  # as the fixture's model: answers vary with the name
            p.mul_(3.0) if p.ndim > 1 else p.add_(0.3 * torch.randn_like(p))
    prompts = prompts.subset(range(30))
    logits = answer_logits(model, prompts, 64)
    prompts = dataclasses.replace(prompts, labels=(logits - logits.mean(0)).argmax(-1))
    if dtype != "float32":
        model.to(s.torch_dtype)
    res = CR.analyse(model, prompts, s, batch_size=32)
    m = CR.summary_metrics(res, s)
    assert res.head == (16, 20) and m["attribute_head"]["reference_rank"] >= 1
    assert res.patching.effect.shape == (3, 17, len(res.patching.positions))
    assert set(m["path_patching"]["pairs"]) == {f"{i}_{j}" for i in range(2, 7)
                                                for j in range(i + 1, 7)}
    assert all(math.isfinite(v) for v in m["effective"].values())
    assert {f"full_{layer}" for layer in range(13)} <= set(m["probes"])


def test_script_writes_metrics_and_figures(tiny, tmp_path, capsys):
    """The script under the smoke profile (lookup MLPs 1-3, top-DLA head), in process."""
    from replications.fact_finding.scripts import circuit as script

    root, _, _ = tiny
    fig = tmp_path / "fig"
    names = ("patching", "heads", "effective", "probes", "paths", "locus")
    common = ["--profile", "smoke", "--model", str(root / "lm"), "--threads", "1",
              *[x for n in names for x in (f"--{n}-figure", str(fig / f"{n}.png"))]]
    script.main([*common, "--facts", str(root / "facts.json"), "--out-dir", str(tmp_path / "c")])
    m = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert {"patching", "attribute_head", "effective", "probes", "path_patching",
            "prior_context", "locus"} <= set(m)
    prior = m["prior_context"]
    assert prior["n_prompts"] == m["n_prompts"] and -1 <= prior["same_name_cosine"] <= 1
    assert math.isfinite(m["path_patching"]["kl_over_random"])
    assert m["n_prompts"] == 64 and m["patching"]["n_prompts"] == 24
    labels = json.loads((tmp_path / "c" / "circuit.json").read_text())
    assert labels["position_labels"][:2] == ["first name", "surname"]
    assert (tmp_path / "c" / "circuit.safetensors").is_file()
    for n in names:
        assert (fig / f"{n}.png").stat().st_size > 10_000 and (fig / f"{n}.pdf").is_file()
    assert "none.json" in user_error(capsys, lambda: script.main(
        [*common, "--facts", str(tmp_path / "none.json"), "--out-dir", str(tmp_path / "bad")]))

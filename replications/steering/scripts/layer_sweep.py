"""Where along the depth does front-position steering work? Both ActAdd vectors at each layer.

    python -m replications.steering.scripts.layer_sweep --profile P --model SPEC --out FILE.json

For each experiment (anger at its coefficient, weddings at its coefficient) and each layer of
`layer_sweep.layers`: the ActAdd vector of that layer's `hook_resid_pre`, added at the front
positions, `layer_sweep.n_seeds` completions; plus as many unsteered ones. One batched,
KV-cached generation per experiment covers every layer (a row carries its vector at its own
layer and zeros elsewhere). Writes P(successful rollout) per layer and the unsteered P.
"""

from __future__ import annotations

import time

import torch

from replications.steering.actadd import actadd_vector, cue_patching, encode, make_pair
from replications.steering.config import VOCAB_DIR
from replications.steering.evaluation import load_vocab, matched_words
from replications.steering.sampling import Sampler, completion_texts, generate_multi, seed_uniforms
from replications.steering.scripts._common import open_inputs, parser
from shared.cli import add_paths, log, run, user_errors
from shared.config import ConfigError
from shared.io import write_json


def _fmt(xs: list[float]) -> str:
    return "[" + ", ".join(f"{x:.2f}" for x in xs) + "]"


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0], tokens=False), "out")
    args, cfg, model, _ = open_inputs(p, argv)
    with user_errors():
        layers = cfg.layer_sweep.layers
        if layers[-1] >= model.cfg.n_layers:
            raise ConfigError(f"layer_sweep.layers: the model has {model.cfg.n_layers} layers")
    s, n = cfg.sampling, cfg.layer_sweep.n_seeds
    sampler = Sampler(s.temperature, s.top_p, s.freq_penalty, s.candidates)
    tok, eos = model.tokenizer, model.tokenizer.eos_token_id
    sw = cfg.layer_sweep
    at_depth = sw.writeup_depth_layer(model.cfg.n_layers)
    out: dict = {"layers": list(layers), "steered_layer": cfg.model.layer,
                 "n_layers": model.cfg.n_layers, "n_seeds": n,
                 "writeup_depth": sw.writeup_layer / sw.writeup_n_layers,
                 "writeup_depth_layer": at_depth}
    t0 = time.perf_counter()
    for name, e in (("anger", cfg.anger), ("weddings", cfg.weddings)):
        pair = make_pair(tok, e.positive, e.negative)
        groups = len(layers) + 1  # group 0: unsteered
        steering = []
        for g, layer in enumerate(layers, start=1):
            vec = actadd_vector(model, pair, f"blocks.{layer}.hook_resid_pre").vector
            v = torch.zeros(groups * n, *vec.shape)
            v[g * n:(g + 1) * n] = e.coeff * vec
            steering.append((f"blocks.{layer}.hook_resid_pre", v))
        uniforms = seed_uniforms(torch.arange(n).repeat(groups) + s.seed, s.new_tokens)
        gen = generate_multi(model, torch.tensor(encode(tok, e.prompt)), steering, uniforms,
                             sampler, eos, decoder=s.decoder)
        vocab = load_vocab(VOCAB_DIR / e.vocab)
        hits = [bool(matched_words(t, vocab)) for t in completion_texts(tok, gen.tokens, eos)]
        p_group = [sum(hits[g * n:(g + 1) * n]) / n for g in range(groups)]
        recovered = cue_patching(model, pair, encode(tok, e.prompt))
        out[name] = {"coeff": e.coeff, "unsteered": p_group[0], "p_success": p_group[1:],
                     "gain": [x - p_group[0] for x in p_group[1:]],
                     "gain_at_steered_layer": p_group[1 + layers.index(cfg.model.layer)]
                     - p_group[0],
                     "gain_at_writeup_depth": p_group[1 + layers.index(at_depth)] - p_group[0],
                     "cue_patch_recovered": recovered.tolist()}
    write_json(args.out, out)
    log(f"layers {list(layers)}: anger P {out['anger']['p_success']} "
        f"(unsteered {out['anger']['unsteered']:.2f}), weddings P "
        f"{out['weddings']['p_success']} (unsteered {out['weddings']['unsteered']:.2f}); "
        f"cue patching recovers, by layer: anger {_fmt(out['anger']['cue_patch_recovered'])}, "
        f"weddings {_fmt(out['weddings']['cue_patch_recovered'])}, "
        f"{time.perf_counter() - t0:.1f} s -> {args.out}")


if __name__ == "__main__":
    run(main)

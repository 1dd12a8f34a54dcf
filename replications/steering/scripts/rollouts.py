"""Sample steered completions for every condition and count target vocabulary (P(success)).

    python -m replications.steering.scripts.rollouts --profile P --model SPEC
        --vectors DIR --out FILE.json [--threads N]

All conditions x seeds of an experiment go through `sampling.generate` in batches of
`sampling.batch_rows` (one KV cache each). Completion j of every condition uses seed
`sampling.seed + j`. Writes, per experiment and condition, every completion, its matched
vocabulary words, P(successful rollout) and the mean number of vocabulary words.
"""

from __future__ import annotations

import time

import torch
from tqdm import tqdm

from replications.steering.config import VOCAB_DIR
from replications.steering.evaluation import load_vocab, matched_words
from replications.steering.sampling import Sampler, completion_texts, generate, seed_uniforms
from replications.steering.scripts._common import load_vectors, open_inputs, parser
from shared.cli import add_paths, log, run
from shared.io import write_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0], tokens=False),
                  vectors="the steer_vectors directory", out=None)
    args, cfg, model, _ = open_inputs(p, argv)
    tensors, analysis = load_vectors(args.vectors)
    s = cfg.sampling
    sampler = Sampler(s.temperature, s.top_p, s.freq_penalty, s.candidates)
    eos = model.tokenizer.eos_token_id
    seeds = torch.arange(s.n_seeds) + s.seed
    uniforms = seed_uniforms(seeds, s.new_tokens)
    out, total, t0 = {}, 0, time.perf_counter()
    for name, vocab_file in (("anger", cfg.anger.vocab), ("weddings", cfg.weddings.vocab)):
        vocab = load_vocab(VOCAB_DIR / vocab_file)
        vectors, prompt = tensors[f"{name}/vectors"], tensors[f"{name}/prompt"]
        conds = analysis[name]["conditions"]
        # Rows: condition-major, seed-minor.
        cond_idx = torch.arange(len(conds)).repeat_interleave(s.n_seeds)
        seed_idx = torch.arange(s.n_seeds).repeat(len(conds))
        texts: list[str] = []
        for start in tqdm(range(0, len(cond_idx), s.batch_rows), desc=f"steer rollouts {name}"):
            rows = slice(start, start + s.batch_rows)
            gen = generate(model, prompt, vectors[cond_idx[rows]], uniforms[seed_idx[rows]],
                           cfg.model.hook_name, sampler, eos, decoder=s.decoder)
            texts += completion_texts(model.tokenizer, gen.tokens, eos)
        total += len(texts)
        results = []
        for c, cond in enumerate(conds):
            mine = texts[c * s.n_seeds:(c + 1) * s.n_seeds]
            matched = [matched_words(t, vocab) for t in mine]
            hits = sum(bool(m) for m in matched)
            results.append({**cond, "n": len(mine), "n_success": hits,
                            "p_success": hits / len(mine),
                            "mean_vocab_count": sum(map(len, matched)) / len(mine),
                            "completions": mine, "matched": matched})
        out[name] = {"prompt": model.tokenizer.decode(prompt[1:].tolist()),
                     "conditions": results}
    seconds = time.perf_counter() - t0
    write_json(args.out, out)
    log(f"{total} completions of {s.new_tokens} tokens in {seconds:.1f} s "
        f"({total / seconds:.1f} completions/s) -> {args.out}")


if __name__ == "__main__":
    run(main)

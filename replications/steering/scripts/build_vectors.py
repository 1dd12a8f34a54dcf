"""Build every steering condition: the ActAdd vectors, their SAE decompositions, SAE variants.

    python -m replications.steering.scripts.build_vectors --profile P --model SPEC
        --tokens FILE --sae DIR --out-dir DIR [--threads N]

Writes --out-dir/vectors.safetensors (per experiment: `<exp>/vectors` [conditions, n,
d_model] and `<exp>/prompt` token ids) and analysis.json (per experiment: the conditions
(method, coefficient, norm), the decompositions, and labels of every feature named: top tokens
over training rows, firing frequency; for the anger feature also its
top contexts and direct logit effects). Top tokens: largest mean activation among tokens seen
at least `analysis.profile_min_count` times.
"""

from __future__ import annotations

from replications.steering import features as F
from replications.steering import vectors as E
from replications.steering.scripts._common import open_inputs, parser
from shared.activations import model_device
from shared.cli import add_paths, log, run, user_errors
from shared.io import save_tensors, write_json
from shared.sae_io import load_sae


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0]),
                  sae="the SAE: its model-zoo folder or a SAELens directory", out_dir=None)
    args, cfg, model, rows = open_inputs(p, argv)
    with user_errors():
        loaded = load_sae(args.sae, model_device(model))
        if loaded.frequency is None:
            raise FileNotFoundError(f"{args.sae}: no firing frequencies (frequency.safetensors "
                                    "or sparsity.safetensors)")
    sae, freq = loaded.sae, loaded.frequency.float().cpu()
    anger, anger_info = E.build_anger(model, sae, freq, cfg)
    weddings, wed_info = E.build_weddings(model, sae, freq, cfg)

    feats = E.mentioned_features(anger_info, wed_info)
    by_token, acts = F.feature_profiles(model, sae, rows.profile, cfg.model.hook_name, feats,
                                        cfg.sae_run.eval_batch_rows, cfg.sae_run.drop_bos)
    tok, a = model.tokenizer, cfg.analysis
    counts = F.token_counts(rows.profile, model.cfg.d_vocab, cfg.sae_run.drop_bos)
    labels = {str(f): {"top_tokens": F.top_tokens(tok, by_token[i], counts,
                                                  a.profile_top_tokens, a.profile_min_count),
                       "frequency": float(freq[f])} for i, f in enumerate(feats)}
    top = anger_info["anger_feature"]["feature"]
    i = feats.index(top)
    anger_info["anger_feature_contexts"] = F.top_contexts(
        tok, rows.profile, acts[i], a.n_contexts, a.context_before, a.context_after)
    anger_info["anger_feature_logits"] = F.direct_logits(
        model, tok, F.decoder(sae)[top], a.n_logit_tokens)

    tensors, out = {}, {"labels": labels}
    for exp, info in ((anger, anger_info), (weddings, wed_info)):
        tensors[f"{exp.name}/vectors"] = exp.stacked()
        tensors[f"{exp.name}/prompt"] = exp.prompt
        out[exp.name] = {**info, "methods": exp.methods, "conditions": exp.conditions}
    save_tensors(args.out_dir / "vectors.safetensors", tensors)
    write_json(args.out_dir / "analysis.json", out)
    af = anger_info["anger_feature"]
    log(f"anger: {len(anger.conditions)} conditions; feature {af['feature']} "
        f"(activation {af['activation']:.2f}, {100 * af['l1_share']:.0f}% of L1 on "
        f"{anger_info['decomposed_token']!r}; top tokens "
        f"{[t for t, _ in labels[str(af['feature'])]['top_tokens']]}); weddings: "
        f"{len(weddings.conditions)} conditions, padding features "
        f"{[d['feature'] for d in wed_info['padding_features']]} -> {args.out_dir}",)


if __name__ == "__main__":
    run(main)

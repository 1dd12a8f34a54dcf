"""Vocabulary counts of the stand-in corpus and how the prompts tokenize (stand-in only).

    python -m replications.steering.scripts.corpus_report --profile P --corpus-dir DIR
        --docs DOCS.jsonl --tokenizer-dir DIR --out FILE.json

Counts every anger and wedding word (the rollout metric's own counting) in the training split,
separately for the synthetic documents and the ordinary prose, and in the held-out split (the
spliced-loss text); counts how often each steering prompt occurs; lists the tokens of every
prompt (e.g. whether 'Anger' is one token or two, as in GPT-2) and checks the padding space is
one token.
"""

from __future__ import annotations

import json
import sys

from replications.steering.config import VOCAB_DIR
from replications.steering.docs import SOURCE
from replications.steering.evaluation import load_vocab, vocab_counts
from replications.steering.scripts._common import parser, setup
from shared.cli import add_paths, parse_and_setup, run
from shared.corpus import read_documents
from shared.io import read_json, write_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0], model=False, tokens=False),
                  "corpus_dir", docs="the synthetic documents", tokenizer_dir=None, out=None)
    args, cfg = parse_and_setup(p, argv, setup)
    from transformers import AutoTokenizer

    from replications.steering.actadd import encode, single_token, token_strings

    train = read_documents(args.corpus_dir / "train.txt")
    val = read_documents(args.corpus_dir / "val.txt")
    manifest = read_json(args.corpus_dir / "manifest.json")
    n_synthetic = int(manifest["extra"].get(SOURCE, {}).get("docs", 0))
    synthetic_bytes = int(manifest["extra"].get(SOURCE, {}).get("bytes", 0))
    # The corpus files do not say where a document came from: split by membership.
    synth_texts = {json.loads(line)["text"].strip("\n")
                   for line in args.docs.read_text(encoding="utf-8").splitlines() if line}
    synth = [t for t in train if t in synth_texts]
    prose = [t for t in train if t not in synth_texts]
    tok = AutoTokenizer.from_pretrained(str(args.tokenizer_dir))
    report: dict = {"documents": {"synthetic": len(synth), "prose_train": len(prose),
                                  "val": len(val), "synthetic_in_manifest": n_synthetic},
                    "bytes": {"synthetic": synthetic_bytes,
                              "prose_train": sum(len(t.encode()) for t in prose),
                              "val": sum(len(t.encode()) for t in val)}}
    for name, fname in (("anger", cfg.anger.vocab), ("wedding", cfg.weddings.vocab)):
        vocab = load_vocab(VOCAB_DIR / fname)
        parts = {"synthetic": vocab_counts(synth, vocab), "prose_train": vocab_counts(prose, vocab),
                 "val": vocab_counts(val, vocab)}
        report[f"{name}_words"] = {k: sum(v.values()) for k, v in parts.items()}
        report[f"{name}_word_counts"] = parts
    joined = "\n".join(train)
    phrases = {"anger_positive": cfg.anger.positive, "anger_negative": cfg.anger.negative,
               "anger_prompt": cfg.anger.prompt, "weddings_positive": cfg.weddings.positive,
               "weddings_negative": cfg.weddings.negative, "weddings_prompt": cfg.weddings.prompt}
    report["phrase_counts"] = {k: joined.count(v) for k, v in phrases.items()}
    report["tokens"] = {k: token_strings(tok, encode(tok, v)) for k, v in phrases.items()}
    report["space_token"] = single_token(tok, " ")
    write_json(args.out, report)
    print(f"corpus report: anger words {report['anger_words']}, wedding words "
          f"{report['wedding_words']} -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    run(main)

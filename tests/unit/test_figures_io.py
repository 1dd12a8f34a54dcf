"""Figures are byte-identical on rerun and carry provenance; atomic I/O round-trips."""

import numpy as np
import pytest
import torch

from shared.figures import Provenance, apply_style, read_png_provenance, save_figure
from shared.io import load_tensors, read_json, save_tensors, write_json

pytestmark = pytest.mark.unit


def _figure():
    import matplotlib.pyplot as plt

    apply_style()
    fig, ax = plt.subplots(figsize=(3, 2))
    x = np.linspace(0, 1, 50)
    ax.plot(x, x**2, label="x²")
    ax.imshow(np.outer(x, x), extent=(0, 0.3, 0, 0.3))
    ax.legend()
    ax.set_title("determinism")
    return fig


def test_save_figure_is_byte_identical(tmp_path):
    prov = Provenance(writeup="w", profile="smoke", config_hash="abc", commit="deadbeef")
    a = save_figure(_figure(), tmp_path / "a" / "f.png", prov)
    b = save_figure(_figure(), tmp_path / "b" / "f.png", prov)
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.suffix
    assert a[1].suffix == ".pdf" and a[1].stat().st_size > 1000
    assert read_png_provenance(a[0]) == prov.as_text()
    assert b"CreationDate" not in a[1].read_bytes()


def test_save_figure_rejects_non_png(tmp_path):
    prov = Provenance("w", "smoke", "abc", "x")
    with pytest.raises(ValueError, match="must end in .png"):
        save_figure(_figure(), tmp_path / "f.pdf", prov)


def test_tensor_and_json_roundtrip(tmp_path):
    t = {"w": torch.arange(6.0).reshape(2, 3), "i": torch.tensor([1, 2])}
    save_tensors(tmp_path / "t.safetensors", t, {"k": "v"})
    back = load_tensors(tmp_path / "t.safetensors")
    assert all(torch.equal(t[k], back[k]) for k in t)
    write_json(tmp_path / "m.json", {"b": np.float32(0.5), "a": [torch.tensor(1.0)], "n": float("nan")})
    assert read_json(tmp_path / "m.json") == {"a": [1.0], "b": 0.5, "n": None}
    assert not list(tmp_path.glob(".*.tmp"))


def test_missing_input_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing input"):
        load_tensors(tmp_path / "nope.safetensors")


def test_tensor_files_are_byte_stable_with_metadata(tmp_path):
    from shared.io import load_metadata

    t = {"a": torch.ones(3), "b": torch.zeros(2, 2)}
    meta = {f"key{i}": str(i) for i in range(8)}
    blobs = set()
    for i in range(4):
        save_tensors(tmp_path / f"{i}.safetensors", t, meta)
        blobs.add((tmp_path / f"{i}.safetensors").read_bytes())
    assert len(blobs) == 1
    assert load_metadata(tmp_path / "0.safetensors") == meta

"""Random draws with an explicit generator cannot put a generator on one device and the tensor it
fills on another (the crash that killed SAE resampling on CUDA).

Two rules, checked on the source of every module: a draw that fills an existing tensor
(`x.uniform_(..., generator=g)`, `torch.multinomial(w, ..., generator=g)`, ...) happens on the
tensor's device, and a factory given both `device=` and `generator=` trusts the caller to match
them; both are allowed only inside `shared/runtime.py`, whose helpers draw on the generator's
device and move the result. The helpers themselves are tested here on the CPU (and against a
second device, 'meta', for the move); tests/integration/test_sae_cuda.py runs them on CUDA."""

import ast
from pathlib import Path

import pytest
import torch

from shared import runtime

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {ROOT / "shared" / "runtime.py"}
# Draws whose device is the device of a tensor they are given, not the generator's.
TENSOR_DEVICE_DRAWS = {"multinomial", "bernoulli", "poisson", "normal", "rand_like",
                       "randn_like", "randint_like"}


def _violations(path: Path, root: Path = ROOT) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        keywords = {k.arg for k in node.keywords}
        if "generator" not in keywords:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        where = f"{path.relative_to(root)}:{node.lineno}"
        if name.endswith("_") or name in TENSOR_DEVICE_DRAWS:
            out.append(f"{where}: {name}(generator=...) draws on the tensor's device")
        elif "device" in keywords:
            out.append(f"{where}: {name}(device=..., generator=...) can mix devices")
    return out


def test_no_module_draws_across_devices() -> None:
    files = [p for d in ("shared", "replications", "benchmarks")
             for p in sorted((ROOT / d).rglob("*.py")) if p not in ALLOWED]
    assert len(files) > 50
    bad = [v for p in files for v in _violations(p)]
    assert not bad, "use shared.runtime.uniform_/rand/multinomial:\n" + "\n".join(bad)


def test_the_check_catches_the_cuda_resampling_bug(tmp_path: Path) -> None:
    # The pre-fix shape of the SAE trainer's resampling, and a factory naming both devices.
    src = tmp_path / "old.py"
    src.write_text("def f(w, gen, weights):\n"
                   "    w.uniform_(-1, 1, generator=gen)\n"
                   "    torch.multinomial(weights, 3, replacement=True, generator=gen)\n"
                   "    torch.rand(3, generator=gen, device=w.device)\n"
                   "    torch.rand(3, generator=gen)\n")
    found = _violations(src, root=tmp_path)
    assert [v.split(": ")[0] for v in found] == ["old.py:2", "old.py:3", "old.py:4"]


def test_uniform_fills_another_devices_tensor_with_the_same_numbers() -> None:
    cpu = torch.empty(4, 5)
    runtime.uniform_(cpu, -0.5, 0.5, torch.Generator().manual_seed(3))
    expected = torch.empty(4, 5).uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(cpu, expected)
    meta = torch.empty(4, 5, device="meta")
    assert runtime.uniform_(meta, -0.5, 0.5, torch.Generator().manual_seed(3)).device.type == "meta"
    # Without a generator: the global RNG, in place.
    torch.manual_seed(0)
    assert runtime.uniform_(torch.zeros(3), 0.0, 1.0, None).abs().sum() > 0


def test_rand_and_multinomial_follow_the_generator_then_the_target() -> None:
    a = runtime.rand((2, 3), torch.Generator().manual_seed(1), "cpu")
    b = torch.rand((2, 3), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert runtime.rand((2, 3), torch.Generator().manual_seed(1), "meta").device.type == "meta"
    w = torch.tensor([0.0, 1.0, 0.0, 3.0])
    idx = runtime.multinomial(w, 50, torch.Generator().manual_seed(2))
    assert idx.device == w.device and set(idx.tolist()) <= {1, 3}
    assert torch.equal(idx, torch.multinomial(w, 50, replacement=True,
                                              generator=torch.Generator().manual_seed(2)))

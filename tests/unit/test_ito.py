"""Batched gradient pursuit against a per-input reference; sparse recovery; top-k codes."""

import numpy as np
import pytest
import torch

from shared.ito import gradient_pursuit, topk_codes

pytestmark = pytest.mark.unit


def reference_pursuit(signal: np.ndarray, dictionary: np.ndarray, target_l0: int,
                      refine_steps: int = 0, nonnegative: bool = True) -> np.ndarray:
    """The write-up's pseudocode, one input at a time, in float64 numpy."""
    weights = np.zeros(dictionary.shape[0])
    for it in range(target_l0 + refine_steps):
        residual = signal - weights @ dictionary
        selected = weights != 0
        inner = dictionary @ residual
        if it < target_l0:
            selected[np.argmax(inner if nonnegative else np.abs(inner))] = True
        grad = np.where(selected, inner, 0.0)
        c = grad @ dictionary
        if c @ c == 0:
            continue
        weights = weights + (c @ residual) / (c @ c) * grad
        if nonnegative:
            weights = np.maximum(weights, 0.0)
    return weights


def _random_dictionary(n: int, d: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    atoms = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return atoms / atoms.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("nonnegative", [True, False])
@pytest.mark.parametrize("refine_steps", [0, 3])
@pytest.mark.parametrize("n_atoms,d,max_l0", [(96, 24, 12), (200, 8, 20)])
def test_batched_matches_per_input_reference(nonnegative, refine_steps, n_atoms, d, max_l0):
    # The second shape is very overcomplete: atoms are selected again while active and after
    # clipping zeroed them, which the batched form's slot bookkeeping must reproduce.
    dictionary = _random_dictionary(n_atoms, d, 0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(40, d, generator=gen, dtype=torch.float64).abs()
    targets = torch.randint(0, max_l0, (40,), generator=gen)
    got = gradient_pursuit(x, dictionary, targets, refine_steps=refine_steps,
                           nonnegative=nonnegative)
    for row in range(40):
        ref = reference_pursuit(x[row].numpy(), dictionary.numpy(), int(targets[row]),
                                refine_steps, nonnegative)
        np.testing.assert_allclose(got[row].numpy(), ref, rtol=1e-9, atol=1e-12,
                                   err_msg=f"row {row}")
    # A shared int target equals a tensor of that target.
    torch.testing.assert_close(gradient_pursuit(x, dictionary, 5),
                               gradient_pursuit(x, dictionary, torch.full((40,), 5)))


def _sparse_codes(batch: int, n: int, k: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    codes = torch.zeros(batch, n, dtype=torch.float64)
    for row in range(batch):
        support = torch.randperm(n, generator=gen)[:k]
        codes[row, support] = 0.5 + torch.rand(k, generator=gen, dtype=torch.float64)
    return codes


def test_exact_recovery_on_an_orthonormal_dictionary():
    q, _ = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(2),
                                       dtype=torch.float64))
    codes = _sparse_codes(50, 32, 6, seed=3)
    got = gradient_pursuit(codes @ q.T, q.T.contiguous(), 6)  # atoms: the columns of q
    torch.testing.assert_close(got, codes, rtol=1e-10, atol=1e-10)


def test_recovery_on_an_incoherent_overcomplete_dictionary():
    dictionary = _random_dictionary(512, 256, 4)
    gram = dictionary @ dictionary.T
    assert (gram - torch.eye(512, dtype=torch.float64)).abs().max() < 0.35  # incoherent
    codes = _sparse_codes(40, 512, 4, seed=5)
    x = codes @ dictionary
    got = gradient_pursuit(x, dictionary, 4)
    assert torch.equal(got != 0, codes != 0)  # the support, after exactly 4 selections
    refined = gradient_pursuit(x, dictionary, 4, refine_steps=50)
    torch.testing.assert_close(refined, codes, rtol=1e-6, atol=1e-6)
    # An uncorrelated random dictionary cannot reconstruct the same inputs.
    other = _random_dictionary(512, 256, 6)
    err = (x - gradient_pursuit(x, other, 4) @ other).norm(dim=-1) / x.norm(dim=-1)
    assert err.min() > 0.5


@pytest.mark.parametrize("refine_steps", [0, 10])
def test_l0_never_exceeds_the_target(refine_steps):
    dictionary = _random_dictionary(200, 16, 7)  # very overcomplete: atoms compete
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(300, 16, generator=gen, dtype=torch.float64).abs()
    targets = torch.randint(0, 20, (300,), generator=gen)
    got = gradient_pursuit(x, dictionary, targets, refine_steps=refine_steps)
    l0 = (got != 0).sum(-1)
    assert bool((l0 <= targets).all()) and bool((got >= 0).all())
    assert bool((l0[targets > 0] > 0).all())  # something is selected when allowed
    # More atoms never make the reconstruction worse.
    errs = [(x - gradient_pursuit(x, dictionary, k) @ dictionary).norm(dim=-1).mean()
            for k in (1, 2, 4, 8, 16)]
    assert all(b <= a + 1e-12 for a, b in zip(errs, errs[1:]))


def test_float32_matches_float64():
    dictionary = _random_dictionary(64, 20, 9)
    x = torch.randn(30, 20, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    ref = gradient_pursuit(x, dictionary, 6)
    got = gradient_pursuit(x.float(), dictionary.float(), 6)
    torch.testing.assert_close(got.double(), ref, rtol=1e-3, atol=1e-4)


def test_topk_codes_keep_the_largest_per_row():
    gen = torch.Generator().manual_seed(11)
    acts = torch.randn(25, 40, generator=gen).relu()
    ks = torch.randint(0, 45, (25,), generator=gen)
    got = topk_codes(acts, ks)
    for row in range(25):
        k = int(ks[row])
        order = np.argsort(-acts[row].numpy(), kind="stable")[:k]
        ref = np.zeros(40, dtype=np.float32)
        ref[order] = acts[row].numpy()[order]
        np.testing.assert_array_equal(got[row].numpy(), ref)
    assert bool(((got != 0).sum(-1) <= ks).all())
    assert torch.equal(topk_codes(acts, 0), torch.zeros_like(acts))


def test_bad_arguments():
    d = _random_dictionary(8, 4, 0)
    with pytest.raises(ValueError, match="share d"):
        gradient_pursuit(torch.zeros(3, 5, dtype=torch.float64), d, 2)
    with pytest.raises(ValueError, match="non-negative"):
        gradient_pursuit(torch.zeros(3, 4, dtype=torch.float64), d, -1)
    with pytest.raises(ValueError, match="shape"):
        gradient_pursuit(torch.zeros(3, 4, dtype=torch.float64), d, torch.ones(2))


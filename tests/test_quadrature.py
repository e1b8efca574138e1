"""lvm_core.quadrature (the shared lattice with its per-point fallback) against closed forms and brute-force grids.

The brute-force reference is a dense trapezoid grid over a fixed box, written here independently of the module: no
windows, no tiles, no adaptivity. Its own error is far below the 1e-4-nats contract at the spacings used (each case
says why).
"""

import copy
import math

import pytest
import torch

import lvm_core.quadrature as quad
from lvm_core.estimators import (
    ADAPTIVE_GRID,
    CLOSED_FORM,
    EXACT_SUM,
    SHARED_GRID,
    exact_log_marginal,
    exact_marginal,
    exact_method,
)
from lvm_core.models import MLPLVM, GaussianMixtureLVM, LinearGaussianLVM, SeedLVM
from lvm_core.quadrature import integrate_log_marginal, lattice_log_marginal

TOL = 1e-4  # nats per point: the contract of exact_log_marginal


def brute_force_log_marginal(model, x: torch.Tensor, half_width: float, n: int) -> torch.Tensor:
    """log sum_ij p(x, z_ij) h^2 on an n x n grid over [-half_width, half_width]^2 (2-D latent) or n nodes (1-D)."""
    axis = torch.linspace(-half_width, half_width, n, dtype=x.dtype)
    return grid_log_marginal(model, x, [axis] * model.latent_dim)


def grid_log_marginal(model, x: torch.Tensor, axes: list[torch.Tensor]) -> torch.Tensor:
    """log sum_i p(x, z_i) prod_a h_a over the product of evenly spaced axes, one per latent dimension."""
    z = axes[0][:, None] if len(axes) == 1 else torch.cartesian_prod(*axes)
    log_cell = sum(torch.log(a[1] - a[0]) for a in axes)
    acc = torch.full((x.shape[0],), -math.inf, dtype=x.dtype)
    with torch.no_grad():
        for i in range(0, z.shape[0], 4096):
            acc = torch.logaddexp(acc, torch.logsumexp(model.log_joint(x, z[i:i + 4096, None, :]), 0))
    return acc + log_cell


class HiddenClosedForm(torch.nn.Module):
    """A linear-Gaussian model that does not reveal its closed form, so log p(x) must be integrated."""

    discrete = False

    def __init__(self, model: LinearGaussianLVM):
        super().__init__()
        self.inner = model
        self.latent_dim, self.data_dim = model.latent_dim, model.data_dim

    def log_prior(self, z):
        return self.inner.log_prior(z)

    def log_likelihood(self, x, z):
        return self.inner.log_likelihood(x, z)

    def log_joint(self, x, z):
        return self.inner.log_joint(x, z)


class EnumerateOnly(HiddenClosedForm):
    """A discrete-latent model that can list its z values but has no closed form for p(x)."""

    discrete = True

    def enumerate_latents(self):
        return self.inner.enumerate_latents()


class BernoulliToy(torch.nn.Module):
    """z ~ N(0, I_2), x_j | z ~ Bernoulli(sigmoid(logit_j(z))) for 64 binary pixels, logits from a small MLP."""

    discrete = False
    latent_dim, data_dim = 2, 64

    def __init__(self, seed: int = 0, dtype=torch.float64):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = torch.randn(2, 32, generator=g, dtype=dtype)
        self.w2 = torch.randn(32, 64, generator=g, dtype=dtype) / 2
        self.b2 = torch.randn(64, generator=g, dtype=dtype)

    def logits(self, z):
        return torch.tanh(z @ self.w1) @ self.w2 + self.b2

    def log_prior(self, z):
        return -0.5 * (z.pow(2).sum(-1) + 2 * math.log(2 * math.pi))

    def log_likelihood(self, x, z):
        logits = self.logits(z)  # (..., 1, 64) broadcast against x (batch, 64)
        return (x * logits - torch.nn.functional.softplus(logits)).sum(-1)

    def log_joint(self, x, z):
        return self.log_prior(z) + self.log_likelihood(x, z)

    def sample(self, n, seed=0):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, 2, generator=g, dtype=self.w1.dtype)
        return torch.bernoulli(torch.sigmoid(self.logits(z)), generator=g)


def _sharpened(seed: int = 1, dtype=torch.float64, cls=MLPLVM) -> MLPLVM:
    """An MLPLVM with a curvier mu(z) and a small sigma(z): posteriors 0.04-0.1 wide and bent, as after training."""
    model = cls(latent_dim=2, data_dim=2, hidden=32, depth=2, min_scale=0.01, seed=seed, dtype=dtype)
    with torch.no_grad():
        model.net[-1].weight.mul_(5.0)
        model.net[-1].bias[2:] -= 2.5  # the raw log-sigma outputs: sigma(z) shrinks towards min_scale
    return model


# ------------------------------------------------------------------------------------------------- closed forms
def _linear_cases(d: int, sigma: float):
    W = torch.tensor([[1.0, 0.9], [0.8, 1.0], [0.3, -0.2]], dtype=torch.float64)[:, :d]
    model = LinearGaussianLVM(W, torch.zeros(3, dtype=torch.float64), sigma)
    x = model.sample(60, generator=d)[0]
    # posteriors centred at these z: inside the pilot box but far out (6-9 prior SDs), and beyond it (20-30)
    z_far = torch.tensor([[6.0, 6.0], [-8.0, 3.0], [9.0, -2.0], [30.0, -20.0], [-25.0, 5.0]], dtype=torch.float64)
    return model, torch.cat([x, z_far[:, :d] @ W.T])


@pytest.mark.parametrize("sigma", [0.7, 0.05, 0.003])
@pytest.mark.parametrize("d", [1, 2])
def test_matches_the_linear_closed_form_for_many_points_including_far_and_narrow_posteriors(d, sigma):
    model, x = _linear_cases(d, sigma)
    log_px, on_lattice = integrate_log_marginal(model, x)
    torch.testing.assert_close(log_px, model.closed_form_log_marginal(x), atol=TOL, rtol=0)
    # the bulk shares the lattice; posteriors beyond the pilot box (|z| >= 10) go to the per-point grid
    assert on_lattice[:60].all()
    assert not on_lattice[-2:].any()


def test_far_and_narrow_posteriors_are_refined_and_reported_as_such():
    model, x = _linear_cases(2, 0.003)  # posteriors ~0.002 wide: the lattice refines to spacings of ~0.003
    result = exact_marginal(HiddenClosedForm(model), x)
    torch.testing.assert_close(result.log_px, model.closed_form_log_marginal(x), atol=TOL, rtol=0)
    assert result.method[:-2] == (SHARED_GRID,) * (len(x) - 2)
    assert result.method[-2:] == (ADAPTIVE_GRID,) * 2


# ------------------------------------------------------------------------------------------- brute-force grids
def test_mlp_matches_a_brute_force_grid():
    # posteriors of this MLP are >= 0.45 wide: spacing 0.04 over [-9, 9]^2 resolves them (1e-14 from spacing 0.02),
    # and the prior leaves e^-40 of its density outside the box
    model = MLPLVM(latent_dim=2, data_dim=2, hidden=32, depth=2, seed=3, dtype=torch.float64)
    x, _ = model.sample(40, generator=0)
    x = torch.cat([x, torch.tensor([[4.0, -4.0], [-6.0, 0.0]], dtype=torch.float64)])  # far outside p(x)'s bulk
    expected = brute_force_log_marginal(model, x, 9.0, 451)
    torch.testing.assert_close(exact_log_marginal(model, x), expected, atol=TOL, rtol=0)


def test_sharpened_mlp_matches_a_brute_force_grid_to_1e_4():
    # posteriors 0.04-0.1 wide and bent: spacing 0.0125 (3 nodes per SD) over [-7, 7]^2 agrees with spacing 0.005
    # over [-5, 5]^2 to 1e-13 where that box holds the mass, and the lattice must refine to spacings of ~0.02
    model = _sharpened()
    x, _ = model.sample(8, generator=2)
    expected = brute_force_log_marginal(model, x, 7.0, 1121)
    result = exact_marginal(model, x)
    torch.testing.assert_close(result.log_px, expected, atol=TOL, rtol=0)
    assert SHARED_GRID in result.method


def test_sharpened_mlp_takes_the_shared_lattice_for_at_least_95_percent_of_points():
    # the per-point grid is the fallback: on a sharp, bent model the lattice must still resolve nearly every point
    model = _sharpened()
    x, _ = model.sample(200, generator=2)
    _, on_lattice = integrate_log_marginal(model, x)
    assert on_lattice.double().mean() >= 0.95


def test_shipped_digits_model_matches_a_brute_force_grid_on_the_shared_lattice():
    # held-out image 15 has the narrowest posterior of these (the per-point grid was once 6e-3 off there); spacing
    # 0.01 over [-7, 7]^2 agrees with spacing 0.005 to 2e-8 nats on it
    from lvm_core.datasets import load_binarized_digits
    from lvm_core.pretrained import load_pretrained

    model = load_pretrained("digits")[0].double()
    _, X_test, _, _ = load_binarized_digits(seed=0)
    x = torch.as_tensor(X_test[[0, 1, 2, 3, 15, 100, 200, 359]], dtype=torch.float64)
    expected = brute_force_log_marginal(model, x, 7.0, 1401)
    result = exact_marginal(model, x)
    torch.testing.assert_close(result.log_px, expected, atol=TOL, rtol=0)
    assert set(result.method) == {SHARED_GRID}


def test_64_dimensional_bernoulli_likelihood_matches_a_brute_force_grid():
    model = BernoulliToy()
    x = model.sample(8)
    expected = brute_force_log_marginal(model, x, 6.0, 801)  # spacing 0.015; these posteriors are >= 0.1 wide
    log_px, on_lattice = integrate_log_marginal(model, x)
    torch.testing.assert_close(log_px, expected, atol=TOL, rtol=0)
    assert on_lattice.all()


@pytest.mark.parametrize("noise_scale", [1.0, 0.1])
def test_seed_model_1d_matches_a_brute_force_grid(noise_scale):
    model = SeedLVM(1, seed=0, noise_scale=noise_scale)
    x, _ = model.sample(30, generator=3)
    expected = brute_force_log_marginal(model, x, 12.0, 240_001)  # spacing 1e-4 in 1-D
    torch.testing.assert_close(exact_log_marginal(model, x), expected, atol=TOL, rtol=0)


# -------------------------------------------------------------------------------------------- chunking, dtypes
def test_chunking_gives_identical_results(monkeypatch):
    model = _sharpened(seed=2)
    x, _ = model.sample(30, generator=4)
    whole, on_whole = lattice_log_marginal(model, x)
    monkeypatch.setattr(quad, "POINT_CHUNK", 7)
    monkeypatch.setattr(quad, "MAX_TILE_PAIRS", 50)
    monkeypatch.setattr(quad, "PAIR_BUDGET", 256 * 2 * 3)
    monkeypatch.setattr(quad, "STATS_PAIRS", 3)
    monkeypatch.setattr(quad, "NODE_CACHE_BYTES", 40_000)  # a few tiles: most are dropped before a finer lattice asks
    chunked, on_chunked = lattice_log_marginal(model, x)
    assert torch.equal(on_whole, on_chunked)
    torch.testing.assert_close(chunked, whole, atol=1e-12, rtol=0, equal_nan=True)


def test_one_likelihood_call_per_block_changes_no_answer(monkeypatch):
    model = _sharpened(seed=2)
    x, _ = model.sample(30, generator=4)
    calls = []
    real = model.log_likelihood_given
    monkeypatch.setattr(model, "log_likelihood_given", lambda xs, params: calls.append(1) or real(xs, params))
    gathered, on_gathered = lattice_log_marginal(model, x)  # a Gaussian decoder's 4 params per node: gathered
    n_gathered, calls[:] = len(calls), []
    monkeypatch.setattr(quad, "GATHER_PARAMS", 0)  # a call per tile
    per_tile, on_per_tile = lattice_log_marginal(model, x)
    assert n_gathered < len(calls) / 5
    assert torch.equal(on_gathered, on_per_tile)
    assert torch.equal(gathered.nan_to_num(0.5), per_tile.nan_to_num(0.5))  # the same arithmetic, bit for bit


class CountingDecoder(MLPLVM):
    """An MLPLVM that counts the nodes its decoder runs on."""

    nodes = 0

    def likelihood_params(self, z):
        self.nodes += z[..., 0, 0].numel()
        return super().likelihood_params(z)


def _tile_nodes(tile, k: int, shifted: int, T: int) -> torch.Tensor:
    """z = h0 2^-k (T tile + i + shifted / 2) for the T^d nodes i of a tile, the first axis slowest: (T^d, 1, d)."""
    h = quad.PILOT_HALF_WIDTH / (quad.PILOT_TILES * T) * 2.0**-k
    axes = [h * (T * t + torch.arange(T, dtype=torch.float64) + shifted / 2) for t in tile]
    z = axes[0][:, None] if len(axes) == 1 else torch.cartesian_prod(*axes)
    return z[:, None, :]


@pytest.mark.parametrize("tile", [(-3, 2), (0, -1), (1, 1), (4, 0), (-1,), (2,)])
def test_a_finer_lattice_takes_the_nodes_it_shares_with_the_coarser_and_offset_lattices(tile):
    d = len(tile)
    T = quad.TILE[d]
    model = CountingDecoder(latent_dim=d, data_dim=3, hidden=16, depth=2, seed=1, dtype=torch.float64)
    up = [t // 2 for t in tile]
    z = _tile_nodes(tile, 3, 0, T)
    direct = model.likelihood_params(z)
    cache = quad._NodeParams(model, T, d)
    cache.at(2, 0, [up], _tile_nodes(up, 2, 0, T)[None])  # the lattice of spacing 2h: every index even
    model.nodes = 0
    only_even = quad._NodeParams(model, T, d)
    only_even.store = cache.store.copy()
    for got, want in zip(only_even.at(3, 0, [list(tile)], z[None])[0], direct, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-14)
    assert model.nodes == T**d - (T // 2) ** d
    cache.at(2, 1, [up], _tile_nodes(up, 2, 1, T)[None])  # the offset lattice: every index odd
    # with a tile no coarser lattice holds, asked for together: one decoder call for both
    other = [t + 7 for t in tile]
    other_direct = model.likelihood_params(_tile_nodes(other, 3, 0, T))
    model.nodes = 0
    both = cache.at(3, 0, [list(tile), other], torch.stack([z, _tile_nodes(other, 3, 0, T)]))
    assert model.nodes == 2 * T**d - 2 * (T // 2) ** d
    for got, want in zip(both[0], direct, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-14)
    for got, want in zip(both[1], other_direct, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-14)
    model.nodes = 0
    cache.at(3, 0, [list(tile)], z[None])  # a tile seen before runs nothing
    assert model.nodes == 0


def test_reusing_the_decoder_changes_no_answer_and_saves_its_work():
    model = _sharpened(seed=3, cls=CountingDecoder)  # posteriors that need several finer lattices
    x, _ = model.sample(40, generator=6)
    plain, on_plain = lattice_log_marginal(HiddenClosedForm(model), x)  # no likelihood_params: log_joint per tile
    every_node = model.nodes
    model.nodes = 0
    reused, on_reused = lattice_log_marginal(model, x)
    assert torch.equal(on_plain, on_reused) and on_reused.all()
    torch.testing.assert_close(reused, plain, atol=1e-12, rtol=0)
    assert model.nodes < 0.75 * every_node


def test_float32_and_float64_models_agree_within_float32_rounding():
    m64 = MLPLVM(latent_dim=2, data_dim=2, hidden=32, depth=2, seed=5, dtype=torch.float64)
    m32 = MLPLVM(latent_dim=2, data_dim=2, hidden=32, depth=2, seed=5, dtype=torch.float32)
    x, _ = m64.sample(25, generator=5)
    got32, got64 = exact_log_marginal(m32, x.float()), exact_log_marginal(m64, x)
    assert got32.dtype == torch.float32 and got64.dtype == torch.float64
    torch.testing.assert_close(got32.double(), got64, atol=TOL, rtol=0)
    # posteriors >= 0.9 wide: spacing 0.04 resolves them to ~1e-14
    torch.testing.assert_close(got64[:8], brute_force_log_marginal(m64, x[:8], 9.0, 451), atol=TOL, rtol=0)


# ---------------------------------------------------------------------------------------------- method reports
def test_method_reports_say_how_each_value_was_computed():
    linear = LinearGaussianLVM.random(2, 3, seed=0)
    mixture = GaussianMixtureLVM([0.3, 0.7], [[0.0, 0.0], [2.0, 1.0]], [torch.eye(2).tolist()] * 2)
    mlp = MLPLVM(latent_dim=2, data_dim=2, hidden=16, depth=2, seed=0)
    x = torch.zeros(3, 2)
    assert exact_marginal(linear, torch.zeros(3, 3, dtype=torch.float64)).method == (CLOSED_FORM,) * 3
    assert exact_marginal(mixture, x.double()).method == (CLOSED_FORM,) * 3  # it has both; the formula wins
    assert exact_marginal(EnumerateOnly(mixture), x.double()).method == (EXACT_SUM,) * 3
    assert exact_marginal(mlp, x).method == (SHARED_GRID,) * 3
    assert exact_marginal(mlp, x, resolution=41).method == (ADAPTIVE_GRID,) * 3
    assert [exact_method(m) for m in (linear, EnumerateOnly(mixture), mlp)] == [CLOSED_FORM, EXACT_SUM, "quadrature"]
    deep = MLPLVM(latent_dim=3, data_dim=2, hidden=8)
    assert exact_method(deep) is None
    with pytest.raises(ValueError, match="Monte Carlo"):
        exact_marginal(deep, x)


def test_empty_batch_gives_an_empty_answer():
    model = MLPLVM(latent_dim=2, data_dim=2, hidden=8)
    result = exact_marginal(model, torch.zeros(0, 2))
    assert result.log_px.shape == (0,) and result.method == ()


def test_a_ridge_whose_error_stalls_after_falling_is_refined():
    # two moons under an MLPLVM(2, 2, 64) trained with train_lvm's defaults for 2,000 steps (tests/data); held-out
    # point 45's posterior is a long thin ridge: the 2h sub-lattices fell 60-fold from 4h and stood 5.9e-4 apart at
    # spacing 0.078, where the lattice was 1.8e-4 off. Spacing 0.01 over [-8, 8]^2 agrees with 0.005 to 1e-15 there
    from pathlib import Path

    from lvm_core.training import load_lvm

    model = load_lvm((Path(__file__).parent / "data" / "moons_ridge.lvm").read_bytes())[0].eval()
    x = torch.tensor([[1.7713834047317505, 0.38725483417510986]])
    expected = brute_force_log_marginal(copy.deepcopy(model).double(), x.double(), 8.0, 1601)
    result = exact_marginal(model, x)
    assert result.method == (SHARED_GRID,)
    assert abs(result.log_px.double().item() - expected.item()) < TOL


def test_a_ridge_aliased_with_the_lattice_is_checked_on_the_offset_lattice():
    # two moons under a sharpened MLPLVM(2, 2, 64) (IWAE-8, 6,000 steps; tests/data): the posteriors are broad fans
    # with a thin ridge parallel to the z2 axis at their apex. For the first point the 2h sub-lattices agreed within
    # 1.4e-4 at spacing 0.0195 while the lattice was 9.7e-4 off (the lattice offset by h / 2 on z1: 8.6e-4 the other
    # way). The reference, a float64 grid of spacing 0.0075 over the box that holds the first two points' mass,
    # agrees with spacing 0.0025 to 5e-6 there. The third point's window needs 2-4M nodes; a per-point grid in its
    # place was 9e-3 off
    from pathlib import Path

    from lvm_core.training import load_lvm

    model = load_lvm((Path(__file__).parent / "data" / "moons_sharp.lvm").read_bytes())[0].eval()
    x = torch.tensor([[-1.178336501121521, 1.146834373474121], [-0.9649907946586609, 1.2965818643569946],
                      [-0.7935401797294617, 1.2793047428131104]])
    model64 = copy.deepcopy(model).double()
    axes = [torch.arange(0.0, 8.2, 0.0075, dtype=torch.float64), torch.arange(-4.2, 1.6, 0.0075, dtype=torch.float64)]
    expected = grid_log_marginal(model64, x[:2].double(), axes)
    result = exact_marginal(model, x)
    assert result.method == (SHARED_GRID,) * 3
    assert (result.log_px[:2].double() - expected).abs().max().item() < TOL


# ----------------------------------------------------------------------------------------------- a looser tolerance
@pytest.mark.parametrize("tol", [1e-3, 1e-2])
def test_a_looser_tolerance_stays_within_it_and_runs_the_decoder_on_fewer_nodes(tol):
    model = _sharpened(seed=3, cls=CountingDecoder)  # posteriors that need several finer lattices at 1e-4
    x, _ = model.sample(40, generator=6)
    strict = exact_log_marginal(model, x)
    strict_nodes, model.nodes = model.nodes, 0
    loose = exact_log_marginal(model, x, tol=tol)
    assert (loose - strict).abs().max().item() < tol
    assert model.nodes < 0.95 * strict_nodes  # measured: 0.82x at 1e-3, 0.68x at 1e-2


@pytest.mark.parametrize("d", [1, 2])
def test_a_looser_tolerance_matches_the_linear_closed_form_within_it(d):
    model, x = _linear_cases(d, 0.05)
    got = exact_log_marginal(HiddenClosedForm(model), x, tol=1e-2)
    assert (got - model.closed_form_log_marginal(x)).abs().max().item() < 1e-2


@pytest.mark.parametrize("tol", [0.0, -1e-3, math.nan, math.inf])
def test_a_tolerance_that_is_not_a_positive_number_is_refused_with_a_message(tol):
    model = MLPLVM(latent_dim=2, data_dim=2, hidden=8)
    with pytest.raises(ValueError, match="tol must be a positive number"):
        exact_marginal(model, torch.zeros(2, 2), tol=tol)

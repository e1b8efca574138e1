"""Drawing z ~ q from an explicit generator, and the proposal spec the pages cache on.

torch.distributions' ``sample()`` draws from torch's global generator, which every thread of a process shares. Here
every draw starts as uniforms u in (0, 1) from a ``torch.Generator`` and is pushed through the distribution's inverse
CDF or an equivalent transform (``from_uniforms``):

    Normal, Independent(Normal)   z = loc + scale * Phi^-1(u)                       (differentiable in loc, scale)
    MultivariateNormal            z = loc + L Phi^-1(u)                               (differentiable in loc, L)
    StudentT (integer df)         z = loc + scale * Phi^-1(u) / sqrt(V / df), V = sum of df squared normals
    Uniform                       z = low + (high - low) u
    Categorical, OneHotCategorical    the inverse CDF of u: the first k with u < sum_{j<=k} p_j
    MixtureSameFamily (Gaussian components)    the component by the inverse CDF of u_0, then loc_c + L_c Phi^-1(u_1..d)

Families whose base draw needs more than one uniform per coordinate (the Student-t's chi-square part) take those from
a second stream, so the main uniforms of every family line up draw for draw: estimators fed the same stream see
common random numbers. Add a family with ``register``. log q is always the distribution's own ``log_prob``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.distributions import (
    Categorical,
    Distribution,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
    OneHotCategorical,
    StudentT,
    Uniform,
)

# ------------------------------------------------------------------------------------------------------ generators


def make_generator(seed: int | torch.Generator | None, device: torch.device | str | None = None) -> torch.Generator:
    """A torch.Generator on ``device``: seeded by an int, passed through as given, or (None) freshly seeded from the
    operating system's entropy (not reproducible, and still no global state)."""
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    if seed is None:
        g.manual_seed(int.from_bytes(os.urandom(8), "little"))
    else:
        g.manual_seed(int(seed) % 2**64)
    return g


def seed_from(seed: int | None = None, generator: torch.Generator | None = None) -> int:
    """One integer seed from either an int or a generator (one draw from it); fresh entropy when both are None."""
    if seed is not None and generator is not None:
        raise ValueError("pass a seed or a generator, not both")
    if generator is not None:
        return int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
    if seed is None:
        return int.from_bytes(os.urandom(8), "little") >> 2
    return int(seed) % 2**64


def uniforms(shape: Sequence[int], generator: torch.Generator, dtype: torch.dtype = torch.float64,
             device: torch.device | str | None = None) -> torch.Tensor:
    """u ~ U(0, 1) of the given shape from ``generator``, never exactly 0 (whose inverse normal CDF is -inf)."""
    u = torch.rand(tuple(shape), generator=generator, dtype=dtype, device=device or generator.device)
    # torch draws multiples of 2^-24 (float32) or 2^-53 (float64) in [0, 1): 0 moves up by half a step, which puts
    # its mass (2^-24 in float32) at Phi^-1(2^-25) = -5.5 instead of anywhere below -5.3
    return u.clamp_(min=torch.finfo(dtype).eps / 4)


class TrialStreams:
    """One stream of uniforms per trial: trial r draws from generators seeded by (seed, first_trial + r) alone.

    The layout of the random numbers: trial r's draws come from its own generators, sample after sample along k, each
    sample taking its row of (batch, width) uniforms in order. So trial r's numbers do not depend on how many trials
    run beside it, the first k samples of a run with more are the k samples of a run with k, and chunking the work
    over trials or over k gives the same numbers (torch.rand draws its elements one after another on the CPU). A
    second stream per trial feeds the families that need extra uniforms (``extra``), so the main stream stays common
    to every family.
    """

    def __init__(self, seed: int, trials: int, first_trial: int = 0, device: torch.device | str | None = None):
        self.seed, self.trials, self.first_trial = int(seed) % 2**64, int(trials), int(first_trial)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.main = self._generators(stream=0)
        self._extra: list[torch.Generator] | None = None

    def _generators(self, stream: int) -> list[torch.Generator]:
        # SeedSequence turns (seed, stream) into well-mixed entropy; the r-th integer of its stream seeds trial r
        rng = np.random.default_rng([self.seed, stream])
        seeds = rng.integers(0, 2**63, size=self.first_trial + self.trials, dtype=np.int64)[self.first_trial:]
        return [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]

    @property
    def extra(self) -> list[torch.Generator]:
        if self._extra is None:
            self._extra = self._generators(stream=1)
        return self._extra

    def uniforms(self, k: int, shape: Sequence[int], dtype: torch.dtype, extra: bool = False) -> torch.Tensor:
        """The next k draws of every trial: (k, trials, *shape)."""
        gens = self.extra if extra else self.main
        return torch.stack([uniforms((k, *shape), g, dtype, self.device) for g in gens], 1)


# ----------------------------------------------------------------------------------------- the family dispatch
# family -> (noise(q) -> (main, extra) uniforms per draw of one batch element, push(q, u, extra) -> z)
# u: (*sample_shape, *q.batch_shape, main), extra: (*sample_shape, *q.batch_shape, extra) or None
_FAMILIES: dict[type, tuple[Callable, Callable]] = {}


def register(family: type, noise: Callable[[Distribution], tuple[int, int]],
             push: Callable[[Distribution, torch.Tensor, torch.Tensor | None], torch.Tensor]) -> None:
    """Teach ``sample`` a distribution family: how many uniforms a draw needs, and how they become z."""
    _FAMILIES[family] = (noise, push)


def _family(q: Distribution) -> tuple[Callable, Callable]:
    for cls in type(q).__mro__:  # subclasses (e.g. a library's own Normal) use their parent's transform
        if cls in _FAMILIES:
            return _FAMILIES[cls]
    names = ", ".join(sorted(f.__name__ for f in _FAMILIES))
    raise TypeError(f"cannot draw from a {type(q).__name__} with an explicit generator; supported families: {names} "
                    "(lvm_core.proposals.register adds one)")


def noise_width(q: Distribution) -> tuple[int, int]:
    """(main, extra): the uniforms one draw of one batch element takes from the main and the extra stream."""
    return _family(q)[0](q)


def from_uniforms(q: Distribution, u: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
    """z = the transform of q applied to uniforms. u: (*sample_shape, *q.batch_shape, main) ->
    z: (*sample_shape, *q.batch_shape, *q.event_shape), differentiable in q's parameters where the transform is."""
    return _family(q)[1](q, u, extra)


def _scalar_noise(q):
    return 1, 0


def _push_normal(q: Normal, u, extra):
    return q.loc + q.scale * torch.special.ndtri(u[..., 0])


def _push_uniform(q: Uniform, u, extra):
    return q.low + (q.high - q.low) * u[..., 0]


def _student_t_noise(q: StudentT) -> tuple[int, int]:
    df = q.df.unique()
    if df.numel() != 1 or float(df) != round(float(df)) or float(df) < 1:
        raise ValueError(f"a Student-t proposal needs one integer df >= 1 here (its chi-square part is a sum of df "
                         f"squared normals), got df={q.df.tolist()}")
    return 1, int(df)


def _push_student_t(q: StudentT, u, extra):
    df = extra.shape[-1]
    v = torch.special.ndtri(extra).pow(2).sum(-1)  # chi-square with df degrees of freedom
    return q.loc + q.scale * torch.special.ndtri(u[..., 0]) * torch.rsqrt(v / df)


def _mvn_noise(q: MultivariateNormal) -> tuple[int, int]:
    return q.event_shape[0], 0


def _push_mvn(q: MultivariateNormal, u, extra):
    eps = torch.special.ndtri(u)  # (..., *batch, d)
    return q.loc + (q.scale_tril @ eps[..., None])[..., 0]


def _categorical_index(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """the inverse CDF: index = how many cumulative probabilities (all but the last) are <= u. probs: (*batch, K),
    u: (..., *batch, 1) -> (..., *batch) long. A category of probability 0 is never chosen."""
    cdf = torch.cumsum(probs, -1)
    cdf = cdf / cdf[..., -1:]  # probabilities summing to 1 - 1e-16 must not leave u past the last category
    return (u >= cdf[..., :-1]).sum(-1)


def _push_categorical(q: Categorical, u, extra):
    return _categorical_index(q.probs, u)


def _push_one_hot(q: OneHotCategorical, u, extra):
    idx = _categorical_index(q.probs, u)
    return torch.nn.functional.one_hot(idx, q.probs.shape[-1]).to(q.probs.dtype)


def _reinterpreted(q: Independent) -> tuple[int, ...]:
    return tuple(q.base_dist.batch_shape[len(q.batch_shape):])


def _independent_noise(q: Independent) -> tuple[int, int]:
    main, extra = noise_width(q.base_dist)
    n = math.prod(_reinterpreted(q))
    return n * main, n * extra


def _push_independent(q: Independent, u, extra):
    base = q.base_dist
    main, more = noise_width(base)
    dims = _reinterpreted(q)
    u = u.reshape(*u.shape[:-1], *dims, main)  # the reinterpreted batch axes of the base come back out of the width
    if extra is not None:
        extra = extra.reshape(*extra.shape[:-1], *dims, more)
    return from_uniforms(base, u, extra)


def _component_factors(comp: Distribution) -> tuple[torch.Tensor, torch.Tensor]:
    """(loc (*B, K, d), L (*B, K, d, d)) of a mixture's Gaussian components"""
    if isinstance(comp, MultivariateNormal):
        return comp.loc, comp.scale_tril
    if isinstance(comp, Independent) and isinstance(comp.base_dist, Normal) and len(comp.event_shape) == 1:
        return comp.base_dist.loc, torch.diag_embed(comp.base_dist.scale)
    raise TypeError(f"a mixture proposal needs MultivariateNormal or Independent Normal components, got "
                    f"{type(comp).__name__}")


def _mixture_noise(q: MixtureSameFamily) -> tuple[int, int]:
    _component_factors(q.component_distribution)
    return 1 + q.event_shape[0], 0  # one uniform picks the component, d more make its Gaussian draw


def _push_mixture(q: MixtureSameFamily, u, extra):
    loc, tril = _component_factors(q.component_distribution)  # (*B, K, d), (*B, K, d, d)
    idx = _categorical_index(q.mixture_distribution.probs, u[..., :1])  # (..., *B)
    shape, (K, d) = idx.shape, loc.shape[-2:]
    loc_c = loc.expand(*shape, K, d).gather(-2, idx[..., None, None].expand(*shape, 1, d))[..., 0, :]  # (..., *B, d)
    tril_c = tril.expand(*shape, K, d, d).gather(-3, idx[..., None, None, None].expand(*shape, 1, d, d))[..., 0, :, :]
    eps = torch.special.ndtri(u[..., 1:])  # (..., *B, d)
    return loc_c + (tril_c @ eps[..., None])[..., 0]


register(Normal, _scalar_noise, _push_normal)
register(Uniform, _scalar_noise, _push_uniform)
register(StudentT, _student_t_noise, _push_student_t)
register(MultivariateNormal, _mvn_noise, _push_mvn)
register(Categorical, _scalar_noise, _push_categorical)
register(OneHotCategorical, _scalar_noise, _push_one_hot)
register(Independent, _independent_noise, _push_independent)
register(MixtureSameFamily, _mixture_noise, _push_mixture)


# ---------------------------------------------------------------------------------------------------- sampling
def sample(q: Distribution, sample_shape: Sequence[int] = (), generator: torch.Generator | TrialStreams | None = None,
           extra_generator: torch.Generator | None = None) -> torch.Tensor:
    """z ~ q drawn from an explicit generator: uniforms pushed through ``from_uniforms``.

    generator: a torch.Generator on q's device (None: a fresh one from the system's entropy) -> z of shape
    (*sample_shape, *q.batch_shape, *q.event_shape); the extra uniforms of a Student-t come from ``extra_generator``
    (default: the same generator, after the main ones). Or a ``TrialStreams`` with sample_shape (k,) -> z of shape
    (k, trials, *q.batch_shape, *q.event_shape), trial r's draws from trial r's streams.
    Differentiable in q's parameters where the transform is (location-scale families), like ``rsample``.
    """
    main, more = noise_width(q)
    ref = q.mean  # dtype and device of q's parameters
    dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
    sample_shape = tuple(sample_shape)
    if isinstance(generator, TrialStreams):
        if len(sample_shape) != 1:
            raise ValueError(f"TrialStreams draw k samples per trial: sample_shape must be (k,), got {sample_shape}")
        u = generator.uniforms(sample_shape[0], (*q.batch_shape, main), dtype)
        extra = generator.uniforms(sample_shape[0], (*q.batch_shape, more), dtype, extra=True) if more else None
        return from_uniforms(q, u, extra)
    g = make_generator(generator, ref.device)
    shape = (*sample_shape, *q.batch_shape)
    u = uniforms((*shape, main), g, dtype, ref.device)
    extra = uniforms((*shape, more), extra_generator or g, dtype, ref.device) if more else None
    return from_uniforms(q, u, extra)


# ------------------------------------------------------------------------------------------------ proposal specs
FAMILIES = ("box", "gaussian", "student_t", "categorical")


@dataclass(frozen=True)
class ProposalSpec:
    """A proposal q as plain, hashable numbers (a cache key), turned into a torch Distribution by ``distribution``.

    family: "box" (uniform on [lo, hi]^dim), "gaussian" / "student_t" (independent axes with loc and scale per axis,
    integer df), "categorical" (a discrete z, one-hot over len(probs) values, with these probabilities).
    """

    family: str
    loc: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    df: int = 3
    lo: float = -4.0
    hi: float = 4.0
    probs: tuple[float, ...] = ()
    dim: int = 0  # the box's number of axes (the other families take theirs from loc or probs)

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown proposal family {self.family!r}; choose one of {FAMILIES}")
        if self.family == "box" and not (self.dim >= 1 and math.isfinite(self.lo) and math.isfinite(self.hi)
                                         and self.hi > self.lo):
            raise ValueError(f"a box needs dim >= 1 and finite lo < hi, got dim={self.dim}, [{self.lo}, {self.hi}]")
        if self.family in ("gaussian", "student_t"):
            if not self.loc or len(self.loc) != len(self.scale):
                raise ValueError("loc and scale need one value per latent axis")
            if not all(math.isfinite(v) for v in self.loc) or not all(math.isfinite(s) and s > 0 for s in self.scale):
                raise ValueError("loc must be finite and every scale a positive, finite number")
        if self.family == "student_t" and (int(self.df) != self.df or self.df < 1):
            raise ValueError(f"df must be an integer >= 1, got {self.df}")
        if self.family == "categorical" and (not self.probs or min(self.probs) < 0 or not sum(self.probs) > 0):
            raise ValueError("probs must be non-negative with a positive sum")

    @property
    def latent_dim(self) -> int:
        return {"box": self.dim, "categorical": len(self.probs)}.get(self.family, len(self.loc))

    def distribution(self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
                     ) -> Distribution:
        """q with batch shape (1,) and event shape (latent_dim,): one point's proposal, as the estimators take it.

        Built without argument validation (the spec validated its numbers), so log_prob outside a box is -inf.
        """
        def tensor(values):
            return torch.tensor([values], dtype=dtype, device=device)  # (1, d)

        if self.family == "box":
            lo = torch.full((1, self.dim), float(self.lo), dtype=dtype, device=device)
            return Independent(Uniform(lo, torch.full_like(lo, float(self.hi)), validate_args=False), 1,
                               validate_args=False)
        if self.family == "gaussian":
            return Independent(Normal(tensor(self.loc), tensor(self.scale), validate_args=False), 1,
                               validate_args=False)
        if self.family == "student_t":
            loc = tensor(self.loc)
            return Independent(StudentT(torch.full_like(loc, float(self.df)), loc, tensor(self.scale),
                                        validate_args=False), 1, validate_args=False)
        probs = tensor(self.probs)
        return OneHotCategorical(probs=probs / probs.sum(), validate_args=False)

    def marginal(self, axes: int) -> ProposalSpec:
        """q's marginal on its first ``axes`` axes (independent axes: the same family with fewer of them)."""
        if self.family == "categorical":
            raise ValueError("a categorical proposal has no marginal on a plane")
        if self.family == "box":
            return ProposalSpec("box", lo=self.lo, hi=self.hi, dim=axes)
        return ProposalSpec(self.family, self.loc[:axes], self.scale[:axes], df=self.df)

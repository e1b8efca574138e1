"""Reproducible under concurrency: every public seeded function of lvm_core gives bit-identical results when many run
at once in threads (as Streamlit runs sessions) and when run one at a time; no call touches torch's global generator,
numpy's or Python's global random state, torch's thread count or the BLAS thread count."""

import functools
import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from threadpoolctl import threadpool_info
from torch.distributions import Independent, Normal

from lvm_core import datasets, estimators, experiments, gmm, inference, training
from lvm_core.models import MLPLVM, GaussianMixtureLVM, LinearGaussianLVM, SeedLVM
from lvm_core.proposals import ProposalSpec, make_generator, sample

SEEDS = (1, 2, 3, 4)


def _linear():
    return LinearGaussianLVM.random(2, 2, 0.5, seed=0)


def _x(model, n=3):
    return model.sample(n, generator=11)[0]


def _q(batch, d=2):
    loc = torch.linspace(-0.5, 0.5, batch * d, dtype=torch.float64).reshape(batch, d)
    return Independent(Normal(loc, torch.full_like(loc, 0.8)), 1)


def _moons(n=64):
    X, _, _ = datasets.standardize(datasets.make_dataset("two_moons", n=n, noise=0.05, seed=0))
    return torch.tensor(X, dtype=torch.float32)


def _state(module):
    return [p.detach().clone() for p in module.state_dict().values()]


def _train(objective):
    def run(seed):
        model = MLPLVM(latent_dim=2, hidden=8, seed=seed)
        history = training.train_lvm(model, _moons(), objective=objective, k=2, steps=4, batch_size=16,
                                     inner_steps=3, warmup=0, seed=seed)
        return [torch.tensor(history.bound), *_state(model)]
    return run


def _learning_loop(seed):
    truth = SeedLVM(1, seed=1, noise_scale=0.2)
    X, _ = truth.sample(12, generator=0)
    loop = inference.LearningLoop(SeedLVM(1, seed=2, noise_scale=0.2), X, batch_size=4, inner_steps=5, seed=seed)
    traces = [loop.step() for _ in range(2)]
    return [*traces, torch.tensor(loop.log_lik), *_state(loop.model)]


def _phi_optimizer(seed):
    model = _linear()
    opt = inference.PhiOptimizer(model, _x(model, 2), full_covariance=True, seed=seed)
    return [opt.step(15), opt.phi.loc.detach(), opt.phi.off_diag.detach()]


def _amortization(seed):
    model = _linear()
    x = _x(model, 2)
    return list(inference.amortization_gaps(model, x, _q(2), steps=10, seed=seed).values())


@functools.cache
def _fitted_mixture():
    return gmm.fit_mixture(datasets.make_dataset("overlapping", n=120, seed=0), 3, seed=0)


# name -> seed -> result (a tensor, an array, or a list of them); small sizes: the point is the randomness
CALLS = {
    "proposals.sample": lambda s: sample(_q(3), (50,), make_generator(s)),
    "estimators.naive_mc_log_marginal": lambda s: estimators.naive_mc_log_marginal(_linear(), _x(_linear()), 200,
                                                                                   trials=3, seed=s),
    "estimators.importance_log_marginal": lambda s: estimators.importance_log_marginal(
        _linear(), _x(_linear()), _q(3), 200, trials=3, seed=s),
    "estimators.importance_log_marginal (generator)": lambda s: estimators.importance_log_marginal(
        _linear(), _x(_linear()), _q(3), 200, trials=3, generator=make_generator(s)),
    "estimators.importance_log_weights": lambda s: list(estimators.importance_log_weights(
        _linear(), _x(_linear()), _q(3), 100, seed=s)),
    "estimators.elbo": lambda s: estimators.elbo(_linear(), _x(_linear()), _q(3), 16, make_generator(s)).detach(),
    "inference.fit_local_posterior": lambda s: (lambda q: [q.mean, q.stddev])(
        inference.fit_local_posterior(_linear(), _x(_linear()), steps=25, seed=s)[0]),
    "inference.PhiOptimizer": _phi_optimizer,
    "inference.elbo_gradient_samples": lambda s: inference.elbo_gradient_samples(
        _linear(), _x(_linear(), 1), inference.LocalGaussian.standard(1, 2), "score function", k=2, replicates=50,
        seed=s)[0],
    "inference.amortization_gaps": _amortization,
    "inference.LearningLoop": _learning_loop,
    "training.train_lvm elbo": _train("elbo"),
    "training.train_lvm iwae": _train("iwae"),
    "training.train_lvm local": _train("local"),
    "training.optimise_local_phi": lambda s: list(training.optimise_local_phi(
        SeedLVM(1, noise_scale=0.3), _x(SeedLVM(1, noise_scale=0.3)), torch.zeros(3, 1, dtype=torch.float64),
        torch.zeros(3, 1, dtype=torch.float64), steps=10, seed=s)),
    "training.bound": lambda s: training.bound(SeedLVM(1), _x(SeedLVM(1)), torch.zeros(3, 1, dtype=torch.float64),
                                               torch.zeros(3, 1, dtype=torch.float64), 8, "iwae",
                                               generator=make_generator(s)),
    "training.latent_codes": lambda s: training.latent_codes(MLPLVM(hidden=8, seed=0), _moons(20), steps=5, seed=s),
    "training.Encoder": lambda s: _state(training.Encoder(hidden=8, seed=s)),
    "experiments.run_estimator": lambda s: [getattr(experiments.run_estimator(
        SeedLVM(2), torch.tensor([[0.3, 0.8]], dtype=torch.float64), ProposalSpec("student_t", (0.1, 0.2), (1.0, 0.7)),
        100, 10, s), name) for name in ("log_estimates", "sweep", "ess", "shown_z")],
    "experiments.dimension_sweep": lambda s: list(experiments.dimension_sweep([1, 3], 0.5, 50, 5, seed=s).values()),
    "models.MLPLVM": lambda s: _state(MLPLVM(hidden=8, seed=s)),
    "models.SeedLVM": lambda s: _state(SeedLVM(2, seed=s)),
    "models.LinearGaussianLVM.random": lambda s: _state(LinearGaussianLVM.random(3, 2, seed=s)),
    "models.sample": lambda s: list(MLPLVM(hidden=8, seed=0).sample(20, generator=s)),
    "models.sample (mixture)": lambda s: list(GaussianMixtureLVM.from_sklearn(_fitted_mixture()).sample(20, s)),
    "datasets.make_dataset": lambda s: [datasets.make_dataset(name, n=40, seed=s) for name in datasets.PRESET_NAMES],
    "datasets.train_test_split_points": lambda s: list(datasets.train_test_split_points(np.arange(40.0)[:, None],
                                                                                        seed=s)),
    "gmm.fit_mixture": lambda s: (lambda p: [p.weights, p.means, p.covariances])(gmm.get_params(gmm.fit_mixture(
        datasets.make_dataset("overlapping", n=120, seed=0), 3, init_params="random", seed=s, max_iter=10))),
    "gmm.sample_generative": lambda s: list(gmm.sample_generative(_fitted_mixture(), 30, seed=s)),
}


def _arrays(result) -> list[np.ndarray]:
    if isinstance(result, (list, tuple)):
        return [a for r in result for a in _arrays(r)]
    if isinstance(result, torch.Tensor):
        return [result.detach().cpu().numpy()]
    return [np.asarray(result)]


def _same(a, b) -> bool:
    a, b = _arrays(a), _arrays(b)
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
                                    for x, y in zip(a, b, strict=True))


def _process_state():
    blas = sorted((i["internal_api"], i["num_threads"]) for i in threadpool_info())
    return (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate(), torch.get_num_threads(),
            torch.get_num_interop_threads(), blas)


def test_every_seeded_function_is_bit_identical_alone_and_in_concurrent_threads():
    alone = {(name, s): call(s) for name, call in CALLS.items() for s in SEEDS}
    for name in CALLS:  # the seed matters (else the comparison below could not fail)
        assert not _same(alone[name, 1], alone[name, 2]), name
    jobs = [(name, s) for s in SEEDS for name in CALLS]  # interleaved: every function with every seed at once
    random.Random(0).shuffle(jobs)
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {job: pool.submit(CALLS[job[0]], job[1]) for job in jobs}
        together = {job: f.result() for job, f in futures.items()}
    different = [job for job in jobs if not _same(alone[job], together[job])]
    assert not different, f"results changed when run concurrently: {different}"


def test_no_call_changes_the_global_random_state_or_the_thread_counts():
    torch.manual_seed(12345)  # a state that the calls must leave exactly as it is
    np.random.seed(6789)
    random.seed(42)
    before = _process_state()
    for name, call in CALLS.items():
        call(1)
        after = _process_state()
        assert torch.equal(after[0], before[0]), f"{name} drew from torch's global generator"
        assert np.array_equal(after[1], before[1]), f"{name} drew from numpy's global generator"
        assert after[2] == before[2], f"{name} drew from Python's random module"
        assert after[3:] == before[3:], f"{name} changed a thread count: {before[3:]} -> {after[3:]}"


def test_no_core_module_names_a_process_wide_setting_or_the_global_generator():
    # a static check beside the dynamic one above, for code paths the calls do not reach
    import importlib
    import inspect
    import pkgutil

    import lvm_core

    names = ("torch.manual_seed", "torch.random.manual_seed", "fork_rng", "set_num_threads", "threadpool_limits",
             "ThreadpoolController", "np.random.seed", "torch.seed()", ".rsample(", ".sample((")
    for info in pkgutil.walk_packages(lvm_core.__path__, "lvm_core."):
        source = inspect.getsource(importlib.import_module(info.name))
        found = [name for name in names if name in source]
        assert not found, (info.name, found)

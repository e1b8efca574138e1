"""Learning theta of a deep latent variable model: the ELBO (a VAE), the IWAE-k bound, and the notes' algorithm.

    "elbo":  max over theta, psi of  mean_i E_{q_psi(z|x_i)}[log p(x_i, z) - log q_psi(z|x_i)]   (amortised encoder)
    "iwae":  max over theta, psi of  mean_i E[log (1/k) sum_j p(x_i, z_j) / q_psi(z_j|x_i)]       (same encoder)
    "local": the notes' loop: for a sampled minibatch, optimise each point's own phi_i (theta frozen) until near
             convergence, then ONE gradient step on theta with the ELBO at those phi_i.

``train_lvm`` keeps the best weights (by held-out exact log-likelihood when evaluated, else by the bound), stops when
the callback says so, and stops a diverging run (NaN / exploding bound) restoring the last good weights.
``save_lvm`` / ``load_lvm`` write and read a trained model as plain tensors and a config (no pickled objects).
"""

from __future__ import annotations

import copy
import io
import math
import pickle
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from torch import nn

from lvm_core.estimators import elbo, exact_log_marginal, exact_marginal, importance_log_marginal, log_mean_exp
from lvm_core.inference import DEFAULT_K, DEFAULT_LR, DEFAULT_STEPS, LR_DECAY_STEPS, PhiOptimizer
from lvm_core.models import ACTIVATIONS, MLPLVM, BernoulliMLPLVM, SeedLVM, diag_normal_log_prob, mlp
from lvm_core.proposals import make_generator, sample
from lvm_core.quadrature import REFINE_TOL

OBJECTIVES = ("elbo", "iwae", "local")
FORMAT = "lvm-lab/deep-lvm/1"
LOG_SCALE_RANGE = (-7.0, 2.0)  # the encoder's log sigma is clamped here: q never collapses to a point or explodes


# ------------------------------------------------------------------------------------------------------ the encoder
class Encoder(nn.Module):
    """q_psi(z | x) = N(loc(x), diag(exp(log_scale(x)))^2): one MLP emitting loc, log_scale: (batch, latent_dim)."""

    def __init__(self, data_dim: int = 2, latent_dim: int = 2, hidden: int = 64, depth: int = 2,
                 activation: str = "tanh", seed: int = 0, dtype: torch.dtype = torch.float32):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.data_dim, self.latent_dim = data_dim, latent_dim
        self.config = dict(data_dim=data_dim, latent_dim=latent_dim, hidden=hidden, depth=depth, activation=activation)
        g = torch.Generator().manual_seed(seed + 7919)  # psi's initial values from the seed alone, not theta's copy
        self.net = mlp([data_dim] + [hidden] * depth + [2 * latent_dim], activation, g, dtype)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (batch, data_dim) -> (loc, log_scale), each (batch, latent_dim)."""
        out = self.net(x)
        return out[..., : self.latent_dim], out[..., self.latent_dim:].clamp(*LOG_SCALE_RANGE)

    def distribution(self, x: torch.Tensor) -> torch.distributions.Distribution:
        """q(z | x) as a torch Distribution with batch shape (batch,) and event shape (latent_dim,)."""
        loc, log_scale = self(x)
        return gaussian_q(loc, log_scale)


# -------------------------------------------------------------------------------------------------- the objectives
def gaussian_q(loc: torch.Tensor, log_scale: torch.Tensor) -> torch.distributions.Distribution:
    """q = N(loc, diag(exp(log_scale))^2) with batch shape (batch,) and event shape (latent_dim,)."""
    # scale = exp(.) is positive by construction: argument checks would only cost time on the training hot path
    normal = torch.distributions.Normal(loc, torch.exp(log_scale), validate_args=False)
    return torch.distributions.Independent(normal, 1, validate_args=False)


def _log_weight_terms(model, x, loc, log_scale, k: int, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(x | z_j), log p(z_j) - log q(z_j)), each (k, batch), with z_j ~ q reparameterised (from generator)."""
    q = gaussian_q(loc, log_scale)
    z = sample(q, (k,), generator)  # (k, batch, latent_dim)
    return model.log_likelihood(x, z), model.log_prior(z) - q.log_prob(z)


def _log_weights(model, x, loc, log_scale, k: int, beta: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """log w_j = log p(x | z_j) + beta (log p(z_j) - log q(z_j)): (k, batch).

    beta = 1 is the true log weight; beta < 1 (KL warm-up) lets the decoder use z before the prior pulls.
    """
    log_lik, log_ratio = _log_weight_terms(model, x, loc, log_scale, k, generator)
    return log_lik + (log_ratio if beta == 1.0 else beta * log_ratio)


def _reduce(log_w: torch.Tensor, objective: str) -> torch.Tensor:
    return log_mean_exp(log_w, 0) if objective == "iwae" else log_w.mean(0)


def objective_and_bound(model, x, loc, log_scale, k: int = 1, objective: str = "elbo", beta: float = 1.0,
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The minibatch means of the training objective (warmed up by beta) and of the true bound (beta = 1), from the
    same samples; scalars, the first differentiable."""
    log_lik, log_ratio = _log_weight_terms(model, x, loc, log_scale, k, generator)
    true_bound = _reduce(log_lik + log_ratio, objective).mean()
    if beta == 1.0:
        return true_bound, true_bound.detach()
    return _reduce(log_lik + beta * log_ratio, objective).mean(), true_bound.detach()


def bound(model, x: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor, k: int = 1,
          objective: str = "elbo", beta: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """The per-point bound with q = N(loc, diag(exp(log_scale))^2): (batch,).

    "elbo": mean_j log w_j (the Monte Carlo ELBO with k samples); "iwae": log mean_j w_j (the IWAE-k bound).
    beta < 1 weakens the prior-vs-q term (KL warm-up); the result is then no longer a bound on log p(x).
    Samples from ``generator`` (None: fresh entropy).
    """
    return _reduce(_log_weights(model, x, loc, log_scale, k, beta, generator), objective)


def optimise_local_phi(model, x: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor,
                       steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR, k: int = DEFAULT_K, beta: float = 1.0,
                       decay_steps: float | None = LR_DECAY_STEPS, seed: int | None = 0,
                       generator: torch.Generator | None = None):
    """The notes' inner loop: gradient ascent on each point's own ELBO(x_i; phi_i), theta frozen, by
    inference.PhiOptimizer (the one per-point optimiser, with its defaults; beta < 1: KL warm-up).

    loc, log_scale: (batch, latent_dim) starting phi (warm start). Returns the optimised (loc, log_scale), detached
    (log_scale clamped to LOG_SCALE_RANGE, the encoder's range), and the per-point objective before each step:
    (steps, batch). Samples from ``generator`` (default: one made from ``seed``).
    """
    opt = PhiOptimizer(model, x, loc.detach(), log_scale.detach(), lr=lr, k=k, decay_steps=decay_steps, seed=seed,
                       generator=generator, beta=beta)
    trace = opt.step(steps)
    return opt.phi.loc.detach(), opt.phi.log_scale.detach().clamp(*LOG_SCALE_RANGE), trace


# ---------------------------------------------------------------------------------------------------- the history
@dataclass
class TrainingHistory:
    """What a run did. ``bound[i]`` is the minibatch bound (nats per point) at step ``i``; ``eval_steps`` /
    ``eval_log_lik`` the exact held-out log-likelihood (nats per point) every ``eval_every`` steps."""

    objective: str
    config: dict = field(default_factory=dict)
    bound: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_log_lik: list[float] = field(default_factory=list)
    inner_elbo: list[list[float]] = field(default_factory=list)  # "local": mean ELBO along each inner loop
    last_inner: torch.Tensor | None = None  # "local": (inner_steps, batch) per-point ELBO of the last inner loop
    best_step: int = -1
    best_value: float = -math.inf
    best_by: str = "bound"  # "held-out" when chosen by the exact held-out log-likelihood
    best_state: dict | None = None
    best_encoder_state: dict | None = None
    stopped: bool = False  # by the callback or an interruption
    finished: bool = False
    diverged: str | None = None  # the message, when the run diverged
    seconds: float = 0.0
    phi_loc: torch.Tensor | None = None  # "local": (n_train, latent_dim) the latest phi_i of every training point
    phi_log_scale: torch.Tensor | None = None
    encoder: Encoder | None = None  # the trained encoder ("elbo" / "iwae"); None for "local"

    @property
    def steps_done(self) -> int:
        return len(self.bound)


def _snapshot(module: nn.Module | None) -> dict | None:
    return None if module is None else {k: v.detach().clone() for k, v in module.state_dict().items()}


def principal_coordinates(X: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """Each point's whitened coordinates along the data's top principal axes: (n, latent_dim), zero-padded.

    The starting phi_i of the notes' algorithm: all phi_i at the prior's 0 would be interchangeable, the decoder would
    see the same q for every point and learn only the mean (measured: no gain over one Gaussian in 1,000 steps).
    """
    centred = X - X.mean(0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    m = min(latent_dim, vh.shape[0])
    coords = centred @ vh[:m].T / (s[:m] / math.sqrt(max(X.shape[0] - 1, 1))).clamp_min(1e-8)  # (n, m)
    pad = torch.zeros(X.shape[0], latent_dim - m, dtype=X.dtype, device=X.device)
    return torch.cat([coords, pad], 1)


def held_out_log_lik(model, X: torch.Tensor, resolution: int | None = None, tol: float = REFINE_TOL) -> float:
    """mean_i log p(x_i), exact (``exact_log_marginal``: ``tol``, 1e-4 nats per point by default), nats per point.
    ``resolution``: a fixed per-point grid instead, an approximation."""
    return float(exact_log_marginal(model, X, resolution=resolution, tol=tol).mean())


@torch.no_grad()
def bounds_per_point(model, X: torch.Tensor, q: torch.distributions.Distribution, k: int = 64,
                     seed: int = 0) -> dict[str, torch.Tensor]:
    """Each point's ELBO, IWAE-k bound and exact log p(x) under one proposal q (e.g. the encoder's), nats per point.

        elbo  ~= mean_j [log p(x, z_j) - log q(z_j)]              (k samples: an estimate of the ELBO itself)
        iwae  ~= logsumexp_j (log p(x, z_j) - log q(z_j)) - log k  (one draw of the IWAE-k estimator)
        exact  = log p(x)                                          (``exact_marginal``, 1e-4 nats per point)

    X: (batch, data_dim); q: batch shape (batch,), event shape (latent_dim,). Returns "elbo", "iwae", "exact": (batch,)
    and "method": the exact value's method per point. In expectation elbo <= iwae <= exact for every point; both draws
    come from generators made from ``seed``.
    """
    g = make_generator(seed, X.device)
    exact = exact_marginal(model, X)
    return {"elbo": elbo(model, X, q, k=k, generator=g), "iwae": importance_log_marginal(model, X, q, k, seed=seed)[0],
            "exact": exact.log_px, "method": exact.method}


def pick_device(device: str = "cpu") -> torch.device:
    """"cuda" when asked for and available ("auto" takes it if present), else the CPU."""
    if device in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


# ----------------------------------------------------------------------------------------------------- train_lvm
def train_lvm(model, X, objective: str = "iwae", k: int = 8, steps: int = 6000, lr: float = 1e-2,
              batch_size: int = 128, seed: int = 0, callback: Callable | None = None, encoder: Encoder | None = None,
              eval_X=None, eval_every: int | None = None, eval_tol: float = REFINE_TOL,
              warmup: int = 500, inner_steps: int = 20, inner_lr: float = 0.05, grad_clip: float = 100.0,
              explode_nats: float = 1e3, check_every: int = 50, device: str = "cpu",
              lr_decay: float = 0.05) -> TrainingHistory:
    """Fit theta (and the encoder psi for "elbo" / "iwae") by Adam on minibatches of X; returns a TrainingHistory.

    The defaults (IWAE with k = 8, 6,000 steps, lr 1e-2 decaying to 5e-4) take an MLPLVM(2, 2, 64) on standardised
    two moons past a 10-component Gaussian mixture's held-out log-likelihood, and a BernoulliMLPLVM on the 8 x 8
    digits to about -17 nats per held-out image, each in well under a minute on one CPU thread
    (benchmarks/results/deep.md, digits.md). "local" runs an inner loop per step: give it a few hundred steps.

    X: (n, data_dim) training points; eval_X: (m, data_dim) held-out points, scored exactly every ``eval_every``
    steps, to ``eval_tol`` nats per point (a looser tolerance is quicker, e.g. 1e-2 for a live curve), in a worker
    thread while training goes on: the callback sees each score once it has finished, and the history holds them all
    when the run returns (an interrupted run drops those still running). "local" keeps one phi_i per training point
    (warm-started across visits) and runs ``inner_steps`` Adam steps on it per visit.
    ``warmup`` > 0 ramps the weight of log p(z) - log q(z) linearly from 0 to 1 over the first ``warmup`` steps (KL
    warm-up, at most a quarter of the run); ``history.bound`` always records the true bound (beta = 1).
    Every random draw (minibatches, the reparameterised noise, the inner loop's) comes from one generator made from
    ``seed`` on the training device, so a seed reproduces a run.
    ``lr_decay``: the learning rate falls from ``lr`` to ``lr * lr_decay`` along a cosine over the run (1: constant);
    the small late steps let the decoder settle into sharp, thin densities.
    callback(history) is called after every step; returning True stops the run. The best weights are loaded into
    ``model`` (and ``encoder``) at the end, also when the run was stopped, interrupted or diverged.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if steps < 1 or k < 1 or batch_size < 1 or not (math.isfinite(lr) and lr > 0) or not 0 < lr_decay <= 1:
        raise ValueError("steps, k and batch_size must be at least 1, lr a positive number and lr_decay in (0, 1]")
    dev = pick_device(device)
    home = model.device
    model.to(dev)
    X = torch.as_tensor(X, dtype=model.dtype).to(dev)
    n = X.shape[0]
    if X.ndim != 2 or X.shape[1] != model.data_dim or n < 1:
        raise ValueError(f"X must have shape (n, {model.data_dim}), got {tuple(X.shape)}")
    if eval_X is not None:
        eval_X = torch.as_tensor(eval_X, dtype=model.dtype).to(dev)
    if objective != "local" and encoder is None:
        encoder = Encoder(model.data_dim, model.latent_dim, seed=seed, dtype=model.dtype)
    if encoder is not None:
        encoder.to(dev)
    batch_size = min(batch_size, n)
    warmup = min(warmup, steps // 4)
    config = dict(objective=objective, k=k, steps=steps, lr=lr, lr_decay=lr_decay, batch_size=batch_size, seed=seed,
                  warmup=warmup, inner_steps=inner_steps, inner_lr=inner_lr, device=dev.type)
    history = TrainingHistory(objective=objective, config=config, best_by="held-out" if eval_X is not None else "bound")
    history.encoder = encoder  # visible to the callback, so an interrupted run keeps its encoder too
    params = list(model.parameters()) + (list(encoder.parameters()) if objective != "local" else [])
    opt = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * lr_decay)
    if objective == "local":
        history.phi_loc = principal_coordinates(X, model.latent_dim)
        history.phi_log_scale = torch.full_like(history.phi_loc, -1.0)
    good = (_snapshot(model), _snapshot(encoder))  # the last weights known to give a finite, sane bound
    best_window = best_bound = -math.inf

    def consider_best(step: int, value: float, states: tuple | None = None) -> None:
        if value > history.best_value:
            history.best_step, history.best_value = step, value
            history.best_state, history.best_encoder_state = states or (_snapshot(model), _snapshot(encoder))

    # held-out scores run in one worker thread on a frozen copy of their step's weights, so training goes on meanwhile
    # (on two cores the scores then cost the run almost no time); they are recorded in step order
    scorer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="held-out") if eval_X is not None else None
    pending: deque = deque()  # (step, future, the step's (model, encoder) states)

    def evaluate(step: int) -> None:
        frozen = copy.deepcopy(model).eval()  # never changed again: its weights are the step's, kept if it is best
        pending.append((step, scorer.submit(held_out_log_lik, frozen, eval_X, tol=eval_tol),
                        (frozen.state_dict(), _snapshot(encoder))))

    def collect(wait: bool) -> None:
        """Record the scores that have finished (all of them when wait), oldest first."""
        while pending and (wait or pending[0][1].done()):
            step, future, states = pending.popleft()
            value = future.result()
            history.eval_steps.append(step)
            history.eval_log_lik.append(value)
            if math.isfinite(value) and step > 0:  # the initial theta is drawn for reference, never kept as "best"
                consider_best(step, value, states)

    start = time.perf_counter()
    try:
        g = make_generator(seed, dev)
        if eval_X is not None and eval_every:
            evaluate(0)
        for step in range(steps):
            idx = torch.randint(n, (batch_size,), generator=g, device=dev)
            x = X[idx]  # (batch, data_dim)
            beta = min(1.0, (step + 1) / warmup) if warmup else 1.0
            if objective == "local":
                loc, log_scale, trace = optimise_local_phi(model, x, history.phi_loc[idx],
                                                           history.phi_log_scale[idx], inner_steps, inner_lr, k,
                                                           beta, generator=g)
                history.phi_loc[idx], history.phi_log_scale[idx] = loc, log_scale
                history.inner_elbo.append(trace.mean(1).tolist())
                history.last_inner = trace
                # the ELBO at the optimised, fixed phi_i: one theta step
                train_value, value = objective_and_bound(model, x, loc, log_scale, k, "elbo", beta, g)
            else:
                loc, log_scale = encoder(x)
                train_value, value = objective_and_bound(model, x, loc, log_scale, k, objective, beta, g)
            opt.zero_grad(set_to_none=True)
            (-train_value).backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip))
            value = float(value)  # the true bound (beta = 1), also during warm-up
            if not (math.isfinite(value) and math.isfinite(grad_norm)) or value < best_bound - explode_nats:
                what = "not a number" if not math.isfinite(value) or not math.isfinite(grad_norm) else (
                    f"{value:.3g} nats, {best_bound - value:.3g} below its best")
                history.diverged = (f"Training diverged at step {step} (the bound became {what}). The last good "
                                    f"weights are restored; try a smaller learning rate.")
                model.load_state_dict(good[0])
                if encoder is not None and good[1] is not None:
                    encoder.load_state_dict(good[1])
                break
            opt.step()
            schedule.step()
            history.bound.append(value)
            best_bound = max(best_bound, value)
            if (step + 1) % check_every == 0:
                good = (_snapshot(model), _snapshot(encoder))
                window = sum(history.bound[-check_every:]) / check_every
                if eval_X is None and window > best_window:
                    best_window = window
                    consider_best(step + 1, window)
            if eval_X is not None and eval_every and (step + 1) % eval_every == 0:
                evaluate(step + 1)
            if pending:
                collect(wait=False)
            if callback is not None and callback(history):
                history.stopped = True
                break
        else:
            history.finished = True
        scored = [s for s, _, _ in pending] + history.eval_steps
        if eval_X is not None and history.finished and (not scored or max(scored) != steps):
            evaluate(steps)
        collect(wait=True)
    except BaseException:
        history.stopped = True  # interrupted (e.g. a Stop button's rerun): keep the best so far, then re-raise
        raise
    finally:
        if scorer is not None:  # an interrupted run does not wait for its scores: they are dropped
            scorer.shutdown(wait=False, cancel_futures=True)
        history.seconds = time.perf_counter() - start
        if history.best_state is None:  # too short to judge: the final (or last good) weights are the best known
            consider_best(history.steps_done, history.bound[-1] if history.bound else -math.inf)
        model.load_state_dict(history.best_state)
        if encoder is not None and history.best_encoder_state is not None:
            encoder.load_state_dict(history.best_encoder_state)
        model.to(home)
        if encoder is not None:
            encoder.to(home)
        model.eval()
    return history


# ----------------------------------------------------------------------------------------------- save and load
def model_config(model) -> dict:
    """A plain dict that rebuilds the model's architecture (not its weights)."""
    if isinstance(model, MLPLVM):
        return dict(kind="mlp", **model.config)
    if isinstance(model, SeedLVM):
        return dict(kind="seed", latent_dim=model.latent_dim, data_dim=model.data_dim, noise_scale=model.noise_scale)
    if isinstance(model, BernoulliMLPLVM):
        return dict(kind="bernoulli", **model.config)
    raise ValueError(f"cannot save a {type(model).__name__}; only MLPLVM, BernoulliMLPLVM and SeedLVM models")


def build_model(config: dict):
    """The model described by ``model_config`` with fresh weights."""
    config = dict(config)
    kind = config.pop("kind", None)
    if kind == "mlp":
        return MLPLVM(**config)
    if kind == "seed":
        return SeedLVM(**config)
    if kind == "bernoulli":
        return BernoulliMLPLVM(**config)
    raise ValueError(f"unknown model kind {kind!r}")


def save_lvm(model, encoder: Encoder | None = None, config: dict | None = None) -> bytes:
    """The model (and encoder) as bytes: state dicts plus plain config dicts, readable by ``load_lvm``."""
    payload = {
        "format": FORMAT,
        "model_config": model_config(model),
        "model_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "encoder_config": None if encoder is None else dict(encoder.config),
        "encoder_state": None if encoder is None else {k: v.detach().cpu().clone()
                                                       for k, v in encoder.state_dict().items()},
        "config": copy.deepcopy(config or {}),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _check_state(module: nn.Module, state, what: str) -> None:
    """Raise ValueError unless ``state`` has exactly the module's keys, shapes and floating dtypes."""
    if not isinstance(state, dict):
        raise ValueError(f"the {what}'s weights are missing or not a dictionary of tensors")
    expected = module.state_dict()
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise ValueError(f"the {what}'s weights do not match its architecture (missing {missing}, unexpected {extra})")
    for key, tensor in expected.items():
        got = state[key]
        if not isinstance(got, torch.Tensor) or got.shape != tensor.shape or not got.is_floating_point():
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise ValueError(f"the {what}'s weight {key!r} has shape {shape}, expected {tuple(tensor.shape)}")
        if not torch.isfinite(got).all():
            raise ValueError(f"the {what}'s weight {key!r} contains NaN or infinite values")


def load_lvm(data: bytes):
    """Read bytes written by ``save_lvm`` -> (model, encoder or None, config). Only tensors and plain values are
    unpickled (torch.load with weights_only=True); anything else raises ValueError saying what is wrong."""
    hint = "Upload a .pt file downloaded from LVM Lab's deep-LVM page."
    try:
        payload = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError, OSError,
            UnicodeDecodeError, IndexError, KeyError) as exc:
        raise ValueError(f"This file is not a saved LVM Lab model ({type(exc).__name__}). {hint}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"This file is not a saved LVM Lab model (no '{FORMAT}' marker). {hint}")
    try:
        model = build_model(payload["model_config"])
        encoder = None
        if payload.get("encoder_config") is not None:
            encoder = Encoder(**payload["encoder_config"], dtype=model.dtype)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"The model file's architecture is invalid ({exc}). {hint}") from None
    _check_state(model, payload.get("model_state"), "model")
    model.load_state_dict(payload["model_state"])
    if encoder is not None:
        if (encoder.latent_dim, encoder.data_dim) != (model.latent_dim, model.data_dim):
            raise ValueError(f"The encoder's dimensions do not match the model's. {hint}")
        _check_state(encoder, payload.get("encoder_state"), "encoder")
        encoder.load_state_dict(payload["encoder_state"])
        encoder.eval()
    config = payload.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"The model file's config is not a dictionary. {hint}")
    model.eval()
    return model, encoder, config


# ------------------------------------------------------------------------------------- views of a model (for plots)
def log_density_grid(model, xlim: tuple[float, float], ylim: tuple[float, float], n: int = 50,
                     z_nodes: int | None = None):
    """log p(x) on an n x n grid of x over xlim x ylim: exact (``exact_log_marginal``, 1e-4 nats per point), or with
    ``z_nodes`` the plain shared grid of z_nodes per latent axis (``shared_grid_log_marginal``), an approximation
    for drawing a sharply trained model, whose exact density takes minutes over a whole chart.

    Returns xs: (n,), ys: (n,), log_p: (n, n) with rows along y.
    """
    xs = torch.linspace(*xlim, n, dtype=model.dtype)
    ys = torch.linspace(*ylim, n, dtype=model.dtype)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")  # (n_y, n_x)
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1).to(model.device)  # (n*n, 2)
    if z_nodes is not None:
        return xs, ys, shared_grid_log_marginal(model, points, z_nodes).reshape(n, n).cpu()
    return xs, ys, exact_log_marginal(model, points).reshape(n, n).cpu()


Z_EXTENT = 6.0  # the shared grid's half-width in prior standard deviations: p(z) beyond it is below 1e-8


@torch.no_grad()
def shared_grid_log_marginal(model, x: torch.Tensor, z_nodes: int = 301, chunk: int = 1 << 22) -> torch.Tensor:
    """log p(x) by the trapezoid rule on one grid of z shared by every point: z_nodes per latent axis over
    [-Z_EXTENT, Z_EXTENT] (1-/2-D latents); the decoder runs once per node. x: (batch, data_dim) -> (batch,).

    An approximation: it is accurate where every posterior p(z|x) spans several grid spacings, and too low where
    p(z|x) is narrower (a sharply trained model); ``exact_log_marginal`` refines per point to 1e-4 nats instead."""
    d = model.latent_dim
    if d not in (1, 2):
        raise ValueError(f"a shared grid over z needs a 1- or 2-D latent, got {d}")
    axis = torch.linspace(-Z_EXTENT, Z_EXTENT, z_nodes, dtype=x.dtype, device=x.device)
    h = axis[1] - axis[0]
    trapezoid = torch.full_like(axis, math.log(h))
    trapezoid[[0, -1]] -= math.log(2.0)
    if d == 1:
        z, log_w = axis[:, None], trapezoid
    else:
        za, zb = torch.meshgrid(axis, axis, indexing="ij")
        z = torch.stack([za.reshape(-1), zb.reshape(-1)], -1)
        log_w = (trapezoid[:, None] + trapezoid[None, :]).reshape(-1)
    log_w = log_w + model.log_prior(z)  # (m,)
    loc, log_scale = model.decode(z)  # (m, data_dim) each: the decoder once per node
    per = max(1, chunk // max(1, z.shape[0]))
    out = []
    for i in range(0, x.shape[0], per):
        xi = x[i:i + per, None, :]  # (b, 1, data_dim)
        log_lik = diag_normal_log_prob(xi, loc[None], log_scale[None])  # (b, m)
        out.append(torch.logsumexp(log_lik + log_w, -1))
    return torch.cat(out)


def latent_grid(latent_dim: int, per_axis: int, extent: float = 2.5, dtype=torch.float64) -> torch.Tensor:
    """Evenly spaced z values covering +-extent prior standard deviations: (per_axis ** latent_dim, latent_dim)."""
    axis = torch.linspace(-extent, extent, per_axis, dtype=dtype)
    if latent_dim == 1:
        return axis[:, None]
    gz1, gz2 = torch.meshgrid(axis, axis, indexing="xy")
    return torch.stack([gz1.reshape(-1), gz2.reshape(-1)], -1)


@torch.no_grad()
def mixture_components(model, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Gaussians p(x | z) of the infinite mixture at the given z: (m, latent_dim).

    Returns mu: (m, data_dim), sigma: (m, data_dim) (diagonal standard deviations), log p(z): (m,).
    """
    z = z.to(model.dtype).to(model.device)
    loc, log_scale = model.decode(z)
    return loc.cpu(), torch.exp(log_scale).cpu(), model.log_prior(z).cpu()


@torch.no_grad()
def latent_codes(model, X, encoder: Encoder | None = None, steps: int = 200, lr: float = 0.05,
                 seed: int = 0) -> torch.Tensor:
    """Where each point sits in z-space: the encoder's mean, or (no encoder) each point's optimised phi_i mean.

    X: (n, data_dim) -> (n, latent_dim).
    """
    X = torch.as_tensor(X, dtype=model.dtype).to(model.device)
    if encoder is not None:
        return encoder(X)[0].cpu()
    zeros = torch.zeros(X.shape[0], model.latent_dim, dtype=model.dtype, device=model.device)
    with torch.enable_grad():  # one sample per step: a picture of where the points sit, cheap for many points
        loc, _, _ = optimise_local_phi(model, X, zeros, zeros, steps=steps, lr=lr, k=1, seed=seed)
    return loc.cpu()

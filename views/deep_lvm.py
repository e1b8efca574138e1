"""Deep latent variable models: the infinite mixture, seen and trained, on 2-D points or handwritten digits.

Widgets -> lvm_core.training / estimators / gmm (cached) -> lvm_core.plots.deep -> kit.chart. No maths here.
"""

from __future__ import annotations

import time

import numpy as np
import streamlit as st
import torch

from lvm_core import gmm
from lvm_core.datasets import DIGITS_SHAPE, load_binarized_digits, standardize, train_test_split_points
from lvm_core.models import MLPLVM, BernoulliMLPLVM, SeedLVM, independent_pixel_log_likelihood
from lvm_core.plots import deep as figs
from lvm_core.pretrained import load_pretrained
from lvm_core.training import (
    OBJECTIVES,
    bounds_per_point,
    held_out_log_lik,
    latent_codes,
    latent_grid,
    load_lvm,
    log_density_grid,
    mixture_components,
    model_config,
    save_lvm,
    train_lvm,
)
from ui import kit, state
from ui.data import DataKeys, data_picker
from ui.kit import height
from ui.sidebar import page_seed

DATA = DataKeys("dl")
DATA_KINDS = {"points": "2-D points", "digits": "Handwritten digits"}
MAX_RUNS = 4  # runs kept for the overlay
# A trained model's posteriors are thin (that is how it beats a finite mixture), so its exact p(x) to 1e-4 nats costs
# ~0.03 s per point: the live curve scores every held-out point (up to LIVE_POINTS) to LIVE_TOL nats, 1-6 s per
# evaluation for 1,000 points in a worker thread beside training, the results score the first SCORED_POINTS to 1e-4
# (all on request), and the density picture comes from one shared grid of PICTURE_Z_NODES per latent axis (about 1%
# from the exact relative density, benchmarks/README.md).
LIVE_POINTS, LIVE_TOL = 2000, 1e-2
SCORED_POINTS = 300
PICTURE_Z_NODES = 301
LIVE_LABEL = f"held-out log p(x), to {LIVE_TOL:g} nats"
PENDING = "dl_pending_run"  # a run in progress: kept here so that a Stop (an interrupting rerun) never loses it
UPLOAD_ID = "dl_upload_handled"
MESSAGE = "dl_message"
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
BATCHES = (16, 32, 64, 128, 256, 512, 1024)
WIDTHS = (8, 16, 32, 64, 128, 256)
OBJECTIVE_LABELS = {"elbo": "ELBO (VAE)", "iwae": "IWAE-k", "local": "the notes' per-point φᵢ"}
SOURCES = {"seed": "The notes' model", "mlp": "Random MLP decoder", "trained": "The trained model"}
THETA_NAMES = ("A", "B", "c", "d")
# digits
MANIFOLD_PER_AXIS, MANIFOLD_EXTENT = 15, 2.5  # a 15 x 15 grid of z over [-2.5, 2.5]^2
SCORED_FIRST = 60  # held-out images scored by default (the exact log p(x) costs tens of ms per image)
EVAL_IMAGES = 60  # held-out images scored exactly during training, to keep the best model
SAMPLES_SHOWN = 20
DG_PENDING = "dl_dg_pending"
DG_MESSAGE = "dl_dg_message"
ss = st.session_state


# ----------------------------------------------------------------------------------------------- cached work
@st.cache_data(max_entries=16, show_spinner="Computing p(x) by quadrature over z ...")
def density_on_grid(model_bytes: bytes, xlim: tuple, ylim: tuple, n: int, z_nodes: int | None = None):
    """log p(x) on an n x n grid: exact, or (z_nodes) on one shared grid over z, the picture of a trained model"""
    model, _, _ = load_lvm(model_bytes)
    xs, ys, log_p = log_density_grid(model, xlim, ylim, n=n, z_nodes=z_nodes)
    return xs.numpy(), ys.numpy(), log_p.numpy()


@st.cache_data(max_entries=16, show_spinner=False)
def components(model_bytes: bytes, per_axis: int):
    model, _, _ = load_lvm(model_bytes)
    z = latent_grid(model.latent_dim, per_axis)
    mu, sigma, log_pz = mixture_components(model, z)
    return z.numpy(), mu.numpy(), sigma.numpy(), log_pz.numpy()


@st.cache_data(max_entries=16, show_spinner="Exact held-out log-likelihood (quadrature over z) ...")
def exact_held_out(model_bytes: bytes, X_test: np.ndarray) -> float:
    model, _, _ = load_lvm(model_bytes)
    with kit.background_priority():  # up to a minute for a sharply trained model: the other students go first
        return held_out_log_lik(model, torch.as_tensor(X_test, dtype=model.dtype))


@st.cache_data(max_entries=16, show_spinner="Fitting the Gaussian mixtures for comparison ...")
def fitted_mixture(X_train: np.ndarray, n_components: int, seed: int):
    return gmm.fit_mixture(X_train, n_components, seed=seed, max_iter=200)


@st.cache_data(max_entries=16, show_spinner=False)
def mixture_baselines(X_train: np.ndarray, X_test: np.ndarray, seed: int) -> dict[str, float]:
    out = {}
    for K in (1, 10):
        fitted = fitted_mixture(X_train, K, seed)
        out["single Gaussian" if K == 1 else f"GMM ({K} components)"] = float(gmm.log_marginal(fitted, X_test).mean())
    return out


@st.cache_data(max_entries=16, show_spinner=False)
def mixture_density_on_grid(X_train: np.ndarray, seed: int, xlim: tuple, ylim: tuple, n: int) -> np.ndarray:
    """the 10-component GMM's log p(x) on the grid of density_on_grid: (n, n), rows along y"""
    return gmm.density_grid(fitted_mixture(X_train, 10, seed), xlim, ylim, n)[2]


@st.cache_data(max_entries=16, show_spinner=False)
def model_samples(model_bytes: bytes, n: int, seed: int) -> np.ndarray:
    model, _, _ = load_lvm(model_bytes)
    return model.sample(n, generator=seed)[0].float().numpy()


@st.cache_data(max_entries=16, show_spinner="Placing the data in z-space ...")
def codes(model_bytes: bytes, X: np.ndarray, seed: int) -> np.ndarray:
    model, encoder, _ = load_lvm(model_bytes)
    return latent_codes(model, X, encoder, seed=seed).numpy()


def limits(X: np.ndarray | None, default=((-2.5, 2.5), (-2.5, 2.5))):
    if X is None:
        return default
    lo, hi = X.min(0), X.max(0)
    pad = 0.15 * np.maximum(hi - lo, 1e-3)
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0])), (float(lo[1] - pad[1]), float(hi[1] + pad[1]))


# ---------------------------------------------------------------------------------------------------- the idea
st.title("Deep latent variable models")
kit.explain(
    "Draw a hidden $z \\sim \\mathcal N(0, I)$, then $x \\mid z \\sim \\mathcal N(\\mu_\\theta(z), "
    "\\Sigma_\\theta(z))$ with **neural networks** $\\mu_\\theta, \\Sigma_\\theta$. Every $z$ picks one simple "
    "Gaussian, and there are infinitely many $z$: the marginal $p(x)$ is a **mixture of infinitely many Gaussians**, "
    "which can be far from Gaussian although each piece is. Below, the pieces are drawn as ellipses over the exact "
    "$p(x)$ (computed by quadrature over $z$), then $\\theta$ is learned from data. With **handwritten digits** the "
    "pieces are images: each $z$ gives one probability per pixel, and $p(x)$ mixes infinitely many of them."
)
st.latex(r"p_\theta(x) = \int p(z)\, \mathcal N\big(x;\, \mu_\theta(z),\, \Sigma_\theta(z)\big)\, dz,"
         r"\qquad p(z) = \mathcal N(0, I)")
kit.reset_to_defaults("dl", keep=DATA.widgets + (PENDING, UPLOAD_ID, MESSAGE, DG_PENDING, DG_MESSAGE))
kit.accept_short_names("dl_data", DATA_KINDS, DATA_KINDS.get)  # ?dl_data=digits as well as the label the control writes
data_kind = st.segmented_control("Data", tuple(DATA_KINDS), format_func=DATA_KINDS.get, default="points",
                                 key="dl_data", bind="query-params", persist_state="session") or "points"


def trained_points() -> state.TrainedLVM | None:
    """the session's trained deep LVM if it models 2-D points (a digits model belongs to the digits view)"""
    trained = state.trained_lvm(ss)
    return trained if trained is not None and not trained.images else None


def _theta_defaults(theta_seed: int, latent_dim: int) -> dict[str, float]:
    model = SeedLVM(latent_dim=latent_dim, seed=theta_seed)
    return {f"dl_{name}{i + 1}": float(getattr(model, name).detach().reshape(-1)[i])
            for name in THETA_NAMES for i in range(2)}


def _new_theta() -> None:
    ss["dl_theta_seed"] = (int(ss.get("dl_theta_seed", 0)) + 1) % 1000
    _reset_theta()


def _reset_theta() -> None:
    for key, value in _theta_defaults(int(ss.get("dl_theta_seed", 0)), 1).items():
        ss[key] = round(max(-8.0, min(8.0, value)), 2)


def seed_model_controls(latent_dim: int) -> SeedLVM:
    st.latex(r"\mu_\theta(z) = \operatorname{sigmoid}(A z + c), \qquad \Sigma_\theta(z) = s^2\,"
             r"\operatorname{diag}\big(\exp(\operatorname{sigmoid}(B z + d))\big)")
    a, b, c = st.columns([2, 2, 1])
    theta_seed = a.slider("Random θ (seed)", 0, 999, 0, key="dl_theta_seed", on_change=_reset_theta,
                          bind="query-params", persist_state="session")
    c.button("New random θ", key="dl_new_theta", icon=":material/casino:", on_click=_new_theta)
    noise = b.select_slider("Noise scale s", options=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0), value=1.0,
                            key="dl_seed_noise", bind="query-params", persist_state="session")
    st.caption("With s = 1 (the notes exactly) the noise, between 1 and e in variance, swamps the means, which stay "
               "inside the unit square: p(x) is one round blob and p(z|x) is nearly the prior. A smaller s makes the "
               "marginal richer and the posterior sharper and bent, so inference gets harder.")
    if latent_dim != 1:
        return SeedLVM(latent_dim=latent_dim, seed=theta_seed, noise_scale=noise)
    defaults = _theta_defaults(theta_seed, 1)
    values = {}
    cols = st.columns(8)
    for j, name in enumerate(THETA_NAMES):
        for i in range(2):
            key = f"dl_{name}{i + 1}"
            kwargs = {} if key in ss else {"value": round(max(-8.0, min(8.0, defaults[key])), 2)}
            values[key] = cols[2 * j + i].slider(f"{name}{'₁₂'[i]}", -8.0, 8.0, step=0.05, key=key,
                                                 bind="query-params", persist_state="session", **kwargs)
    params = {name: [values[f"dl_{name}1"], values[f"dl_{name}2"]] for name in THETA_NAMES}
    model = SeedLVM(latent_dim=1, noise_scale=noise, **params)
    A, B, c_, d = (np.round(params[n], 2) for n in THETA_NAMES)
    st.latex(rf"\mu(z) = \operatorname{{sigmoid}}\!\left(\begin{{bmatrix}}{A[0]}\\{A[1]}\end{{bmatrix}} z + "
             rf"\begin{{bmatrix}}{c_[0]}\\{c_[1]}\end{{bmatrix}}\right),\quad \Sigma(z) = {noise}^2\,"
             rf"\operatorname{{diag}}\exp\operatorname{{sigmoid}}\!\left(\begin{{bmatrix}}{B[0]}\\{B[1]}\end{{bmatrix}}"
             rf" z + \begin{{bmatrix}}{d[0]}\\{d[1]}\end{{bmatrix}}\right)")
    return model


def mlp_controls(latent_dim: int) -> MLPLVM:
    a, b, c = st.columns(3)
    width = a.select_slider("Width", WIDTHS, value=64, key="dl_width", bind="query-params", persist_state="session")
    depth = b.slider("Depth (hidden layers)", 1, 4, 2, key="dl_depth", bind="query-params", persist_state="session")
    activation = c.selectbox("Activation", ("tanh", "relu", "silu", "elu"), key="dl_activation",
                             bind="query-params", persist_state="session")
    st.latex(r"(\mu_\theta(z), \log \sigma_\theta(z)) = \mathrm{MLP}_\theta(z):\ "
             rf"{latent_dim} \to " + r" \to ".join([str(width)] * depth) + r" \to 2 + 2"
             + rf",\quad {activation}")
    return MLPLVM(latent_dim=latent_dim, hidden=width, depth=depth, activation=activation, seed=0)


@st.fragment
def mixture_view(model_bytes: bytes, d: int, data: np.ndarray | None, z_nodes: int | None = None) -> None:
    """The infinite mixture with one component highlighted; the z slider reruns only this part. z_nodes: draw p(x)
    from one shared grid over z (a trained model), else exactly."""
    xlim, ylim = limits(data if data is not None else model_samples(model_bytes, 2000, 0))
    xs, ys, log_p = density_on_grid(model_bytes, xlim, ylim, 50, z_nodes)
    z, mu, sigma, log_pz = components(model_bytes, 41 if d == 1 else 11)
    cols = st.columns(d)
    z_sel = np.array([cols[i].slider("z" if d == 1 else f"z{'₁₂'[i]}", -3.0, 3.0, 0.0, step=0.05, key=f"dl_z{i + 1}",
                                     bind="query-params", persist_state="session") for i in range(d)])
    model, _, _ = load_lvm(model_bytes)
    h_mu, h_sigma, h_log_pz = mixture_components(model, torch.as_tensor(z_sel[None]))
    highlight = {"z": z_sel, "mu": h_mu[0].numpy(), "sigma": h_sigma[0].numpy(), "log_pz": float(h_log_pz[0])}
    left, right = st.columns([3, 2])
    with left:
        kit.chart(figs.infinite_mixture_figure(xs, ys, log_p, mu, sigma, z, highlight=highlight, X=data,
                                               height=height(520)), key="dl_mixture_chart")
    with right:
        kit.chart(figs.prior_figure(z, log_pz, z_sel, height=height(300)), key="dl_prior_chart")
    right.latex(rf"p(z) = {np.exp(highlight['log_pz']):.4f},\quad \mu(z) = ({h_mu[0, 0]:.2f}, {h_mu[0, 1]:.2f})")
    right.latex(rf"\sigma(z) = ({h_sigma[0, 0]:.2f}, {h_sigma[0, 1]:.2f})")
    with right:
        kit.note("Ellipses: one standard deviation of p(x|z) for a grid of z, coloured by z. The heatmap is p(x), "
                 "the sum of all of them weighted by p(z): " + (
                     "exact, integrated over z to 1e-4 nats." if z_nodes is None else
                     f"summed over one shared grid of {z_nodes} x {z_nodes} values of z, an approximation for "
                     "drawing (a trained model's exact p(x) over the whole picture takes minutes; its relative "
                     "density is about 1% (L1) from the exact one)."))


def finish_run(run: dict, interrupted: bool) -> None:
    """Store a finished, stopped or diverged run for the results, the overlay and the other pages."""
    history = run["history"]
    if history is None:
        return
    note = run["label"] + (" (stopped)" if (interrupted or history.stopped) and not history.diverged else "")
    ss[state.TRAINED_LVM] = state.TrainedLVM(model=run["model"], encoder=history.encoder, config=run["config"],
                                             data=run["data"], history=history)
    runs = ss.setdefault(state.TRAINING_RUNS, [])
    runs.append({"label": note, "bound": list(history.bound), "eval_steps": list(history.eval_steps),
                 "eval_log_lik": list(history.eval_log_lik), "config": run["config"]})
    del runs[:-MAX_RUNS]
    if history.diverged:
        ss[MESSAGE] = ("error", history.diverged)
    elif interrupted or history.stopped:
        ss[MESSAGE] = ("info", f"Stopped after {history.steps_done} steps; kept the best model so far "
                               f"(step {history.best_step}).")
    else:
        ss[MESSAGE] = ("success", f"Trained {history.steps_done} steps in {history.seconds:.1f} s; kept the best "
                                  f"model (step {history.best_step}, by the {history.best_by} log-likelihood).")


def results(trained: state.TrainedLVM) -> None:
    model_bytes = save_lvm(trained.model, trained.encoder, trained.config)
    X_tr, X_te = trained.data.train, trained.data.test
    cfg = trained.config
    every = st.toggle(f"Score all {len(X_te):,} held-out points exactly", key="dl_score_all", bind="query-params",
                      help=f"By default the first {SCORED_POINTS}: a trained model's exact p(x) costs about 0.03 s "
                           "per point (its posteriors are thin), so all of them take about half a minute.")
    X_eval = X_te if every else X_te[:SCORED_POINTS]
    held = exact_held_out(model_bytes, X_eval)
    baselines = mixture_baselines(X_tr, X_eval, cfg.get("seed", 0))
    cols = st.columns(3)
    cols[0].metric("Deep LVM: exact held-out log p(x)", f"{held:.3f} nats",
                   delta=f"{held - baselines['single Gaussian']:+.3f} vs one Gaussian")
    for col, (name, value) in zip(cols[1:], baselines.items(), strict=True):
        col.metric(f"{name}: held-out", f"{value:.3f} nats")
    kit.note(f"Mean log-likelihood per point in standardised units, over the same {len(X_eval):,} of the "
             f"{len(X_te):,} held-out points for every model: the deep LVM's by quadrature over z (1e-4 nats per "
             "point), the mixtures' in closed form."
             + ("" if every else " A few hundred points leave a few hundredths of a nat of sampling noise in each "
                                 "mean: score all of them to settle a close race."))
    xlim, ylim = limits(X_te)
    xs, ys, log_p = density_on_grid(model_bytes, xlim, ylim, 50, PICTURE_Z_NODES)
    gmm_name = "GMM (10 components)"
    log_p_gmm = mixture_density_on_grid(X_tr, cfg.get("seed", 0), xlim, ylim, 50)
    st.subheader("The infinite mixture against a finite one")
    kit.explain(figs.comparison_sentence("the deep LVM", held, "the Gaussian mixture with 10 components",
                                         baselines[gmm_name]))
    kit.chart(figs.density_pair_figure(xs, ys, log_p, log_p_gmm,
                                       (f"Deep LVM: {held:.2f} nats per held-out point",
                                        f"{gmm_name}: {baselines[gmm_name]:.2f} nats per point"),
                                       X=X_te, height=height(460)), key="dl_density_chart",
              filename="deep_lvm_vs_gmm")
    kit.note("Both densities on the same grid and colour scale, the same held-out points over both; the titles give "
             "each model's exact mean held-out log-likelihood. The GMM is fitted by EM to the same training points. "
             f"The deep LVM's picture comes from one shared grid of {PICTURE_Z_NODES} x {PICTURE_Z_NODES} values of z "
             "(an approximation for drawing: on a sharply trained model its relative density is about 1% (L1) from the "
             "exact one, benchmarks/README.md); its numbers are exact.")
    left, right = st.columns(2)
    samples = model_samples(model_bytes, len(X_te), cfg.get("seed", 0))
    with left:
        kit.chart(figs.samples_figure(X_te, samples, height=height(420), title="Samples x ~ p(x) vs data"),
                  key="dl_samples_chart")
    with right:
        feature = st.segmented_control("Colour the latent space by", ("x₁", "x₂"), default="x₁", key="dl_feature",
                                       bind="query-params", persist_state="session") or "x₁"
        Z = codes(model_bytes, X_te, cfg.get("seed", 0))
        source_name = "encoder mean" if trained.encoder is not None else "optimised φᵢ mean"
        kit.chart(figs.latent_space_figure(Z, X_te[:, 0 if feature == "x₁" else 1], feature, source_name,
                                           height=height(360)), key="dl_latent_chart")
    history = trained.history
    if history is not None and history.inner_elbo:
        shown = history.inner_elbo[:: max(1, len(history.inner_elbo) // 12)]
        kit.chart(figs.inner_loop_figure(shown, height=height(280)), key="dl_inner_chart")
        st.caption("The notes' inner loop: the ELBO of the sampled points rises while only their φᵢ move (a dozen "
                   "θ steps shown, early ones dark); then one θ step.")


def model_seen() -> None:
    """The model, seen: the notes' model, a random MLP or the trained 2-D model as an infinite mixture."""
    st.header("The model, seen")
    trained = trained_points()
    sources = [s for s in SOURCES if s != "trained" or trained is not None]
    c1, c2 = st.columns([2, 1])
    source = c1.segmented_control("Model", sources, format_func=SOURCES.get, default="seed", key="dl_source",
                                  bind="query-params", persist_state="session") or "seed"
    latent_dim = c2.segmented_control("Latent dimension", (1, 2), default=1, key="dl_latent_dim",
                                      bind="query-params", persist_state="session") or 1
    if source == "seed":
        view_model = seed_model_controls(latent_dim)
    elif source == "mlp":
        view_model = mlp_controls(latent_dim)
    else:
        view_model = trained.model
        cfg = trained.config
        st.caption(f"The model trained below: latent dimension {view_model.latent_dim}, width {cfg.get('hidden')}, "
                   f"depth {cfg.get('depth')}, {cfg.get('activation')}, objective {cfg.get('objective')}.")
    view_bytes = save_lvm(view_model)
    view_data = trained.data.test if source == "trained" else None
    kit.guarded(mixture_view, view_bytes, view_model.latent_dim, view_data,
                PICTURE_Z_NODES if source == "trained" else None)


def points_training():
    """Learning theta on 2-D points: the data, the settings, Train / Stop with progress, the runs overlaid.
    Returns the current split (X_train, X_test, mean, std), which an uploaded model is scored on."""
    st.header("Learning θ from data")
    kit.explain(
        "The data are standardised and split into training and held-out points. Training maximises a lower bound "
        "on $\\log p_\\theta(x)$; the **exact** held-out log-likelihood (quadrature over $z$) is the judge. The "
        "ELBO's $q$ comes from an encoder network (a VAE); IWAE averages $k$ importance weights inside the log (a "
        "tighter bound); the notes' algorithm optimises each point's own $\\varphi_i$ with $\\theta$ frozen, then "
        "takes one step on $\\theta$. The decoder is an MLP with the architecture chosen here."
    )
    X_raw = data_picker(DATA, default_preset="two_moons", default_n=4000)
    c1, c2, c3, c4 = st.columns(4)
    t_latent = c1.segmented_control("Latent dimension (trained MLP)", (1, 2), default=2, key="dl_t_latent",
                                    bind="query-params", persist_state="session") or 2
    t_width = c2.select_slider("Width", WIDTHS, value=64, key="dl_t_width", bind="query-params",
                               persist_state="session")
    t_depth = c3.slider("Depth (hidden layers)", 1, 4, 3, key="dl_t_depth", bind="query-params",
                        persist_state="session")
    t_activation = c4.selectbox("Activation", ("tanh", "relu", "silu", "elu"), key="dl_t_activation",
                                bind="query-params", persist_state="session")
    c1, c2, c3, c4 = st.columns(4)
    # the defaults are train_lvm's (IWAE-8, 6,000 steps, the rate decaying along a cosine): they take the deep LVM
    # past a 10-component Gaussian mixture on two moons in about half a minute (benchmarks/README.md)
    objective = c1.selectbox("Objective", OBJECTIVES, index=OBJECTIVES.index("iwae"), format_func=OBJECTIVE_LABELS.get,
                             key="dl_objective", bind="query-params", persist_state="session",
                             help="ELBO (VAE): an amortised encoder q(z|x) trained with θ. IWAE-k: the same "
                                  "encoder, the tighter k-sample bound. The notes' algorithm: for each sampled "
                                  "point, optimise its own φᵢ by gradient ascent first, then take one θ step.")
    steps = c2.slider("Steps", 50, 10000, 6000, step=50, key="dl_steps", bind="query-params",
                      persist_state="session", help="The learning rate decays along a cosine to 5% of its start "
                                                    "over the run: the late small steps sharpen the density.")
    lr = c3.select_slider("Learning rate", LRS, value=1e-2, key="dl_lr", bind="query-params",
                          persist_state="session")
    batch_size = c4.select_slider("Batch size", BATCHES, value=128, key="dl_batch", bind="query-params",
                                  persist_state="session")
    c1, c2, c3, c4 = st.columns(4)
    k = c1.slider("k (samples per point)", 1, 64, 1 if objective != "iwae" else 8, key=f"dl_k_{objective}",
                  bind="query-params", persist_state="session")
    train_seed = c2.slider("Training seed", 0, 999, 0, key="dl_train_seed", bind="query-params",
                           persist_state="session",
                           help="Same seed: same initial θ and the same minibatches, so runs compare fairly.")
    held_out = c3.slider("Held-out fraction", 0.1, 0.5, 0.25, step=0.05, key="dl_held_out", bind="query-params",
                         persist_state="session")
    warmup = c4.slider("KL warm-up steps", 0, 2000, 500, step=50, key="dl_warmup", bind="query-params",
                       persist_state="session",
                       help="Ramp the weight of log p(z) - log q(z) from 0 to 1 over these steps (at most a "
                            "quarter of the run): the decoder learns to use z before the prior pulls q back; 0: the "
                            "plain bound.")
    if objective == "local":
        kit.note("Each step runs 20 Adam steps on the sampled points' own φᵢ (warm-started from their last visit; "
                 "the first visit starts at the data's principal coordinates) before one θ step: about 20x the cost "
                 "of an ELBO step, and at equal time it learns far less than the amortised encoder (benchmarks).")

    X_std, data_mean, data_std = standardize(X_raw)
    X_train, X_test = train_test_split_points(X_std, test_fraction=held_out, seed=train_seed)
    arch = dict(latent_dim=t_latent, hidden=t_width, depth=t_depth, activation=t_activation)
    run_label = (f"{objective}, lr {lr:g}, batch {batch_size}, k {k}, {steps} steps, warm-up {warmup}, "
                 f"{t_width}x{t_depth} {t_activation}, d {t_latent}, seed {train_seed}")
    interrupted = kit.take_over_run(PENDING)  # a run interrupted by Stop (or any rerun), its best weights loaded
    if interrupted is not None:
        finish_run(interrupted, interrupted=True)

    b1, b2, _ = st.columns([1, 1, 4])
    train_clicked = b1.button("Train", type="primary", icon=":material/play_arrow:", key="dl_train")
    b2.button("Stop", icon=":material/stop:", key="dl_stop", help="Stops a run and keeps the best model so far.")
    progress_slot, chart_slot = st.empty(), st.empty()

    if train_clicked:
        model = MLPLVM(seed=train_seed, **arch)
        config = dict(arch, objective=objective, k=k, steps=steps, lr=lr, batch_size=batch_size, seed=train_seed,
                      warmup=warmup, data=ss[DATA.meta].label if DATA.meta in ss else "data",
                      mean=data_mean.tolist(), std=data_std.tolist(), held_out=held_out)
        run = kit.new_run(model=model, config=config, label=run_label,
                          data=state.TrainedData(train=X_train, test=X_test, mean=data_mean, std=data_std))
        ss[PENDING] = run
        last = [0.0]
        references = mixture_baselines(X_train, X_test, train_seed)

        def show_progress(history) -> bool:
            run["history"] = history
            if run["stop"].is_set():
                return True
            now = time.monotonic()
            if now - last[0] > 0.7 or history.steps_done == steps:
                last[0] = now
                progress_slot.progress(history.steps_done / steps, text=f"step {history.steps_done} / {steps}: "
                                       f"bound {history.bound[-1]:.3f} nats per point")
                live = {"label": run_label, "bound": history.bound, "eval_steps": history.eval_steps,
                        "eval_log_lik": history.eval_log_lik}
                chart_slot.plotly_chart(figs.training_curves_figure([live], references, height=height(360),
                                                                    eval_label=LIVE_LABEL),
                                        config=kit.chart_config("training"))
            return False

        try:
            with kit.background_priority():
                train_lvm(model, X_train, objective=objective, k=k, steps=steps, lr=lr, batch_size=batch_size,
                          seed=train_seed, warmup=warmup, callback=show_progress, eval_X=X_test[:LIVE_POINTS],
                          eval_every=max(steps // 5, 25), eval_tol=LIVE_TOL)
        except Exception as exc:  # noqa: BLE001 - a failed run must not lose the previous model
            ss.pop(PENDING, None)
            st.error(f"Training failed ({type(exc).__name__}: {exc}). The previous model is kept.")
        else:
            if (finished := ss.pop(PENDING, None)) is not None:  # None: a rerun that stopped the run finished it
                finish_run(finished, interrupted=False)
        finally:
            run["done"].set()
        progress_slot.empty()

    if MESSAGE in ss:
        kind, text = ss[MESSAGE]
        {"error": st.error, "info": st.info, "success": st.success}[kind](text)

    runs = ss.get(state.TRAINING_RUNS, [])
    if runs:
        trained = trained_points()  # the runs' references: the latest 2-D model's data, else the current split
        references = (mixture_baselines(X_train, X_test, train_seed) if trained is None else
                      mixture_baselines(trained.data.train, trained.data.test, trained.config.get("seed", 0)))
        with chart_slot:
            kit.chart(figs.training_curves_figure(runs, references, height=height(400), eval_label=LIVE_LABEL),
                      key="dl_runs_chart")
        kit.note("Lines: the minibatch bound (smoothed); diamonds: the mean log-likelihood of the held-out points "
                 f"(all of them, or the first {LIVE_POINTS:,} of a larger set) during the run, by quadrature over z "
                 f"to {LIVE_TOL:g} nats per point, which keeps the run fast (their mean was within 2e-4 of the "
                 "1e-4-nats answer, benchmarks/README.md); it also picks the best weights. The Results give each "
                 "point to 1e-4 nats. Dashed: Gaussian mixtures fitted to the same training "
                 f"data. The last {MAX_RUNS} runs are kept; the same training seed gives every run the same initial "
                 "θ.")

    return X_train, X_test, data_mean, data_std


def points_view() -> None:
    """The 2-D page: the model seen, learning theta, the results against Gaussian mixtures, save and load."""
    model_seen()
    X_train, X_test, data_mean, data_std = points_training()

    trained = trained_points()
    st.header("Results")
    if trained is None:
        st.info("Train a model above (defaults: two moons, IWAE-8, 6,000 steps, about half a minute) or upload one "
                "below.")
    else:
        kit.guarded(results, trained)

    st.subheader("Download or upload a model")
    left, right = st.columns(2)
    if trained is not None:
        left.download_button("Download the trained model (.pt)",
                             save_lvm(trained.model, trained.encoder, trained.config), file_name="deep_lvm.pt",
                             mime="application/octet-stream", key="dl_model_download", icon=":material/download:",
                             on_click="ignore")
    uploaded = right.file_uploader("Upload a model saved here (.pt)", type=["pt"], key="dl_model_upload")
    if uploaded is not None and ss.get(UPLOAD_ID) != uploaded.file_id:
        ss[UPLOAD_ID] = uploaded.file_id
        try:
            model, encoder, config = load_lvm(uploaded.getvalue())
            if model.data_dim != 2:
                raise ValueError("the model is not for 2-D data.")
            if model.latent_dim not in (1, 2):
                raise ValueError(f"its latent dimension is {model.latent_dim}; this page computes the exact p(x) by "
                                 "quadrature, which needs a 1- or 2-D latent.")
        except ValueError as exc:
            ss["dl_upload_error"] = f"Could not load {uploaded.name!r}: {exc} The current model is kept."
        else:
            ss.pop("dl_upload_error", None)
            ss[state.TRAINED_LVM] = state.TrainedLVM(model=model, encoder=encoder, config=config,
                                                     data=state.TrainedData(train=X_train, test=X_test, mean=data_mean,
                                                                            std=data_std))
            ss[MESSAGE] = ("success", f"Loaded {uploaded.name!r}; it is evaluated on the current data's held-out "
                                      "split.")
            st.rerun()
    if ss.get("dl_upload_error"):
        right.error(ss["dl_upload_error"], icon=":material/error:")


# ------------------------------------------------------------------------------------------------ handwritten digits
@st.cache_data(show_spinner=False)
def digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return load_binarized_digits(seed=seed)


@st.cache_resource(show_spinner=False)
def shipped_digits_bytes() -> bytes:
    """the shipped digits model (model, encoder, config) as saved bytes: the digits view's starting model"""
    return save_lvm(*load_pretrained("digits"))


@st.cache_data(show_spinner=False)
def pixel_baseline(X_train: np.ndarray, X_test: np.ndarray) -> np.ndarray:
    return independent_pixel_log_likelihood(X_train, X_test).numpy()


@st.cache_data(max_entries=16, show_spinner=False)
def decoded_manifold(model_bytes: bytes, per_axis: int, extent: float) -> tuple[np.ndarray, np.ndarray]:
    """E[x | z] on a per_axis x per_axis grid of z: (per_axis, per_axis, 8, 8), entry [i, j] at z = (axis[j],
    axis[i]), and the axis (per_axis,)"""
    model, _, _ = load_lvm(model_bytes)
    z = latent_grid(2, per_axis, extent=extent, dtype=model.dtype)  # z₁ fastest: row i of the grid is z₂ = axis[i]
    with torch.no_grad():
        means = model.mean(z)  # (per_axis ** 2, 64)
    return means.reshape(per_axis, per_axis, *DIGITS_SHAPE).numpy(), z[:per_axis, 0].numpy()


@st.cache_data(max_entries=16, show_spinner=False)
def digit_samples(model_bytes: bytes, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n draws x ~ p(x) as images (n, 8, 8), and E[x | z] of the same z (n, 8, 8)"""
    model, _, _ = load_lvm(model_bytes)
    x, z = model.sample(n, generator=seed)
    with torch.no_grad():
        means = model.mean(z)
    return x.reshape(n, *DIGITS_SHAPE).numpy(), means.reshape(n, *DIGITS_SHAPE).numpy()


@st.cache_data(max_entries=16, show_spinner="Exact log p(x) of the held-out images (quadrature over z) ...")
def digit_scores(model_bytes: bytes, X: np.ndarray, k: int, seed: int) -> dict[str, np.ndarray]:
    """per image: the encoder's ELBO, IWAE-k and the exact log p(x) (bounds_per_point), nats per image"""
    model, encoder, _ = load_lvm(model_bytes)
    x = torch.as_tensor(X, dtype=model.dtype)
    with torch.no_grad():
        q = encoder.distribution(x)
    out = bounds_per_point(model, x, q, k=k, seed=seed)
    return {name: np.asarray(v) if name == "method" else v.numpy() for name, v in out.items()}


def digits_model() -> state.TrainedLVM:
    """the digits model shown: one trained on this page if there is one, else the shipped one"""
    trained = state.trained_lvm(ss)
    if trained is not None and trained.images:
        return trained
    model, encoder, config = load_lvm(shipped_digits_bytes())
    X_train, X_test, _, y_test = digits_split()
    return state.TrainedLVM(model=model, encoder=encoder, config=config,
                            data=state.TrainedData(train=X_train, test=X_test, mean=np.zeros(X_train.shape[1]),
                                                   std=np.ones(X_train.shape[1]), labels_test=y_test))


def digits_manifold(model_bytes: bytes) -> None:
    st.subheader("The manifold: one image per z")
    means, axis = decoded_manifold(model_bytes, MANIFOLD_PER_AXIS, MANIFOLD_EXTENT)
    kit.chart(figs.manifold_figure(means, axis, height=height(640)), key="dl_dg_manifold",
              filename="digits_manifold")
    kit.note(f"The decoder's pixel probabilities E[x | z] = sigmoid(l_θ(z)) at a {MANIFOLD_PER_AXIS} x "
             f"{MANIFOLD_PER_AXIS} grid of z over [-{MANIFOLD_EXTENT}, {MANIFOLD_EXTENT}]², where p(z) puts 99% of "
             "its mass. Neighbouring z give similar images: the digits morph into each other along the plane.")


def digits_samples_and_codes(model_bytes: bytes, X_test: np.ndarray, y_test: np.ndarray, seed: int) -> None:
    left, right = st.columns([1, 1])
    x, means = digit_samples(model_bytes, SAMPLES_SHOWN, seed)
    with left:
        st.subheader("Samples from the model")
        kit.chart(figs.image_tiles_figure(x, n_cols=10, title="x ~ p(x): z ~ p(z), then each pixel ~ Bernoulli",
                                          height=height(190)), key="dl_dg_samples", filename="digits_samples")
        kit.chart(figs.image_tiles_figure(means, n_cols=10, title="E[x | z] of the same z: pixel probabilities",
                                          height=height(190)), key="dl_dg_sample_means",
                  filename="digits_sample_means")
        kit.chart(figs.image_tiles_figure(X_test[:SAMPLES_SHOWN].reshape(-1, *DIGITS_SHAPE), n_cols=10,
                                          title="Held-out images, for comparison", height=height(190)),
                  key="dl_dg_data", filename="digits_held_out")
        kit.note("Change the sidebar's seed (or press Resample) for other draws.")
    with right:
        st.subheader("Where the digits sit in z")
        _, encoder, _ = load_lvm(model_bytes)
        Z = codes(model_bytes, X_test, seed)
        source = "encoder mean" if encoder is not None else "optimised φᵢ mean"
        kit.chart(figs.latent_labels_figure(Z, y_test, source=source, height=height(520)), key="dl_dg_latent",
                  filename="digits_latent")
        kit.note(f"Each held-out image at its {source} of q(z | x), coloured by the digit it shows. The labels were "
                 "never used in training.")


def digits_scores_section(model_bytes: bytes, X_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                          seed: int) -> None:
    st.subheader("Held-out log-likelihood: ELBO, IWAE-k and the exact log p(x)")
    c1, c2 = st.columns(2)
    k = c1.select_slider("k (importance samples for IWAE-k, and samples averaged for the ELBO)",
                         (1, 4, 16, 64, 256), value=64, key="dl_dg_k", bind="query-params", persist_state="session")
    every = c2.toggle(f"Score all {len(X_test)} held-out images", key="dl_dg_all", bind="query-params",
                      persist_state="session",
                      help=f"By default the first {SCORED_FIRST}: the exact log p(x) integrates over z for each image.")
    n = len(X_test) if every else min(SCORED_FIRST, len(X_test))
    scores = digit_scores(model_bytes, X_test[:n], k, seed)
    pixels = pixel_baseline(X_train, X_test)[:n]
    exact, iwae, elbo_ = (float(scores[name].mean()) for name in ("exact", "iwae", "elbo"))
    cols = st.columns(4)
    cols[0].metric("Exact log p(x)", f"{exact:.2f} nats", delta=f"{exact - pixels.mean():+.2f} vs independent pixels")
    cols[1].metric(f"IWAE-{k}", f"{iwae:.2f} nats", delta=f"{iwae - exact:+.2f} vs exact", delta_color="off")
    cols[2].metric("ELBO", f"{elbo_:.2f} nats", delta=f"{elbo_ - exact:+.2f} vs exact", delta_color="off")
    cols[3].metric("Independent pixels (no z)", f"{pixels.mean():.2f} nats")
    gap = exact - elbo_
    closed = (iwae - elbo_) / gap if gap > 0 else float("nan")
    kit.explain(f"Averaged over {n} held-out images: the encoder's gap, exact log p(x) minus the ELBO, is "
                f"**{gap:.2f} nats per image**; IWAE-{k} closes {closed:.0%} of it with the same encoder. The latent "
                f"variable is worth {exact - pixels.mean():.2f} nats per image over the model that draws every pixel "
                "on its own.")
    table = {"image": np.arange(n), "digit": y_test[:n], "ELBO": scores["elbo"], f"IWAE-{k}": scores["iwae"],
             "exact log p(x)": scores["exact"], "independent pixels": pixels,
             "gap (exact - ELBO)": scores["exact"] - scores["elbo"], "exact by": scores["method"]}
    st.dataframe(table, key="dl_dg_table", hide_index=True, height=height(260))
    kit.csv_download(table, "digits_log_likelihoods.csv", key="dl_dg_csv", label="Download the table (CSV)")
    kit.note("Nats per image, each image its own row. ELBO: the mean of log p(x, z) - log q(z | x) over k draws "
             "from the encoder's q; IWAE-k: one draw of log mean_j p(x, z_j) / q(z_j | x); exact: quadrature over "
             "the 2-D z (1e-4 nats per image). In expectation ELBO ≤ IWAE-k ≤ exact for every image; one draw of "
             "IWAE-k can land above the exact value (its weights average to p(x), so some draws overshoot); its "
             "expectation cannot.")


def finish_digits_run(run: dict, interrupted: bool) -> None:
    """Store a finished, stopped or diverged digits run as the session's trained model."""
    history = run["history"]
    if history is None:
        return
    ss[state.TRAINED_LVM] = state.TrainedLVM(model=run["model"], encoder=history.encoder, config=run["config"],
                                             data=run["data"], history=history)
    if history.diverged:
        ss[DG_MESSAGE] = ("error", history.diverged)
    elif interrupted or history.stopped:
        ss[DG_MESSAGE] = ("info", f"Stopped after {history.steps_done} steps; kept the best model so far "
                                  f"(step {history.best_step}).")
    else:
        ss[DG_MESSAGE] = ("success", f"Trained {history.steps_done} steps in {history.seconds:.1f} s; kept the "
                                     f"best model (step {history.best_step}, by the {history.best_by} "
                                     "log-likelihood).")


def digits_run_label(config: dict) -> str:
    return (f"{OBJECTIVE_LABELS.get(config.get('objective'), 'run')}, k {config.get('k')}, lr {config.get('lr'):g}, "
            f"{config.get('steps')} steps, seed {config.get('seed')}")


def digits_training(X_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, pixels: float) -> None:
    st.subheader("Train on the digits")
    kit.explain("The model above was trained once and ships with the app. Train your own here: a fresh decoder "
                "and encoder from the seed, scored every few steps by the exact log p(x) of the first "
                f"{EVAL_IMAGES} held-out images; the best weights are kept and replace the model above.")
    c1, c2, c3, c4, c5 = st.columns(5)
    objective = c1.selectbox("Objective", ("iwae", "elbo"), format_func=OBJECTIVE_LABELS.get, key="dl_dg_objective",
                             bind="query-params", persist_state="session")
    k = c2.slider("k (samples per image)", 1, 64, 8 if objective == "iwae" else 1, key=f"dl_dg_k_{objective}",
                  bind="query-params", persist_state="session")
    steps = c3.slider("Steps", 50, 6000, 1000, step=50, key="dl_dg_steps", bind="query-params",
                      persist_state="session", help="The shipped model: 6,000 steps of IWAE-8.")
    lr = c4.select_slider("Learning rate", LRS, value=1e-2, key="dl_dg_lr", bind="query-params",
                          persist_state="session")
    seed = c5.slider("Training seed", 0, 999, 0, key="dl_dg_seed", bind="query-params", persist_state="session")
    b1, b2, b3, _ = st.columns([1, 1, 2, 2])
    train_clicked = b1.button("Train", type="primary", icon=":material/play_arrow:", key="dl_dg_train")
    b2.button("Stop", icon=":material/stop:", key="dl_dg_stop", help="Stops a run and keeps the best model so far.")
    trained = state.trained_lvm(ss)
    if trained is not None and trained.images and b3.button("Back to the shipped model", key="dl_dg_shipped",
                                                             icon=":material/undo:"):
        del ss[state.TRAINED_LVM]
        ss.pop(DG_MESSAGE, None)
        st.rerun()
    progress_slot, chart_slot = st.empty(), st.empty()
    references = {"independent pixels": pixels}
    if train_clicked:
        model = BernoulliMLPLVM(latent_dim=2, data_dim=X_train.shape[1], seed=seed)
        config = dict(model_config(model), objective=objective, k=k, steps=steps, lr=lr, seed=seed, data="digits")
        run = kit.new_run(model=model, config=config,
                          data=state.TrainedData(train=X_train, test=X_test, mean=np.zeros(X_train.shape[1]),
                                                 std=np.ones(X_train.shape[1]), labels_test=y_test))
        ss[DG_PENDING] = run
        last = [0.0]

        def show_progress(history) -> bool:
            run["history"] = history
            if run["stop"].is_set():
                return True
            now = time.monotonic()
            if now - last[0] > 0.7 or history.steps_done == steps:
                last[0] = now
                progress_slot.progress(history.steps_done / steps, text=f"step {history.steps_done} / {steps}: "
                                       f"bound {history.bound[-1]:.2f} nats per image")
                live = {"label": digits_run_label(config), "bound": history.bound, "eval_steps": history.eval_steps,
                        "eval_log_lik": history.eval_log_lik}
                chart_slot.plotly_chart(figs.training_curves_figure([live], references, height=height(360)),
                                        config=kit.chart_config("digits_training"))
            return False

        try:
            with kit.background_priority():
                train_lvm(model, X_train, objective=objective, k=k, steps=steps, lr=lr, seed=seed,
                          callback=show_progress, eval_X=X_test[:EVAL_IMAGES], eval_every=max(steps // 4, 25))
        except Exception as exc:  # noqa: BLE001 - a failed run must not lose the previous model
            ss.pop(DG_PENDING, None)
            st.error(f"Training failed ({type(exc).__name__}: {exc}). The previous model is kept.")
        else:
            if (finished := ss.pop(DG_PENDING, None)) is not None:  # None: a rerun that stopped the run finished it
                finish_digits_run(finished, interrupted=False)
                st.rerun()  # the views above show the new model
        finally:
            run["done"].set()
    if DG_MESSAGE in ss:
        kind, text = ss[DG_MESSAGE]
        {"error": st.error, "info": st.info, "success": st.success}[kind](text)
    trained = state.trained_lvm(ss)
    if trained is not None and trained.images and trained.history is not None:
        history = trained.history
        run = {"label": digits_run_label(trained.config), "bound": history.bound,
               "eval_steps": history.eval_steps, "eval_log_lik": history.eval_log_lik}
        with chart_slot:
            kit.chart(figs.training_curves_figure([run], references, height=height(360)), key="dl_dg_curves",
                      filename="digits_training")
        kit.note(f"Line: the minibatch bound (smoothed); diamonds: the exact mean log p(x) of the first {EVAL_IMAGES} "
                 "held-out images; dotted: the independent-pixel model on all held-out images.")


def digits_view() -> None:
    """Handwritten digits: the shipped (or a freshly trained) Bernoulli decoder, its manifold, samples, latent space,
    and the exact log p(x) of held-out images beside the ELBO and IWAE-k."""
    st.header("Handwritten digits")
    kit.explain("scikit-learn's 8 x 8 handwritten digits, each pixel set to 1 where the ink is dark (1,437 training "
                "and 360 held-out images). The decoder now gives each of the 64 pixels a probability of being on, "
                "so each $z$ is an image of probabilities and $p(x)$ mixes infinitely many of them. With a 2-D $z$ "
                "the exact $\\log p(x)$ is still a quadrature over $z$, so the ELBO and IWAE can be judged against it.")
    st.latex(r"p_\theta(x) = \int \mathcal N(z; 0, I) \prod_{j=1}^{64} \operatorname{sigmoid}(\ell_\theta(z)_j)^{x_j}"
             r"\big(1 - \operatorname{sigmoid}(\ell_\theta(z)_j)\big)^{1 - x_j}\, dz")
    interrupted = kit.take_over_run(DG_PENDING)  # a run interrupted by Stop, its best weights loaded
    if interrupted is not None:
        finish_digits_run(interrupted, interrupted=True)
    current = digits_model()
    cfg = current.config
    if current.history is None:
        figures = cfg.get("figures", {})
        st.caption(f"Shown: the shipped model ({kit.literal(cfg.get('recipe', 'pretrained'))}, trained in "
                   f"{figures.get('seconds', float('nan')):.0f} s). Train your own at the bottom of the page.")
    else:
        st.caption(f"Shown: the model trained here ({cfg.get('objective')}, k {cfg.get('k')}, "
                   f"{current.history.steps_done} steps, seed {cfg.get('seed')}).")
    model_bytes = save_lvm(current.model, current.encoder, current.config)
    data = current.data
    seed = page_seed()
    kit.guarded(digits_manifold, model_bytes)
    kit.guarded(digits_samples_and_codes, model_bytes, data.test, data.labels_test, seed)
    kit.guarded(digits_scores_section, model_bytes, data.train, data.test, data.labels_test, seed)
    kit.guarded(digits_training, data.train, data.test, data.labels_test,
                float(pixel_baseline(data.train, data.test).mean()))


# --------------------------------------------------------------------------------------------------- the page
if data_kind == "digits":
    digits_view()
else:
    points_view()

"""Deep latent variable models: the infinite mixture, seen and trained (issue 4).

Widgets -> lvm_core.training / estimators / gmm (cached) -> lvm_core.plots.deep -> st.plotly_chart. No maths here.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
import streamlit as st
import torch

from lvm_core import gmm
from lvm_core.datasets import standardize, train_test_split_points
from lvm_core.models import MLPLVM, SeedLVM
from lvm_core.plots import deep as figs
from lvm_core.training import (
    OBJECTIVES,
    held_out_log_lik,
    latent_codes,
    latent_grid,
    load_lvm,
    log_density_grid,
    mixture_components,
    save_lvm,
    train_lvm,
)
from ui import state
from ui.data import DataKeys, data_picker
from ui.sidebar import presentation_scale

DATA = DataKeys("dl")
MAX_RUNS = 4  # runs kept for the overlay
PENDING = "dl_pending_run"  # a run in progress: kept here so that a Stop (an interrupting rerun) never loses it
UPLOAD_ID = "dl_upload_handled"
MESSAGE = "dl_message"
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
BATCHES = (16, 32, 64, 128, 256, 512, 1024)
WIDTHS = (8, 16, 32, 64, 128, 256)
OBJECTIVE_LABELS = {"elbo": "ELBO (VAE)", "iwae": "IWAE-k", "local": "the notes' per-point φᵢ"}
SOURCES = {"seed": "The notes' model", "mlp": "Random MLP decoder", "trained": "The trained model"}
THETA_NAMES = ("A", "B", "c", "d")
ss = st.session_state


def height(h: int) -> int:
    return int(h * presentation_scale())


def fingerprint(*arrays) -> str:
    h = hashlib.blake2b(digest_size=12)
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def guarded(section, *args):
    """Run a page section; an unexpected failure becomes a message, never a traceback (model and data are kept)."""
    try:
        return section(*args)
    except Exception as exc:  # noqa: BLE001 - the last line of defence for a live demo
        st.error(f"This part of the page could not be drawn ({type(exc).__name__}: {exc}). Your model and data are "
                 "kept; try other settings.", icon=":material/error:")
        return None


# ----------------------------------------------------------------------------------------------- cached work
@st.cache_data(max_entries=16, show_spinner="Computing the exact p(x) by quadrature ...")
def density_on_grid(model_bytes: bytes, xlim: tuple, ylim: tuple, n: int):
    model, _, _ = load_lvm(model_bytes)
    xs, ys, log_p = log_density_grid(model, xlim, ylim, n=n)
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
    return held_out_log_lik(model, torch.as_tensor(X_test, dtype=model.dtype))


@st.cache_data(max_entries=16, show_spinner="Fitting the Gaussian mixtures for comparison ...")
def mixture_baselines(X_train: np.ndarray, X_test: np.ndarray, seed: int) -> dict[str, float]:
    out = {}
    for K in (1, 10):
        fitted = gmm.fit_mixture(X_train, K, seed=seed, max_iter=200)
        out["single Gaussian" if K == 1 else f"GMM ({K} components)"] = float(gmm.log_marginal(fitted, X_test).mean())
    return out


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
st.markdown(
    "Draw a hidden $z \\sim \\mathcal N(0, I)$, then $x \\mid z \\sim \\mathcal N(\\mu_\\theta(z), "
    "\\Sigma_\\theta(z))$ with **neural networks** $\\mu_\\theta, \\Sigma_\\theta$. Every $z$ picks one simple "
    "Gaussian, and there are infinitely many $z$: the marginal $p(x)$ is a **mixture of infinitely many Gaussians**, "
    "which can be far from Gaussian although each piece is. Below, the pieces are drawn as ellipses over the exact "
    "$p(x)$ (computed by quadrature over $z$), then $\\theta$ is learned from data."
)
st.latex(r"p_\theta(x) = \int p(z)\, \mathcal N\big(x;\, \mu_\theta(z),\, \Sigma_\theta(z)\big)\, dz,"
         r"\qquad p(z) = \mathcal N(0, I)")

# --------------------------------------------------------------------------------------------- the model, seen
st.header("The model, seen")
trained = state.trained_lvm(ss)
sources = [s for s in SOURCES if s != "trained" or trained is not None]
c1, c2 = st.columns([2, 1])
source = c1.segmented_control("Model", sources, format_func=SOURCES.get, default="seed", key="dl_source",
                              bind="query-params", persist_state="session") or "seed"
latent_dim = c2.segmented_control("Latent dimension", (1, 2), default=1, key="dl_latent_dim", bind="query-params",
                                  persist_state="session") or 1


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


@st.fragment
def mixture_view(model_bytes: bytes, d: int, data: np.ndarray | None) -> None:
    """The infinite mixture with one component highlighted; the z slider reruns only this part."""
    xlim, ylim = limits(data if data is not None else model_samples(model_bytes, 2000, 0))
    xs, ys, log_p = density_on_grid(model_bytes, xlim, ylim, 50)
    z, mu, sigma, log_pz = components(model_bytes, 41 if d == 1 else 11)
    cols = st.columns(d)
    z_sel = np.array([cols[i].slider("z" if d == 1 else f"z{'₁₂'[i]}", -3.0, 3.0, 0.0, step=0.05, key=f"dl_z{i + 1}",
                                     bind="query-params", persist_state="session") for i in range(d)])
    model, _, _ = load_lvm(model_bytes)
    h_mu, h_sigma, h_log_pz = mixture_components(model, torch.as_tensor(z_sel[None]))
    highlight = {"z": z_sel, "mu": h_mu[0].numpy(), "sigma": h_sigma[0].numpy(), "log_pz": float(h_log_pz[0])}
    left, right = st.columns([3, 2])
    left.plotly_chart(figs.infinite_mixture_figure(xs, ys, log_p, mu, sigma, z, highlight=highlight, X=data,
                                                   height=height(520)), key="dl_mixture_chart")
    right.plotly_chart(figs.prior_figure(z, log_pz, z_sel, height=height(300)), key="dl_prior_chart")
    right.latex(rf"p(z) = {np.exp(highlight['log_pz']):.4f},\quad \mu(z) = ({h_mu[0, 0]:.2f}, {h_mu[0, 1]:.2f})")
    right.latex(rf"\sigma(z) = ({h_sigma[0, 0]:.2f}, {h_sigma[0, 1]:.2f})")
    right.caption("Ellipses: one standard deviation of p(x|z) for a grid of z, coloured by z. The heatmap is the "
                  "exact p(x), the sum of all of them weighted by p(z) (integrated over z to 1e-4 nats).")


view_data = trained.data.test if source == "trained" else None
guarded(mixture_view, view_bytes, view_model.latent_dim, view_data)

# ------------------------------------------------------------------------------------------------------ training
st.header("Learning θ from data")
st.markdown(
    "The data are standardised and split into training and held-out points. Training maximises a lower bound on "
    "$\\log p_\\theta(x)$; the **exact** held-out log-likelihood (quadrature over $z$) is the judge. The ELBO's $q$ "
    "comes from an encoder network (a VAE); IWAE averages $k$ importance weights inside the log (a tighter bound); "
    "the notes' algorithm optimises each point's own $\\varphi_i$ with $\\theta$ frozen, then takes one step on "
    "$\\theta$. The decoder is an MLP with the architecture chosen here."
)
X_raw = data_picker(DATA, default_preset="two_moons", default_n=4000)
c1, c2, c3, c4 = st.columns(4)
t_latent = c1.segmented_control("Latent dimension (trained MLP)", (1, 2), default=2, key="dl_t_latent",
                                bind="query-params", persist_state="session") or 2
t_width = c2.select_slider("Width", WIDTHS, value=64, key="dl_t_width", bind="query-params", persist_state="session")
t_depth = c3.slider("Depth (hidden layers)", 1, 4, 2, key="dl_t_depth", bind="query-params", persist_state="session")
t_activation = c4.selectbox("Activation", ("tanh", "relu", "silu", "elu"), key="dl_t_activation",
                            bind="query-params", persist_state="session")
c1, c2, c3, c4 = st.columns(4)
objective = c1.selectbox("Objective", OBJECTIVES, format_func=OBJECTIVE_LABELS.get, key="dl_objective",
                         bind="query-params", persist_state="session",
                         help="ELBO (VAE): an amortised encoder q(z|x) trained with θ. IWAE-k: the same encoder, the "
                              "tighter k-sample bound. The notes' algorithm: for each sampled point, optimise its own "
                              "φᵢ by gradient ascent first, then take one θ step.")
steps = c2.slider("Steps", 50, 5000, 2000, step=50, key="dl_steps", bind="query-params", persist_state="session")
lr = c3.select_slider("Learning rate", LRS, value=1e-2, key="dl_lr", bind="query-params", persist_state="session")
batch_size = c4.select_slider("Batch size", BATCHES, value=128, key="dl_batch", bind="query-params",
                              persist_state="session")
c1, c2, c3, c4 = st.columns(4)
k = c1.slider("k (samples per point)", 1, 64, 1 if objective != "iwae" else 8, key=f"dl_k_{objective}",
              bind="query-params", persist_state="session")
train_seed = c2.slider("Training seed", 0, 999, 0, key="dl_train_seed", bind="query-params", persist_state="session",
                       help="Same seed: same initial θ and the same minibatches, so runs compare fairly.")
held_out = c3.slider("Held-out fraction", 0.1, 0.5, 0.25, step=0.05, key="dl_held_out", bind="query-params",
                     persist_state="session")
warmup = c4.slider("KL warm-up steps", 0, 2000, 500, step=50, key="dl_warmup", bind="query-params",
                   persist_state="session",
                   help="Ramp the weight of log p(z) - log q(z) from 0 to 1 over these steps (at most a quarter "
                        "of the run): the decoder learns to use z before the prior pulls q back; 0: the plain bound.")
if objective == "local":
    st.caption("Each step runs 20 Adam steps on the sampled points' own φᵢ (warm-started from their last visit; the "
               "first visit starts at the data's principal coordinates) before one θ step: about 20x the cost of an "
               "ELBO step, and at equal time it learns far less than the amortised encoder (benchmarks).")

X_std, data_mean, data_std = standardize(X_raw)
X_train, X_test = train_test_split_points(X_std, test_fraction=held_out, seed=train_seed)
arch = dict(latent_dim=t_latent, hidden=t_width, depth=t_depth, activation=t_activation)
run_label = (f"{objective}, lr {lr:g}, batch {batch_size}, k {k}, {steps} steps, warm-up {warmup}, "
             f"{t_width}x{t_depth} {t_activation}, d {t_latent}, seed {train_seed}")


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


if PENDING in ss:  # a run interrupted by Stop (or any rerun): its best weights are already in the model
    finish_run(ss.pop(PENDING), interrupted=True)

b1, b2, _ = st.columns([1, 1, 4])
train_clicked = b1.button("Train", type="primary", icon=":material/play_arrow:", key="dl_train")
b2.button("Stop", icon=":material/stop:", key="dl_stop", help="Stops a run and keeps the best model so far.")
progress_slot, chart_slot = st.empty(), st.empty()

if train_clicked:
    model = MLPLVM(seed=train_seed, **arch)
    config = dict(arch, objective=objective, k=k, steps=steps, lr=lr, batch_size=batch_size, seed=train_seed,
                  warmup=warmup, data=ss[DATA.meta].label if DATA.meta in ss else "data",
                  mean=data_mean.tolist(), std=data_std.tolist(), held_out=held_out)
    run = {"model": model, "history": None, "config": config, "label": run_label,
           "data": state.TrainedData(train=X_train, test=X_test, mean=data_mean, std=data_std)}
    ss[PENDING] = run
    last = [0.0]
    references = mixture_baselines(X_train, X_test, train_seed)

    def show_progress(history) -> bool:
        run["history"] = history
        now = time.monotonic()
        if now - last[0] > 0.7 or history.steps_done == steps:
            last[0] = now
            progress_slot.progress(history.steps_done / steps, text=f"step {history.steps_done} / {steps}: bound "
                                   f"{history.bound[-1]:.3f} nats per point")
            live = {"label": run_label, "bound": history.bound, "eval_steps": history.eval_steps,
                    "eval_log_lik": history.eval_log_lik}
            chart_slot.plotly_chart(figs.training_curves_figure([live], references, height=height(360)))
        return False

    try:
        train_lvm(model, X_train, objective=objective, k=k, steps=steps, lr=lr, batch_size=batch_size,
                  seed=train_seed, warmup=warmup, callback=show_progress, eval_X=X_test,
                  eval_every=max(steps // 5, 25))
    except Exception as exc:  # noqa: BLE001 - a failed run must not lose the previous model
        ss.pop(PENDING, None)
        st.error(f"Training failed ({type(exc).__name__}: {exc}). The previous model is kept.")
    else:
        finish_run(ss.pop(PENDING), interrupted=False)
    progress_slot.empty()

if MESSAGE in ss:
    kind, text = ss[MESSAGE]
    {"error": st.error, "info": st.info, "success": st.success}[kind](text)

runs = ss.get(state.TRAINING_RUNS, [])
if runs:
    trained = state.trained_lvm(ss)
    references = mixture_baselines(trained.data.train, trained.data.test, trained.config.get("seed", 0))
    chart_slot.plotly_chart(figs.training_curves_figure(runs, references, height=height(400)), key="dl_runs_chart")
    st.caption("Lines: the minibatch bound (smoothed); diamonds: the exact mean log-likelihood of all held-out "
               "points (quadrature over z, 1e-4 nats per point); dashed: Gaussian mixtures fitted "
               "to the same training data. "
               f"The last {MAX_RUNS} runs are kept; the same training seed gives every run the same initial θ.")

# ------------------------------------------------------------------------------------------------------- results
trained = state.trained_lvm(ss)


def results(trained: state.TrainedLVM) -> None:
    model_bytes = save_lvm(trained.model, trained.encoder, trained.config)
    X_tr, X_te = trained.data.train, trained.data.test
    cfg = trained.config
    X_eval = X_te
    held = exact_held_out(model_bytes, X_eval)
    baselines = mixture_baselines(X_tr, X_te, cfg.get("seed", 0))
    cols = st.columns(3)
    cols[0].metric("Deep LVM: exact held-out log p(x)", f"{held:.3f} nats",
                   delta=f"{held - baselines['single Gaussian']:+.3f} vs one Gaussian")
    for col, (name, value) in zip(cols[1:], baselines.items(), strict=True):
        col.metric(f"{name}: held-out", f"{value:.3f} nats")
    st.caption(f"Mean log-likelihood per point in standardised units. The deep LVM's: {len(X_eval):,} held-out "
               "points, quadrature over z (1e-4 nats per point); the mixtures': all "
               f"{len(X_te):,} held-out points, in closed form.")
    xs, ys, log_p = density_on_grid(model_bytes, *limits(X_te), 50)
    left, right = st.columns(2)
    left.plotly_chart(figs.density_vs_data_figure(xs, ys, log_p, X_te, height=height(420),
                                                  title="Learned p(x) and held-out data"), key="dl_density_chart")
    samples = model_samples(model_bytes, len(X_te), cfg.get("seed", 0))
    right.plotly_chart(figs.samples_figure(X_te, samples, height=height(420), title="Samples x ~ p(x) vs data"),
                       key="dl_samples_chart")
    feature = st.segmented_control("Colour the latent space by", ("x₁", "x₂"), default="x₁", key="dl_feature",
                                   bind="query-params", persist_state="session") or "x₁"
    Z = codes(model_bytes, X_te, cfg.get("seed", 0))
    source_name = "encoder mean" if trained.encoder is not None else "optimised φᵢ mean"
    st.plotly_chart(figs.latent_space_figure(Z, X_te[:, 0 if feature == "x₁" else 1], feature, source_name,
                                             height=height(420)), key="dl_latent_chart")
    history = trained.history
    if history is not None and history.inner_elbo:
        shown = history.inner_elbo[:: max(1, len(history.inner_elbo) // 12)]
        st.plotly_chart(figs.inner_loop_figure(shown, height=height(280)), key="dl_inner_chart")
        st.caption("The notes' inner loop: the ELBO of the sampled points rises while only their φᵢ move (a dozen "
                   "θ steps shown, early ones dark); then one θ step.")


st.header("Results")
if trained is None:
    st.info("Train a model above (defaults: two moons, ELBO, 2,000 steps, well under a minute) or upload one below.")
else:
    guarded(results, trained)

# ---------------------------------------------------------------------------------------------- save and load
st.subheader("Download or upload a model")
left, right = st.columns(2)
if trained is not None:
    left.download_button("Download the trained model (.pt)", save_lvm(trained.model, trained.encoder, trained.config),
                         file_name="deep_lvm.pt", mime="application/octet-stream", key="dl_model_download",
                         icon=":material/download:", on_click="ignore")
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
        ss[MESSAGE] = ("success", f"Loaded {uploaded.name!r}; it is evaluated on the current data's held-out split.")
        st.rerun()
if ss.get("dl_upload_error"):
    right.error(ss["dl_upload_error"], icon=":material/error:")

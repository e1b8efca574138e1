"""The shared model + point picker of the "Estimating p(x)" and "ELBO" pages.

    from ui.selection import model_and_point
    sel = model_and_point("est")          # widget keys "est_model", "est_x1", ... (URL-bound)
    sel.model, sel.x, sel.log_px           # the model, x: (1, data_dim), exact log p(x) (None without a 1-/2-D latent)

Models: the linear-Gaussian model (closed form, latent dimension 1..10), the notes' seed model (latent 1 or 2,
noise_scale), the deep LVM trained on its page and the mixture fitted on its page (offered only when they exist).
The point x: typed (float number inputs) or clicked on the density chart (an invisible grid catches clicks anywhere).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import streamlit as st
import torch

from lvm_core.estimators import exact_log_marginal
from lvm_core.experiments import log_marginal_on_grid
from lvm_core.models import LinearGaussianLVM, SeedLVM
from lvm_core.plots import estimating as figs
from lvm_core.plots import text_number
from ui import state
from ui.sidebar import page_seed, presentation_scale

MODEL_LABELS = {
    "seed": "The notes' seed model",
    "linear": "Linear-Gaussian (closed form)",
    "deep": "Deep LVM (trained on its page)",
    "mixture": "Gaussian mixture (fitted on its page)",
}
LINEAR_MODEL_SEED = 0  # the linear-Gaussian model's W and b: a fixed draw, so a URL names the same model
SEED_MODEL_SEED = 0  # the notes' seed model's A, B, c, d
MAX_ABS_X = 1e3  # typed points beyond this are clipped (the page can still show "x far away" up to here)
DEFAULT_X = (0.5, 0.5)
FAR_MARGIN = 5.0  # nats below the model's 1st percentile of log p(x) at which x counts as far outside the data


@dataclass(frozen=True)
class Selection:
    """The chosen model and point. x: (1, data_dim) in the model's dtype; log_px: exact log p(x) in nats, or None
    where no exact value exists (a deep LVM with more than 2 latent dimensions). model_key identifies the model's
    parameters (a string), so caches can key on it."""

    model: torch.nn.Module
    x: torch.Tensor
    label: str
    description: str
    log_px: float | None
    kind: str
    model_key: str
    exact_method: str = ""
    params: dict = field(default_factory=dict)

    @property
    def point(self) -> tuple[float, ...]:
        """x as a tuple of floats (hashable, for cache keys)"""
        return tuple(float(v) for v in self.x[0])


@dataclass(frozen=True)
class SelectionKeys:
    """Widget / session keys of one page's picker, all starting with the page's prefix."""

    prefix: str

    def __getattr__(self, name: str) -> str:
        if name.startswith("__"):
            raise AttributeError(name)
        # model, lin_d, lin_sigma, seed_d, noise, x1, x2, nonce, chart
        return f"{self.prefix}_{name}"


# ------------------------------------------------------------------------------------------------- cached models


@st.cache_resource(max_entries=64, show_spinner=False)
def linear_model(latent_dim: int, sigma: float) -> LinearGaussianLVM:
    """x = W z + b + sigma eps with a fixed random W (2, latent_dim), b (cached per parameters)"""
    return LinearGaussianLVM.random(latent_dim, 2, sigma, seed=LINEAR_MODEL_SEED)


@st.cache_resource(max_entries=64, show_spinner=False)
def seed_model(latent_dim: int, noise_scale: float) -> SeedLVM:
    """the notes' model with a fixed draw of A, B, c, d (cached per parameters)"""
    return SeedLVM(latent_dim=latent_dim, seed=SEED_MODEL_SEED, noise_scale=noise_scale)


def fingerprint(model: torch.nn.Module) -> str:
    """a short hash of a model's class and parameters: the identity caches key on"""
    h = hashlib.blake2b(type(model).__name__.encode(), digest_size=10)
    for name, p in model.state_dict().items():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@st.cache_data(max_entries=512, show_spinner=False)
def exact_value(model_key: str, point: tuple[float, ...], _model) -> tuple[float | None, str]:
    """(exact log p(x), how it was computed) for one point; (None, reason) where no exact method applies"""
    x = torch.tensor([point], dtype=_model.dtype)
    if getattr(_model, "closed_form_log_marginal", None) is not None:
        method = "closed form"
    elif getattr(_model, "enumerate_latents", None) is not None:
        method = "exact sum over z"
    elif _model.latent_dim <= 2:
        method = "adaptive quadrature"
    else:
        return None, f"no exact value: quadrature needs a 1- or 2-D latent (this model has {_model.latent_dim})"
    return float(exact_log_marginal(_model, x)[0]), method


@st.cache_data(max_entries=32, show_spinner=False)
def density_grid(model_key: str, limits: tuple[float, float, float, float], _model):
    """(xs, ys, log p) on a grid over the limits for the chart (n x n; coarser where p(x) needs integration)"""
    exact = getattr(_model, "closed_form_log_marginal", None) is not None or _model.discrete
    n = 70 if exact else (50 if _model.latent_dim == 1 else 36)
    xs = torch.linspace(limits[0], limits[1], n, dtype=torch.float64)
    ys = torch.linspace(limits[2], limits[3], n, dtype=torch.float64)
    return xs.numpy(), ys.numpy(), log_marginal_on_grid(_model, xs, ys).double().numpy()


@st.cache_data(max_entries=32, show_spinner=False)
def typical_log_px(model_key: str, _model) -> float | None:
    """the 1st percentile of exact log p(x) over 200 draws x ~ p(x): below it by a margin, x is far outside the data"""
    if getattr(_model, "closed_form_log_marginal", None) is None and not _model.discrete and _model.latent_dim > 2:
        return None
    x, _ = _model.sample(200, generator=1)
    return float(np.percentile(exact_log_marginal(_model, x).double().numpy(), 1))


@st.cache_data(max_entries=64, show_spinner=False)
def model_samples(model_key: str, n: int, _model) -> np.ndarray:
    """n draws x ~ p(x) (fixed seed) to show where the model puts its data: (n, 2)"""
    x, _ = _model.sample(n, generator=0)
    return x.double().numpy()


# ------------------------------------------------------------------------------------------------- the widget


def _on_chart_select(keys: SelectionKeys, chart_key: str) -> None:
    event = st.session_state.get(chart_key) or {}
    points = (event.get("selection") or {}).get("points") or []
    if not points:
        return
    st.session_state[keys.x1] = round(float(points[-1]["x"]), 3)
    st.session_state[keys.x2] = round(float(points[-1]["y"]), 3)
    st.session_state[keys.nonce] = st.session_state.get(keys.nonce, 0) + 1  # a fresh chart: no stale selection


def set_point(keys: SelectionKeys, x1: float, x2: float) -> None:
    """move the picker's x (call from a callback, before the picker is drawn)"""
    st.session_state[keys.x1], st.session_state[keys.x2] = round(float(x1), 3), round(float(x2), 3)


def _limits(data: np.ndarray, point: np.ndarray) -> tuple[float, float, float, float]:
    # the data's extent padded, widened to show the chosen x; rounded so nearby points share one cached grid
    lo = np.minimum(np.percentile(data, 1, axis=0), point) if len(data) else point - 2
    hi = np.maximum(np.percentile(data, 99, axis=0), point) if len(data) else point + 2
    pad = 0.15 * (hi - lo) + 0.3
    lo, hi = np.floor((lo - pad) * 2) / 2, np.ceil((hi + pad) * 2) / 2
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def _available() -> dict[str, object]:
    """the models other pages have made in this session"""
    ss = st.session_state
    out = {}
    trained = state.trained_lvm(ss)
    if trained is not None and not trained.images:
        out["deep"] = trained
    if ss.get(state.FITTED_MIXTURE) is not None:
        out["mixture"] = ss[state.FITTED_MIXTURE]
    return out


def _choose_model(keys: SelectionKeys, max_linear_latent: int, kinds: tuple[str, ...]):
    """the model widgets -> (kind, model, label, description, model_key, data shown on the chart, params)"""
    ss = st.session_state
    available = _available()
    options = [k for k in MODEL_LABELS if k in kinds and (k in ("linear", "seed") or k in available)]
    c1, c2, c3 = st.columns([2.2, 1.2, 1.2])
    kind = c1.selectbox("Model", options, format_func=MODEL_LABELS.get, key=keys.model, bind="query-params")
    missing = [k for k in ("deep", "mixture") if k in kinds and k not in available]
    if missing:
        with c1:
            for k in missing:
                page, what = ("views/deep_lvm.py", "train a deep LVM") if k == "deep" else ("views/mixtures.py",
                                                                                          "fit a mixture")
                try:
                    st.page_link(page, label=f"To use it here, {what} on its page", icon=":material/arrow_forward:")
                except Exception:  # noqa: BLE001 - the page may not be registered yet (written in parallel)
                    st.caption(f"To use it here, {what} on its page.")
    if kind == "linear":
        d = c2.slider("Latent dimension", 1, max_linear_latent, 2, key=keys.lin_d, bind="query-params")
        sigma = c3.slider("Noise σ", 0.05, 2.0, 0.5, step=0.05, key=keys.lin_sigma, bind="query-params")
        model = linear_model(int(d), float(sigma))
        desc = (f"x = W z + b + σε with z ~ N(0, I_{d}), σ = {sigma:g}: p(x) and p(z|x) are Gaussian in closed form, "
                "in any latent dimension.")
        return kind, model, f"linear-Gaussian, d = {d}, σ = {sigma:g}", desc, f"linear:{d}:{sigma:g}", \
            model_samples(f"linear:{d}:{sigma:g}", 400, model), {"latent_dim": int(d), "sigma": float(sigma)}
    if kind == "seed":
        d = c2.segmented_control("Latent dimension", [1, 2], default=1, key=keys.seed_d, bind="query-params",
                                 required=True) or 1
        noise = c3.slider("Noise scale s", 0.1, 1.0, 1.0, step=0.05, key=keys.noise, bind="query-params",
                          help="1.0 is the notes' model exactly. Smaller noise sharpens and bends p(z|x).")
        model = seed_model(int(d), float(noise))
        desc = ("The notes' model: μ(z) = sigmoid(A z + c), Σ(z) = s² diag(exp(sigmoid(B z + d))), s = "
                f"{noise:g}. " + ("At s = 1 the noise swamps the mean, so p(z|x) is close to the prior; a smaller s "
                                  "makes the marginal richer and the posterior harder." if noise >= 0.95 else
                                  "With a small s the posteriors sharpen and bend: inference gets harder."))
        mk = f"seed:{d}:{noise:g}"
        return kind, model, f"seed model, d = {d}, s = {noise:g}", desc, mk, model_samples(mk, 400, model), \
            {"latent_dim": int(d), "noise_scale": float(noise)}
    if kind == "deep":
        trained = available["deep"]
        model = trained.model
        data = np.vstack([np.asarray(trained.data.train, dtype=float), np.asarray(trained.data.test, dtype=float)])
        mk = "deep:" + fingerprint(model)
        if len(data) > 2000:
            data = data[:: len(data) // 2000 + 1]  # a readable scatter
        desc = (f"The deep LVM trained on its page (latent dimension {model.latent_dim}): μθ(z), Σθ(z) from a "
                "neural network.")
        return kind, model, f"deep LVM, d = {model.latent_dim}", desc, mk, data, {"latent_dim": model.latent_dim}
    model = available["mixture"]
    mk = "mixture:" + fingerprint(model)
    data = ss.get(state.DATASET)
    data = np.asarray(data, dtype=float) if data is not None else model_samples(mk, 400, model)
    desc = (f"The mixture fitted on its page: z is one of K = {model.latent_dim} components, so p(x) is an exact "
            "sum of K terms (naive Monte Carlo draws z uniformly over the components).")
    return kind, model, f"Gaussian mixture, K = {model.latent_dim}", desc, mk, data, {"K": model.latent_dim}


def model_and_point(prefix: str, *, max_linear_latent: int = 10,
                    kinds: tuple[str, ...] = ("seed", "linear", "deep", "mixture"), chart_height: int = 440,
                    show_chart: bool = True) -> Selection:
    """Draw the model picker, the point inputs and the clickable density chart; return the Selection.

    Widget keys are f"{prefix}_..." (model, lin_d, lin_sigma, seed_d, noise, x1, x2), bound to the URL.
    """
    ss = st.session_state
    keys = SelectionKeys(prefix)
    kind, model, label, desc, model_key, data, params = _choose_model(keys, max_linear_latent, kinds)
    st.caption(desc)
    if model.data_dim != 2:
        st.error(f"This picker handles 2-D data; the model has data dimension {model.data_dim}.")
        st.stop()

    # a point chosen on the other page carries over, unless the URL or this page already set one
    shared = ss.get(state.SELECTED_X)
    for key, i in ((keys.x1, 0), (keys.x2, 1)):
        if key not in ss and key not in st.query_params and isinstance(shared, torch.Tensor) and shared.numel() == 2:
            ss[key] = round(float(shared.reshape(-1)[i]), 3)

    left, right = st.columns([1.1, 2]) if show_chart else (st.container(), None)
    with left:
        a, b = st.columns(2)
        x1 = a.number_input("x₁", -MAX_ABS_X, MAX_ABS_X, DEFAULT_X[0], step=0.1,
                            format="%.3f", key=keys.x1, bind="query-params")
        x2 = b.number_input("x₂", -MAX_ABS_X, MAX_ABS_X, DEFAULT_X[1], step=0.1,
                            format="%.3f", key=keys.x2, bind="query-params")
        typical = model_samples(model_key, 64, model)[page_seed() % 64]
        st.button("A typical x (drawn from the model)", key=keys.typical, on_click=set_point,
                  args=(keys, typical[0], typical[1]), icon=":material/casino:")
        x = torch.tensor([[float(x1), float(x2)]], dtype=model.dtype)  # (1, 2)
        log_px, method = exact_value(model_key, (float(x1), float(x2)), model)
        if log_px is None:
            st.warning(f"Exact log p(x): {method}.", icon=":material/warning:")
        elif not math.isfinite(log_px):
            st.warning("log p(x) underflows here (x is astronomically far from the model's data); pick a nearer x.")
        else:
            st.metric("exact log p(x)", f"{log_px:.4f} nats", help=f"computed by {method}")
            st.caption(f"p(x) = {text_number(math.exp(log_px), 4)} ({method}). Click the chart or type to move x.")
            typical = typical_log_px(model_key, model)
            if typical is not None and log_px < typical - FAR_MARGIN:
                st.info(f"x lies far outside the model's data: log p(x) is {typical - log_px:.0f} nats below what 99% "
                        "of the model's own samples reach. Every number below stays finite, but p(z | x) moves far "
                        "from the prior, so only a proposal placed near it estimates p(x) well.",
                        icon=":material/explore:")
    if show_chart:
        limits = _limits(data, np.array([x1, x2]))
        xs, ys, log_p = density_grid(model_key, limits, model)
        fig = figs.data_space_figure(xs, ys, log_p, data, np.array([x1, x2]), figs.click_grid(limits[:2], limits[2:]),
                                     height=int(chart_height * presentation_scale()))
        chart_key = f"{keys.chart}_{ss.get(keys.nonce, 0)}"
        right.plotly_chart(fig, key=chart_key, on_select=lambda: _on_chart_select(keys, chart_key),
                           selection_mode="points", config={"scrollZoom": False, "displaylogo": False})
    ss[state.SELECTED_X] = x
    return Selection(model=model, x=x, label=label, description=desc, log_px=log_px, kind=kind, model_key=model_key,
                     exact_method=method, params=params)

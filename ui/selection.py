"""The shared model + point picker of the "Estimating p(x)" and "ELBO" pages.

    from ui.selection import model_and_point
    sel = model_and_point("est")          # widget keys "est_model", "est_x1", ... (URL-bound)
    sel.model, sel.x, sel.log_px           # the model, x: (1, data_dim), exact log p(x) (None without an exact method)

Models: the linear-Gaussian model (closed form, latent dimension 1..10), the notes' seed model (latent 1 or 2,
noise_scale), three posteriors that are hard on purpose (a banana, a funnel, two modes: ?est_model=banana), a deep LVM
of handwritten digits (64 pixels, 2-D latent; shipped trained, or the one trained on its page), and the deep LVM
trained and the mixture fitted on their pages (offered once they exist).
The point x: typed (float number inputs) or clicked on the density chart (an invisible grid catches clicks anywhere);
for digits, a held-out image chosen by number or clicked in a gallery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import streamlit as st
import torch

from lvm_core.datasets import load_binarized_digits
from lvm_core.estimators import exact_marginal, exact_method
from lvm_core.experiments import log_marginal_on_grid
from lvm_core.models import HARD_POSTERIORS, LinearGaussianLVM, SeedLVM
from lvm_core.plots import click_grid, text_number
from lvm_core.plots import estimating as figs
from lvm_core.pretrained import load_pretrained
from ui import kit, state
from ui.kit import fingerprint
from ui.sidebar import page_seed

MODEL_LABELS = {
    "seed": "The notes' seed model",
    "linear": "Linear-Gaussian (closed form)",
    "banana": "Hard posterior: banana",
    "funnel": "Hard posterior: funnel",
    "bimodal": "Hard posterior: two modes",
    "digits": "Handwritten digits (deep LVM, 64 pixels)",
    "deep": "Deep LVM (trained on its page)",
    "mixture": "Gaussian mixture (fitted on its page)",
}
ALL_KINDS = tuple(MODEL_LABELS)
HARD_KINDS = tuple(HARD_POSTERIORS)
ALWAYS_AVAILABLE = ("seed", "linear", *HARD_KINDS, "digits")  # the others need a model made on another page
LINEAR_MODEL_SEED = 0  # the linear-Gaussian model's W and b: a fixed draw, so a URL names the same model
SEED_MODEL_SEED = 0  # the notes' seed model's A, B, c, d
MAX_ABS_X = 1e3  # typed points beyond this are clipped (the page can still show "x far away" up to here)
DEFAULT_X = (0.5, 0.5)
FAR_MARGIN = 5.0  # nats below the model's 1st percentile of log p(x) at which x counts as far outside the data
# The funnel's p(x) over a whole chart takes half a minute exactly (most points need their own adaptive grid); the
# chart's colours come from fixed grids of this many nodes per axis instead (stated under the chart), and the chosen
# x's value stays exact.
DISPLAY_RESOLUTION = {"funnel": 81}
GALLERY_PER_DIGIT = 4  # held-out images per digit in the gallery


@dataclass(frozen=True)
class Selection:
    """The chosen model and point. x: (1, data_dim) in the model's dtype; log_px: exact log p(x) in nats, or None
    where no exact value exists (a deep LVM with more than 2 latent dimensions). model_key identifies the model's
    parameters (a string), so caches can key on it. exact_method: how log_px was computed ("closed form", "exact
    sum", "shared grid", "adaptive grid") or why there is none. images: x is an 8 x 8 image (the digits model)."""

    model: torch.nn.Module
    x: torch.Tensor
    label: str
    description: str
    log_px: float | None
    kind: str
    model_key: str
    exact_method: str = ""
    params: dict = field(default_factory=dict)
    images: bool = False

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
        # model, lin_d, lin_sigma, seed_d, noise, x1, x2, digit, nonce, chart, gallery
        return f"{self.prefix}_{name}"


@dataclass(frozen=True)
class Choice:
    """What the model widgets chose: the model, its cache identity, and what the point picker needs."""

    kind: str
    model: torch.nn.Module
    label: str
    description: str
    model_key: str
    data: np.ndarray | None = None  # points drawn on the density chart (2-D data)
    params: dict = field(default_factory=dict)
    default_x: tuple[float, float] = DEFAULT_X
    images: tuple[np.ndarray, np.ndarray] | None = None  # held-out images (n, 64) and their digits (n,)


# ------------------------------------------------------------------------------------------------- cached models


@st.cache_resource(max_entries=64, show_spinner=False)
def linear_model(latent_dim: int, sigma: float) -> LinearGaussianLVM:
    """x = W z + b + sigma eps with a fixed random W (2, latent_dim), b (cached per parameters)"""
    return LinearGaussianLVM.random(latent_dim, 2, sigma, seed=LINEAR_MODEL_SEED)


@st.cache_resource(max_entries=64, show_spinner=False)
def seed_model(latent_dim: int, noise_scale: float) -> SeedLVM:
    """the notes' model with a fixed draw of A, B, c, d (cached per parameters)"""
    return SeedLVM(latent_dim=latent_dim, seed=SEED_MODEL_SEED, noise_scale=noise_scale)


@st.cache_resource(max_entries=8, show_spinner=False)
def hard_model(name: str):
    """a hard-posterior model from lvm_core.models.HARD_POSTERIORS, with its default parameters"""
    return HARD_POSTERIORS[name].build()


@st.cache_resource(max_entries=1, show_spinner=False)
def digits_model():
    """the shipped deep LVM of the binarised digits (a 2-D latent): never changed in place by a page"""
    model, _, _ = load_pretrained("digits")
    return model


@st.cache_data(max_entries=1, show_spinner=False)
def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """the 360 held-out digits of load_binarized_digits(seed=0): images (n, 64) of 0/1, digits (n,)"""
    _, X_test, _, y_test = load_binarized_digits(seed=0)
    return X_test, y_test


@st.cache_data(max_entries=512, show_spinner=False)
def exact_value(model_key: str, point: tuple[float, ...], _model) -> tuple[float | None, str]:
    """(exact log p(x), how it was computed) for one point; (None, reason) where no exact method applies"""
    if exact_method(_model) is None:
        return None, f"no exact value: quadrature needs a 1- or 2-D latent (this model has {_model.latent_dim})"
    result = exact_marginal(_model, torch.tensor([point], dtype=_model.dtype))
    return float(result.log_px[0]), result.method[0]


@st.cache_data(max_entries=32, show_spinner=False)
def density_grid(model_key: str, limits: tuple[float, float, float, float], resolution: int | None, _model):
    """(xs, ys, log p) on a grid over the limits for the chart (n x n; coarser where p(x) needs integration)"""
    exact = exact_method(_model) in ("closed form", "exact sum")
    n = 70 if exact else (50 if _model.latent_dim == 1 else 36)
    xs = torch.linspace(limits[0], limits[1], n, dtype=torch.float64)
    ys = torch.linspace(limits[2], limits[3], n, dtype=torch.float64)
    return xs.numpy(), ys.numpy(), log_marginal_on_grid(_model, xs, ys, resolution=resolution).double().numpy()


@st.cache_data(max_entries=32, show_spinner=False)
def typical_log_px(model_key: str, resolution: int | None, _model) -> float | None:
    """the 1st percentile of exact log p(x) over 200 draws x ~ p(x): below it by a margin, x is far outside the data"""
    if exact_method(_model) is None:
        return None
    x, _ = _model.sample(200, generator=1)
    log_px = exact_marginal(_model, x, resolution=resolution).log_px
    return float(np.percentile(log_px.double().numpy(), 1))


@st.cache_data(max_entries=64, show_spinner=False)
def model_samples(model_key: str, n: int, _model) -> np.ndarray:
    """n draws x ~ p(x) (fixed seed) to show where the model puts its data: (n, data_dim)"""
    x, _ = _model.sample(n, generator=0)
    return x.double().numpy()


def gallery_indices(digits: np.ndarray, per_digit: int = GALLERY_PER_DIGIT) -> np.ndarray:
    """the first `per_digit` held-out images of each digit 0-9, in digit order: indices into the held-out set"""
    return np.concatenate([np.flatnonzero(digits == d)[:per_digit] for d in range(10)])


# ------------------------------------------------------------------------------------------------- the widgets


def _on_chart_select(keys: SelectionKeys, chart_key: str) -> None:
    event = st.session_state.get(chart_key) or {}
    points = (event.get("selection") or {}).get("points") or []
    if not points:
        return
    st.session_state[keys.x1] = round(float(points[-1]["x"]), 3)
    st.session_state[keys.x2] = round(float(points[-1]["y"]), 3)
    st.session_state[keys.nonce] = st.session_state.get(keys.nonce, 0) + 1  # a fresh chart: no stale selection


def _on_gallery_select(keys: SelectionKeys, chart_key: str) -> None:
    event = st.session_state.get(chart_key) or {}
    points = (event.get("selection") or {}).get("points") or []
    index = points[-1].get("customdata") if points else None
    if isinstance(index, list):
        index = index[0] if index else None
    if index is None:
        return
    st.session_state[keys.digit] = int(index)
    st.session_state[keys.nonce] = st.session_state.get(keys.nonce, 0) + 1


def set_point(keys: SelectionKeys, x1: float, x2: float) -> None:
    """move the picker's x (call from a callback, before the picker is drawn)"""
    st.session_state[keys.x1], st.session_state[keys.x2] = round(float(x1), 3), round(float(x2), 3)


def _on_model_change(keys: SelectionKeys) -> None:
    # a hard posterior is hard at its own point: switching to one moves x there
    kind = st.session_state.get(keys.model)
    if kind in HARD_POSTERIORS:
        set_point(keys, *HARD_POSTERIORS[kind].x)


def _limits(data: np.ndarray | None, point: np.ndarray) -> tuple[float, float, float, float]:
    # the data's extent padded, widened to show the chosen x; rounded so nearby points share one cached grid
    have = data is not None and len(data)
    lo = np.minimum(np.percentile(data, 1, axis=0), point) if have else point - 2
    hi = np.maximum(np.percentile(data, 99, axis=0), point) if have else point + 2
    pad = 0.15 * (hi - lo) + 0.3
    lo, hi = np.floor((lo - pad) * 2) / 2, np.ceil((hi + pad) * 2) / 2
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def _available() -> dict[str, object]:
    """the models other pages have made in this session"""
    ss = st.session_state
    out = {}
    trained = state.trained_lvm(ss)
    if trained is not None:
        out["digits" if trained.images else "deep"] = trained
    if ss.get(state.FITTED_MIXTURE) is not None:
        out["mixture"] = ss[state.FITTED_MIXTURE]
    return out


def _offer_other_pages(kinds: tuple[str, ...], available: dict) -> None:
    for kind, page, what in (("deep", "views/deep_lvm.py", "train a deep LVM"),
                             ("mixture", "views/mixtures.py", "fit a mixture")):
        if kind in kinds and kind not in available:
            st.page_link(page, label=f"To use it here, {what} on its page", icon=":material/arrow_forward:")


def _choose_model(keys: SelectionKeys, max_linear_latent: int, kinds: tuple[str, ...]) -> Choice:
    """the model widgets -> the Choice"""
    available = _available()
    options = [k for k in MODEL_LABELS if k in kinds and (k in ALWAYS_AVAILABLE or k in available)]
    kit.accept_short_names(keys.model, options, MODEL_LABELS.get)  # ?est_model=banana as well as the label
    c1, c2, c3 = st.columns([2.2, 1.2, 1.2])
    kind = c1.selectbox("Model", options, format_func=MODEL_LABELS.get, key=keys.model, bind="query-params",
                        on_change=_on_model_change, args=(keys,))
    with c1:
        _offer_other_pages(kinds, available)
    if kind == "linear":
        d = c2.slider("Latent dimension", 1, max_linear_latent, 2, key=keys.lin_d, bind="query-params")
        sigma = c3.slider("Noise σ", 0.05, 2.0, 0.5, step=0.05, key=keys.lin_sigma, bind="query-params")
        model, key = linear_model(int(d), float(sigma)), f"linear:{d}:{sigma:g}"
        return Choice(kind, model, f"linear-Gaussian, d = {d}, σ = {sigma:g}",
                      f"x = W z + b + σε with z ~ N(0, I_{d}), σ = {sigma:g}: p(x) and p(z|x) are Gaussian in closed "
                      "form, in any latent dimension.", key, model_samples(key, 400, model),
                      {"latent_dim": int(d), "sigma": float(sigma)})
    if kind == "seed":
        d = c2.segmented_control("Latent dimension", [1, 2], default=1, key=keys.seed_d, bind="query-params",
                                 required=True) or 1
        noise = c3.slider("Noise scale s", 0.1, 1.0, 1.0, step=0.05, key=keys.noise, bind="query-params",
                          help="1.0 is the notes' model exactly. Smaller noise sharpens and bends p(z|x).")
        model, key = seed_model(int(d), float(noise)), f"seed:{d}:{noise:g}"
        desc = ("The notes' model: μ(z) = sigmoid(A z + c), Σ(z) = s² diag(exp(sigmoid(B z + d))), s = "
                f"{noise:g}. " + ("At s = 1 the noise swamps the mean, so p(z|x) is close to the prior; a smaller s "
                                  "makes the marginal richer and the posterior harder." if noise >= 0.95 else
                                  "With a small s the posteriors sharpen and bend: inference gets harder."))
        return Choice(kind, model, f"seed model, d = {d}, s = {noise:g}", desc, key, model_samples(key, 400, model),
                      {"latent_dim": int(d), "noise_scale": float(noise)})
    if kind in HARD_POSTERIORS:
        entry, model, key = HARD_POSTERIORS[kind], hard_model(kind), f"hard:{kind}"
        desc = (f"{MODEL_LABELS[kind].split(': ')[1].capitalize()}: {entry.description}. A 2-D latent, so p(x) and "
                f"p(z|x) are exact by quadrature; open it from a URL with ?{keys.model}={kind}.")
        return Choice(kind, model, MODEL_LABELS[kind].lower(), desc, key, model_samples(key, 400, model),
                      {"latent_dim": 2}, default_x=entry.x)
    if kind == "digits":
        trained = available.get("digits")
        model = trained.model if trained is not None else digits_model()
        key = "digits:" + (fingerprint(model) if trained is not None else "shipped")
        where = "trained on the Deep LVM page" if trained is not None else "shipped trained with the app"
        desc = ("A deep LVM of binarised 8 x 8 handwritten digits (" + where + "): z ~ N(0, I₂), each of the 64 "
                "pixels Bernoulli with p = sigmoid(f_θ(z)). The latent is 2-D, so log p(x) is exact by quadrature "
                "even though x has 64 dimensions.")
        return Choice(kind, model, f"digits deep LVM ({where})", desc, key, None, {"latent_dim": model.latent_dim},
                      images=held_out_digits())
    if kind == "deep":
        trained = available["deep"]
        model = trained.model
        data = np.vstack([np.asarray(trained.data.train, dtype=float), np.asarray(trained.data.test, dtype=float)])
        if len(data) > 2000:
            data = data[:: len(data) // 2000 + 1]  # a readable scatter
        desc = (f"The deep LVM trained on its page (latent dimension {model.latent_dim}): μθ(z), Σθ(z) from a "
                "neural network.")
        return Choice(kind, model, f"deep LVM, d = {model.latent_dim}", desc, "deep:" + fingerprint(model), data,
                      {"latent_dim": model.latent_dim})
    model = available["mixture"]
    key = "mixture:" + fingerprint(model)
    data = st.session_state.get(state.DATASET)
    data = np.asarray(data, dtype=float) if data is not None else model_samples(key, 400, model)
    desc = (f"The mixture fitted on its page: z is one of K = {model.latent_dim} components, so p(x) is an exact "
            "sum of K terms (naive Monte Carlo draws z uniformly over the components).")
    return Choice(kind, model, f"Gaussian mixture, K = {model.latent_dim}", desc, key, data, {"K": model.latent_dim})


def _show_exact(choice: Choice, log_px: float | None, method: str) -> None:
    if log_px is None:
        st.warning(f"Exact log p(x): {method}.", icon=":material/warning:")
        return
    if not math.isfinite(log_px):
        st.warning("log p(x) underflows here (x is astronomically far from the model's data); pick a nearer x.")
        return
    st.metric("exact log p(x)", f"{log_px:.4f} nats", help=f"computed by {method}")
    if choice.images is not None:
        kit.note(f"p(x) = {text_number(math.exp(log_px), 4)} ({method}): the probability of exactly these 64 pixels.")
        return
    kit.note(f"p(x) = {text_number(math.exp(log_px), 4)} ({method}). Click the chart or type to move x.")
    typical = typical_log_px(choice.model_key, DISPLAY_RESOLUTION.get(choice.kind), choice.model)
    if typical is not None and log_px < typical - FAR_MARGIN:
        st.info(f"x lies far outside the model's data: log p(x) is {typical - log_px:.0f} nats below what 99% of the "
                "model's own samples reach. Every number below stays finite, but p(z | x) moves far from the prior, "
                "so only a proposal placed near it estimates p(x) well.", icon=":material/explore:")


def _pick_digit(keys: SelectionKeys, choice: Choice, show_gallery: bool, chart_height: int):
    """a held-out image by number or by a click in the gallery -> (x: (1, 64), the column for the exact value)"""
    images, digits = choice.images
    ss = st.session_state
    left, right = st.columns([1.1, 2]) if show_gallery else (st.container(), None)
    with left:
        index = st.number_input("Held-out image", 0, len(images) - 1, 0, step=1, key=keys.digit,
                                bind="query-params", help=f"One of the {len(images)} held-out images (never trained "
                                                          "on). Or click one in the gallery.")
        x = torch.tensor(images[int(index)][None], dtype=choice.model.dtype)  # (1, 64)
        kit.chart(figs.digit_figure(images[int(index)], f"held-out image {int(index)}: a {int(digits[int(index)])}",
                                    height=kit.height(220)), key=f"{keys.prefix}_digit_image")
    if show_gallery:
        shown = gallery_indices(digits)
        chart_key = f"{keys.gallery}_{ss.get(keys.nonce, 0)}"
        with right:
            st.plotly_chart(figs.digit_gallery_figure(images[shown], digits[shown], shown, int(index),
                                                      height=kit.height(chart_height)),
                            key=chart_key, on_select=lambda: _on_gallery_select(keys, chart_key),
                            selection_mode="points", config={"scrollZoom": False, "displaylogo": False})
    return x, left


def _pick_point(keys: SelectionKeys, choice: Choice, show_chart: bool, chart_height: int):
    """typed coordinates or a click on the density chart -> (x: (1, 2), the column for the exact value)"""
    ss = st.session_state
    # a point chosen on the other page carries over, unless the URL or this page already set one
    shared = ss.get(state.SELECTED_X)
    for key, i in ((keys.x1, 0), (keys.x2, 1)):
        if key not in ss and key not in st.query_params and isinstance(shared, torch.Tensor) and shared.numel() == 2:
            ss[key] = round(float(shared.reshape(-1)[i]), 3)
    left, right = st.columns([1.1, 2]) if show_chart else (st.container(), None)
    with left:
        a, b = st.columns(2)
        x1 = a.number_input("x₁", -MAX_ABS_X, MAX_ABS_X, choice.default_x[0], step=0.1, format="%.3f", key=keys.x1,
                            bind="query-params")
        x2 = b.number_input("x₂", -MAX_ABS_X, MAX_ABS_X, choice.default_x[1], step=0.1, format="%.3f", key=keys.x2,
                            bind="query-params")
        typical = model_samples(choice.model_key, 64, choice.model)[page_seed() % 64]
        st.button("A typical x (drawn from the model)", key=keys.typical, on_click=set_point,
                  args=(keys, typical[0], typical[1]), icon=":material/casino:")
        if choice.kind in HARD_POSTERIORS:
            st.button("Back to the hard x", key=keys.hard_x, on_click=set_point, args=(keys, *choice.default_x),
                      icon=":material/my_location:", help="The point where this posterior is at its most awkward.")
    if show_chart:
        resolution = DISPLAY_RESOLUTION.get(choice.kind)
        limits = _limits(choice.data, np.array([x1, x2]))
        xs, ys, log_p = density_grid(choice.model_key, limits, resolution, choice.model)
        fig = figs.data_space_figure(xs, ys, log_p, choice.data, np.array([x1, x2]),
                                     click_grid(limits[:2], limits[2:]), height=kit.height(chart_height))
        chart_key = f"{keys.chart}_{ss.get(keys.nonce, 0)}"
        right.plotly_chart(fig, key=chart_key, on_select=lambda: _on_chart_select(keys, chart_key),
                           selection_mode="points", config={"scrollZoom": False, "displaylogo": False})
        if resolution is not None:
            with right:
                kit.note(f"The colours come from a fixed {resolution} x {resolution} grid over z per point (an "
                         "approximation, up to ~0.1 nats off, enough to draw); the chosen x's value is exact.")
    return torch.tensor([[float(x1), float(x2)]], dtype=choice.model.dtype), left


def model_and_point(prefix: str, *, max_linear_latent: int = 10, kinds: tuple[str, ...] = ALL_KINDS,
                    chart_height: int = 440, show_chart: bool = True) -> Selection:
    """Draw the model picker, the point inputs and the clickable density chart (a gallery for images); return the
    Selection. Widget keys are f"{prefix}_..." (model, lin_d, lin_sigma, seed_d, noise, x1, x2, digit), bound to
    the URL."""
    keys = SelectionKeys(prefix)
    choice = _choose_model(keys, max_linear_latent, kinds)
    kit.note(choice.description)
    pick = _pick_digit if choice.images is not None else _pick_point
    x, column = pick(keys, choice, show_chart, chart_height)
    point = tuple(float(v) for v in x[0])
    log_px, method = exact_value(choice.model_key, point, choice.model)
    with column:
        _show_exact(choice, log_px, method)
    st.session_state[state.SELECTED_X] = x
    return Selection(model=choice.model, x=x, label=choice.label, description=choice.description, log_px=log_px,
                     kind=choice.kind, model_key=choice.model_key, exact_method=method, params=choice.params,
                     images=choice.images is not None)

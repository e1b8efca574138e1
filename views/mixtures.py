"""Shallow mixtures: fit a 2-D Gaussian mixture by EM and watch every iteration, read one point's density term by
term, sample the model, see restarts end in different optima, and choose the number of components.

Widgets -> lvm_core.gmm (cached by content) -> lvm_core.plots.mixtures -> kit.chart. EM's trajectory is computed once
on the server and animated in the browser (plotly frames), so playing and scrubbing need no round trip.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from lvm_core import gmm
from lvm_core.models import GaussianMixtureLVM
from lvm_core.plots import click_grid, text_number
from lvm_core.plots import mixtures as figs
from ui import kit, state
from ui.data import DataKeys, data_picker, set_points
from ui.sidebar import page_seed, presentation_mode

DATA = DataKeys("mx", data=state.DATASET, meta=state.DATASET_META)
FIT_CONTROLS = ("mx_K", "mx_cov", "mx_init", "mx_seed")  # with the data, they define the fit: Reset keeps them
VIEWS = ("responsibilities", "ellipses", "means", "density")
DENSITY_MODES = ("contours", "heatmap")
CLICK_MODES = {"pick": "pick x", "add": "add points", "delete": "delete points"}
SPEEDS = (1, 2, 5, 10, 30, 60)  # EM iterations per second while the animation plays
MAX_FRAMES = 60  # iterations the EM animation shows at most (every one early on, then evenly spaced)
CLICK_GRID = 30  # invisible click targets per axis: a click on empty space lands within half a cell of the pointer
MAX_ABS_POINT = 1e6  # the typed point x: the number inputs refuse anything beyond, so the URL never holds it
DEFAULT_INIT = "random"  # random responsibilities: EM visibly moves for a dozen iterations or more
# on the default data, the start from seed 1 reaches the best optimum in 23 iterations; seed 0 ends in a poorer one
# (the restarts of section 5 show why a start matters)
DEFAULT_INIT_SEED = 1
GENERATIVE_ANIMATED = 30  # the generative animation draws this many samples one by one

# session keys private to this page (widget keys are the "mx_*" strings next to each widget)
CHART_NONCE = "mx_chart_nonce"  # bumped after handling a chart selection, so the same selection is not re-applied
EDIT_NOTE = "mx_edit_note"
RESTARTS = "mx_restarts_cache"
PX, PY = "mx_px", "mx_py"

ss = st.session_state
ss.setdefault(CHART_NONCE, 0)


# ------------------------------------------------------------------------------------------- cached computations
@st.cache_resource(max_entries=32, show_spinner=False)
def em_trajectory(data_key: str, _X: np.ndarray, K: int, covariance_type: str, init_params: str,
                  seed: int) -> gmm.EMTrace:
    """EM to convergence (or the iteration limit), shared by every session with the same data and settings"""
    return gmm.em_run(_X, K, covariance_type, init_params, seed)


@st.cache_resource(max_entries=16, show_spinner=False)
def em_point_images(fit_key: tuple, _X: np.ndarray, _trace: gmm.EMTrace) -> list[dict] | None:
    """the data's colours per EM frame as images, for a fit of more points than a frame can recolour (None: fewer);
    shared by every view of the fit, so a new chosen x or speed does not draw them again"""
    if len(_X) <= figs.IMAGE_POINTS_ABOVE:
        return None
    xlim, ylim = figs.plot_limits(_X)
    frames = gmm.em_frames(_trace, _X, gmm.frame_iterations(_trace.n_iter, MAX_FRAMES))
    return figs.em_point_images(_X, frames, xlim, ylim)


@st.cache_resource(max_entries=32, show_spinner=False)
def em_figure(key: tuple, _X: np.ndarray, _trace: gmm.EMTrace, views: tuple, density_mode: str,
              point: tuple[float, float], dragmode: str, speed: int, height: int):
    """the EM animation for one view of one fit (key: the data and fit identity first)"""
    xlim, ylim = figs.plot_limits(_X)
    iterations = gmm.frame_iterations(_trace.n_iter, MAX_FRAMES)
    grid = (xlim, ylim) if "density" in views else (None, None)
    frames = gmm.em_frames(_trace, _X, iterations, *grid)
    return figs.em_animation_figure(_X, frames, np.array(_trace.log_likelihoods), _trace.converged_at, views,
                                    density_mode, clicks=click_grid(xlim, ylim, CLICK_GRID), point=np.array(point),
                                    xlim=xlim, ylim=ylim, frame_ms=1000 / speed, height=height, dragmode=dragmode,
                                    point_images=em_point_images(key[0], _X, _trace) if "responsibilities" in views
                                    else None)


@st.cache_data(max_entries=16, show_spinner=False)
def trajectory_csv(key: tuple, _trace: gmm.EMTrace) -> bytes:
    return kit.csv_bytes(gmm.trajectory_table(_trace))


@st.cache_resource(max_entries=16, show_spinner=False)
def generative_figure(key: tuple, _gm, _X: np.ndarray, n: int, seed: int, speed: int, height: int):
    x, k = gmm.sample_generative(_gm, n, seed=seed)
    xlim, ylim = figs.plot_limits(np.vstack([_X, x]))
    return figs.generative_animation_figure(
        x, k, _gm.means_, _gm.weights_, gmm.density_grid(_gm, xlim, ylim, n=80),
        gmm.component_ellipses(_gm, n_stds=(1.0,)), GENERATIVE_ANIMATED, frame_ms=3000 / speed, xlim=xlim,
        ylim=ylim, height=height)


@st.cache_data(max_entries=16, show_spinner=False)
def model_selection(data_key: str, _X: np.ndarray, covariance_type: str, init_params: str, seed: int,
                    test_fraction: float) -> gmm.ModelSelection:
    return gmm.select_n_components(_X, covariance_type=covariance_type, init_params=init_params, seed=seed,
                                   test_fraction=test_fraction)


# ------------------------------------------------------------------------------------------------------ the idea
st.title("Shallow mixtures")
kit.explain(
    "A Gaussian mixture explains each point by a **hidden choice**: first pick a component "
    "$z \\sim \\mathrm{Categorical}(\\pi)$, then draw $x \\mid z = k \\sim \\mathcal N(\\mu_k, \\Sigma_k)$. "
    "Summing out the choice gives the marginal density below: more components mean **more representational "
    "power**, but the likelihood is **non-convex**, so EM finds a local optimum that depends on where it starts."
)
st.latex(r"p(x) = \sum_{k=1}^{K} p(z = k)\, p(x \mid z = k) = \sum_{k=1}^{K} \pi_k\, \mathcal N(x;\, \mu_k, \Sigma_k)")
kit.reset_to_defaults("mx", keep=DATA.widgets + FIT_CONTROLS, label="Reset view to defaults",
                      help="Display and section controls back to their defaults; your data and the fit's settings "
                           "(K, covariance, initialisation, seed) are kept.")

# ------------------------------------------------------------------------------------------------------- 1 · data
st.header("1 · Data")
X = data_picker(DATA)
if EDIT_NOTE in ss:
    st.toast(ss.pop(EDIT_NOTE))

# ------------------------------------------------------------------------------------------- 2 · EM, step by step
st.header("2 · Fit by EM, iteration by iteration")
kit.explain(
    "EM alternates two steps: the **E-step** computes each point's responsibilities $p(z = k \\mid x)$ (its colour "
    "mixes the component colours by them), the **M-step** refits $\\pi$, $\\mu$ and $\\Sigma$ to the softly assigned "
    "points. The whole run is computed once; **▶ Play** under the chart replays it, and the slider steps through "
    "the iterations (0 is the initialisation)."
)
c1, c2, c3, c4 = st.columns(4)
K = c1.slider("Components K", 1, gmm.MAX_COMPONENTS, 3, key="mx_K", bind="query-params", persist_state="session")
covariance_type = c2.selectbox("Covariance type", gmm.COVARIANCE_TYPES, format_func=gmm.COVARIANCE_LABELS.get,
                               key="mx_cov", bind="query-params", persist_state="session")
init_params = c3.selectbox("Initialisation", gmm.INIT_PARAMS, index=gmm.INIT_PARAMS.index(DEFAULT_INIT),
                           format_func=gmm.INIT_LABELS.get, key="mx_init", bind="query-params",
                           persist_state="session")
init_seed = c4.slider("Init seed", 0, 999, DEFAULT_INIT_SEED, key="mx_seed", bind="query-params",
                      persist_state="session")
v1, v2 = st.columns([3, 2])  # two rows: pills and segmented controls need their full labels
v3, v4 = st.columns([3, 2])
views = v1.pills("Show", VIEWS, selection_mode="multi", default=list(VIEWS), key="mx_show", bind="query-params",
                 persist_state="session")
views = tuple(v for v in VIEWS if v in (views or ()))
density_mode = v2.segmented_control("Density as", DENSITY_MODES, default="contours", key="mx_density",
                                    bind="query-params", persist_state="session", required=True) or "contours"
click_mode = v3.segmented_control(
    "Click on the chart to", list(CLICK_MODES), format_func=CLICK_MODES.get, default="pick", key="mx_click",
    bind="query-params", persist_state="session", required=True,
    help="pick x: decompose p(x) at the clicked point (section 3). add points: each click adds a data point. "
         "delete points: click a point, or drag a box or lasso (toolbar) over some.") or "pick"
speed = v4.select_slider("Play speed (iterations per second)", SPEEDS, value=5, key="mx_speed",
                         bind="query-params", persist_state="session")

data_key = kit.fingerprint(X)
fit_key = (data_key, K, covariance_type, init_params, init_seed)
em_slot = st.container()  # the animation is built last: the text and controls of every section show first
try:
    with em_slot, st.spinner("Running EM ..."):
        trace = em_trajectory(data_key, X, K, covariance_type, init_params, init_seed)
except gmm.MixtureFitError as exc:
    em_slot.error(str(exc), icon=":material/error:")
    kit.chart(figs.mixture_figure(X, None, None, None, height=kit.height(480)), key="mx_data_only")
    st.stop()

gm = trace.mixture()  # the fitted mixture: EM's last iteration
fit = ss.get(state.MIXTURE_FIT)
if not isinstance(fit, state.MixtureFit) or fit.key != kit.fingerprint(*fit_key):
    ss[state.MIXTURE_FIT] = state.MixtureFit(kit.fingerprint(*fit_key), K, covariance_type, init_params, init_seed,
                                             trace)
    ss[state.FITTED_MIXTURE] = GaussianMixtureLVM.from_sklearn(gm)  # for the estimating and ELBO pages


def _on_chart_select(chart_key: str) -> None:
    """A click, box or lasso on the EM chart: pick x, add a point, or delete points (per the click mode)."""
    points = ((ss.get(chart_key) or {}).get("selection") or {}).get("points") or []
    if not points:
        return
    mode = ss.get("mx_click") or "pick"
    current = ss[DATA.data]
    if mode == "pick":
        ss[PX], ss[PY] = round(float(points[-1]["x"]), 3), round(float(points[-1]["y"]), 3)
    elif mode == "add":
        new = np.array([[float(points[-1]["x"]), float(points[-1]["y"])]])
        set_points(DATA, np.vstack([current, new]), note=f"Added a point at ({new[0, 0]:.2f}, {new[0, 1]:.2f}).")
        ss[EDIT_NOTE] = f"Added a point: {len(current) + 1} points now."
    else:
        drop = {int(p["point_index"]) for p in points if p.get("curve_number") == figs.TRACE_DATA}
        if not drop:
            return
        keep = np.setdiff1d(np.arange(len(current)), sorted(drop))
        if len(keep) < 2:
            ss[EDIT_NOTE] = "Not deleted: at least 2 points must remain."
        else:
            set_points(DATA, current[keep], note=f"Deleted {len(drop)} point(s) by hand.")
            ss[EDIT_NOTE] = f"Deleted {len(drop)} point(s): {len(keep)} left."
    ss[CHART_NONCE] += 1  # a fresh chart: the handled selection is not reported again


def em_section() -> None:
    m1, m2, m3 = em_slot.columns(3)
    m1.metric("EM iterations", trace.n_iter)
    m2.metric("mean log p(x) at the end", f"{trace.log_likelihoods[-1]:.4f} nats",
              delta=f"{trace.log_likelihoods[-1] - trace.log_likelihoods[0]:+.4g} from the start")
    m3.metric("converged at iteration", "—" if trace.converged_at is None else trace.converged_at,
              help=f"EM stops when the mean log p(x) changes by less than {gmm.DEFAULT_TOL:g} nats per point, or "
                   f"after {gmm.MAX_EM_ITER} iterations (—: it did not converge by then).")
    if init_params in gmm.ONE_POINT_INITS:
        with em_slot:
            kit.note(f"Iteration 0 is scikit-learn's '{gmm.INIT_LABELS[init_params]}' start: each mean sits on one "
                     f"data point with covariance {text_number(gmm.DEFAULT_REG_COVAR)}·I, a spike, so almost every "
                     "point has a tiny density and log p(x) starts near −10⁶. The first E-step hands each point to "
                     "its nearest spike.")
    point = (float(ss.get(PX, 0.0)), float(ss.get(PY, 0.0)))
    fig = em_figure((fit_key, views, density_mode, point), X, trace, views, density_mode, point,
                    "select" if click_mode == "delete" else "pan", int(speed), kit.height(620))
    chart_key = f"mx_chart_{ss[CHART_NONCE]}"
    with em_slot:
        kit.chart(fig, key=chart_key, filename="em_trajectory", on_select=lambda: _on_chart_select(chart_key),
                  selection_mode=("points", "box", "lasso"), config={"scrollZoom": False})
        kit.note("EM never lowers the likelihood: each iteration's mean log p(x) is at least the last one's. "
                 f"Converged: the change fell below {gmm.DEFAULT_TOL:g} nats per point. Solid ellipses at 1, dashed "
                 "at 2 standard deviations. The fitted mixture (the last iteration) is used below and on the other "
                 "pages:")
        st.latex(figs.mixture_latex(gm.weights_, gm.means_, per_line=2))
        kit.csv_download(trajectory_csv(fit_key, trace), "em_trajectory.csv", key="mx_em_csv",
                         label="Download the EM trajectory (CSV)")


# ---------------------------------------------------------------------------------- 3 · one point's density
def decomposition_section() -> None:
    st.header("3 · One point's density, term by term")
    kit.explain("Pick a point $x$ (click the chart with *pick x* selected, or type it): $p(x)$ is a sum of $K$ terms "
                "$\\pi_k\\,\\mathcal N(x;\\mu_k,\\Sigma_k)$, and each term's share is the responsibility "
                "$p(z=k\\mid x)$.")
    c1, c2, _ = st.columns([1, 1, 4])
    x1 = c1.number_input("x₁", -MAX_ABS_POINT, MAX_ABS_POINT, 0.0, step=0.1, format="%.3f", key=PX,
                         bind="query-params", persist_state="session")
    x2 = c2.number_input("x₂", -MAX_ABS_POINT, MAX_ABS_POINT, 0.0, step=0.1, format="%.3f", key=PY,
                         bind="query-params", persist_state="session")
    x = np.array([x1, x2], dtype=float)
    terms = gmm.decompose_density(gm, x)  # (K,)
    left, right = st.columns([2, 3])
    with left:
        kit.chart(figs.decomposition_figure(terms, height=kit.height(320)), key="mx_decomp")
    with right:
        # larger type in presentation mode: one term per line keeps the equation inside its column
        st.latex(figs.decomposition_latex(x, terms, np.log(gm.weights_), per_line=1 if presentation_mode() else 2))


# ----------------------------------------------------------------------------------- 4 · the generative story
def generative_section() -> None:
    st.header("4 · The generative process")
    kit.explain("Sampling follows the model's two steps: **pick** $k \\sim \\mathrm{Categorical}(\\pi)$, then "
                "**draw** $x \\sim \\mathcal N(\\mu_k, \\Sigma_k)$. The colour is the chosen $k$, the background the "
                f"fitted $p(x)$. **▶ Play** draws the first {GENERATIVE_ANIMATED} samples one by one.")
    n = st.slider("Samples", 10, 3000, 500, step=10, key="mx_gen_n", bind="query-params", persist_state="session")
    fig = generative_figure((fit_key, n, page_seed(), int(speed), kit.height(480)), gm, X, n, page_seed(),
                            int(speed), kit.height(480))
    kit.chart(fig, key="mx_gen_chart", filename="generative_samples")


# ------------------------------------------------------------------------------------ 5 · non-convexity: restarts
def restarts_section() -> None:
    st.header("5 · Non-convexity: many starts, many answers")
    kit.explain("Run EM to convergence from $R$ random initialisations. Different starts end at different local "
                "optima: the histogram shows their final log-likelihoods, the panels the distinct solutions (best "
                "first).")
    c1, c2, c3 = st.columns(3)
    R = c1.slider("Restarts R", 2, 50, 20, key="mx_R", bind="query-params", persist_state="session")
    r_init = c2.selectbox("Their initialisation", gmm.INIT_PARAMS, index=gmm.INIT_PARAMS.index("random_from_data"),
                          format_func=gmm.INIT_LABELS.get, key="mx_r_init", bind="query-params",
                          persist_state="session")
    run = c3.toggle("Run restarts", key="mx_restarts_on", bind="query-params", persist_state="session",
                    help="Stops when switched off; finished runs are kept and resumed.")
    if not run:
        kit.note(f"Switch on to run {R} restarts with K = {K} ({gmm.COVARIANCE_LABELS[covariance_type]}).")
        return
    key = kit.fingerprint(data_key, K, covariance_type, r_init, page_seed())
    done = ss[RESTARTS][1] if ss.get(RESTARTS, ("",))[0] == key else []
    ss[RESTARTS] = (key, done)  # kept as they finish: an interrupted run resumes here
    bar = st.progress(len(done) / R, text="Running restarts ...") if len(done) < R else None

    def progress(r: int, total: int, restart: gmm.Restart) -> None:
        done.append(restart)
        bar.progress(r / total, text=f"Restart {r} of {total}: {restart.log_likelihood:.4f} nats")

    if len(done) < R:
        gmm.run_restarts(X, K, R, covariance_type, r_init, page_seed(), callback=progress, done=list(done))
        bar.empty()
    hist, panels, caption = restarts_figures(key, R, X, covariance_type, tuple(done[:R]), kit.height(300),
                                             kit.height(230))
    left, right = st.columns([2, 3])
    with left:
        kit.chart(hist, key="mx_r_hist")
        st.caption(caption)
    with right:
        kit.chart(panels, key="mx_r_panels")


@st.cache_resource(max_entries=16, show_spinner=False)
def restarts_figures(key: str, n: int, _X: np.ndarray, covariance_type: str, _restarts: tuple, height: int,
                     panel_height: int):
    """the histogram of the n restarts' final log-likelihoods and the best distinct optima (key: the data and
    settings of the restarts; kept, so a rerun does not rebuild them)"""
    restarts = list(_restarts)
    optima = gmm.distinct_optima(restarts, _X)
    panels = []
    for opt in optima[:6]:
        g = gmm.mixture_from_params(opt.restart.params, covariance_type)
        panels.append({"ellipses": gmm.component_ellipses(g, n_stds=(1.0,)), "means": g.means_,
                       "log_likelihood": opt.restart.log_likelihood, "count": opt.count})
    caption = (f"{len(optima)} distinct optima in {len(restarts)} restarts; the best reached {optima[0].count}x."
               + (f" Showing the best {len(panels)} of them." if len(optima) > len(panels) else ""))
    return (figs.restarts_histogram(np.array([r.log_likelihood for r in restarts]), height=height),
            figs.optima_small_multiples(_X, panels, height_per_row=panel_height), caption)


# ---------------------------------------------------------------------------------------------- 6 · model choice
def selection_section() -> None:
    st.header("6 · How many components?")
    kit.explain("More components always fit the training points better. BIC and AIC charge for the extra "
                "parameters; the log-likelihood of **held-out** points shows directly when more power stops helping.")
    c1, c2 = st.columns(2)
    frac = c1.slider("Held-out fraction", 0.1, 0.5, 0.25, step=0.05, key="mx_test_frac", bind="query-params",
                     persist_state="session")
    run = c2.toggle("Compare K = 1 ... 10", key="mx_select_on", bind="query-params", persist_state="session")
    if not run:
        kit.note("Switch on to fit K = 1 ... 10 on a training split and score the held-out points.")
        return
    with st.spinner("Fitting K = 1 ... 10 ..."):
        sel = model_selection(data_key, X, covariance_type, init_params, init_seed, float(frac))
    kit.chart(figs.model_selection_figure(sel.ks, sel.bic, sel.aic, sel.train_log_likelihood,
                                          sel.heldout_log_likelihood, current_k=K, height=kit.height(360)),
              key="mx_select_chart")
    kit.csv_download({"K": sel.ks, "bic": sel.bic, "aic": sel.aic, "train_mean_log_likelihood":
                      sel.train_log_likelihood, "heldout_mean_log_likelihood": sel.heldout_log_likelihood},
                     "model_selection.csv", key="mx_select_csv", label="Download the comparison (CSV)")
    st.caption(f"{sel.n_train} training and {sel.n_test} held-out points; {covariance_type} covariances.")


# Sections 4-6 are fragments: their own controls rerun them alone, not the EM animation above. Guarded inside, since
# a fragment's own reruns call it directly.
EXPLAINED = (gmm.MixtureFitError,)


@st.fragment
def generative_fragment() -> None:
    kit.guarded(generative_section, explained=EXPLAINED)


@st.fragment
def restarts_fragment() -> None:
    kit.guarded(restarts_section, explained=EXPLAINED)


@st.fragment
def selection_fragment() -> None:
    kit.guarded(selection_section, explained=EXPLAINED)


kit.guarded(decomposition_section, explained=EXPLAINED)
generative_fragment()
restarts_fragment()
selection_fragment()
kit.guarded(em_section, explained=EXPLAINED)  # last: the largest figure, drawn into its place in section 2

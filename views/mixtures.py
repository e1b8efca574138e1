"""Shallow mixtures: fit, step and sample a 2-D Gaussian mixture (issue 3).

Widgets -> lvm_core.gmm (cached in session state) -> lvm_core.plots.mixtures -> st.plotly_chart. No maths here.
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from lvm_core import gmm
from lvm_core.models import GaussianMixtureLVM
from lvm_core.plots import mixtures as figs
from lvm_core.plots import text_number
from ui import state
from ui.data import DataKeys, data_picker, set_points
from ui.sidebar import page_seed, presentation_scale

DATA = DataKeys("mx", data=state.DATASET, meta=state.DATASET_META)
MAX_ITER = 200  # the iteration slider's range
PLAY_TICK_S = 0.5  # one EM iteration per tick while playing
ANIMATION_TICK_S = 0.6
ANIMATION_SAMPLES = 30  # the animated generative mode draws this many points one by one
VIEWS = ("responsibilities", "ellipses", "means", "density")
DENSITY_MODES = ("contours", "heatmap")
CLICK_MODES = {"pick": "pick x", "add": "add points", "delete": "delete points"}

# session keys private to this page (widget keys are the "mx_*" strings next to each widget)
ITER = "mx_iter"
ITER_PENDING = "mx_iter_pending"  # set where the slider cannot be written (a fragment); applied before it is drawn
PLAYING = "mx_playing"
CHART_NONCE = "mx_chart_nonce"  # bumped after handling a chart selection, so the same selection is not re-applied
EDIT_NOTE = "mx_edit_note"
GEN_SHOWN = "mx_gen_shown"
RESTARTS = "mx_restarts_cache"
SELECTION = "mx_selection_cache"
PX, PY = "mx_px", "mx_py"

ss = st.session_state
for key, default in ((PLAYING, False), (CHART_NONCE, 0), (GEN_SHOWN, 0)):
    ss.setdefault(key, default)
if ITER_PENDING in ss:
    ss[ITER] = ss.pop(ITER_PENDING)


def guarded(section, *args):
    """Run a page section; an unexpected failure becomes an explanation, never a traceback (data and fit are kept)."""
    try:
        return section(*args)
    except gmm.MixtureFitError as exc:  # EM itself failed (e.g. a component collapsed): say what to change
        st.error(str(exc), icon=":material/error:")
        return None
    except Exception as exc:  # noqa: BLE001 - the last line of defence for a live demo
        st.error(
            f"This part of the page could not be drawn ({type(exc).__name__}: {exc}). Your data and fit are kept; "
            "try other settings.",
            icon=":material/error:",
        )
        return None


def fingerprint(X: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(X).tobytes(), digest_size=12).hexdigest() + f":{X.shape[0]}"


def height(h: int) -> int:
    return int(h * presentation_scale())


# ---------------------------------------------------------------------------------------------------------- the idea

st.title("Shallow mixtures")
st.markdown(
    "A Gaussian mixture explains each point by a **hidden choice**: first pick a component "
    "$z \\sim \\mathrm{Categorical}(\\pi)$, then draw $x \\mid z = k \\sim \\mathcal N(\\mu_k, \\Sigma_k)$. "
    "Summing out the choice gives the marginal density below: more components mean **more representational "
    "power**, but the likelihood is **non-convex**, so EM finds a local optimum that depends on where it starts."
)
st.latex(r"p(x) = \sum_{k=1}^{K} p(z = k)\, p(x \mid z = k) = \sum_{k=1}^{K} \pi_k\, \mathcal N(x;\, \mu_k, \Sigma_k)")

# -------------------------------------------------------------------------------------------------------------- data

st.header("1 · Data")
X = data_picker(DATA)
if EDIT_NOTE in ss:
    st.toast(ss.pop(EDIT_NOTE))

# ------------------------------------------------------------------------------------------------------ fit controls

st.header("2 · Fit by EM, step by step")
c1, c2, c3, c4 = st.columns(4)
K = c1.slider("Components K", 1, gmm.MAX_COMPONENTS, 3, key="mx_K", bind="query-params", persist_state="session")
covariance_type = c2.selectbox(
    "Covariance type",
    gmm.COVARIANCE_TYPES,
    format_func=gmm.COVARIANCE_LABELS.get,
    key="mx_cov",
    bind="query-params",
    persist_state="session",
)
init_params = c3.selectbox(
    "Initialisation",
    gmm.INIT_PARAMS,
    format_func=gmm.INIT_LABELS.get,
    key="mx_init",
    bind="query-params",
    persist_state="session",
)
init_seed = c4.slider("Init seed", 0, 999, 0, key="mx_seed", bind="query-params", persist_state="session")

fit_key = (fingerprint(X), K, covariance_type, init_params, init_seed)


def em_trace(upto: int) -> gmm.EMTrace:
    """The EM path for the current settings, extended to `upto` iterations (kept in session state)."""
    fit = ss.get(state.MIXTURE_FIT)
    if not fit or fit.get("key") != fit_key:
        fit = {"key": fit_key, "trace": gmm.em_start(X, K, covariance_type, init_params, init_seed)}
        ss[state.MIXTURE_FIT] = fit
    trace = fit["trace"]
    if trace.n_iter < upto:
        gmm.em_extend(trace, X, upto - trace.n_iter)
    return trace


# The buttons' callbacks may run at the start of a fragment run (a click while Play animates): then the slider outside
# the fragment is not redrawn, and the browser would send its old value back on the next full run. So they never
# write the slider's key directly: they leave the iteration in ITER_PENDING, applied before the slider is drawn.
def _current_iteration() -> int:
    return int(ss.get(ITER_PENDING, ss.get("mx_iter_live", ss.get(ITER, 0))))


def _step(n: int) -> None:
    ss[ITER_PENDING] = int(np.clip(_current_iteration() + n, 0, MAX_ITER))
    ss.pop("mx_iter_live", None)
    ss[PLAYING] = False


def _reset() -> None:
    ss[ITER_PENDING] = 0
    ss.pop("mx_iter_live", None)
    ss[PLAYING] = False


def _set_playing(playing: bool) -> None:
    # idempotent on purpose: a click that lands while the animation's fragment runs can be delivered twice
    if not playing:  # pausing: the slider takes the iteration the animation reached
        ss[ITER_PENDING] = _current_iteration()
        ss.pop("mx_iter_live", None)
    ss[PLAYING] = playing


def _run_to_convergence() -> None:
    ss[PLAYING] = False
    ss.pop("mx_iter_live", None)
    try:
        trace = em_trace(0)
        while trace.converged_at is None and trace.n_iter < MAX_ITER:
            gmm.em_extend(trace, X, 5)
        ss[ITER_PENDING] = trace.converged_at if trace.converged_at is not None else MAX_ITER
    except gmm.MixtureFitError:
        pass  # the page body shows the explanation


buttons, scrub = st.columns([3, 2], vertical_alignment="center")
bar = buttons.container(horizontal=True)
bar.button(
    "Step",
    key="mx_step",
    icon=":material/skip_next:",
    on_click=_step,
    args=(1,),
    type="primary",
    help="One EM iteration: E-step (responsibilities), then M-step (pi, mu, Sigma).",
)
bar.button(
    "Pause" if ss[PLAYING] else "Play",
    key="mx_play",
    on_click=_set_playing,
    args=(not ss[PLAYING],),
    icon=":material/pause:" if ss[PLAYING] else ":material/play_arrow:",
)
bar.button("Reset", key="mx_reset", icon=":material/replay:", on_click=_reset, help="Back to the initialisation.")
bar.button("Run to convergence", key="mx_converge", icon=":material/fast_forward:", on_click=_run_to_convergence)
scrub.slider(
    "EM iteration shown",
    0,
    MAX_ITER,
    value=0,
    key=ITER,
    bind="query-params",
    persist_state="session",
    help="Scrub through the EM iterations (0 = the initialisation).",
)

v1, v2, v3 = st.columns([3, 1.4, 2.6])
views = v1.pills(
    "Show",
    VIEWS,
    selection_mode="multi",
    default=list(VIEWS),
    key="mx_show",
    bind="query-params",
    persist_state="session",
)
views = set(views or [])
density_mode = (
    v2.segmented_control(
        "Density as",
        DENSITY_MODES,
        default="contours",
        key="mx_density",
        bind="query-params",
        persist_state="session",
        required=True,
    )
    or "contours"
)
click_mode = (
    v3.segmented_control(
        "Click on the chart to",
        list(CLICK_MODES),
        help="pick x: decompose p(x) at the clicked point (section 3). add points: each click adds a data point. "
        "delete points: click a point, or drag a box or lasso (toolbar) over some.",
        format_func=CLICK_MODES.get,
        default="pick",
        key="mx_click",
        bind="query-params",
        persist_state="session",
        required=True,
    )
    or "pick"
)


def _on_chart_select(chart_key: str) -> None:
    """A click, box or lasso on the mixture chart: pick x, add a point, or delete points (per the click mode)."""
    event = ss.get(chart_key) or {}
    points = (event.get("selection") or {}).get("points") or []
    if not points:
        return
    mode = ss.get("mx_click") or "pick"
    current = ss[DATA.data]
    if mode == "pick":
        ss[PX], ss[PY] = round(float(points[-1]["x"]), 3), round(float(points[-1]["y"]), 3)
    elif mode == "add":
        new = np.array([[float(p["x"]), float(p["y"])] for p in points[-1:]])
        set_points(DATA, np.vstack([current, new]), note=f"Added a point at ({new[0, 0]:.2f}, {new[0, 1]:.2f}).")
        ss[EDIT_NOTE] = f"Added a point: {len(current) + 1} points now."
    else:
        drop = {int(p["point_index"]) for p in points if p.get("curve_number") == figs.TRACE_DATA}
        keep = np.setdiff1d(np.arange(len(current)), sorted(drop))
        if not drop:
            return
        if len(keep) < 2:
            ss[EDIT_NOTE] = "Not deleted: at least 2 points must remain."
        else:
            set_points(DATA, current[keep], note=f"Deleted {len(drop)} point(s) by hand.")
            ss[EDIT_NOTE] = f"Deleted {len(drop)} point(s): {len(keep)} left."
    ss[CHART_NONCE] += 1  # a fresh chart: the handled selection is not reported again


def em_views(live: bool) -> gmm.GaussianMixture | None:
    """The fit section: live equation, mixture chart, log-likelihood curve. Reruns alone while playing."""
    if live and not ss[PLAYING]:  # paused by a click handled in this fragment run: redraw the whole page
        st.rerun()
    if live and ss[PLAYING]:
        trace = ss[state.MIXTURE_FIT]["trace"] if (ss.get(state.MIXTURE_FIT) or {}).get("key") == fit_key else None
        if trace is None:  # settings changed under the animation: stop and redraw the page
            ss[PLAYING] = False
            st.rerun()
        it = ss.get("mx_iter_live", ss.get(ITER, 0)) + 1
        trace = em_trace(it)
        ss["mx_iter_live"] = it
        if trace.converged(it) or it >= MAX_ITER:
            ss[PLAYING] = False
            ss[ITER_PENDING] = it
            ss.pop("mx_iter_live", None)
            st.rerun()
    else:
        ss.pop("mx_iter_live", None)
        it = int(ss.get(ITER, 0))
        trace = em_trace(it)
    gm = trace.mixture(it)
    status = "converged" if trace.converged(it) else ("playing" if ss[PLAYING] else "not yet converged")
    m1, m2, m3 = st.columns(3)
    m1.metric("EM iteration", it)
    delta = trace.log_likelihoods[it] - trace.log_likelihoods[it - 1] if it else None
    m2.metric(
        "mean log p(x)", f"{trace.log_likelihoods[it]:.4f} nats", delta=None if delta is None else f"{delta:+.4f}"
    )
    m3.metric("status", status)
    if it == 0 and init_params in gmm.ONE_POINT_INITS:
        spike = text_number(gmm.DEFAULT_REG_COVAR)
        st.caption(f"Iteration 0 is scikit-learn's '{gmm.INIT_LABELS[init_params]}' start: each mean sits on one data "
                   f"point with covariance {spike}·I, a spike, so almost every point has a tiny density and log p(x) "
                   "starts near −10⁶. The first E-step hands each point to its nearest spike; press Step.")
    st.latex(figs.mixture_latex(gm.weights_, gm.means_, per_line=3))

    xlim, ylim = figs.plot_limits(X)
    grid = gmm.density_grid(gm, xlim, ylim, n=90) if "density" in views else None
    resp = gmm.responsibilities(gm, X) if "responsibilities" in views else None
    ellipses = gmm.component_ellipses(gm) if "ellipses" in views else None
    point = np.array([ss.get(PX, 0.0), ss.get(PY, 0.0)])
    fig = figs.mixture_figure(
        X,
        resp,
        gm.means_ if "means" in views else None,
        ellipses,
        grid,
        density_mode,
        clicks=figs.click_grid(xlim, ylim),
        point=point,
        xlim=xlim,
        ylim=ylim,
        height=height(600),
        dragmode="select" if click_mode == "delete" else "pan",  # deleting: a drag draws a box at once
    )
    left, right = st.columns([3, 2])
    chart_key = f"mx_chart_{ss[CHART_NONCE]}"
    left.plotly_chart(
        fig,
        key=chart_key,
        on_select=lambda: _on_chart_select(chart_key),
        selection_mode=("points", "box", "lasso"),
        config={"scrollZoom": False, "displaylogo": False},
    )
    with right:
        st.plotly_chart(
            figs.log_likelihood_figure(
                trace.log_likelihoods[: max(it, trace.n_iter) + 1], it, trace.converged_at, height=height(300)
            ),
            key="mx_ll_curve",
        )
        st.caption(
            "EM never lowers the likelihood: each step's mean log p(x) is at least the last one's. Converged: the "
            f"change fell below {gmm.DEFAULT_TOL:g} nats per point. Colours mix the component colours by each "
            "point's responsibilities p(z = k | x); solid ellipses at 1, dashed at 2 standard deviations."
        )
    return gm


try:
    em_trace(0)
    fit_error = None
except gmm.MixtureFitError as exc:
    fit_error = str(exc)

if fit_error:
    st.error(fit_error, icon=":material/error:")
    st.plotly_chart(figs.mixture_figure(X, None, None, None, height=height(480)), key="mx_data_only")
    st.stop()

gm = None
if ss[PLAYING]:
    # guarded inside the fragment: an EM failure mid-animation (a collapsing component) is explained, not a traceback
    st.fragment(run_every=PLAY_TICK_S)(guarded)(em_views, True)
else:
    gm = guarded(em_views, False)
if gm is None:  # drawn inside the fragment (or failed): the rest of the page uses the iteration the slider shows
    try:
        gm = em_trace(int(ss.get(ITER, 0))).mixture(int(ss.get(ITER, 0)))
    except gmm.MixtureFitError:
        st.stop()  # guarded() above has explained

# keep the fit for the other pages, as a GaussianMixtureLVM
fitted_id = (fit_key, int(ss.get(ITER, 0)))
if ss.get("mx_fitted_id") != fitted_id:
    ss[state.FITTED_MIXTURE] = GaussianMixtureLVM.from_sklearn(gm)
    ss["mx_fitted_id"] = fitted_id

# ---------------------------------------------------------------------------------------------- decompose one p(x)


def decomposition_section() -> None:
    st.header("3 · One point's density, term by term")
    st.markdown(
        "Pick a point $x$ (click the chart with *pick x* selected, or type it): $p(x)$ is a sum of $K$ terms "
        "$\\pi_k\\,\\mathcal N(x;\\mu_k,\\Sigma_k)$, and each term's share is the responsibility $p(z=k\\mid x)$."
    )
    c1, c2, c3 = st.columns([1, 1, 4])
    x1 = c1.number_input(
        "x₁", value=0.0, step=0.1, format="%.3f", key=PX, bind="query-params", persist_state="session"
    )
    x2 = c2.number_input(
        "x₂", value=0.0, step=0.1, format="%.3f", key=PY, bind="query-params", persist_state="session"
    )
    x = np.array([x1, x2], dtype=float)
    terms = gmm.decompose_density(gm, x)  # (K,)
    left, right = st.columns([2, 3])
    left.plotly_chart(figs.decomposition_figure(terms, height=height(320)), key="mx_decomp")
    with right:
        st.latex(figs.decomposition_latex(x, terms, np.log(gm.weights_), per_line=2))


guarded(decomposition_section)

# --------------------------------------------------------------------------------------------- the generative story


def generative_section() -> None:
    st.header("4 · The generative process")
    st.markdown(
        "Sampling follows the model's two steps: **pick** $k \\sim \\mathrm{Categorical}(\\pi)$, then **draw** "
        "$x \\sim \\mathcal N(\\mu_k, \\Sigma_k)$. The colour is the chosen $k$, the background the fitted $p(x)$."
    )
    c1, c2 = st.columns([3, 2])
    n = c1.slider("Samples", 10, 3000, 500, step=10, key="mx_gen_n", bind="query-params", persist_state="session")
    animate = c2.toggle(
        "Animate the first draws one by one", key="mx_gen_animate", bind="query-params", persist_state="session"
    )
    x, k = gmm.sample_generative(gm, n, seed=page_seed())
    xlim, ylim = figs.plot_limits(np.vstack([X, x]))
    grid = gmm.density_grid(gm, xlim, ylim, n=80)
    ellipses = gmm.component_ellipses(gm, n_stds=(1.0,))

    def draw(shown: int, highlight: bool) -> None:
        fig = figs.generative_figure(
            x[:shown], k[:shown], gm.means_, grid, ellipses, highlight, xlim, ylim, height=height(480)
        )
        st.plotly_chart(fig, key="mx_gen_chart")
        if highlight and shown:
            j = int(k[shown - 1])
            st.caption(
                f"Draw {shown}: picked k = {j + 1} (probability π = {gm.weights_[j]:.2f}), then drew x = "
                f"({x[shown - 1, 0]:.2f}, {x[shown - 1, 1]:.2f}) from N(μ{j + 1}, Σ{j + 1})."
            )

    if not animate:
        ss[GEN_SHOWN] = 0
        draw(n, False)
        return

    limit = min(ANIMATION_SAMPLES, n)

    ticking = ss[GEN_SHOWN] < limit

    @st.fragment(run_every=ANIMATION_TICK_S if ticking else None)
    def animation() -> None:
        if ss.pop("mx_gen_restart", False):  # "Draw them again": a full run restarts the timer
            st.rerun()
        ss[GEN_SHOWN] = min(ss[GEN_SHOWN] + 1, limit)
        draw(ss[GEN_SHOWN], True)
        if ss[GEN_SHOWN] >= limit:
            if ticking:  # done: one full run stops the timer
                st.rerun()
            st.button(
                "Draw them again",
                key="mx_gen_again",
                on_click=lambda: ss.update({GEN_SHOWN: 0, "mx_gen_restart": True}),
            )

    animation()


guarded(generative_section)

# -------------------------------------------------------------------------------------- non-convexity: restarts


def restarts_section() -> None:
    st.header("5 · Non-convexity: many starts, many answers")
    st.markdown(
        "Run EM to convergence from $R$ random initialisations. Different starts end at different local optima: "
        "the histogram shows their final log-likelihoods, the panels the distinct solutions (best first)."
    )
    c1, c2, c3 = st.columns([2, 2, 2])
    R = c1.slider("Restarts R", 2, 50, 20, key="mx_R", bind="query-params", persist_state="session")
    r_init = c2.selectbox(
        "Their initialisation",
        gmm.INIT_PARAMS,
        index=gmm.INIT_PARAMS.index("random_from_data"),
        format_func=gmm.INIT_LABELS.get,
        key="mx_r_init",
        bind="query-params",
        persist_state="session",
    )
    run = c3.toggle(
        "Run restarts",
        key="mx_restarts_on",
        bind="query-params",
        persist_state="session",
        help="Stops when switched off; finished runs are kept and resumed.",
    )
    if not run:
        st.caption(f"Switch on to run {R} restarts with K = {K} ({gmm.COVARIANCE_LABELS[covariance_type]}).")
        return
    key = (fingerprint(X), K, covariance_type, r_init, page_seed())
    cache = ss.get(RESTARTS)
    if not cache or cache["key"] != key:
        cache = {"key": key, "done": []}
        ss[RESTARTS] = cache
    if len(cache["done"]) < R:
        cache.pop("figures", None)
        bar = st.progress(len(cache["done"]) / R, text="Running restarts ...")

        def progress(r: int, total: int, restart: gmm.Restart) -> None:
            cache["done"].append(restart)  # kept as they finish: an interrupted run resumes here
            bar.progress(r / total, text=f"Restart {r} of {total}: {restart.log_likelihood:.4f} nats")

        result = gmm.run_restarts(
            X, K, R, covariance_type, r_init, page_seed(), callback=progress, done=list(cache["done"])
        )
        cache["done"] = list(result.restarts)
        bar.empty()
    if "figures" not in cache or cache.get("R") != R or cache.get("height") != height(1):
        # the figures depend only on the finished restarts: kept, so a Step click does not rebuild them
        result = gmm.run_restarts(X, K, R, covariance_type, r_init, page_seed(), done=cache["done"])
        panels = []
        for opt in result.optima[:6]:
            g = gmm.mixture_from_params(opt.restart.params, covariance_type)
            panels.append(
                {
                    "ellipses": gmm.component_ellipses(g, n_stds=(1.0,)),
                    "means": g.means_,
                    "log_likelihood": opt.restart.log_likelihood,
                    "count": opt.count,
                }
            )
        cache["figures"] = (
            figs.restarts_histogram(result.log_likelihoods, height=height(300)),
            figs.optima_small_multiples(X, panels, height_per_row=height(230)),
            f"{len(result.optima)} distinct optima in {R} restarts; the best reached {result.optima[0].count}x."
            + (f" Showing the best {len(panels)} of them." if len(result.optima) > len(panels) else ""),
        )
        cache["R"], cache["height"] = R, height(1)
    hist, panels_fig, caption = cache["figures"]
    left, right = st.columns([2, 3])
    left.plotly_chart(hist, key="mx_r_hist")
    left.caption(caption)
    right.plotly_chart(panels_fig, key="mx_r_panels")


guarded(restarts_section)

# ------------------------------------------------------------------------------------------------- model choice


def selection_section() -> None:
    st.header("6 · How many components?")
    st.markdown(
        "More components always fit the training points better. BIC and AIC charge for the extra parameters; the "
        "log-likelihood of **held-out** points shows directly when more power stops helping."
    )
    c1, c2 = st.columns([2, 2])
    frac = c1.slider(
        "Held-out fraction", 0.1, 0.5, 0.25, step=0.05, key="mx_test_frac", bind="query-params", persist_state="session"
    )
    run = c2.toggle("Compare K = 1 ... 10", key="mx_select_on", bind="query-params", persist_state="session")
    if not run:
        st.caption("Switch on to fit K = 1 ... 10 on a training split and score the held-out points.")
        return
    key = (fingerprint(X), covariance_type, init_params, init_seed, frac)
    cache = ss.get(SELECTION)
    if not cache or cache["key"] != key:
        bar = st.progress(0.0, text="Fitting K = 1 ... 10")
        sel = gmm.select_n_components(
            X,
            covariance_type=covariance_type,
            init_params=init_params,
            seed=init_seed,
            test_fraction=frac,
            callback=lambda i, n: bar.progress(i / n),
        )
        bar.empty()
        cache = {"key": key, "result": sel}
        ss[SELECTION] = cache
    sel = cache["result"]
    if cache.get("figure_for") != (K, height(360)):  # kept between Step clicks: only K's marker and size change it
        cache["figure"] = figs.model_selection_figure(
            sel.ks,
            sel.bic,
            sel.aic,
            sel.train_log_likelihood,
            sel.heldout_log_likelihood,
            current_k=K,
            height=height(360),
        )
        cache["figure_for"] = (K, height(360))
    st.plotly_chart(cache["figure"], key="mx_select_chart")
    st.caption(f"{sel.n_train} training and {sel.n_test} held-out points; {covariance_type} covariances.")


guarded(selection_section)

"""Estimating p(x): naive Monte Carlo against importance sampling, beside the exact answer, with the diagnostics
researchers judge importance sampling by: Pareto k-hat of the weights, both KLs, and the draws a proposal needs.

Widgets -> lvm_core.experiments / estimators (cached, common random numbers) -> lvm_core.plots.estimating -> charts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st
import torch

from lvm_core import estimators as est
from lvm_core import experiments as ex
from lvm_core.plots import estimating as figs
from lvm_core.plots import text_number
from lvm_core.proposals import ProposalSpec
from ui import kit, state
from ui.kit import guarded, height
from ui.selection import Selection, model_and_point
from ui.sidebar import page_seed

PREFIX = "est"
K_OPTIONS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000]
LOC_RANGE = (-10.0, 10.0)
LOG_SCALE_RANGE = (-5.0, 3.0)  # log10 of q's scale per axis: 1e-5 .. 1000
SHOWN = 250  # samples drawn on the latent picture (more would hide the posterior under them)
DIM_SWEEP_MAX_K, DIM_SWEEP_MAX_TRIALS = 2_000, 50  # 10 dimensions x 3 estimators: ~3e6 evaluations
# the labels are what the URL holds (?est_qfamily=student_t), so they stay short
FAMILIES = {"gaussian": "Gaussian", "student_t": "Student-t", "full": "Full-cov. Gaussian", "mixture": "Mixture"}
FITTED_FAMILIES = ("full", "mixture")  # fitted to the exact posterior (1-/2-D latents), no location/scale sliders
BADGE_COLORS = {est.KHAT_GOOD: "green", est.KHAT_HIGH: "orange", est.KHAT_NO_MEAN: "red", est.KHAT_TOO_FEW: "gray"}
COST_AXES = {"k": "k (model evaluations)", "seconds": "wall time"}
LABELS = dict(ex.ESTIMATOR_LABELS)  # a fresh copy per run of the page (naive's label depends on the model)

ss = st.session_state
PRESET_FOR = f"{PREFIX}_preset_for"  # (model_key, point, preset name) of the last preset applied to q


# ------------------------------------------------------------------------------------------------- cached work


@st.cache_data(max_entries=16, show_spinner=False)
def posterior_moments(model_key: str, point: tuple[float, ...], _model, _x):
    """mean and per-axis standard deviation of p(z|x) (the "fitted" preset)"""
    return ex.posterior_moments(_model, _x)


@st.cache_resource(max_entries=32, show_spinner="Fitting q to the exact posterior ...")
def fitted_proposal(model_key: str, point: tuple[float, ...], family: str, components: int, _model, _x):
    """q fitted to p(z|x): the full-covariance Gaussian with its moments, or a Gaussian mixture (cached per content)"""
    if family == "full":
        return est.moment_matched_gaussian(_model, _x, full_covariance=True)
    return est.fit_mixture_proposal(_model, _x, n_components=components, seed=0)


@st.cache_data(max_entries=96, show_spinner=False)
def divergences(model_key: str, point: tuple[float, ...], proposal_key: str, _model, _x, _proposal) -> dict:
    """both KLs between p(z|x) and q, and the draws importance sampling needs (cached per content)"""
    return ex.proposal_divergences(_model, _x, _proposal)


@st.cache_data(max_entries=96, show_spinner=False)
def run(model_key: str, point: tuple[float, ...], proposal_key: str, k: int, trials: int, seed: int, _model, _x,
        _proposal) -> ex.EstimatorRun:
    """R trials of one estimator with k samples (cached per estimator: moving q reruns importance sampling only)"""
    return ex.run_estimator(_model, _x, _proposal, k, trials, seed)


@st.cache_data(max_entries=96, show_spinner=False)
def sweep_stats(model_key: str, point: tuple[float, ...], proposal_key: str, k: int, trials: int, seed: int,
                log_px: float, _run: ex.EstimatorRun) -> dict:
    """relative RMSE and E[log p-hat] at every k of a run's sweep (cached with the run's own key)"""
    return ex.sweep_statistics(_run, log_px)


@st.cache_data(max_entries=96, show_spinner=False)
def summary_rows(key: tuple, log_px: float | None, k: int, _runs: dict) -> list[dict]:
    """the table's rows (cached under the runs' own key)"""
    return ex.summary_table(_runs, log_px, k)


@st.cache_resource(max_entries=128, show_spinner=False)
def figure(key: tuple, _build):
    """a figure built once per key (every input of the figure is in the key); Streamlit copies it when drawing"""
    return _build()


@st.cache_data(max_entries=8, show_spinner=False)
def dimension_sweep(sigma: float, k: int, trials: int, seed: int, box: tuple[float, float]):
    return ex.dimension_sweep(range(1, 11), sigma, k, trials, seed, box)


@st.cache_data(max_entries=16, show_spinner=False)
def trials_csv(log_estimates: dict, ess: dict, max_weight: dict, khat: dict, k: int, seed: int) -> bytes:
    frames = [pd.DataFrame({"estimator": name, "trial": np.arange(1, len(v) + 1), "k": k, "seed": seed,
                            "log_p_hat": v, "p_hat": np.exp(v), "ess": ess[name], "max_weight": max_weight[name],
                            "pareto_khat": khat[name]})  # the first ex.KHAT_TRIALS trials
              for name, v in log_estimates.items()]
    return pd.concat(frames, ignore_index=True).to_csv(index=False).encode()


# ---------------------------------------------------------------------------------------------------- the idea

st.title("Estimating p(x)")
kit.explain(
    "A latent variable model defines $p(x)$ only through an integral over the hidden $z$. Naive Monte Carlo "
    "averages $p(x, z)$ over $z$ drawn uniformly from a box: it *works in theory but not in practice*, because almost "
    "all of the box is where $p(x, z)$ is negligible. **Importance sampling** draws $z$ from a proposal $q(z)$ instead "
    "and reweights: with a good $q$ a few samples suffice. Both estimate $p(x)$ without bias, but the **log** of an "
    "unbiased estimate is biased low (Jensen's inequality)."
)
st.latex(r"p(x) = \int p(x, z)\,dz = \mathbb E_{z \sim q}\!\left[\frac{p(x, z)}{q(z)}\right] "
         r"\approx \frac{1}{k}\sum_{j=1}^{k} \frac{p(x, z_j)}{q(z_j)}, \qquad z_j \sim q(z)")

kit.reset_to_defaults(PREFIX, keys=(state.SELECTED_X,))

st.header("1 · The model and the point x")
sel: Selection = model_and_point(PREFIX)

# ------------------------------------------------------------------------------------------ the proposal controls


def qkey(kind: str, i: int) -> str:
    return f"{PREFIX}_q{kind}_{i}"


def fitted_moments() -> tuple[np.ndarray, np.ndarray, str]:
    return posterior_moments(sel.model_key, sel.point, sel.model, sel.x)


def preset_values(name: str) -> dict[str, float]:
    """q's slider values for a preset: {widget key: value} (a continuous latent; rounded as the sliders show them)"""
    mean, std, _ = fitted_moments()
    loc, scale = ex.preset_proposal(name, mean, std)
    out = {}
    for i in range(sel.model.latent_dim):
        out[qkey("loc", i)] = float(np.clip(round(loc[i], 3), *LOC_RANGE))
        out[qkey("lsc", i)] = float(np.clip(round(math.log10(scale[i]), 2), *LOG_SCALE_RANGE))
    return out


def apply_preset(name: str) -> None:
    """set q's sliders to a preset (a callback: runs before the sliders are drawn)"""
    ss[PRESET_FOR] = (sel.model_key, sel.point, name)
    if sel.model.discrete:
        ss[f"{PREFIX}_qmix"] = 1.0 if name == "prior" else 0.0
        return
    ss.update(preset_values(name))


def init_proposal_sliders() -> None:
    """first visit: q starts at the fitted preset, unless the URL (or this session) already says where q is"""
    d = sel.model.latent_dim
    keys = [qkey(kind, i) for i in range(d) for kind in ("loc", "lsc")]
    if all(key not in ss and key not in st.query_params for key in keys) and not sel.model.discrete:
        apply_preset("fitted")


def fitted_families_apply() -> bool:
    """q fitted to the exact posterior needs its moments or draws from it: a continuous 1-/2-D latent with log p(x)"""
    return not sel.model.discrete and sel.model.latent_dim <= 2 and sel.log_px is not None


def proposal_controls() -> tuple[ProposalSpec | torch.distributions.Distribution, str]:
    """q's family, presets and sliders -> (the importance proposal, a key naming it for the caches)"""
    d = sel.model.latent_dim
    if sel.model.discrete:
        mean, _, _ = fitted_moments()
        prior = np.exp(sel.model.log_weights.detach().numpy())
        prior = prior / prior.sum()
        c1, c2 = st.columns([2, 3])
        with c1:
            b1, b2 = st.columns(2)
            b1.button("prior", key=f"{PREFIX}_preset_prior", on_click=apply_preset, args=("prior",))
            b2.button("fitted (exact posterior)", key=f"{PREFIX}_preset_fitted", on_click=apply_preset,
                      args=("fitted",))
        mix = c2.slider("q = (1 − λ) p(z|x) + λ p(z): λ", 0.0, 1.0, 0.5, step=0.01,
                        key=f"{PREFIX}_qmix", bind="query-params",
                        help="λ = 0 is the exact posterior (zero variance), λ = 1 the prior.")
        q = ex.discrete_proposal(mean, prior, mix)
        return q, repr(q)
    c1, c2, c3 = st.columns([2.6, 1, 2.6])
    families = [f for f in FAMILIES if f not in FITTED_FAMILIES or fitted_families_apply()]
    kit.accept_short_names(f"{PREFIX}_qfamily", families, FAMILIES.get)  # ?est_qfamily=mixture
    family = c1.segmented_control("q's family", families, format_func=FAMILIES.get, default="gaussian",
                                  key=f"{PREFIX}_qfamily", bind="query-params", required=True,
                                  help="Student-t: heavy tails, so rare far samples never get astronomically "
                                       "large weights. Full-covariance Gaussian and Mixture: fitted to the exact "
                                       "posterior (its moments; maximum likelihood on draws from it), the best "
                                       "of their kind for importance sampling.") or "gaussian"
    if family in FITTED_FAMILIES:
        components = 2
        if family == "mixture":
            components = c2.slider("components", 2, 5, 2, key=f"{PREFIX}_qcomp", bind="query-params",
                                   help="Gaussian components of q, fitted by EM (scikit-learn) to draws from p(z|x).")
        with c3:
            kit.note("q is **fitted to the exact posterior**: the full-covariance Gaussian with p(z|x)'s mean and "
                     "covariance (of all Gaussians, the one importance sampling needs fewest draws from), or a "
                     "mixture of Gaussians fitted by maximum likelihood to draws from p(z|x), which can bend "
                     "around a banana or cover two modes.")
        q = fitted_proposal(sel.model_key, sel.point, family, int(components), sel.model, sel.x)
        return q, f"{family}:{components}"
    df = 3
    if family == "student_t":
        df = c2.slider("degrees of freedom ν", 1, 10, 3, key=f"{PREFIX}_qdf", bind="query-params",
                       help="Smaller ν, heavier tails; ν = 1 is the Cauchy distribution.")
    with c3:
        last = ss.get(PRESET_FOR)
        if last and last[2] != "prior" and last[:2] != (sel.model_key, sel.point):
            st.caption(f"q still holds the *{last[2]}* preset of the previous model or x: press a preset to place q "
                       "for this one.")
        else:
            st.caption("Presets for q (location and scale per axis):")
        cols = st.columns(len(ex.PRESETS))
        for col, name in zip(cols, ex.PRESETS, strict=True):
            col.button(name, key=f"{PREFIX}_preset_{name.replace(' ', '_')}", on_click=apply_preset, args=(name,),
                       help=PRESET_HELP[name], width="stretch")
    # Every slider's default is the fitted preset for this model and x, passed on every run: a bound widget leaves
    # its URL parameter out when the value equals that default, so a bookmark without it must mean "fitted" (the
    # first visit's q), never the slider's minimum (what a missing default would be).
    fitted = preset_values("fitted")
    holder = st.expander(f"q's location and scale on each of the {d} latent axes", expanded=True) if d > 2 \
        else st.container()
    locs, scales = [], []
    with holder:
        per_row = 2 if d <= 2 else 4
        for start in range(0, d, per_row):
            cols = st.columns(2 * per_row)
            for j, i in enumerate(range(start, min(d, start + per_row))):
                loc_key, lsc_key = qkey("loc", i), qkey("lsc", i)
                locs.append(cols[2 * j].slider(f"location μ{i + 1}", *LOC_RANGE, fitted[loc_key], step=0.01,
                                               key=loc_key, bind="query-params"))
                lsc = cols[2 * j + 1].slider(f"log₁₀ scale σ{i + 1}", *LOG_SCALE_RANGE, fitted[lsc_key],
                                             step=0.01, key=lsc_key, bind="query-params",
                                             help="q's scale on a log axis: 0 is 1, −3 is 0.001, 3 is 1000.")
                scales.append(10.0**lsc)
    q = ProposalSpec(family, loc=tuple(locs), scale=tuple(scales), df=int(df))
    return q, repr(q)


PRESET_HELP = {
    "prior": "q = p(z) = N(0, I): importance sampling becomes sampling from the prior.",
    "fitted": "q matched to the exact posterior's mean and per-axis standard deviation.",
    "too narrow": f"The fitted q with a {ex.PRESET_FACTOR:g}x smaller scale: it misses the posterior's tails.",
    "too wide": f"The fitted q with a {ex.PRESET_FACTOR:g}x larger scale: most samples land where p(x, z) is tiny.",
    "shifted": f"The fitted q moved by {ex.PRESET_SHIFT:g} posterior standard deviations on every axis.",
}

# ------------------------------------------------------------------------------------------------ the estimates


def estimates_section() -> None:
    st.header("2 · Naive Monte Carlo against importance sampling")
    init_proposal_sliders()
    c1, c2, c3 = st.columns([2.2, 1.6, 1.6])
    k = c1.select_slider("samples per estimate k", K_OPTIONS, value=1_000, key=f"{PREFIX}_k", bind="query-params",
                         format_func=lambda v: f"{v:,}")
    trials_asked = c2.slider("trials R", 10, 1000, 200, step=10, key=f"{PREFIX}_R", bind="query-params",
                             help="Repeated estimates, each with its own k samples, to see each estimator's spread.")
    half = 4.0
    if not sel.model.discrete:
        half = c3.slider("naive box half-width a", 0.5, 20.0, 4.0, step=0.5, key=f"{PREFIX}_box",
                         bind="query-params", help="Naive MC draws z uniformly from the box [−a, a]^d.")
    box = (-half, half)
    q, q_key = proposal_controls()
    seed = page_seed()
    trials = ex.trials_within_budget(k, trials_asked)
    kit.note(
        f"**Common random numbers** (seed {seed}): all three estimators transform the *same* uniform draws (the box "
        "maps them linearly, the prior and q through the normal quantile function), and an estimate with k samples "
        "uses the first k draws of the same stream as one with more. A difference on screen is the estimator's, not "
        "the noise's. Change the seed in the sidebar (or press Resample) for new draws."
    )
    if trials < trials_asked:
        st.info(f"R lowered to {trials} for k = {k:,}: at most {ex.MAX_EVALUATIONS:,} model evaluations per "
                "estimator keep the page responsive.", icon=":material/speed:")

    if sel.model.discrete:
        LABELS["naive"] = "naive MC (uniform z)"
    if sel.kind == "funnel":  # the funnel's prior is no Gaussian: this estimator samples N(0, I), not p(z)
        LABELS["prior"] = "q = N(0, I)"
    proposals = ex.default_proposals(sel.model, box, q)
    names = {name: (q_key if name == "importance" else repr(p)) for name, p in proposals.items()}
    runs = {name: run(sel.model_key, sel.point, names[name], k, trials, seed, sel.model, sel.x, p)
            for name, p in proposals.items()}
    log_px = sel.log_px if sel.log_px is not None and math.isfinite(sel.log_px) else None
    key = (sel.model_key, sel.point, tuple(names.values()), k, trials, seed, log_px,
           height(100))  # everything the figures and the table below depend on
    rows = summary_rows(key, log_px, k, runs)
    kls = {name: divergences(sel.model_key, sel.point, names[name], sel.model, sel.x, proposals[name])
           for name in ("prior", "importance")} if log_px is not None else {}

    # ---- the latent space and the histograms
    left, right = st.columns([1, 1.35])
    with left:
        st.subheader("The latent space")
        kit.chart(figure(("latent", key), lambda: latent_figure(q, runs, log_px)), key=f"{PREFIX}_latent")
        if sel.model.discrete:
            kit.note("The exact posterior over the components, q, and the share of the total weight each "
                     "component received in trial 1 (q = p(z | x) gives every sample the same weight).")
        else:
            kit.note(f"Trial 1's first {min(k, SHOWN):,} samples of q, each sized by its normalised weight "
                     "w_j / Σ w (click the legend to show naive MC's). The heatmap (or curve) is the exact "
                     "posterior p(z | x)."
                     + (" With more than two latent axes, the picture shows axes 1 and 2 only."
                        if sel.model.latent_dim > 2 else ""))
    with right:
        st.subheader(f"{trials} estimates of each estimator")
        build = lambda: figs.estimates_figure({n: r.log_estimates for n, r in runs.items()}, log_px, LABELS,  # noqa: E731
                                              height=height(420))
        kit.chart(figure(("hist", key), build), key=f"{PREFIX}_hist")
        diagnostics(runs, kls, k, heavy_tailed=isinstance(q, ProposalSpec) and q.family == "student_t")

    # ---- the table, warnings, the equations
    table_section(rows, runs, k)
    st.markdown("**The notes' equations, with trial 1's numbers**")
    st.latex(figs.naive_latex(box[0], box[1], sel.model.latent_dim, k, float(runs["naive"].log_estimates[0]), log_px,
                              discrete=sel.model.discrete))
    st.latex(figs.importance_latex(k, float(runs["importance"].log_estimates[0]), log_px))
    st.latex(figs.jensen_latex(k, float(np.mean(runs["importance"].log_estimates)), log_px))
    st.download_button(
        f"Download all {trials * len(runs):,} trial estimates (CSV)",
        trials_csv({n: r.log_estimates for n, r in runs.items()}, {n: r.ess for n, r in runs.items()},
                   {n: r.max_weight for n, r in runs.items()}, {n: r.khat for n, r in runs.items()}, k, seed),
        file_name=f"estimates_{sel.kind}_k{k}_R{trials}_seed{seed}.csv", mime="text/csv", key=f"{PREFIX}_csv",
        icon=":material/download:", on_click="ignore",
    )

    # ---- convergence and Jensen
    st.header("3 · Convergence in k, and Jensen's gap")
    if log_px is None:
        st.info("Relative errors need the exact log p(x), which this model does not have here.")
        return
    stats = {name: sweep_stats(sel.model_key, sel.point, names[name], k, trials, seed, log_px, r)
             for name, r in runs.items()}
    cost = st.segmented_control("x axis", list(COST_AXES), format_func=COST_AXES.get, default="k",
                                key=f"{PREFIX}_cost", bind="query-params", required=True) or "k"
    needed = {name: kl["draws_needed"] for name, kl in kls.items()}
    left, right = st.columns(2)
    with left:
        kit.chart(figure(("conv", key, cost), lambda: figs.convergence_figure(stats, LABELS, cost=cost,
                                                                            height=height(380),
                                                                            draws_needed=needed)),
                  key=f"{PREFIX}_conv")
        kit.note("Relative RMSE of p̂ over the trials, at every k up to the chosen one (each from the first k "
                 "draws of the same trials). Every unbiased estimator falls like 1/√k once k passes the draws "
                 "needed, e^KL(p(z|x) ‖ q) (dashed; Chatterjee and Diaconis 2018): below it the estimate is "
                 "mostly luck. " + ("Wall time: measured per sample for each estimator, times k."
                                     if cost == "seconds" else ""))
    with right:
        kit.chart(figure(("jensen", key), lambda: figs.jensen_figure(stats, log_px, LABELS, height=height(380))),
                  key=f"{PREFIX}_jensen")
        kit.note("The mean of log p̂ₖ over the trials (band: ±2 standard errors) lies below log p(x) and rises "
                 "toward it as k grows. For importance sampling this curve is the **IWAE bound** L_k; at k = 1 "
                 "it is the ELBO.")
        st.page_link("views/elbo.py", label="The ELBO and variational inference", icon=":material/trending_up:")
    sweeps = {name: r.sweep for name, r in runs.items()}
    left, right = st.columns([1.6, 1])
    with left:
        kit.chart(figure(("sweep", key), lambda: figs.sweep_animation_figure(
            sweeps, runs["importance"].sweep_k, log_px, LABELS, height=height(320))), key=f"{PREFIX}_sweep")
    with right:
        kit.explain(f"**The {trials} estimates as k grows.** Press ▶ Play or drag the slider: each frame is the "
                    "histogram of log p̂ₖ over the trials at one k, from the first k draws of the same trials. The "
                    "spread narrows like 1/√k and the whole histogram creeps up to log p(x) (Jensen's gap "
                    "closing). Computed once here; your browser plays it without asking the server.")
    khat_sweep = {name: (runs[name].sweep_k, runs[name].sweep_khat) for name in ("prior", "importance")}
    ks = np.unique(np.r_[runs["importance"].sweep_k, est.KHAT_MIN_DRAWS])
    ks = ks[ks >= est.KHAT_MIN_DRAWS]
    if len(ks) and k >= est.KHAT_MIN_DRAWS:
        threshold = np.array([est.khat_threshold(int(v)) for v in ks])
        left, right = st.columns(2)
        with left:
            kit.chart(figure(("khat", key), lambda: figs.khat_figure(khat_sweep, LABELS, threshold, ks,
                                                                     height=height(340))),
                      key=f"{PREFIX}_khat")
        with right:
            kit.explain(
                "**Pareto k̂ against k.** PSIS fits a generalized Pareto distribution to the largest weights; its "
                r"shape k̂ says how heavy their tail is. Below the dashed threshold $\min(1 - 1/\log_{10} S,\ "
                "0.7)$ the estimate from $S$ draws is reliable; above 1 the weights' mean does not exist and no "
                "number of draws rescues it. Unlike the ESS, k̂ sees a tail that the draws so far have not "
                "visited yet. (Vehtari, Simpson, Gelman, Yao and Gabry; computed by arviz-stats, median over the "
                f"first {min(trials, ex.KHAT_SWEEP_TRIALS)} trials.)")


def diagnostics(runs: dict, kls: dict, k: int, heavy_tailed: bool) -> None:
    """k-hat badges for the two importance samplers, and both KLs with the draws each needs"""
    for name in ("importance", "prior"):
        khat = runs[name].median_khat
        verdict = est.khat_verdict(khat, k)
        threshold = est.khat_threshold(k)
        value = "—" if math.isnan(khat) else ("−∞" if khat == -math.inf else f"{khat:.2f}")
        text = {est.KHAT_GOOD: f"≤ {threshold:.2f}: reliable", est.KHAT_HIGH: f"> {threshold:.2f}: unreliable",
                est.KHAT_NO_MEAN: "> 1: the weights' mean does not exist",
                est.KHAT_TOO_FEW: f"needs k ≥ {est.KHAT_MIN_DRAWS}"}[verdict]
        line = f"**{LABELS[name]}**: :{BADGE_COLORS[verdict]}-badge[Pareto k̂ = {value} {text}]"
        kl = kls.get(name)
        if kl and not math.isnan(kl["forward_kl"]):
            forward, reverse = kl["forward_kl"], kl["reverse_kl"]
            needed = text_number(kl["draws_needed"], 3) if math.isfinite(kl["draws_needed"]) else "∞"
            line += f" · KL(p(z|x) ‖ q) = {forward:.3g} nats → draws needed e^KL ≈ **{needed}**"
            if name == "importance" and heavy_tailed:
                line += " · KL(q ‖ p(z|x)): not shown for a heavy-tailed q (it is finite only if q has every " \
                        "moment that log p(x, z) uses)"
            elif math.isfinite(reverse):
                line += f" · KL(q ‖ p(z|x)) = {reverse:.3g} nats (the ELBO's gap)"
        st.markdown(line)
    kit.note("Two KLs, two jobs: importance sampling pays for KL(p(z|x) ‖ q), the mass q misses; the ELBO's gap is "
             "KL(q ‖ p(z|x)), the mass q puts where the posterior is not. A q can look fine by one and fail by the "
             "other. k̂ is the median over the trials of each trial's k weights.")


def latent_figure(q: ProposalSpec | torch.distributions.Distribution, runs: dict, log_px: float | None):
    """the latent space: exact posterior, q and the samples (bars of p(z|x) and q for a discrete z)"""
    if sel.model.discrete:
        return figs.discrete_latent_figure(ex.discrete_picture(sel.model, sel.x, q, runs["importance"]),
                                           height=height(400))
    mean, std, _ = fitted_moments()
    view = ex.latent_view(mean, std, q, 1 if sel.model.latent_dim == 1 else 2)
    picture = ex.latent_picture(sel.model, sel.x, log_px, q, view)
    shown = {name: (runs[name].shown_z[:SHOWN], runs[name].shown_w[:SHOWN]) for name in ("importance", "naive")}
    fig = figs.latent_figure(picture, shown, LABELS, height=height(420))
    for trace in fig.data:  # naive's samples start hidden: click its legend entry to compare
        if trace.name == f"{LABELS['naive']} samples":
            trace.visible = "legendonly"
    return fig


def table_section(rows: list[dict], runs: dict, k: int) -> None:
    df = pd.DataFrame(rows)
    df["estimator"] = df["estimator"].map(LABELS)
    columns = {"estimator": "estimator", "bias_rel": "bias of p̂ / p", "sd_rel": "SD of p̂ / p",
               "rel_rmse": "relative RMSE", "bias_log": "bias of log p̂ (nats)", "sd_log": "SD of log p̂ (nats)",
               "ess": "Kish ESS (mean)", "max_weight": "largest weight (mean)", "khat": "Pareto k̂ (median)"}
    df = df[[c for c in columns if c in df.columns]].rename(columns=columns)
    st.dataframe(df, hide_index=True, key=f"{PREFIX}_table", column_config={
        c: st.column_config.NumberColumn(c, format="%.4g") for c in df.columns if c != "estimator"})
    kit.note("p̂/p ratios are relative to the exact p(x); moments over the R trials. ESS = (Σw)²/Σw² out of "
             f"k = {k:,}; the largest normalised weight near 1 means one sample decided the estimate. Pareto k̂: "
             "the tail of the weights (see section 3); −∞ where the largest weights are all equal.")
    for row in rows:
        name = LABELS[row["estimator"]]
        problem = ex.diagnose(row)
        if problem == ex.ALL_ZERO:
            st.warning(f"**{name}**: every sample had p(x, z) = 0 in floating point (its samples never reach where "
                       "the posterior lives), so p̂ = 0 and log p̂ = −∞. Widen the box or move q toward p(z | x).",
                       icon=":material/warning:")
        elif problem == ex.DEGENERATE:
            st.warning(f"**{name}**: the weights have degenerated: ESS ≈ {row['ess']:.2f} of {k:,} samples, the "
                       f"largest weight is {row['max_weight']:.0%} of the total on average. One sample decides each "
                       "estimate, and the spread across trials understates the true error (rare huge weights are "
                       "missing). Try more samples or a better q.", icon=":material/warning:")
        elif problem == ex.MISSED_MASS:
            st.warning(f"**{name}**: p̂ averages {-row['bias_rel']:.0%} below the exact p(x) over the {row['trials']} "
                       "trials, although p̂ is unbiased in theory: the rare, huge weights that would make up the "
                       "difference did not turn up. q misses part of the posterior (too narrow or shifted), and "
                       "neither the spread nor the ESS can show mass that q never visits; only the exact value does.",
                       icon=":material/warning:")
    if k == 1:
        st.caption("With k = 1 each estimate is a single weight: the ESS is 1 by definition.")


# ---------------------------------------------------------------------------------- the curse of dimensionality


def dimension_section() -> None:
    st.header("4 · The curse of dimensionality")
    kit.explain(
        "Naive Monte Carlo spreads its samples evenly over a box of volume $(2a)^d$; the posterior fills a vanishing "
        "fraction of it as the latent dimension $d$ grows. The linear-Gaussian model (x at the centre of p(x)) has "
        "an exact answer in every dimension, so the error can be measured directly."
    )
    on = st.toggle("Run the sweep over d = 1 … 10", key=f"{PREFIX}_dims_on", bind="query-params")
    k = min(int(ss.get(f"{PREFIX}_k", 1_000)), DIM_SWEEP_MAX_K)
    trials = min(int(ss.get(f"{PREFIX}_R", 200)), DIM_SWEEP_MAX_TRIALS)
    half = float(ss.get(f"{PREFIX}_box", 4.0))
    sigma = sel.params.get("sigma", 0.5) if sel.kind == "linear" else 0.5
    if not on:
        st.caption(f"Switch on to run k = {k:,} samples x {trials} trials in each dimension (σ = {sigma:g}).")
        return
    with st.spinner("Estimating in ten dimensions ..."):
        sweep = dimension_sweep(float(sigma), k, trials, page_seed(), (-half, half))
    kit.chart(figs.dimension_figure(sweep, LABELS, k, height=height(380)), key=f"{PREFIX}_dims")
    kit.note(
        f"k = {k:,}, {trials} trials per dimension, box [−{half:g}, {half:g}]^d, common random numbers. Naive MC's "
        "error grows with d; the prior and the fitted q do not here, because with 2-D data the likelihood constrains "
        "only two directions of z and the posterior equals the prior in the others."
    )


@st.fragment
def estimates_fragment() -> None:
    """sections 2 to 4 rerun alone when k, R, the box or q move; section 4 reads k, R and the box, so it is inside"""
    guarded(estimates_section)
    guarded(dimension_section)


estimates_fragment()

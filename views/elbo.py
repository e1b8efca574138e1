"""ELBO and variational inference: watch the gap close, check the fitted q, compare gradient estimators.

Widgets -> lvm_core.inference and lvm_core.gradients (the fit's state kept in session state) -> lvm_core.plots.elbo
-> kit.chart. No maths here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st
import torch

from lvm_core import gradients as gr
from lvm_core import inference as vi
from lvm_core.estimators import (
    KHAT_GOOD,
    KHAT_NO_MEAN,
    as_gaussian,
    best_gaussian_elbo,
    exact_log_marginal,
    quadrature_elbo,
)
from lvm_core.models import HARD_POSTERIORS, SeedLVM
from lvm_core.plots import elbo as figs
from lvm_core.plots import latex_number, text_number
from ui import kit, state
from ui.selection import model_and_point
from ui.sidebar import page_seed

PLAY_TICK_S = 0.1  # a frame is requested every tick and comes as soon as the last one is done (target >= 5 fps)
LRS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
KS = [1, 2, 4, 8, 16, 32, 64, 128]
# select boxes bind their displayed option to the URL, so the options are short, readable words
FAMILIES = ["mean-field", "full covariance"]
OPTIMIZERS = {"Adam": "adam", "SGD": "sgd"}
GRAD_VIEWS = ["all", *vi.GRADIENT_ESTIMATORS]
GRAD_REPLICATES = 2000
PATH_REPLICATES = 500  # estimates per estimator at each phi snapshot of the variance path
PATH_SNAPSHOTS = 16  # the path's snapshots are thinned to at most this many
MIN_REPLAY = 3  # recorded steps before the path is worth replaying
CHECK_DRAWS = 2000  # S, the importance weights behind k-hat and the ESS
SNR_KS = (1, 2, 4, 8, 16, 32, 64, 128)
SNR_DRAWS = 1000
SHOWN_PHI = ("loc[1]", "loc[2]", "log_scale[1]", "log_scale[2]")  # a 10-D q has 20 or more entries: the first axes'
MAX_PATH_POINTS = 400  # q's mean path is thinned to this many points for drawing
CONVERGED_STEPS = 300
RESIDUAL_HELP = {  # keyed by "the posterior has a closed form"
    True: "Three independent computations: log p(x) and KL(q ‖ p(z|x)) in closed form (Gaussians), the ELBO by "
          "quadrature under q. Their residual checks all three; it stays below 1e-4 nats.",
    False: "log p(x) by adaptive quadrature over the posterior; the ELBO as E_q[log p(x,z)] + H(q) and the KL as "
           "E_q[log q − log p(x,z)] + log p(x), each by quadrature on its own grid under q. p(z|x) is known only "
           "through log p(x), which cancels in the residual: it checks the two quadratures against each other "
           "(below 1e-4 nats).",
}
URL = dict(bind="query-params", persist_state="session")  # every view-defining widget: in the URL, kept across pages

# session keys private to this page (widget keys are the "elbo_*" strings next to each widget)
PLAYING = "elbo_playing"
LEARN_STATE = "elbo_learning_state"
LEARN_PLAYING = "elbo_learning_playing"
AMORT_RESULT = "elbo_amortization_result"

ss = st.session_state
ss.setdefault(PLAYING, False)
ss.setdefault(LEARN_PLAYING, False)


def fmt(v: float, digits: int = 4) -> str:
    return f"{v:.{digits}f}" if math.isfinite(v) else ("-\\infty" if v < 0 else "\\infty")


# ---------------------------------------------------------------------------------------------------------- the idea
st.title("ELBO and variational inference")
kit.explain(
    "The exact posterior $p(z \\mid x)$ is out of reach for most models, so we pick a simple $q(z;\\phi)$ and make it "
    "as close as we can. The **evidence lower bound** $\\mathrm{ELBO}(q) = \\mathbb E_{q}[\\log p(x, z) - \\log "
    "q(z;\\phi)]$ can be estimated from samples of $q$, and it misses $\\log p(x)$ by exactly the KL divergence from "
    "$q$ to the posterior. Raising the ELBO by gradient ascent on $\\phi$ therefore **pulls $q$ toward $p(z\\mid x)$ "
    "and closes the gap**. Below, every term is computed exactly (quadrature or closed form) and the identity is "
    "checked live, not assumed: on the linear-Gaussian model the three terms come from independent computations."
)
st.latex(r"\log p(x) \;=\; \underbrace{\mathbb E_{q(z;\phi)}\!\left[\log \frac{p(x, z)}{q(z;\phi)}\right]}"
         r"_{\mathrm{ELBO}(q)} \;+\; \underbrace{\mathrm{KL}\big(q(z;\phi)\,\|\,p(z \mid x)\big)}_{\text{gap}\;\ge\;0}")

# --------------------------------------------------------------------------------------------------- model and point
kit.reset_to_defaults("elbo", keys=(state.SELECTED_X, state.ELBO_PHI_STATE))

st.header("1 · Model and point")
# every model with a 1-/2-D latent: the hard posteriors and the digits model too
sel = model_and_point("elbo", kinds=("seed", "linear", *HARD_POSTERIORS, "digits", "deep"), chart_height=340)
model, x = sel.model, sel.x
d = model.latent_dim
if sel.log_px is None or not math.isfinite(sel.log_px):
    st.warning("The ELBO page needs the exact log p(x) (a 1- or 2-D latent, or the linear-Gaussian model) at a point "
               "the model can explain. Pick another model or a nearer x.", icon=":material/warning:")
    st.stop()

# ------------------------------------------------------------------------------------------------------ q, optimiser
st.header("2 · Fit q(z; φ) by stochastic gradient ascent on the ELBO")
c1, c2, c3, c4, c5 = st.columns(5)
family = c1.selectbox("q family (Gaussian)", FAMILIES, key="elbo_family", **URL,
                      help="Mean-field: independent axes. Full covariance: q can tilt, as correlated posteriors do.")
optimizer = OPTIMIZERS[c2.selectbox("Optimiser", list(OPTIMIZERS), key="elbo_opt", **URL)]
lr = c3.select_slider("Learning rate", LRS, value=vi.DEFAULT_LR, key="elbo_lr", **URL)
k = c4.select_slider("Samples per step k", KS, value=vi.DEFAULT_K, key="elbo_k", **URL,
                     help="Reparameterised samples z = μ + L ε per gradient estimate: more samples, less noise.")
decay = c5.toggle("Decay the rate", value=True, key="elbo_decay", **URL,
                  help=f"lr_t = lr / (1 + t / {vi.LR_DECAY_STEPS}). With a constant rate the noise of the gradient "
                       "keeps φ jittering around the optimum, a noise floor of ~0.02-0.1 nats, unless p(z|x) lies in "
                       "q's family: there the gradient (log q held fixed, 'sticking the landing') vanishes.")

axes_shown = min(d, 2)
st.caption("Initial φ (where q starts)" + ("" if d <= 2 else f"; all {d} latent axes start at axis 1's values"))
cols = st.columns(2 * axes_shown + 1)
init_loc, init_log_scale = [], []
for i in range(axes_shown):
    init_loc.append(cols[2 * i].slider(f"location μ{'₁₂'[i]}", -5.0, 5.0, 2.0 if i == 0 else -1.0, step=0.1,
                                       key=f"elbo_loc{i + 1}", **URL))
    init_log_scale.append(cols[2 * i + 1].slider(f"log scale log σ{'₁₂'[i]}", -4.0, 2.0, -1.0, step=0.1,
                                                 key=f"elbo_ls{i + 1}", **URL))
speed = cols[-1].slider("Steps per frame", 1, 50, 5, key="elbo_speed", **URL,
                        help="Gradient steps per click of Step and per animation frame.")
init_loc += [init_loc[0]] * (d - axes_shown)
init_log_scale += [init_log_scale[0]] * (d - axes_shown)
seed = page_seed()
config_key = (sel.model_key, sel.point, family, optimizer, lr, k, decay, tuple(init_loc), tuple(init_log_scale), seed)


def fresh_run() -> dict:
    """A new optimiser at the initial phi, with the exact terms at step 0 recorded."""
    dtype = x.dtype
    opt = vi.PhiOptimizer(model, x, loc=torch.tensor([init_loc], dtype=dtype),
                          log_scale=torch.tensor([init_log_scale], dtype=dtype),
                          full_covariance=family == "full covariance",
                          optimizer=optimizer, lr=lr, k=k, decay_steps=vi.LR_DECAY_STEPS if decay else None, seed=seed)
    opt.log_px = torch.tensor([sel.log_px], dtype=dtype)  # known already (the picker computed it exactly)
    run = {"key": config_key, "opt": opt, "steps": [], "elbo": [], "kl": [], "residual": [], "qs": []}
    if d <= 2:  # the picture's box: the posterior and the initial q, widened later only if q leaves it
        run["box"] = vi.view_box(model, x, [opt.q()])
    record(run)
    return run


def record(run: dict) -> None:
    terms = run["opt"].exact_live()
    run["steps"].append(run["opt"].t)
    run["qs"].append(run["opt"].q())  # phi's snapshot: the gradient variance along the path is measured at these
    for name in ("elbo", "kl", "residual"):
        run[name].append(float(terms[name][0]))


def current_run() -> dict:
    run = ss.get(state.ELBO_PHI_STATE)
    if not isinstance(run, dict) or run.get("key") != config_key:
        run = fresh_run()  # a changed setting restarts from the initial phi, so the URL defines what is shown
        ss[state.ELBO_PHI_STATE] = run
    return run


def advance(n: int, records: int = 1) -> None:
    """n more steps, with the exact terms recorded `records` times along the way (each costs a quadrature)."""
    run = current_run()
    chunk = max(1, -(-n // records))
    while n > 0:
        run["opt"].step(min(chunk, n))
        n -= chunk
        record(run)


def _step() -> None:
    kit.guarded(advance, int(speed))


def _run_many() -> None:
    ss[PLAYING] = False
    kit.guarded(advance, 500, 25)


def _reset() -> None:
    ss[PLAYING] = False
    ss.pop(state.ELBO_PHI_STATE, None)


def _toggle_play() -> None:
    ss[PLAYING] = not ss[PLAYING]


b1, b2, b3, b4, _ = st.columns([1, 1, 1, 1.4, 4])
b1.button("Step", key="elbo_step", icon=":material/skip_next:", on_click=_step, type="primary",
          help="Take 'steps per frame' gradient steps on φ.")
b2.button("Pause" if ss[PLAYING] else "Play", key="elbo_play", on_click=_toggle_play,
          icon=":material/pause:" if ss[PLAYING] else ":material/play_arrow:")
b3.button("Reset", key="elbo_reset", icon=":material/replay:", on_click=_reset, help="Back to the initial φ.")
b4.button("Run 500 steps", key="elbo_run", icon=":material/fast_forward:", on_click=_run_many)
kit.note("Changing a setting restarts from the initial φ. The same URL and seed give the same path.")


def verdict(run: dict) -> None:
    """Name what is left of the gap once the optimisation has settled."""
    kl, t = run["kl"][-1], run["opt"].t
    if t < CONVERGED_STEPS:
        st.info(f"Step {t}: keep stepping (Play, or Run 500 steps) until the exact ELBO settles.",
                icon=":material/hourglass_top:")
        return
    if kl < 0.01 and sel.kind == "linear":
        st.success(f"The gap has closed: KL = {kl:.4f} nats. The linear-Gaussian posterior is Gaussian, so it lies in "
                   "q's family" + (" (with a correlated posterior, only the full-covariance family)" if d > 1 else "")
                   + " and the ELBO reaches log p(x).", icon=":material/check_circle:")
    elif kl < 0.01:
        st.success(f"The gap has nearly closed: KL = {kl:.4f} nats. This posterior is nearly Gaussian, so the best q "
                   "leaves only a sliver: the approximation gap. A smaller noise scale s bends p(z|x) and widens it.",
                   icon=":material/check_circle:")
    elif family == "mean-field" and d > 1:
        st.warning(f"A gap of {kl:.4f} nats remains: the **approximation gap**. The best mean-field Gaussian cannot "
                   "match this posterior (it is correlated or bent); try the full-covariance family, which shrinks "
                   "it.", icon=":material/info:")
    else:
        st.warning(f"A gap of {kl:.4f} nats remains: the **approximation gap**. p(z|x) is not Gaussian (skewed or "
                   "bent), so even the best Gaussian q misses it. Richer q families (flows, mixtures) would shrink it.",
                   icon=":material/info:")


def live() -> None:
    run = current_run()
    if ss[PLAYING]:
        advance(int(speed))
    opt = run["opt"]
    elbo_v, kl_v, res = run["elbo"][-1], run["kl"][-1], run["residual"][-1]
    log_px = sel.log_px
    if not (math.isfinite(elbo_v) and math.isfinite(kl_v)):
        st.warning("q has wandered where the exact terms cannot be computed (the learning rate is too large for this "
                   "optimiser). Lower it and press Reset.", icon=":material/warning:")
    st.latex(rf"\underbrace{{{fmt(log_px)}}}_{{\log p(x)}} \;=\; \underbrace{{{fmt(elbo_v)}}}_{{\mathrm{{ELBO}}(q)}}"
             rf" \;+\; \underbrace{{{fmt(kl_v)}}}_{{\mathrm{{KL}}(q\,\|\,p(z\mid x))}}"
             rf"\qquad \text{{residual }} {latex_number(res, 2)}\ \text{{nats}}")
    m = st.columns(4)
    m[0].metric("step t", opt.t, help=f"learning rate now {opt.lr_at(opt.t):.4g}")
    m[1].metric("exact ELBO (nats)", f"{elbo_v:.4f}")
    m[2].metric("gap = KL(q ‖ p(z|x)) (nats)", f"{kl_v:.4f}")
    m[3].metric("|log p(x) − ELBO − KL| (nats)", text_number(abs(res), 2),
                help=RESIDUAL_HELP[sel.kind == "linear"])
    if math.isfinite(res) and abs(res) > vi.RESIDUAL_TOL:
        st.info(f"Here the ELBO's and the KL's grids under q disagree by {abs(res):.3g} nats: log p(x, z) changes "
                "faster in z than the live grid resolves (decoders of images do). Read the ELBO and the gap to "
                f"about ±{abs(res):.2g} nats; log p(x) is exact to 1e-4 on its own grid.", icon=":material/info:")
    left, right = st.columns([1, 1.2])
    with left:
        if d <= 2:
            q = opt.q()
            lo, hi = run["box"] = vi.view_box(model, x, [q], base=run["box"])
            dens = vi.latent_densities(model, x, q, lo, hi, torch.tensor([log_px], dtype=x.dtype), n=81)
            path = torch.stack(opt.loc_trace)[:, 0].double().numpy()
            path = path[:: max(1, len(path) // MAX_PATH_POINTS)] if len(path) > 1 else path
            path = np.vstack([path, opt.phi.loc.detach()[0].double().numpy()[None]])
            kit.chart(figs.latent_figure(dens, path, height=kit.height(400)), key="elbo_latent_chart")
        else:
            st.info(f"The latent space has {d} dimensions: no picture, but the exact terms (closed form) still are.")
    with right:
        mc = torch.stack(opt.elbo_trace)[:, 0].double().numpy() if opt.elbo_trace else np.array([])
        fig = figs.gap_chart(np.arange(len(mc)), mc, np.array(run["steps"]), np.array(run["elbo"]), log_px,
                             height=kit.height(400))
        kit.chart(fig, key="elbo_gap_chart")
    verdict(run)
    if d <= 2 and len(run["qs"]) >= MIN_REPLAY and not ss[PLAYING]:
        replay(run, dens)


def replay(run: dict, dens: dict) -> None:
    """the recorded path of q, animated by the browser: scrubbing and playing need no server round trip"""
    gaussians = [as_gaussian(q) for q in run["qs"]]
    locs = torch.stack([g.loc[0] for g in gaussians]).double().numpy()
    covs = torch.stack([g.covariance_matrix[0] for g in gaussians]).double().numpy()
    st.subheader("Replay the path")
    kit.chart(figs.path_animation_figure(dens, locs, covs, np.array(run["steps"]), np.array(run["elbo"]),
                                         height=kit.height(380)), key="elbo_replay_chart")
    kit.note(f"q at the {len(locs)} recorded steps (Run 500 steps records 25), played by your browser: press ▶ Play "
             "or drag the slider; the server does nothing meanwhile. Solid: q's 1σ ellipse, dashed: 2σ.")


@st.fragment(run_every=PLAY_TICK_S if ss[PLAYING] else None)
def live_fragment() -> None:
    kit.guarded(live)  # guarded inside: a fragment would show its own errors as tracebacks


live_fragment()

# ---------------------------------------------------------------------------------------------- did it work?
st.header("3 · Did it work? Checking the fitted q")
kit.explain(
    "A high ELBO does not say that $q$ is a good stand-in for $p(z\\mid x)$. Yao, Vehtari, Simpson and Gelman (2018) "
    "check a fitted $q$ the way importance sampling would use it: draw $z_s \\sim q$, weigh each by "
    "$w_s = p(x, z_s)/q(z_s)$ and look at the **tail of the weights** (Pareto $\\hat k$). The two KL divergences "
    "measure different failures: the ELBO's gap $\\mathrm{KL}(q\\,\\|\\,p)$ punishes $q$ for mass where the posterior "
    "has none, while $\\mathrm{KL}(p\\,\\|\\,q)$ punishes $q$ for missing posterior mass, which is what importance "
    "sampling pays for."
)


def q_key(q) -> str:
    """a content hash of a Gaussian q's parameters (mean and scale factor)"""
    factor = q.scale_tril if hasattr(q, "scale_tril") else q.stddev
    return kit.fingerprint(q.mean, factor)


@st.cache_data(max_entries=64, show_spinner=False)
def fit_check_values(model_key: str, point: tuple[float, ...], q_id: str, seed_: int, _model, _x, _q,
                     _log_px) -> dict[str, float]:
    """fit_check's numbers for one point (plain floats: cached by content)"""
    check = vi.fit_check(_model, _x, _q, draws=CHECK_DRAWS, generator=torch.Generator().manual_seed(seed_),
                         log_px=_log_px)
    return {"khat": float(check.khat[0]), "threshold": check.threshold, "ess": float(check.ess[0]),
            "reverse_kl": float(check.reverse_kl[0]), "forward_kl": float(check.forward_kl[0]),
            "draws_needed": float(check.draws_needed[0]), "verdict": check.verdict(),
            "too_few_draws": check.too_few_draws()}


@st.cache_data(max_entries=64, show_spinner=False)
def best_gaussian_value(model_key: str, point: tuple[float, ...], full_covariance: bool, _model, _x) -> float:
    """the ELBO of the best Gaussian q of the family (exact, by quadrature): the family's ceiling"""
    best = best_gaussian_elbo(_model, _x, full_covariance=full_covariance)
    return float(quadrature_elbo(_model, _x, best)[0])


def fit_diagnostics() -> None:
    run = current_run()
    opt = run["opt"]
    q = opt.q()
    c = fit_check_values(sel.model_key, sel.point, q_key(q), seed, model, x, q,
                         torch.tensor([sel.log_px], dtype=x.dtype))
    verdicts = {KHAT_GOOD: f"below {c['threshold']:.2f}", KHAT_NO_MEAN: "above 1: no mean"}
    m = st.columns(5)
    m[0].metric("Pareto k̂", f"{c['khat']:.2f}" if math.isfinite(c["khat"]) else text_number(c["khat"], 2),
                delta=verdicts.get(c["verdict"], f"above {c['threshold']:.2f}"), delta_arrow="off",
                delta_color="normal" if c["verdict"] == KHAT_GOOD else "inverse",
                help=f"the threshold for S = {CHECK_DRAWS:,} draws is {c['threshold']:.2f}")
    m[1].metric(f"ESS (Kish), of {CHECK_DRAWS:,}", f"{c['ess']:,.0f}")
    m[2].metric("KL(q ‖ p(z|x)) (nats)", f"{c['reverse_kl']:.4f}", help="the ELBO's gap: log p(x) − ELBO(q)")
    m[3].metric("KL(p(z|x) ‖ q) (nats)", f"{c['forward_kl']:.4f}", help="the inclusive KL, importance sampling's")
    m[4].metric("draws needed", text_number(c["draws_needed"], 2), help="exp(KL(p(z|x) ‖ q))")
    kit.explain(
        f"- **k̂ = {c['khat']:.2f}**: the fitted shape of the largest weights' tail. Below {c['threshold']:.2f} "
        f"(the bar for S = {CHECK_DRAWS:,}) importance sampling from q is reliable and q is close to p(z|x); above "
        "0.7 the weights' variance is as good as infinite, above 1 their mean does not exist.\n"
        f"- **ESS = {c['ess']:,.0f}**: how many of the {CHECK_DRAWS:,} draws carry the weight, "
        "(Σw)² / Σw²; a q much narrower than the posterior lets a few draws take it all. It only sees the draws "
        "made: a q that never visits a second mode keeps a high ESS, and only k̂ (and the forward KL) notice.\n"
        f"- **KL(q ‖ p(z|x)) = {c['reverse_kl']:.4f} nats** is what the ELBO misses and what VI minimises. It is "
        "mode-seeking: q pays for mass where p(z|x) has none, not for missing posterior mass, so a too-narrow q "
        "that sits inside one part of the posterior can leave a small gap while k̂ is high.\n"
        f"- **KL(p(z|x) ‖ q) = {c['forward_kl']:.4f} nats** is the other direction, mass-covering: large when q "
        "misses some of the posterior. Its exponential, "
        f"**{text_number(c['draws_needed'], 2)} draw{'' if c['draws_needed'] < 1.5 else 's'}**, is about how "
        "many draws from q importance sampling needs "
        "to estimate p(x) well (Chatterjee and Diaconis, 2018)."
    )
    if c["verdict"] != KHAT_GOOD:
        st.warning(f"k̂ = {c['khat']:.2f} is above {c['threshold']:.2f}: q is not a reliable stand-in for p(z|x) here, "
                   "whatever the ELBO says. Keep stepping, try the full-covariance family, or read the ELBO as a "
                   "bound only.", icon=":material/warning:")
    elif c["too_few_draws"]:
        st.warning(f"k̂ passes, but exp(KL(p(z|x) ‖ q)) = {text_number(c['draws_needed'], 2)} draws are needed, more "
                   f"than the {CHECK_DRAWS:,} made: q misses posterior mass that none of its draws has reached yet, so "
                   f"the weights' tail looks lighter than it is (see the ESS: {c['ess']:,.0f}).",
                   icon=":material/warning:")
    if d > 2:
        kit.note("The best Gaussian's ELBO needs a 1- or 2-D latent (Gauss-Hermite nodes per axis).")
        return
    ceiling = best_gaussian_value(sel.model_key, sel.point, family == "full covariance", model, x)
    now = run["elbo"][-1]
    gap_fmt = lambda v: fmt(0.0 if abs(v) < 5e-5 else v)  # noqa: E731 - no "-0.0000" from a rounding residue
    st.latex(rf"\underbrace{{{fmt(sel.log_px)}}}_{{\log p(x)}} \;-\; \underbrace{{{fmt(ceiling)}}}"
             rf"_{{\max_{{q\,\in\,\text{{{family}}}}} \mathrm{{ELBO}}}} \;=\; {gap_fmt(sel.log_px - ceiling)}"
             rf"\ \text{{(approximation gap)}},\qquad \underbrace{{{fmt(ceiling)}}}_{{\text{{ceiling}}}} - "
             rf"\underbrace{{{fmt(now)}}}_{{\mathrm{{ELBO}}(q_t)}} = {gap_fmt(ceiling - now)}"
             r"\ \text{(still to gain)}")
    kit.note(f"The ceiling: the {family} Gaussian with the highest ELBO at this x (L-BFGS on a Gauss-Hermite ELBO, "
             "then its ELBO by quadrature). No q of this family can close the approximation gap; the rest is "
             f"optimisation. Checked at step {opt.t}; k̂ and the ESS from S = {CHECK_DRAWS:,} draws of q made from "
             "the page's seed.")


kit.guarded(fit_diagnostics)

# ---------------------------------------------------------------------------------------------- gradient estimators
st.header("4 · Three ways to estimate the ELBO's gradient")
kit.explain(
    "All three estimators below are unbiased for $\\nabla_\\phi \\mathrm{ELBO}$. The **score function** (REINFORCE) "
    "estimator $\\frac1k\\sum_j [\\log p(x,z_j) - \\log q(z_j)]\\,\\nabla_\\phi \\log q(z_j;\\phi)$ needs only "
    "$\\log q$'s gradient (it works for discrete $z$); the **reparameterisation** estimator writes "
    "$z = \\mu + L\\varepsilon$ and differentiates through the model, which usually makes it far less noisy. "
    "**Sticking the landing** (Roeder, Wu and Duvenaud, 2017) is the reparameterisation estimator with $\\phi$ held "
    "fixed inside $\\log q$: it drops the score term $\\mathbb E_q[\\nabla_\\phi \\log q] = 0$, so where $q$ equals "
    "the posterior every estimate is exactly 0. "
    f"Each histogram holds {GRAD_REPLICATES:,} independent estimates at the current φ, each from k samples."
)


def snapshot_key(qs) -> str:
    return kit.fingerprint([q_key(q) for q in qs])


@st.cache_data(max_entries=32, show_spinner=False)
def variance_path(model_key: str, point: tuple[float, ...], qs_id: str, full_covariance: bool, k_: int, seed_: int,
                  _model, _x, _qs) -> dict[str, np.ndarray]:
    """each estimator's tr Var at each snapshot (cached by the snapshots' content)"""
    out = vi.gradient_variance_path(_model, _x, _qs, k=k_, replicates=PATH_REPLICATES, seed=seed_,
                                    full_covariance=full_covariance)
    return {est: v.double().numpy() for est, v in out.items()}


def gradients() -> None:
    view = st.segmented_control("Show", GRAD_VIEWS, default="all", key="elbo_grad", **URL, required=True) or "all"
    run = current_run()
    opt = run["opt"]
    chosen = vi.GRADIENT_ESTIMATORS if view == "all" else (view,)
    samples, names = {}, []
    for i, est in enumerate(vi.GRADIENT_ESTIMATORS):
        if est in chosen:
            g, names = vi.elbo_gradient_samples(model, x, opt.phi, est, k=k, replicates=GRAD_REPLICATES,
                                                seed=seed + i)
            samples[est] = g.double().numpy()
    # at most 4 panels: the first two axes' location and log scale (a 10-D q has 20 or more coordinates)
    shown = [i for i, name in enumerate(names) if name.startswith(SHOWN_PHI)]
    names = [names[i] for i in shown]
    samples = {est: g[:, shown] for est, g in samples.items()}
    kit.chart(figs.gradient_histograms(samples, names, height=kit.height(320)), key="elbo_grad_chart")
    if len(samples) == 3:
        v = {est: g.var(0) for est, g in samples.items()}
        ratio = ", ".join(f"{n}: {a / b:.3g}x and {c / b:.3g}x" if b > 0 else f"{n}: -"
                          for n, a, b, c in zip(names, v["score function"], v["reparameterisation"],
                                                v["sticking the landing"], strict=True))
        kit.note(f"At step {opt.t} (k = {k}), the variance of the score function and of sticking the landing over "
                 f"the reparameterisation variance, per coordinate: {ratio}. Dashed lines: each estimator's mean "
                 "(they agree up to sampling noise).")
    qs, steps = run["qs"], run["steps"]
    pick = np.unique(np.linspace(0, len(qs) - 1, min(len(qs), PATH_SNAPSHOTS)).round().astype(int))
    path_qs = [qs[i] for i in pick]
    var = variance_path(sel.model_key, sel.point, snapshot_key(path_qs), family == "full covariance", k, seed, model,
                        x, path_qs)
    var = {est: v for est, v in var.items() if est in chosen}
    kit.chart(figs.gradient_variance_path(np.asarray(steps)[pick], var, height=kit.height(320)),
              key="elbo_grad_path_chart")
    if len(pick) < 2:
        kit.note("Step or run the optimiser in section 2: each recorded φ adds a point to this path.")
    else:
        kit.note(f"The total variance (summed over φ's entries, {PATH_REPLICATES} estimates of k = {k} samples per "
                 f"point) at {len(pick)} of the φ recorded along the fit. As q approaches p(z|x), sticking the "
                 "landing's variance falls toward 0 when the posterior lies in q's family (the linear-Gaussian "
                 "model; with a 2-D latent, the full-covariance family), while the other two keep the noise of the "
                 "score term.")


@st.fragment
def gradients_fragment() -> None:
    kit.guarded(gradients)


gradients_fragment()

# ------------------------------------------------------------------------------------------ IWAE signal-to-noise
st.header("5 · IWAE-k: more samples, a tighter bound, a noisier encoder gradient")
kit.explain(
    "The importance weighted bound $\\mathcal L_k = \\mathbb E\\big[\\log \\frac1k \\sum_{j=1}^k "
    "\\frac{p(x, z_j)}{q(z_j)}\\big]$ tightens toward $\\log p(x)$ as $k$ grows. Rainforth et al. (2018) showed a "
    "price: the signal-to-noise ratio $|\\mathbb E[\\hat g]| / \\mathrm{SD}[\\hat g]$ of its $\\theta$ gradient grows "
    "like $\\sqrt k$, but that of its $\\phi$ gradient falls like $1/\\sqrt k$, so the encoder learns less the "
    "tighter the bound. The **doubly reparameterised** estimator (DReG; Tucker, Lawson, Gu and Maddison, 2018) has "
    "the same expectation and keeps $\\phi$'s SNR from collapsing."
)


@st.cache_data(max_entries=16, show_spinner=False)
def snr_sweep(model_id: str, point: tuple[float, ...], loc: tuple[float, ...], log_scale: tuple[float, ...],
              seed_: int, _model, _x) -> dict:
    """the SNR sweep over SNR_KS as numpy arrays, cached by the model's content and phi"""
    dtype = _x.dtype
    sweep = gr.iwae_snr_sweep(_model, _x, torch.tensor([loc], dtype=dtype), torch.tensor([log_scale], dtype=dtype),
                              SNR_KS, SNR_DRAWS, torch.Generator().manual_seed(seed_))
    as_np = lambda t: t.double().numpy()  # noqa: E731
    return {"ks": as_np(sweep.ks), "theta": as_np(sweep.theta), "theta_se": as_np(sweep.standard_error(sweep.theta)),
            "IWAE": as_np(sweep.phi_iwae[:, 0]), "DReG": as_np(sweep.phi_dreg[:, 0]),
            "IWAE_se": as_np(sweep.standard_error(sweep.phi_iwae[:, 0])),
            "DReG_se": as_np(sweep.standard_error(sweep.phi_dreg[:, 0]))}


def iwae_snr() -> None:
    on = st.toggle("Measure the SNR against k (a few seconds)", key="elbo_snr", **URL,
                   help=f"k = {', '.join(map(str, SNR_KS))}, {SNR_DRAWS} gradient estimates each, at the current φ.")
    if not on:
        return
    opt = current_run()["opt"]
    loc = tuple(float(v) for v in opt.phi.loc.detach()[0])
    log_scale = tuple(float(v) for v in opt.phi.log_scale.detach()[0])
    with st.spinner("Drawing IWAE and DReG gradients for each k ..."):
        r = snr_sweep(kit.fingerprint(model), sel.point, loc, log_scale, seed, model, x)
    phi_labels = gr.phi_names(d)
    shown = [i for i, name in enumerate(phi_labels) if name.startswith(SHOWN_PHI)]
    theta_labels = gr.theta_names(model)
    fig = figs.snr_figure(r["ks"], {est: r[est][:, shown] for est in ("IWAE", "DReG")},
                          {est: r[f"{est}_se"][:, shown] for est in ("IWAE", "DReG")},
                          [phi_labels[i] for i in shown], r["theta"], r["theta_se"], theta_labels,
                          height=kit.height(400))
    kit.chart(fig, key="elbo_snr_chart")
    if not theta_labels:
        kit.note("This model has no parameters θ to differentiate: only the encoder side is drawn.")
    kit.note("Near the ELBO's optimum the IWAE estimator's φ signal drowns in its noise at every k, while DReG's "
             "rises with k, and θ's SNR grows like √k for both. "
             f"SNR = |mean| / SD over {SNR_DRAWS:,} estimates per k, each bar ± one standard error "
             "(√((1 + SNR²/2) / n), the delta method for a Gaussian gradient). q at step "
             f"{opt.t}'s φ" + (" (its per-axis scales: the sweep uses a mean-field q)" if family != "mean-field"
                              else "") + ". DReG changes only φ's estimator: θ's gradient is the same for both. "
             + (f"θ has {len(theta_labels):,} entries; the 4 with the largest SNR are drawn."
                if len(theta_labels) > 4 else ""))


kit.guarded(iwae_snr)

# ------------------------------------------------------------------------------------------------------ amortisation
st.header("6 · Across the data: amortisation")
kit.explain(
    "A VAE does not optimise each $\\phi_i$: an **encoder** maps $x$ to $\\phi(x)$ in one pass. On held-out points its "
    "ELBO falls short of $\\log p(x)$ for two reasons (Cremer, Li and Duvenaud, 2018): the **amortisation gap** "
    "(the encoder's $q$ against the best $q$ of the same family, found by optimising $\\phi_i$ for that point) and "
    "the **approximation gap** (that best $q$ against the true posterior)."
)
st.latex(r"\log p(x) - \mathrm{ELBO}(q_{\text{enc}}) = \underbrace{\mathrm{ELBO}(q^*) - \mathrm{ELBO}(q_{\text{enc}})}"
         r"_{\text{amortisation gap}} + \underbrace{\log p(x) - \mathrm{ELBO}(q^*)}_{\text{approximation gap}}")


def per_point_csv(result: dict) -> bytes:
    """the amortisation result, one row per held-out point (nats)"""
    names = ("log_px", "elbo_encoder", "elbo_optimized", "amortization_gap", "approximation_gap")
    return pd.DataFrame({name: result[name] for name in names}).rename_axis("point").to_csv().encode()


def amortization() -> None:
    trained = state.trained_lvm(ss)
    encoder = trained.encoder if trained is not None else None
    if encoder is None:
        st.info("This needs a VAE (a deep LVM trained with the ELBO or IWAE objective, which trains an encoder).",
                icon=":material/info:")
        st.page_link("views/deep_lvm.py", label="Train one on the deep-LVM page", icon=":material/arrow_forward:")
        return
    dm = trained.model
    if dm.latent_dim > 2:
        st.warning("The exact log p(x) needs a 1- or 2-D latent; this model has more.", icon=":material/warning:")
        return
    X_test = trained.data.test
    if len(X_test) == 0:
        st.warning("The trained model came without held-out data; train it again on the deep-LVM page.")
        return
    c = st.columns(2)
    n = c[0].slider("Held-out points", 10, max(10, min(200, len(X_test))), min(40, len(X_test)), key="elbo_amort_n",
                    **URL, help="The exact log p(x) of a trained network costs ~0.2 s per point.")
    steps = c[1].select_slider("Per-point optimisation steps", [100, 200, 400, 800], value=200,
                               key="elbo_amort_steps", **URL)
    # keyed by content: another model or data set (in this session or another) never reuses this result
    key = (kit.fingerprint(dm, encoder, np.asarray(X_test, dtype=np.float64)[:n]), n, steps, seed)
    result = ss.get(AMORT_RESULT)
    if not (isinstance(result, dict) and result.get("key") == key):
        if not st.button("Compute the gaps", key="elbo_amort_go", icon=":material/calculate:", type="primary"):
            return
        xs = torch.as_tensor(np.asarray(X_test)[:n], dtype=dm.dtype)
        with st.spinner(f"Optimising φ for {n} held-out points and integrating exactly ..."), torch.no_grad():
            q_enc = encoder.distribution(xs)
        with st.spinner(f"Optimising φ for {n} held-out points and integrating exactly ..."):
            gaps = vi.amortization_gaps(dm, xs, q_enc, steps=steps, seed=seed)
        result = {"key": key, **{name: v.double().numpy() for name, v in gaps.items()}}
        ss[AMORT_RESULT] = result
    a, b = result["amortization_gap"], result["approximation_gap"]
    m = st.columns(4)
    m[0].metric("mean log p(x)", f"{result['log_px'].mean():.3f} nats")
    m[1].metric("mean encoder ELBO", f"{result['elbo_encoder'].mean():.3f} nats")
    m[2].metric("mean amortisation gap", f"{a.mean():.3f} nats")
    m[3].metric("mean approximation gap", f"{b.mean():.3f} nats")
    left, right = st.columns(2)
    with left:
        kit.chart(figs.gap_distributions(a, b, height=kit.height(320)), key="elbo_gap_dist")
    with right:
        kit.chart(figs.per_point_gaps(result["log_px"], result["elbo_encoder"], result["elbo_optimized"],
                                      height=kit.height(320)), key="elbo_gap_points")
    kit.note(f"{n} held-out points, exact ELBOs by quadrature. Per-point φ starts at the encoder's output ({steps} "
               "Adam steps, averaged over the last half); a small negative amortisation gap is the optimiser's own "
               "noise where the encoder is already as good as it gets. Right: each point's three numbers, so both "
               "gaps can be read per point.")
    st.download_button("Download the per-point values (CSV)", per_point_csv(result), file_name="amortisation_gaps.csv",
                       mime="text/csv", key="elbo_amort_csv", icon=":material/download:", on_click="ignore")


kit.guarded(amortization)

# ---------------------------------------------------------------------------------------------- the learning loop
st.header("7 · The notes' learning loop")
kit.explain(
    "Learning $\\theta$ the notes' way: sample a few data points, optimise each point's own $\\phi_i$ by gradient "
    "ascent on its ELBO (the inner loop, $\\theta$ fixed), then take one gradient step on $\\theta$ with those "
    "$q(z;\\phi_i)$. "
    "Here the data are 60 points drawn from a seed model (1-D latent, noise 0.2), and a second seed model with "
    "different $\\theta$ learns them; its exact mean log-likelihood is the judge."
)
lc = st.columns(4)
inner_steps = lc[0].slider("Inner steps on φᵢ", 5, 100, 30, step=5, key="elbo_ll_inner", **URL)
batch = lc[1].slider("Points per θ step", 1, 16, 8, key="elbo_ll_batch", **URL)
theta_lr = lc[2].select_slider("θ learning rate", [0.005, 0.01, 0.02, 0.05, 0.1], value=0.05, key="elbo_ll_lr",
                               **URL)
learn_key = (inner_steps, batch, theta_lr, seed)


@st.cache_resource(max_entries=4, show_spinner=False)
def learning_data(seed_: int):
    truth = SeedLVM(1, seed=1, noise_scale=0.2)
    X, _ = truth.sample(60, generator=seed_)
    reference = float(exact_log_marginal(truth, X).mean())
    return X, reference


def learning_run() -> dict:
    run = ss.get(LEARN_STATE)
    if not isinstance(run, dict) or run.get("key") != learn_key:
        X, reference = learning_data(seed)
        loop = vi.LearningLoop(SeedLVM(1, seed=2 + seed, noise_scale=0.2), X, batch_size=batch,
                               inner_steps=inner_steps, theta_lr=theta_lr, seed=seed)
        run = {"key": learn_key, "loop": loop, "reference": reference}
        ss[LEARN_STATE] = run
    return run


def _learn_step() -> None:
    kit.guarded(lambda: learning_run()["loop"].step())


def _learn_toggle() -> None:
    ss[LEARN_PLAYING] = not ss[LEARN_PLAYING]


def _learn_reset() -> None:
    ss[LEARN_PLAYING] = False
    ss.pop(LEARN_STATE, None)


lb = st.columns([1, 1, 1, 5])
lb[0].button("θ step", key="elbo_ll_step", icon=":material/skip_next:", on_click=_learn_step, type="primary")
lb[1].button("Pause" if ss[LEARN_PLAYING] else "Play", key="elbo_ll_play", on_click=_learn_toggle,
             icon=":material/pause:" if ss[LEARN_PLAYING] else ":material/play_arrow:")
lb[2].button("Reset", key="elbo_ll_reset", icon=":material/replay:", on_click=_learn_reset)


def learning() -> None:
    run = learning_run()
    loop = run["loop"]
    if ss[LEARN_PLAYING]:
        loop.step()
    trace = loop.inner_traces[-1].double().numpy() if loop.inner_traces else None
    m = st.columns(3)
    m[0].metric("θ steps", loop.t)
    m[1].metric("exact mean log p_θ(x)", f"{loop.log_lik[-1]:.3f} nats",
                delta=f"{loop.log_lik[-1] - loop.log_lik[0]:+.3f} since the start")
    if loop.exact_elbo:
        before, after = loop.exact_elbo[-1]
        m[2].metric("last inner loop: exact ELBO gain", f"{float((after - before).mean()):+.3f} nats per point")
    kit.chart(figs.learning_figure(np.array(loop.log_lik), np.array(loop.elbo_after), trace,
                                         run["reference"], height=kit.height(360)), key="elbo_learning_chart")


@st.fragment(run_every=0.5 if ss[LEARN_PLAYING] else None)
def learning_fragment() -> None:
    kit.guarded(learning)


learning_fragment()

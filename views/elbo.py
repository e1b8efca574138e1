"""ELBO and variational inference: watch the gap close (issue 6).

Widgets -> lvm_core.inference (state kept in session state) -> lvm_core.plots.elbo -> st.plotly_chart. No maths here.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import streamlit as st
import torch

from lvm_core import inference as vi
from lvm_core.estimators import exact_log_marginal
from lvm_core.models import SeedLVM
from lvm_core.plots import elbo as figs
from lvm_core.plots import latex_number, text_number
from ui import state
from ui.selection import fingerprint, model_and_point
from ui.sidebar import page_seed, presentation_scale

PLAY_TICK_S = 0.1  # a frame is requested every tick and comes as soon as the last one is done (target >= 5 fps)
LRS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
KS = [1, 2, 4, 8, 16, 32, 64, 128]
# select boxes bind their displayed option to the URL, so the options are short, readable words
FAMILIES = ["mean-field", "full covariance"]
OPTIMIZERS = {"Adam": "adam", "SGD": "sgd"}
GRAD_VIEWS = ["both", "reparameterisation", "score function"]
GRAD_REPLICATES = 2000
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


def guarded(section, *args):
    """Run a page section; an unexpected failure becomes an explanation, never a traceback (the state is kept)."""
    try:
        return section(*args)
    except Exception as exc:  # noqa: BLE001 - the last line of defence for a live demo
        st.error(f"This part of the page could not be drawn ({type(exc).__name__}: {exc}). Your settings are kept; "
                 "try Reset or other settings.", icon=":material/error:")  # fmt: skip
        return None


def height(h: int) -> int:
    return int(h * presentation_scale())


def fmt(v: float, digits: int = 4) -> str:
    return f"{v:.{digits}f}" if math.isfinite(v) else ("-\\infty" if v < 0 else "\\infty")


# ---------------------------------------------------------------------------------------------------------- the idea
st.title("ELBO and variational inference")
st.markdown(
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
st.header("1 · Model and point")
sel = model_and_point("elbo", kinds=("seed", "linear", "deep"), chart_height=340)
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
    run = {"key": config_key, "opt": opt, "steps": [], "elbo": [], "kl": [], "residual": []}
    if d <= 2:  # the picture's box: the posterior and the initial q, widened later only if q leaves it
        run["box"] = vi.view_box(model, x, [opt.q()])
    record(run)
    return run


def record(run: dict) -> None:
    terms = run["opt"].exact(vi.live_resolution(d))
    run["steps"].append(run["opt"].t)
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
    guarded(advance, int(speed))


def _run_many() -> None:
    ss[PLAYING] = False
    guarded(advance, 500, 25)


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
st.caption("Changing a setting restarts from the initial φ. The same URL and seed give the same path.")


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
    left, right = st.columns([1, 1.2])
    with left:
        if d <= 2:
            q = opt.q()
            lo, hi = run["box"] = vi.view_box(model, x, [q], base=run["box"])
            dens = vi.latent_densities(model, x, q, lo, hi, torch.tensor([log_px], dtype=x.dtype), n=81)
            path = torch.stack(opt.loc_trace)[:, 0].double().numpy()
            path = path[:: max(1, len(path) // MAX_PATH_POINTS)] if len(path) > 1 else path
            path = np.vstack([path, opt.phi.loc.detach()[0].double().numpy()[None]])
            st.plotly_chart(figs.latent_figure(dens, path, height=height(400)), key="elbo_latent_chart")
        else:
            st.info(f"The latent space has {d} dimensions: no picture, but the exact terms (closed form) still are.")
    with right:
        mc = torch.stack(opt.elbo_trace)[:, 0].double().numpy() if opt.elbo_trace else np.array([])
        fig = figs.gap_chart(np.arange(len(mc)), mc, np.array(run["steps"]), np.array(run["elbo"]), log_px,
                             height=height(400))
        st.plotly_chart(fig, key="elbo_gap_chart")
    verdict(run)


@st.fragment(run_every=PLAY_TICK_S if ss[PLAYING] else None)
def live_fragment() -> None:
    guarded(live)  # guarded inside: a fragment would show its own errors as tracebacks


live_fragment()

# ---------------------------------------------------------------------------------------------- gradient estimators
st.header("3 · Two ways to estimate the ELBO's gradient")
st.markdown(
    "Both estimators below are unbiased for $\\nabla_\\phi \\mathrm{ELBO}$. The **score function** (REINFORCE) "
    "estimator $\\frac1k\\sum_j [\\log p(x,z_j) - \\log q(z_j)]\\,\\nabla_\\phi \\log q(z_j;\\phi)$ needs only "
    "$\\log q$'s gradient (it works for discrete $z$); the **reparameterisation** estimator writes "
    "$z = \\mu + L\\varepsilon$ and differentiates through the model, which usually makes it far less noisy. "
    f"Each histogram holds {GRAD_REPLICATES:,} independent estimates at the current φ, each from k samples."
)


def gradients() -> None:
    view = st.segmented_control("Show", GRAD_VIEWS, default="both", key="elbo_grad", **URL,
                                required=True) or "both"
    run = current_run()
    opt = run["opt"]
    chosen = vi.GRADIENT_ESTIMATORS if view == "both" else (view,)
    samples, names = {}, []
    for i, est in enumerate(chosen):
        g, names = vi.elbo_gradient_samples(model, x, opt.phi, est, k=k, replicates=GRAD_REPLICATES, seed=seed + i)
        samples[est] = g.double().numpy()
    # at most 4 panels: the first two axes' location and log scale (a 10-D q has 20 or more coordinates)
    shown = [i for i, name in enumerate(names) if name.startswith(("loc[1]", "loc[2]", "log_scale[1]", "log_scale[2]"))]
    names = [names[i] for i in shown]
    samples = {est: g[:, shown] for est, g in samples.items()}
    st.plotly_chart(figs.gradient_histograms(samples, names, height=height(320)), key="elbo_grad_chart")
    if len(samples) == 2:
        v_sf = samples["score function"].var(0)
        v_rp = samples["reparameterisation"].var(0)
        ratio = ", ".join(f"{n}: {a / b:.3g}x" if b > 0 else f"{n}: -" for n, a, b in zip(names, v_sf, v_rp,
                                                                                          strict=True))
        st.caption(f"At step {opt.t} (k = {k}), the score-function variance over the reparameterisation variance "
                   f"per coordinate: {ratio}. Dashed lines: each estimator's mean (they agree up to sampling noise).")


@st.fragment
def gradients_fragment() -> None:
    guarded(gradients)


gradients_fragment()

# ------------------------------------------------------------------------------------------------------ amortisation
st.header("4 · Across the data: amortisation")
st.markdown(
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


def data_fingerprint(X: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(X, dtype=np.float64).tobytes(), digest_size=12).hexdigest()


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
    key = (fingerprint(dm), fingerprint(encoder), data_fingerprint(np.asarray(X_test)[:n]), n, steps, seed)
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
    left.plotly_chart(figs.gap_distributions(a, b, height=height(320)), key="elbo_gap_dist")
    right.plotly_chart(figs.per_point_gaps(result["log_px"], result["elbo_encoder"], result["elbo_optimized"],
                                           height=height(320)), key="elbo_gap_points")
    st.caption(f"{n} held-out points, exact ELBOs by quadrature. Per-point φ starts at the encoder's output ({steps} "
               "Adam steps, averaged over the last half); a small negative amortisation gap is the optimiser's own "
               "noise where the encoder is already as good as it gets. Right: each point's three numbers, so both "
               "gaps can be read per point.")
    st.download_button("Download the per-point values (CSV)", per_point_csv(result), file_name="amortisation_gaps.csv",
                       mime="text/csv", key="elbo_amort_csv", icon=":material/download:", on_click="ignore")


guarded(amortization)

# ---------------------------------------------------------------------------------------------- the learning loop
st.header("5 · The notes' learning loop")
st.markdown(
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
    guarded(lambda: learning_run()["loop"].step())


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
    st.plotly_chart(figs.learning_figure(np.array(loop.log_lik), np.array(loop.elbo_after), trace,
                                         run["reference"], height=height(360)), key="elbo_learning_chart")


@st.fragment(run_every=0.5 if ss[LEARN_PLAYING] else None)
def learning_fragment() -> None:
    guarded(learning)


learning_fragment()

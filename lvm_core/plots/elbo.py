"""Figures of the ELBO page: the posterior with q on it, the gap closing, gradient estimators (their spread at one phi,
their variance along the optimisation, the IWAE-k signal-to-noise ratios), amortisation gaps and the notes' learning
loop. Pure: arrays in, plotly Figure out."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lvm_core.plots import PALETTE, density_colorscale, style_figure

# the two gradient estimators get the colours of their closest relatives: score function ~ sampling without using
# the model's gradient (the naive estimator's pink), reparameterisation ~ the ELBO's own blue
MAX_TRACE_POINTS = 1000

ESTIMATOR_COLORS = {"score function": PALETTE["naive"], "reparameterisation": PALETTE["elbo"],
                    "sticking the landing": PALETTE["proposal"]}
# the IWAE-k bound's phi gradients: the plain one is importance sampling's blue, DReG gets a colour of its own
SNR_COLORS = {"IWAE": PALETTE["importance"], "DReG": PALETTE["kl"], "θ": PALETTE["model"]}
SNR_SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "cross", "star", "pentagon"]
DEGENERATE_SPREAD = 1e-6  # an estimator whose spread is below this fraction of the widest one's is drawn as a line
VARIANCE_FLOOR = 1e-30  # a log axis cannot show 0: an estimator whose variance is exactly 0 is drawn here


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


def latent_figure(dens: dict, path: np.ndarray | None = None, height: int = 420, title: str | None = None) -> go.Figure:
    """p(z|x) and q(z; phi) in latent space.

    dens: {"axes": [(n,)] per latent axis, "log_posterior", "log_q"} ((n,) for 1-D, (n, n) indexed [z2, z1] for 2-D),
    as from lvm_core.inference.latent_densities. path: (steps + 1, latent_dim) q's mean along the optimisation.
    1-D: two density curves. 2-D: the posterior as a heatmap, q as contour lines, the path of q's mean on top.
    """
    fig = go.Figure()
    axes = dens["axes"]
    post, q = np.exp(dens["log_posterior"]), np.exp(dens["log_q"])
    if len(axes) == 1:
        z = axes[0]
        fig.add_trace(go.Scatter(x=z, y=post, name="p(z | x) exact", line=dict(color=PALETTE["posterior"], width=3),
                                 fill="tozeroy", fillcolor=_rgba(PALETTE["posterior"], 0.15)))
        fig.add_trace(go.Scatter(x=z, y=q, name="q(z; φ)", line=dict(color=PALETTE["proposal"], width=3, dash="dash")))
        if path is not None and len(path):
            fig.add_vline(x=float(path[-1, 0]), line=dict(color=PALETTE["proposal"], width=1, dash="dot"))
        return style_figure(fig, x_title="z", y_title="density", height=height, title=title)
    z1, z2 = axes
    hover = "z₁=%{x:.2f}<br>z₂=%{y:.2f}<br>p(z|x)=%{z:.3g}<extra></extra>"
    fig.add_trace(go.Heatmap(x=z1, y=z2, z=post, colorscale=density_colorscale(), showscale=False,
                             name="p(z | x)", hovertemplate=hover))
    peak = float(q.max()) if np.isfinite(q.max()) and q.max() > 0 else 1.0
    fig.add_trace(go.Contour(x=z1, y=z2, z=q, showscale=False, name="q(z; φ)", showlegend=True, hoverinfo="skip",
                             contours=dict(coloring="lines", start=peak * 0.1, end=peak * 0.9, size=peak * 0.25),
                             line=dict(width=2), colorscale=[[0, PALETTE["proposal"]], [1, PALETTE["proposal"]]]))
    # legend entry for the heatmap (heatmaps have none of their own)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="p(z | x) exact (heatmap)",
                             marker=dict(color=PALETTE["posterior"], symbol="square", size=10)))
    if path is not None and len(path) > 1:
        fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines", name="path of q's mean",
                                 line=dict(color=PALETTE["proposal"], width=1.5, dash="dot"), hoverinfo="skip"))
    if path is not None and len(path):
        fig.add_trace(go.Scatter(x=path[-1:, 0], y=path[-1:, 1], mode="markers", name="q's mean",
                                 marker=dict(color=PALETTE["proposal"], size=10, symbol="x")))
    fig.update_xaxes(range=[float(z1[0]), float(z1[-1])])
    fig.update_yaxes(range=[float(z2[0]), float(z2[-1])])
    return style_figure(fig, x_title="z₁", y_title="z₂", equal_aspect=True, height=height, title=title)


def gap_chart(mc_steps: np.ndarray, mc_elbo: np.ndarray, steps: np.ndarray, exact_elbo: np.ndarray, log_px: float,
              height: int = 380) -> go.Figure:
    """log p(x) (flat), the stochastic ELBO per step, the exact ELBO at recorded steps, and the gap
    log p(x) - ELBO = KL(q || p(z|x)) shaded between the exact ELBO and log p(x). All in nats."""
    fig = go.Figure()
    if len(mc_steps) > MAX_TRACE_POINTS:  # a long run: every s-th estimate keeps the chart light to send each frame
        stride = -(-len(mc_steps) // MAX_TRACE_POINTS)
        mc_steps, mc_elbo = mc_steps[::stride], mc_elbo[::stride]
    if len(mc_steps):
        fig.add_trace(go.Scatter(x=mc_steps, y=mc_elbo, mode="lines", name="ELBO, Monte Carlo (per step)",
                                 line=dict(color=PALETTE["elbo"], width=1), opacity=0.35))
    if len(steps):
        fig.add_trace(go.Scatter(x=steps, y=np.full(len(steps), log_px), mode="lines", showlegend=False,
                                 line=dict(width=0), hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=steps, y=exact_elbo, mode="lines+markers", name="ELBO, exact",
                                 line=dict(color=PALETTE["elbo"], width=3), marker=dict(size=4),
                                 fill="tonexty", fillcolor=_rgba(PALETTE["gap"], 0.25)))
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="gap = KL(q ‖ p(z|x))",
                                 marker=dict(color=_rgba(PALETTE["gap"], 0.5), symbol="square", size=12)))
    x_end = max(float(steps[-1]) if len(steps) else 0.0, float(mc_steps[-1]) if len(mc_steps) else 0.0, 1.0)
    fig.add_trace(go.Scatter(x=[0, x_end], y=[log_px, log_px], mode="lines", name="log p(x) exact",
                             line=dict(color=PALETTE["truth"], width=3)))
    # keep the exact curves in view: early Monte Carlo estimates far in q's tails may be hugely negative
    finite = np.asarray(exact_elbo, float)[np.isfinite(exact_elbo)] if len(steps) else np.array([log_px - 1])
    recent = np.asarray(mc_elbo, float)[-200:] if len(mc_steps) else np.array([])
    recent = recent[np.isfinite(recent)]
    lo = min(float(finite.min()), float(np.percentile(recent, 5)) if len(recent) else np.inf, log_px - 0.05)
    pad = 0.08 * (log_px - lo) + 1e-3
    fig.update_yaxes(range=[lo - pad, log_px + pad])
    return style_figure(fig, x_title="optimisation step", y_title="nats", height=height)


def gradient_histograms(samples: dict[str, np.ndarray], names: list[str], height: int = 320) -> go.Figure:
    """Histograms of replicate gradient estimates, one panel per phi coordinate, one colour per estimator.

    samples: {estimator name: (replicates, n_params)}; names: n_params labels. The legend gives each variance. An
    estimator whose estimates are all equal up to float error (sticking the landing at q = p(z|x)) would be a spike
    that flattens every other histogram: it is drawn as a solid line at its value instead."""
    n = len(names)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[f"∂ELBO/∂{name}" for name in names], horizontal_spacing=0.06)
    finite = [g[np.isfinite(g).all(-1)] for g in samples.values()]
    widest = max((float(np.std(g, 0).max()) for g in finite if len(g)), default=0.0)
    for est, g in samples.items():
        color = ESTIMATOR_COLORS.get(est, PALETTE["estimate"])
        g_finite = g[np.isfinite(g).all(-1)]
        if len(g_finite) and float(np.std(g_finite, 0).max()) <= DEGENERATE_SPREAD * widest:
            variance = float(np.var(g_finite[:, 0]))
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", legendgroup=est, line=dict(color=color, width=3),
                                     name=f"{est} (variance {variance:.3g}: every estimate on the solid line)"))
            for j in range(n):
                fig.add_vline(x=float(np.mean(g_finite[:, j])), line=dict(color=color, width=3), row=1, col=j + 1)
            continue
        for j in range(n):
            col = g[:, j]
            col = col[np.isfinite(col)]
            # show the central 99% so one huge score-function estimate does not flatten the panel
            lo, hi = (np.percentile(col, [0.5, 99.5]) if len(col) else (0.0, 1.0))
            fig.add_trace(go.Histogram(x=np.clip(col, lo, hi), name=f"{est} (variance {np.var(col):.3g})",
                                       legendgroup=est, showlegend=j == 0, marker_color=color, opacity=0.6,
                                       nbinsx=60, histnorm="probability density"), row=1, col=j + 1)
            fig.add_vline(x=float(np.mean(col)) if len(col) else 0.0, line=dict(color=color, width=2, dash="dash"),
                          row=1, col=j + 1)
    fig.update_layout(barmode="overlay")
    style_figure(fig, x_title="", y_title="density", height=height)
    fig.update_xaxes(title_text="gradient estimate (nats per unit of φ)")
    # the legend goes above the panel titles
    fig.update_layout(margin=dict(t=110), legend=dict(y=1.25))
    return fig


def gradient_variance_path(steps: np.ndarray, variances: dict[str, np.ndarray], height: int = 340) -> go.Figure:
    """Each estimator's total variance tr Var[ĝ] (summed over phi's entries) at phi snapshots along the optimisation.

    steps: (T,) the optimisation step of each snapshot; variances: {estimator: (T,)}. Log y axis; values at or below
    VARIANCE_FLOOR (sticking the landing at q = p(z|x) is exactly 0) are drawn at the floor."""
    fig = go.Figure()
    steps = np.asarray(steps)
    for est, v in variances.items():
        v = np.asarray(v, float)
        shown = np.where(np.isfinite(v), np.maximum(v, VARIANCE_FLOOR), np.nan)
        fig.add_trace(go.Scatter(x=steps, y=shown, mode="lines+markers", name=est,
                                 line=dict(color=ESTIMATOR_COLORS.get(est, PALETTE["estimate"]), width=2.5),
                                 marker=dict(size=5),
                                 hovertemplate="step %{x}<br>tr Var = %{y:.3g}<extra>" + est + "</extra>"))
    fig.update_yaxes(type="log", exponentformat="power")
    return style_figure(fig, x_title="optimisation step t", y_title="tr Var[ĝ]  (sum over φ's entries)",
                        height=height)


def snr_figure(ks: np.ndarray, phi: dict[str, np.ndarray], phi_se: dict[str, np.ndarray], phi_labels: list[str],
               theta: np.ndarray | None = None, theta_se: np.ndarray | None = None,
               theta_labels: list[str] | None = None, max_theta: int = 4, height: int = 380) -> go.Figure:
    """Signal-to-noise ratio |E[ĝ]| / SD[ĝ] of IWAE-k gradient estimates against k, with ±1 standard error bars.

    ks: (K,); phi: {"IWAE": (K, P), "DReG": (K, P)} and phi_se alike, one line per estimator and phi entry (labels
    phi_labels, P of them); theta: (K, T) SNR of theta's entries with theta_se, labels theta_labels (None or T = 0:
    the right panel says the model has no theta); at most max_theta of them, those with the largest mean SNR.
    Log axes on both panels (Rainforth et al. 2018: SNR ~ sqrt(k) for theta, ~ 1 / sqrt(k) for IWAE's phi
    gradient; DReG's does not fall)."""
    ks = np.asarray(ks, float)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["encoder side: SNR of ∂L_k/∂φ", "model side: SNR of ∂L_k/∂θ"])
    for est, values in phi.items():
        values, se = np.asarray(values, float), np.asarray(phi_se[est], float)
        for j, label in enumerate(phi_labels):
            fig.add_trace(go.Scatter(x=ks, y=values[:, j], mode="lines+markers", name=f"{est}, ∂/∂{label}",
                                     legendgroup=est, line=dict(color=SNR_COLORS.get(est, PALETTE["estimate"]),
                                                                width=2, dash="solid" if est == "DReG" else "dash"),
                                     marker=dict(symbol=SNR_SYMBOLS[j % len(SNR_SYMBOLS)], size=7),
                                     error_y=dict(type="data", array=se[:, j], visible=True, thickness=1)),
                          row=1, col=1)
    if theta is not None and np.asarray(theta).size and theta_labels:
        theta, theta_se = np.asarray(theta, float), np.asarray(theta_se, float)
        # a network has thousands of entries: the max_theta with the largest mean SNR over k are drawn
        keep = np.argsort(-np.nan_to_num(theta.mean(0), nan=-np.inf), kind="stable")[:max_theta]
        for j in sorted(keep.tolist()):
            label = theta_labels[j]
            fig.add_trace(go.Scatter(x=ks, y=theta[:, j], mode="lines+markers", name=f"IWAE, ∂/∂{label}",
                                     legendgroup="θ", line=dict(color=SNR_COLORS["θ"], width=2),
                                     marker=dict(symbol=SNR_SYMBOLS[j % len(SNR_SYMBOLS)], size=7),
                                     error_y=dict(type="data", array=theta_se[:, j], visible=True, thickness=1)),
                          row=1, col=2)
    else:
        fig.add_annotation(text="this model has no θ to differentiate", xref="x2 domain", yref="y2 domain", x=0.5,
                           y=0.5, showarrow=False)
    style_figure(fig, x_title="samples per estimate k", y_title="SNR = |E[ĝ]| / SD[ĝ]", height=height)
    # ticks at the k measured and at whole decades of SNR: a log axis's minor labels (2, 5, 2, 5) read as values
    fig.update_xaxes(type="log", title_text="samples per estimate k", tickvals=ks.tolist(),
                     ticktext=[f"{k:g}" for k in ks])
    fig.update_yaxes(type="log", exponentformat="power", dtick=1)
    fig.update_layout(margin=dict(t=130), legend=dict(y=1.22))
    return fig


def gap_distributions(amortization: np.ndarray, approximation: np.ndarray, height: int = 340) -> go.Figure:
    """Per-point amortisation gap and approximation gap (nats) as histograms, each with its mean as a dashed line."""
    fig = go.Figure()
    both = [np.asarray(v, float) for v in (amortization, approximation)]
    both = [v[np.isfinite(v)] for v in both]
    pooled = np.concatenate(both) if any(len(v) for v in both) else np.zeros(1)
    lo, hi = float(pooled.min()), float(pooled.max())
    bins = dict(start=lo, end=hi + 1e-9, size=max((hi - lo) / 40, 1e-6))  # shared bins: the two gaps compare by eye
    for name, values, color in (("amortisation gap", both[0], PALETTE["gap"]),
                                ("approximation gap", both[1], PALETTE["kl"])):
        mean = float(values.mean()) if len(values) else 0.0
        fig.add_trace(go.Histogram(x=values, name=f"{name} (mean {mean:.3f} nats)", marker_color=color, opacity=0.6,
                                   xbins=bins))
        fig.add_vline(x=mean, line=dict(color=color, width=2, dash="dash"))
    fig.update_layout(barmode="overlay")
    return style_figure(fig, x_title="gap per held-out point (nats)", y_title="points", height=height)


def per_point_gaps(log_px: np.ndarray, elbo_encoder: np.ndarray, elbo_optimized: np.ndarray,
                   height: int = 340) -> go.Figure:
    """Each held-out point's three numbers (nats), points sorted by log p(x): the encoder's ELBO, the ELBO after
    per-point optimisation of phi and the exact log p(x), joined by a thin line per point so both gaps can be read
    off each point: encoder -> optimised is the amortisation gap, optimised -> log p(x) the approximation gap."""
    log_px, enc, opt = (np.asarray(v, float) for v in (log_px, elbo_encoder, elbo_optimized))
    order = np.argsort(log_px)
    rank = np.arange(1, len(order) + 1)
    fig = go.Figure()
    # one vertical segment per point (None breaks the line between points)
    lo, hi = np.minimum(enc, opt)[order], np.maximum(log_px, opt)[order]
    xs = np.repeat(rank, 3).astype(object)
    ys = np.column_stack([lo, hi, np.full(len(rank), np.nan)]).ravel().astype(object)
    xs[2::3] = None
    ys[2::3] = None
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=PALETTE["data"], width=1), showlegend=False,
                             hoverinfo="skip"))
    for name, values, color, symbol in (("ELBO, encoder q", enc, PALETTE["gap"], "circle"),
                                        ("ELBO, per-point optimised q*", opt, PALETTE["elbo"], "diamond"),
                                        ("log p(x), exact", log_px, PALETTE["truth"], "line-ew-open")):
        fig.add_trace(go.Scatter(x=rank, y=values[order], mode="markers", name=name,
                                 marker=dict(color=color, symbol=symbol, size=9 if symbol == "line-ew-open" else 6,
                                             line=dict(color=color, width=2)),
                                 hovertemplate="point %{x}<br>%{y:.4f} nats<extra>" + name + "</extra>"))
    return style_figure(fig, x_title="held-out point (sorted by log p(x))", y_title="nats", height=height)


def learning_figure(log_lik: np.ndarray, elbo_after: np.ndarray, inner_trace: np.ndarray | None,
                    reference_log_lik: float | None = None, height: int = 360) -> go.Figure:
    """The notes' learning loop. Left: the model's exact mean log-likelihood per theta step (and the data-generating
    model's, for reference) and the minibatch ELBO after each inner loop. Right: the last inner loop's per-point
    Monte Carlo ELBO against inner step (inner_trace: (inner_steps, batch))."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.1,
                        subplot_titles=["learning θ", "the last inner loop (each line a point's φᵢ)"])
    t = np.arange(len(log_lik))
    fig.add_trace(go.Scatter(x=t, y=log_lik, mode="lines+markers", name="mean log p_θ(x) exact",
                             line=dict(color=PALETTE["model"], width=3), marker=dict(size=4)), row=1, col=1)
    if len(elbo_after):
        fig.add_trace(go.Scatter(x=np.arange(len(elbo_after)), y=elbo_after, mode="lines",
                                 name="minibatch ELBO after the inner loop",
                                 line=dict(color=PALETTE["elbo"], width=1.5)), row=1, col=1)
    if reference_log_lik is not None:
        fig.add_trace(go.Scatter(x=[0, max(1, len(log_lik) - 1)], y=[reference_log_lik] * 2, mode="lines",
                                 name="the data-generating model's mean log p(x)",
                                 line=dict(color=PALETTE["truth"], width=2, dash="dash")), row=1, col=1)
    if inner_trace is not None and len(inner_trace):
        steps = np.arange(1, inner_trace.shape[0] + 1)
        for i in range(inner_trace.shape[1]):
            fig.add_trace(go.Scatter(x=steps, y=inner_trace[:, i], mode="lines", showlegend=i == 0,
                                     name="per-point ELBO (Monte Carlo)", legendgroup="inner",
                                     line=dict(color=PALETTE["proposal"], width=1), opacity=0.6), row=1, col=2)
    style_figure(fig, x_title="θ step", y_title="nats per point", height=height)
    fig.update_xaxes(title_text="inner step on φᵢ", row=1, col=2)
    fig.update_layout(margin=dict(t=120), legend=dict(y=1.3))
    return fig


def _ellipse(loc: np.ndarray, cov: np.ndarray, radius: float, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """the points at Mahalanobis distance `radius` from loc under cov (2, 2): (n,) x and y of a closed curve"""
    values, vectors = np.linalg.eigh(cov)
    angle = np.linspace(0.0, 2 * np.pi, n)
    circle = np.stack([np.cos(angle), np.sin(angle)])  # (2, n)
    points = loc[:, None] + radius * vectors @ (np.sqrt(np.maximum(values, 0.0))[:, None] * circle)
    return points[0], points[1]


def path_animation_figure(dens: dict, locs: np.ndarray, covs: np.ndarray, steps: np.ndarray, elbos: np.ndarray,
                          frame_ms: float = 150.0, height: int = 420) -> go.Figure:
    """q(z; phi) along its optimisation, replayed in the browser by plotly's own Play button and slider.

    dens: the exact posterior on a grid, as from lvm_core.inference.latent_densities ("axes", "log_posterior").
    locs: (m, d) q's mean at m recorded steps, covs: (m, d, d) its covariance, steps: (m,) the step numbers, elbos:
    (m,) the exact ELBO there. 2-D: the posterior as a heatmap, q's 1- and 2-sigma ellipses and the path of its mean
    so far, one frame per recorded step. 1-D: the posterior's density and q's. Opens on the last step."""
    from lvm_core.plots import ANIMATION_MARGIN, animation_controls, with_frames

    axes, post = dens["axes"], np.exp(dens["log_posterior"])
    locs, covs = np.asarray(locs, dtype=float), np.asarray(covs, dtype=float)
    fig = go.Figure()
    frames = []
    if len(axes) == 1:
        z = axes[0]
        fig.add_trace(go.Scatter(x=z, y=post, name="p(z | x) exact", line=dict(color=PALETTE["posterior"], width=3),
                                 fill="tozeroy", fillcolor=_rgba(PALETTE["posterior"], 0.15)))
        for loc, cov in zip(locs, covs, strict=True):
            sd = float(np.sqrt(cov[0, 0]))
            q = np.exp(-0.5 * ((z - loc[0]) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
            frames.append([dict(type="scatter", x=z, y=q)])
        fig.add_trace(go.Scatter(x=z, y=frames[-1][0]["y"], name="q(z; φ)",
                                 line=dict(color=PALETTE["proposal"], width=3, dash="dash")))
        traces, x_title, y_title, equal = [1], "z", "density", False
        peak = max(float(post.max()), max(float(np.max(f[0]["y"])) for f in frames))
        fig.update_yaxes(range=[0.0, 1.05 * peak])
    else:
        z1, z2 = axes
        fig.add_trace(go.Heatmap(x=z1, y=z2, z=post, colorscale=density_colorscale(), showscale=False,
                                 name="p(z | x)", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="p(z | x) exact (heatmap)",
                                 marker=dict(color=PALETTE["posterior"], symbol="square", size=10)))
        for i, (loc, cov) in enumerate(zip(locs, covs, strict=True)):
            inner, outer = _ellipse(loc, cov, 1.0), _ellipse(loc, cov, 2.0)
            frames.append([dict(type="scatter", x=inner[0], y=inner[1]), dict(type="scatter", x=outer[0], y=outer[1]),
                           dict(type="scatter", x=locs[: i + 1, 0], y=locs[: i + 1, 1])])
        style = dict(color=PALETTE["proposal"], width=2)
        last = frames[-1]
        fig.add_trace(go.Scatter(x=last[0]["x"], y=last[0]["y"], mode="lines", name="q(z; φ): 1σ and 2σ",
                                 line=style, legendgroup="q", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=last[1]["x"], y=last[1]["y"], mode="lines", showlegend=False, legendgroup="q",
                                 line=dict(color=PALETTE["proposal"], width=1.5, dash="dash"), hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=last[2]["x"], y=last[2]["y"], mode="lines+markers", name="path of q's mean",
                                 line=dict(color=PALETTE["proposal"], width=1.5, dash="dot"), marker=dict(size=4),
                                 hoverinfo="skip"))
        fig.update_xaxes(range=[float(z1[0]), float(z1[-1])])
        fig.update_yaxes(range=[float(z2[0]), float(z2[-1])])
        traces, x_title, y_title, equal = [2, 3, 4], "z₁", "z₂", True
    names = [f"t{int(t)}" for t in steps]
    labels = [f"{int(t):,} · exact ELBO {e:.3f} nats" for t, e in zip(steps, elbos, strict=True)]
    with_frames(fig, [dict(name=n, data=data, traces=traces) for n, data in zip(names, frames, strict=True)])
    fig.update_layout(animation_controls(names, labels, frame_ms=frame_ms, prefix="step ", active=len(names) - 1,
                                         from_start=True))
    style_figure(fig, x_title=x_title, y_title=y_title, equal_aspect=equal, height=height + ANIMATION_MARGIN)
    fig.update_layout(margin=dict(l=60, r=20, t=30, b=ANIMATION_MARGIN))
    return fig

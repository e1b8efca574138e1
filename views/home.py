"""Home: the story of the notes in four steps, each with its key equation and a link to its page, beside the smallest
latent variable model, live.

Widgets -> lvm_core.gmm (1-D mixture: exact density, generative sampling) -> lvm_core.plots.home -> kit.chart.
"""

import streamlit as st

from lvm_core.gmm import sample_mixture_1d
from lvm_core.plots.home import mixture_1d_figure
from ui import kit
from ui.pages import entry, page_exists
from ui.sidebar import page_seed

MEANS, STDS = (-1.5, 1.5), (0.6, 0.9)  # the two bells; the weight pi_1 is the page's control
SAMPLE_SIZES = (50, 200, 1000, 5000)

st.title("LVM Lab")
kit.explain(
    "A latent variable model explains data $x$ through something we never observe, a latent $z$: first draw "
    "$z \\sim p(z)$, then $x \\sim p(x \\mid z)$. Everything interesting follows from one integral, the marginal "
    "likelihood $p(x) = \\int p(z)\\, p(x \\mid z)\\, dz$, and from how hard it is to compute. LVM Lab lets you turn "
    "the knobs and watch it happen. **Exact ground truth is our signature:** wherever an estimate is drawn, the exact "
    "answer (in orange) is drawn next to it, so you can see how wrong an estimator is, not just guess."
)

left, right = st.columns([2, 3], vertical_alignment="center")
with left:
    kit.explain(
        "**The smallest latent variable model.** $z$ picks one of two bells, $x$ is drawn from it. Summing over $z$ "
        "gives $p(x)$ exactly; the histogram shows samples drawn the generative way, $z$ first, then $x$."
    )
    weight = st.slider("Weight π₁ of the first component", min_value=0.05, max_value=0.95, value=0.35, step=0.05,
                       key="home_pi", bind="query-params", persist_state="session")
    n_samples = st.select_slider("Samples", options=SAMPLE_SIZES, value=1000, key="home_n", bind="query-params",
                                 persist_state="session")
    kit.reset_to_defaults("home")
weights = (weight, 1.0 - weight)
samples = sample_mixture_1d(weights, MEANS, STDS, n=n_samples, seed=page_seed())
with right:
    kit.chart(mixture_1d_figure(weights, MEANS, STDS, samples, height=kit.height(320)), key="home_mixture_chart",
              filename="two_component_mixture")
    kit.csv_download({"x": samples}, "mixture_samples.csv", key="home_csv", label="Download the samples (CSV)")

st.divider()
st.header("The story in four steps")

STEPS = [
    (
        "mixtures",
        "1 · Shallow mixtures",
        "A discrete latent $z \\in \\{1, \\dots, K\\}$ chooses a Gaussian component. The integral over $z$ is a finite "
        "sum, so $p(x)$ is exact, and EM fits the mixture by alternating soft assignments and weighted means.",
        r"p(x) = \sum_{k=1}^{K} \pi_k \, \mathcal{N}\!\left(x;\ \mu_k, \Sigma_k\right)",
    ),
    (
        "deep-lvm",
        "2 · Deep latent variable models",
        "Make $z$ continuous and let a neural network map it to the mean and covariance of $x$. The model becomes a "
        "flexible density, an infinite mixture, but the integral over $z$ no longer has a closed form.",
        r"z \sim \mathcal{N}(0, I), \quad x \mid z \sim \mathcal{N}\!\left(\mu_\theta(z), \Sigma_\theta(z)\right), "
        r"\quad p_\theta(x) = \int p(z)\, p_\theta(x \mid z)\, dz",
    ),
    (
        "estimating",
        "3 · Estimating p(x)",
        "Monte Carlo turns the integral into an average. Drawing $z$ uniformly over a box wastes almost every sample "
        "where $p(x \\mid z)$ is negligible; importance sampling draws $z$ from a proposal $q$ close to the posterior "
        "and reweights, so far fewer samples give the same accuracy.",
        r"\hat p_{\text{naive}}(x) = \frac{|Z|}{k} \sum_{j=1}^{k} p(x, z_j),\ z_j \sim \mathcal{U}(Z)"
        r"\qquad \hat p_{\text{IS}}(x) = \frac{1}{k} \sum_{j=1}^{k} \frac{p(x, z_j)}{q(z_j)},\ z_j \sim q",
    ),
    (
        "elbo",
        "4 · ELBO and variational inference",
        "Choose $q(z; \\varphi)$ from a simple family and push it towards the posterior by maximising the evidence "
        "lower bound. The bound misses $\\log p(x)$ by exactly the KL divergence from $q$ to the true posterior: "
        "the gap you see is the approximation you made.",
        r"\log p(x) = \underbrace{\mathbb{E}_{q(z;\varphi)}\!\left[\log p(x, z) - \log q(z; \varphi)\right]}"
        r"_{\text{ELBO}(\varphi)} + \mathrm{KL}\!\left(q(z; \varphi)\,\|\,p(z \mid x)\right)",
    ),
]

for url_path, heading, idea, equation in STEPS:
    with st.container(border=True):
        st.subheader(heading)
        kit.explain(idea)
        st.latex(equation)
        if page_exists(url_path):
            target = entry(url_path)
            st.page_link(target.path, label=f"Open {target.title}", icon=":material/arrow_forward:")

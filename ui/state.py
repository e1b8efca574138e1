"""Session-state keys shared across pages, one named constant each.

Widget keys that only one page uses are page-prefixed strings chosen by that page (e.g. "mx_K");
the keys below are the ones several pages (or the sidebar) read or write.
"""

# shared (sidebar)
SEED = "seed"  # int 0..9999: the global seed slider, bound to the URL as ?seed=; "Resample" advances it
PRESENTATION = "presentation"  # bool: presentation mode (larger fonts and figures), bound to the URL

# shallow mixtures
DATASET = "dataset"  # np.ndarray (n, 2): the user's current data (preset or upload), shared by all pages
DATASET_META = "dataset_meta"  # dict: where DATASET came from (name, source, standardisation, n)
FITTED_MIXTURE = "fitted_mixture"  # GaussianMixtureLVM built from the current fit, for the other pages
MIXTURE_FIT = "mixture_fit"  # the fitted sklearn GaussianMixture and its fit state (K, EM step, restarts)

# deep latent variable models
TRAINED_LVM = "trained_lvm"  # dict: model, encoder (or None), config, history, data = {train, test, eval, mean, std}
TRAINING_RUNS = "training_runs"  # list of dicts: past runs (config + history) kept for comparison

# estimating p(x) and the ELBO
SELECTED_X = "selected_x"  # torch.Tensor (1, data_dim): the data point both pages evaluate
ELBO_PHI_STATE = "elbo_phi_state"  # dict: the per-point q(z; phi) being optimised (phi, step, history)

# the page kit
SECTION_ERRORS = "section_errors"  # list[str]: page sections that failed this session ("name: Error: message")

"""LVM Lab core: latent variable models, estimators of log p(x), inference and plots. Never imports streamlit."""

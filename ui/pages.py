"""The page registry: app.py builds st.navigation from it, and the tests visit every entry."""

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository root, where app.py lives


@dataclass(frozen=True)
class PageEntry:
    """one page of the app: script path (relative to app.py), title, material icon and URL path ("" for home)"""

    path: str
    title: str
    icon: str
    url_path: str


ALL_PAGES = [
    PageEntry("pages/home.py", "Home", ":material/home:", ""),
    PageEntry("pages/mixtures.py", "Shallow mixtures", ":material/scatter_plot:", "mixtures"),
    PageEntry("pages/deep_lvm.py", "Deep latent variable models", ":material/neurology:", "deep-lvm"),
    PageEntry("pages/estimating.py", "Estimating p(x)", ":material/functions:", "estimating"),
    PageEntry("pages/elbo.py", "ELBO and variational inference", ":material/trending_up:", "elbo"),
]

# Topic pages are written in parallel: register only those whose file exists (to become static once all exist).
PAGES = [p for p in ALL_PAGES if (ROOT / p.path).exists()]


def page_exists(url_path: str) -> bool:
    """whether the page with this URL path is registered (home links only to pages that exist)"""
    return any(p.url_path == url_path for p in PAGES)


def entry(url_path: str) -> PageEntry:
    """the registered page with this URL path"""
    return next(p for p in PAGES if p.url_path == url_path)

"""The page registry: app.py builds st.navigation from it, and the tests visit every entry."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PageEntry:
    """one page of the app: script path (relative to app.py), title, material icon and URL path ("" for home)"""

    path: str
    title: str
    icon: str
    url_path: str


# Page scripts live in views/, not pages/: Streamlit auto-discovers a pages/ folder next to app.py, and a bookmarked
# deep link (/mixtures?...) opened first on a fresh server then runs the page alone, without app.py's sidebar and URL
# cleaning (PagesManager falls back to the pages-directory mode until st.navigation has run once).
PAGES = [
    PageEntry("views/home.py", "Home", ":material/home:", ""),
    PageEntry("views/mixtures.py", "Shallow mixtures", ":material/scatter_plot:", "mixtures"),
    PageEntry("views/deep_lvm.py", "Deep latent variable models", ":material/neurology:", "deep-lvm"),
    PageEntry("views/estimating.py", "Estimating p(x)", ":material/functions:", "estimating"),
    PageEntry("views/elbo.py", "ELBO and variational inference", ":material/trending_up:", "elbo"),
]



def page_exists(url_path: str) -> bool:
    """whether the page with this URL path is registered (home links only to pages that exist)"""
    return any(p.url_path == url_path for p in PAGES)


def entry(url_path: str) -> PageEntry:
    """the registered page with this URL path"""
    return next(p for p in PAGES if p.url_path == url_path)

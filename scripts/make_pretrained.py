"""Train the models shipped in lvm_core/weights by their recipes (lvm_core.pretrained.PRETRAINED) and write them.

    python scripts/make_pretrained.py [name ...]

Runs on one CPU thread with a fixed seed; prints the held-out figures it stores in the file's config.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from lvm_core.datasets import load_binarized_digits
from lvm_core.estimators import exact_log_marginal
from lvm_core.models import BernoulliMLPLVM, independent_pixel_log_likelihood
from lvm_core.pretrained import PRETRAINED
from lvm_core.training import bound, save_lvm, train_lvm

WEIGHTS = Path(__file__).resolve().parents[1] / "lvm_core" / "weights"


def make_digits() -> bytes:
    recipe = PRETRAINED["digits"]
    X_train, X_test, _, _ = load_binarized_digits(seed=0)
    model = BernoulliMLPLVM(**recipe.model)
    history = train_lvm(model, X_train, **recipe.train)
    x = torch.as_tensor(X_test)
    with torch.no_grad():
        loc, log_scale = history.encoder(x)
        g = torch.Generator().manual_seed(0)
        elbo = float(bound(model, x, loc, log_scale, k=1, objective="elbo", generator=g).mean())
        iwae = float(bound(model, x, loc, log_scale, k=64, objective="iwae", generator=g).mean())
    exact = float(exact_log_marginal(model, x).mean())
    pixels = float(independent_pixel_log_likelihood(X_train, X_test).mean())
    figures = dict(seconds=round(history.seconds, 1), held_out_elbo=elbo, held_out_iwae_64=iwae,
                   held_out_exact=exact, independent_pixels=pixels)
    print("digits:", figures, flush=True)
    return save_lvm(model, history.encoder, dict(name="digits", recipe=recipe.description, data=recipe.data,
                                                 figures=figures))


MAKERS = {"digits": make_digits}

if __name__ == "__main__":
    torch.set_num_threads(1)
    WEIGHTS.mkdir(exist_ok=True)
    for name in sys.argv[1:] or list(MAKERS):
        start = time.perf_counter()
        (WEIGHTS / f"{name}.pt").write_bytes(MAKERS[name]())
        print(f"wrote {name}.pt in {time.perf_counter() - start:.0f} s")

"""Models trained once and shipped with the package, so a page can show a trained model at once (no training wait,
nothing downloaded). Each entry records the recipe that made its weights; ``scripts/make_pretrained.py`` reruns it.

    model, encoder, config = load_pretrained("digits")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from lvm_core.training import Encoder, load_lvm


@dataclass(frozen=True)
class Recipe:
    """How a shipped model was made: its data, architecture and ``train_lvm`` arguments (all else default)."""

    data: str  # the loader in lvm_core.datasets and its arguments, as text for the record
    model: dict = field(default_factory=dict)  # BernoulliMLPLVM / MLPLVM keyword arguments
    train: dict = field(default_factory=dict)  # train_lvm keyword arguments
    description: str = ""


PRETRAINED: dict[str, Recipe] = {
    "digits": Recipe(
        data="load_binarized_digits(seed=0): 1,437 training images",
        model=dict(latent_dim=2, data_dim=64, seed=0),
        train=dict(seed=0),
        description="BernoulliMLPLVM (2-D latent) on the binarised 8 x 8 digits, train_lvm's defaults (IWAE-8)",
    ),
}


def weights_file(name: str):
    """The shipped file of a pretrained model (an importlib.resources Traversable)."""
    if name not in PRETRAINED:
        raise ValueError(f"no pretrained model {name!r}: choose one of {', '.join(PRETRAINED)}")
    return resources.files("lvm_core") / "weights" / f"{name}.pt"


@cache
def _payload(name: str) -> bytes:
    return weights_file(name).read_bytes()


def load_pretrained(name: str) -> tuple:
    """(model, encoder, config) of a shipped model, fresh objects on every call (a caller may train them further);
    the file is read once per process. config holds the recipe and the figures measured when it was made."""
    model, encoder, config = load_lvm(_payload(name))
    model.eval()
    if isinstance(encoder, Encoder):
        encoder.eval()
    return model, encoder, config

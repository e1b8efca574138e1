import math

import pytest
import torch

from lvm_core.datasets import load_binarized_digits
from lvm_core.models import BernoulliMLPLVM, independent_pixel_log_likelihood
from lvm_core.pretrained import PRETRAINED, load_pretrained
from lvm_core.training import Encoder, bound


def test_shipped_digits_model_loads_as_its_recipe_says_and_beats_the_bar_by_a_lower_bound():
    model, encoder, config = load_pretrained("digits")
    assert isinstance(model, BernoulliMLPLVM) and isinstance(encoder, Encoder)
    assert model.latent_dim == 2 and model.data_dim == 64 and config["name"] == "digits"
    X_train, X_test, _, _ = load_binarized_digits(seed=0)
    x = torch.as_tensor(X_test)
    with torch.no_grad():
        loc, log_scale = encoder(x)
        # IWAE-64 is a lower bound on log p(x) in expectation, so a held-out mean above -19 by more than its Monte
        # Carlo standard error puts the exact mean above -19 too. The standard error from two independent runs:
        # per image, the runs' difference has variance 2 var(estimate)
        a, b = (bound(model, x, loc, log_scale, k=64, objective="iwae", generator=torch.Generator().manual_seed(s))
                for s in (0, 1))
    iwae = 0.5 * (a + b)
    se = float((a - b).std()) / math.sqrt(2) / math.sqrt(2 * len(x))
    baseline = float(independent_pixel_log_likelihood(X_train, X_test).mean())
    assert float(iwae.mean()) > -19.0 + 3 * se, (float(iwae.mean()), se)
    assert float(iwae.mean()) > baseline + 5.0
    # the figures recorded when it was made: ELBO <= IWAE <= exact on average
    figures = config["figures"]
    assert figures["held_out_elbo"] <= figures["held_out_iwae_64"] <= figures["held_out_exact"]


def test_each_load_is_a_fresh_model_and_unknown_names_are_refused():
    a, _, _ = load_pretrained("digits")
    b, _, _ = load_pretrained("digits")
    with torch.no_grad():
        next(a.parameters()).add_(1.0)
    assert not torch.equal(next(a.parameters()), next(b.parameters()))
    with pytest.raises(ValueError, match="digits"):
        load_pretrained("mnist")
    assert set(PRETRAINED) == {"digits"}

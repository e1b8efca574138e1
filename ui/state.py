"""Session-state keys shared across pages, one named constant each, and the dataclasses stored under them.

Widget keys that only one page uses are page-prefixed strings chosen by that page (e.g. "mx_K");
the keys below are the ones several pages (or the sidebar) read or write.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lvm_core.gmm import EMTrace

# shared (sidebar)
SEED = "seed"  # int 0..9999: the global seed slider, bound to the URL as ?seed=; "Resample" advances it
PRESENTATION = "presentation"  # bool: presentation mode (larger fonts and figures), bound to the URL

# shallow mixtures
DATASET = "dataset"  # np.ndarray (n, 2): the user's current data (preset or upload), shared by all pages
DATASET_META = "dataset_meta"  # DatasetMeta: where DATASET came from
FITTED_MIXTURE = "fitted_mixture"  # GaussianMixtureLVM built from the current fit, for the other pages
MIXTURE_FIT = "mixture_fit"  # MixtureFit: the EM trajectory behind FITTED_MIXTURE and the settings that made it

# deep latent variable models
TRAINED_LVM = "trained_lvm"  # TrainedLVM: the deep LVM trained or loaded on its page, read by the other pages
TRAINING_RUNS = "training_runs"  # list of dicts: past runs (config + history) kept for comparison

# estimating p(x) and the ELBO
SELECTED_X = "selected_x"  # torch.Tensor (1, data_dim): the data point both pages evaluate
ELBO_PHI_STATE = "elbo_phi_state"  # dict: the per-point q(z; phi) being optimised (phi, step, history)

# the page kit
SECTION_ERRORS = "section_errors"  # list[str]: page sections that failed this session ("name: Error: message")


@dataclass(frozen=True)
class DatasetMeta:
    """Where a data picker's points came from. source: "preset" (generated from `signature` = (preset name, n,
    noise scale, seed)), "upload" (the file `file_name`, `raw` its bytes) or "edited" (by hand on a chart)."""

    source: str
    label: str
    n: int
    signature: tuple | None = None
    notices: tuple[str, ...] = ()
    upload_id: str | None = None  # the last file handled, so a file is applied once
    upload_error: str | None = None  # why the last file was refused (the data stayed as they were)
    columns: tuple[str, str] | None = None
    numeric_columns: tuple[str, ...] = ()
    file_name: str | None = None
    raw: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class MixtureFit:
    """EM's trajectory on the current data. key: content hash of the data and settings; trace: every iteration up
    to convergence or the iteration limit (the last one is the fitted mixture)."""

    key: str
    n_components: int
    covariance_type: str
    init_params: str
    seed: int
    trace: EMTrace = field(repr=False)


@dataclass(frozen=True)
class TrainedData:
    """The split a deep LVM was trained and scored on. train: (n_train, data_dim), test: (n_test, data_dim), in the
    units the model sees (standardised for 2-D data, 0/1 pixels for images); mean, std: (data_dim,) the
    standardisation (zeros and ones where none was applied); labels_test: (n_test,) class labels where the data have
    them (digits), else None."""

    train: np.ndarray = field(repr=False)
    test: np.ndarray = field(repr=False)
    mean: np.ndarray = field(repr=False)
    std: np.ndarray = field(repr=False)
    labels_test: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TrainedLVM:
    """A deep LVM trained or loaded on its page. encoder: the amortised q(z|x) where the objective trained one
    (ELBO, IWAE), else None; config: the settings that made it (plain values); history: the training history, None
    for a loaded model."""

    model: object = field(repr=False)
    encoder: object | None = field(repr=False)
    config: dict
    data: TrainedData
    history: object | None = field(default=None, repr=False)

    @property
    def images(self) -> bool:
        """whether x is a binary image (data_dim 64: 8x8 digits) rather than a 2-D point"""
        return self.model.data_dim != 2


def trained_lvm(session_state) -> TrainedLVM | None:
    """the session's trained deep LVM, or None"""
    value = session_state.get(TRAINED_LVM)
    return value if isinstance(value, TrainedLVM) else None

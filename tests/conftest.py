"""Shared test setup: where the read-only data lives.

``SPIKING_DATA`` names the data root (holding ``nmnist-small/`` and ``mnist/``). When it is
unset, ``<repo>/../shared/data`` is used if it exists. A test that needs data calls
``require_data("nmnist-small")`` (or uses the ``data_root`` fixture): when the data is
missing it fails under CI (``CI`` set) and is skipped elsewhere.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
_SHARED_DATA = REPOSITORY.parent / "shared" / "data"

if not os.environ.get("SPIKING_DATA") and _SHARED_DATA.is_dir():
    os.environ["SPIKING_DATA"] = str(_SHARED_DATA)


def _missing(message: str):
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set, so missing data is an error)")
    pytest.skip(message)


def require_data(subpath: str = "") -> Path:
    """Path of ``subpath`` under the data root; fail (CI) or skip when it is missing."""
    root = os.environ.get("SPIKING_DATA")
    if not root:
        _missing("SPIKING_DATA is not set and ../shared/data does not exist")
    path = Path(root) / subpath
    if not path.exists():
        _missing(f"test data {path} is missing (SPIKING_DATA={root})")
    return path


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The data root (``SPIKING_DATA``)."""
    return require_data()

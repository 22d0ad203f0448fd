"""Test session set-up: Ultralytics fully offline, before anything imports it."""

import tempfile

from pairhook.offline import setup_offline

setup_offline(tempfile.mkdtemp(prefix="pairhook-test-yolo-"))

import pytest

from pairhook.synthetic import make_dataset

# The fixtures pairhook ships for plugin authors. Its `pytest11` entry point has the same name, so with pairhook
# installed this is a no-op; from a checkout whose installed metadata predates the entry point, it loads them.
pytest_plugins = ["pairhook.pytest_plugin"]


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """A small paired-defect dataset (non-square images, 3 classes, pairs.json in the users' format)."""
    return make_dataset(tmp_path_factory.mktemp("data"), n_train=16, n_val=4, seed=0)

"""Test session set-up: Ultralytics (and Ray) fully offline, before anything imports them, and proven so.

Every connection this process opens to anything but the loopback address is refused and recorded; a session that
tried one fails, so "the tests never touch the network" is checked on every run and every Ultralytics release.
"""

import ipaddress
import os
import socket
import tempfile

from pairhook.offline import setup_offline

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray (the tuning tests) reports nothing anywhere

setup_offline(tempfile.mkdtemp(prefix="pairhook-test-yolo-"))

_connect = socket.socket.connect
NETWORK_ATTEMPTS: list = []


def _offline_connect(sock: socket.socket, address) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            local = ipaddress.ip_address(address[0]).is_loopback
        except ValueError:
            local = address[0] == "localhost"
        if not local:
            NETWORK_ATTEMPTS.append(address)
            raise OSError(f"tests are offline: connection to {address} refused")
    return _connect(sock, address)


socket.socket.connect = _offline_connect

import pytest  # noqa: E402 - after the network guard

from pairhook.synthetic import make_dataset  # noqa: E402

# The fixtures pairhook ships for plugin authors. Its `pytest11` entry point has the same name, so with pairhook
# installed this is a no-op; from a checkout whose installed metadata predates the entry point, it loads them.
pytest_plugins = ["pairhook.pytest_plugin"]


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """A small paired-defect dataset (non-square images, 3 classes, pairs.json in the users' format)."""
    return make_dataset(tmp_path_factory.mktemp("data"), n_train=16, n_val=4, seed=0)


def pytest_sessionstart(session):
    import importlib.util

    if os.environ.get("PAIRHOOK_REQUIRE_TUNE") and importlib.util.find_spec("ray") is None:
        pytest.exit('PAIRHOOK_REQUIRE_TUNE is set but Ray is not installed: pip install -e ".[test,tune]"', 1)


def pytest_sessionfinish(session, exitstatus):
    if NETWORK_ATTEMPTS:
        print(f"\nFAILED: the tests tried to reach the network: {NETWORK_ATTEMPTS}")
        session.exitstatus = 1

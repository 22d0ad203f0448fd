"""Test session set-up: Ultralytics (and Ray) fully offline, before anything imports them, and proven so.

Every connection this process opens to anything but the loopback address is refused and recorded; a session that
tried one fails, so "the tests never touch the network" is checked on every run and every Ultralytics release.
"""

import ipaddress
import logging
import os
import re
import socket

from pairhook.offline import setup_offline

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray (the tuning tests) reports nothing anywhere

os.environ.pop("YOLO_CONFIG_DIR", None)  # never the user's settings: a temporary folder, removed at exit
setup_offline()

from ultralytics.utils import SETTINGS  # noqa: E402 - the session's own settings file, in that temporary folder

# Ultralytics' logger integrations run for whatever happens to be installed (with ray 2.60, 8.1 and 8.2's Ray Tune
# callback fails every training); the tests check what pairhook adds to results.csv, not the loggers.
SETTINGS.update({k: False for k in ("clearml", "comet", "dvc", "hub", "mlflow", "neptune", "raytune", "tensorboard",
                                    "wandb") if k in SETTINGS})

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


class Records(logging.Handler):
    """Collects Ultralytics' log records (its logger does not propagate to the root, so caplog misses them)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append((record.levelno, record.getMessage()))

    def matching(self, pattern: str, level: int = logging.INFO) -> list[str]:
        return [m for lvl, m in self.messages if lvl >= level and re.search(pattern, m)]


@pytest.fixture
def records():
    handler = Records()
    logger = logging.getLogger("ultralytics")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


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

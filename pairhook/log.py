"""pairhook's one logger: messages prefixed ``pairhook:``, shown the way Ultralytics shows its own.

The logger is a child of Ultralytics' ``ultralytics`` logger, so its lines go through Ultralytics' handler and follow
its verbosity (quiet on multi-GPU ranks other than 0) without importing Ultralytics here.
"""

from __future__ import annotations

import logging

LOGGER = logging.getLogger("ultralytics.pairhook")


def info(message: str) -> None:
    LOGGER.info(f"pairhook: {message}")


def warning(message: str) -> None:
    LOGGER.warning(f"pairhook: {message}")

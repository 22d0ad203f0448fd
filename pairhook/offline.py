"""Ultralytics without the network, only where asked for, and without changing the user's files.

* :func:`offline_requested` and :func:`offline_switches`: what the ``pairhook`` command does. It follows the user's
  Ultralytics settings exactly like ``yolo`` (same settings file, same ``runs_dir``) and goes online or offline as
  Ultralytics decides, unless ``PAIRHOOK_OFFLINE=1`` or ``YOLO_OFFLINE`` asks for offline; then it sets Ultralytics'
  offline switches in its own environment (never in a settings file) and answers the font lookup locally
  (:func:`pairhook.compat.local_fonts`).
* :func:`setup_offline`: for tests, examples and benchmarks: a whole Ultralytics config dir for one process, with
  the font it would download already in place. Call it before ``import ultralytics``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from pairhook import compat

TRUE = ("1", "true", "yes", "on", "y", "t")
FALSE = ("0", "false", "no", "off", "n", "f")


def _flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    return True if value in TRUE else False if value in FALSE else None


def offline_requested(default: bool = False) -> bool:
    """Whether the environment asks for offline: ``PAIRHOOK_OFFLINE`` (``1``/``0``, ``true``/``false``, ...) decides
    when set, else a true ``YOLO_OFFLINE``, else ``default`` (True for ``pairhook demo``). The former
    ``PAIRHOOK_ONLINE=1`` still means online."""
    for decided in (_flag("PAIRHOOK_OFFLINE"), _flag("YOLO_OFFLINE") or None):
        if decided is not None:
            return decided
    return False if _flag("PAIRHOOK_ONLINE") else default


def offline_switches() -> None:
    """Set Ultralytics' offline switches in this process's environment (before ``import ultralytics``): no
    connectivity probe, no events, no ``pip``. Settings files are not touched."""
    os.environ["YOLO_OFFLINE"] = compat.OFFLINE_VALUE
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ.setdefault("ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS", "1")


def _temporary_dir() -> str:
    path = tempfile.mkdtemp(prefix="pairhook-yolo-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def setup_offline(config_dir: str | Path | None = None) -> Path:
    """Configure this process for a fully offline Ultralytics run; returns the config dir used.

    Args:
        config_dir: the Ultralytics config dir for this process (``YOLO_CONFIG_DIR``), e.g. a temporary folder:
            it is created and the font Ultralytics would download is put in it (a copy of matplotlib's
            DejaVu Sans). Without it, an existing ``YOLO_CONFIG_DIR`` is used as it is, nothing written into
            it, and otherwise a new temporary folder is made and prepared (and removed when this process exits).

    The offline switches (``YOLO_OFFLINE`` and others) disable Ultralytics' events as well, so the settings file
    is left as it is (this used to write ``sync: false`` into it).
    """
    if "ultralytics" in sys.modules:
        import warnings

        warnings.warn("pairhook.offline.setup_offline() called after ultralytics was imported", stacklevel=2)
    prepare = config_dir is not None or not os.environ.get("YOLO_CONFIG_DIR")
    cfg = Path(config_dir or os.environ.get("YOLO_CONFIG_DIR") or _temporary_dir())
    offline_switches()
    os.environ["YOLO_CONFIG_DIR"] = str(cfg)
    cfg.mkdir(parents=True, exist_ok=True)  # else 8.3+ would use a folder of its own
    if prepare:
        os.environ.setdefault("MPLCONFIGDIR", str(cfg / "matplotlib"))
        import matplotlib

        font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        for d in compat.font_dirs(cfg):
            d.mkdir(exist_ok=True)
            for name in ("Arial.ttf", "Arial.Unicode.ttf"):
                if not (d / name).exists():
                    shutil.copyfile(font, d / name)
    return cfg

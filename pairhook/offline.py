"""Make Ultralytics run without touching the network (call before ``import ultralytics``).

Ultralytics checks connectivity at import, probes a font URL whenever it plots, and may try ``pip`` or analytics.
This sets its offline switches, points its config dir at ``config_dir`` and seeds the font it would download.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from pairhook import compat


def setup_offline(config_dir: str | Path | None = None) -> Path:
    """Configure the environment for a fully offline Ultralytics run; returns the config dir used."""
    if "ultralytics" in sys.modules:
        import warnings

        warnings.warn("pairhook.offline.setup_offline() called after ultralytics was imported", stacklevel=2)
    cfg = Path(config_dir or os.environ.get("YOLO_CONFIG_DIR") or tempfile.mkdtemp(prefix="pairhook-yolo-"))
    cfg.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = compat.OFFLINE_VALUE
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ["YOLO_CONFIG_DIR"] = str(cfg)
    os.environ["ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS"] = "1"
    os.environ.setdefault("MPLCONFIGDIR", str(cfg / "matplotlib"))
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for d in compat.font_dirs(cfg):
        d.mkdir(exist_ok=True)
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):
            if not (d / name).exists():
                shutil.copyfile(font, d / name)
    from ultralytics.utils import SETTINGS

    SETTINGS.update({"sync": False})
    return cfg

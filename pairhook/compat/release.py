"""Which Ultralytics releases pairhook supports, and the release-dependent details of running offline."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from pairhook.compat.patches import replace, restore

MIN_VERSION = (8, 1, 47)
MAX_MAJOR_MINOR = (8, 4)
SUPPORTED = "8.1.47 to 8.4.x"


OFFLINE_VALUE = "True"  # YOLO_OFFLINE: 8.1 to 8.4.0 accept only the string "true" (any case)


def font_dirs(config_dir: Path) -> tuple[Path, Path]:
    """Where releases look for the font they would download: the config dir (up to 8.3.100), or a subfolder."""
    return config_dir, config_dir / "Ultralytics"


@contextlib.contextmanager
def local_fonts() -> Iterator[None]:
    """While active, Ultralytics' font lookup never downloads: a font already in its config dir is used as before,
    any other is answered with matplotlib's DejaVu Sans. Nothing is written anywhere.

    ``check_font`` probes its download URL even when Ultralytics is offline (a HEAD request per call, which can
    take seconds without a network). ``ultralytics.utils.plotting`` and ``ultralytics.data.utils`` import it by
    name on every supported release, so all three bindings are replaced, and put back on exit.
    """
    import matplotlib
    from ultralytics.data import utils as data_utils
    from ultralytics.utils import USER_CONFIG_DIR, checks, plotting

    fallback = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    modules = (checks, plotting, data_utils)
    saved = [m.check_font for m in modules]
    original = saved[0]

    def check_font(font: str = "Arial.ttf") -> Path:
        if (Path(USER_CONFIG_DIR) / Path(font).name).exists():
            return original(font)
        return fallback

    for m in modules:
        replace(m.__name__, m, "check_font", check_font)
    try:
        yield
    finally:
        for m, fn in zip(modules, saved):
            restore(m.__name__, m, "check_font", fn)


def ultralytics_version() -> str:
    import ultralytics

    return ultralytics.__version__


def check_supported() -> None:
    """Raise ``RuntimeError`` naming the installed and supported releases if this Ultralytics is out of range."""
    version = ultralytics_version()
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    if parts < MIN_VERSION or parts[:2] > MAX_MAJOR_MINOR:
        raise RuntimeError(f"pairhook supports Ultralytics {SUPPORTED}; ultralytics {version} is installed")

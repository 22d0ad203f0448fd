"""Which Ultralytics releases pairhook supports, and the release-dependent details of running offline."""

from __future__ import annotations

from pathlib import Path

MIN_VERSION = (8, 1, 47)
MAX_MAJOR_MINOR = (8, 4)
SUPPORTED = "8.1.47 to 8.4.x"


OFFLINE_VALUE = "True"  # YOLO_OFFLINE: 8.1 to 8.4.0 accept only the string "true" (any case)


def font_dirs(config_dir: Path) -> tuple[Path, Path]:
    """Where releases look for the font they would download: the config dir (up to 8.3.100), or a subfolder."""
    return config_dir, config_dir / "Ultralytics"


def ultralytics_version() -> str:
    import ultralytics

    return ultralytics.__version__


def check_supported() -> None:
    """Raise ``RuntimeError`` naming the installed and supported releases if this Ultralytics is out of range."""
    version = ultralytics_version()
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    if parts < MIN_VERSION or parts[:2] > MAX_MAJOR_MINOR:
        raise RuntimeError(f"pairhook supports Ultralytics {SUPPORTED}; ultralytics {version} is installed")

"""The docs site builds with ``mkdocs build --strict`` (no broken link or anchor, no page left out of the nav, no
reference that fails to resolve), and its API reference covers every name in ``pairhook.__all__`` and every hook
specification. Needs the ``docs`` extra (scripts/setup.sh installs it); skipped without it unless
PAIRHOOK_REQUIRE_DOCS=1, as .ci/run sets."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import pairhook
from pairhook import hookspecs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from mkdocs_hooks import public_path  # noqa: E402

HAVE_MKDOCS = all(importlib.util.find_spec(m) for m in ("mkdocs", "material", "mkdocstrings_handlers.python"))
if not HAVE_MKDOCS and os.environ.get("PAIRHOOK_REQUIRE_DOCS") == "1":
    raise RuntimeError("PAIRHOOK_REQUIRE_DOCS=1 but the docs extra is not installed: pip install -e '.[docs]'")
needs_mkdocs = pytest.mark.skipif(not HAVE_MKDOCS, reason="the docs extra is not installed")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def inventory(site: Path) -> set[str]:
    from mkdocstrings import Inventory

    with open(site / "objects.inv", "rb") as f:
        return set(Inventory.parse_sphinx(f))


@needs_mkdocs
def test_site_builds_strict_and_references_every_public_name(site):
    names = inventory(site)
    missing = [n for n in pairhook.__all__ if public_path("pairhook", n) not in names]
    assert not missing, f"not in the API reference: {missing}"


@needs_mkdocs
def test_reference_has_every_hook_spec(site):
    hooks = sorted(n for n, fn in vars(hookspecs).items() if hasattr(fn, "pairhook_spec"))
    assert hooks
    names = inventory(site)
    assert [h for h in hooks if public_path(hookspecs.__name__, h) not in names] == []


@needs_mkdocs
def test_home_and_reference_pages_are_rendered(site):
    home = (site / "index.html").read_text()
    assert "What the study found" in home and "effect-study/" in home
    reference = (site / "reference" / "index.html").read_text()
    assert 'id="pairhook.install"' in reference and "pairhook_register_regularizers" in reference


class _Loader(yaml.SafeLoader):
    """mkdocs.yml may hold ``!!python/name`` tags (Material's emoji options); none is needed to read its keys."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)


def test_site_address_is_the_one_pyproject_declares():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)
    source = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Source"]
    assert config["repo_url"].rstrip("/") == source.rstrip("/")


def test_every_page_is_in_the_nav():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)

    def pages(nav):
        for item in nav:
            for value in (item.values() if isinstance(item, dict) else [item]):
                yield from (pages(value) if isinstance(value, list) else [value])

    listed = set(pages(config["nav"]))
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk == listed, (on_disk - listed, listed - on_disk)

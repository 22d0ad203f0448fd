"""What a package index shows and pip resolves: licence, typing marker, declared dependencies, a README whose images
and links work off the repository, and no hand-written figures that go stale. The built wheel and sdist themselves
are checked by tests/test_dist.py (scripts/check_dist.py)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
README = (ROOT / "README.md").read_text()
#: import name -> distribution that provides it
DISTRIBUTIONS = {"cv2": "opencv-python", "yaml": "pyyaml", "numpy": "numpy", "torch": "torch",
                 "torchvision": "torchvision", "matplotlib": "matplotlib", "pluggy": "pluggy",
                 "ultralytics": "ultralytics"}
OPTIONAL = {"ray": "tune"}  # module -> the extra that brings it (pairhook.tune's Ray engine)


def requirements() -> dict[str, str]:
    """``{distribution: version specifiers}`` of the declared dependencies."""
    out = {}
    for text in PROJECT["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", text).group(0)
        out[name.lower()] = text[len(name):]
    return out


def test_licence_is_agpl_as_a_pep_639_expression():
    assert PROJECT["license"] == "AGPL-3.0-or-later" and PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("GNU AFFERO GENERAL PUBLIC LICENSE") and "Version 3, 19 November 2007" in text
    assert not [c for c in PROJECT["classifiers"] if c.startswith("License ::")]  # not with an expression
    assert any(r.startswith("setuptools>=") and int(r.split(">=")[1].split(".")[0]) >= 77
               for r in PYPROJECT["build-system"]["requires"])  # the first setuptools with PEP 639


def test_typed_marker_is_shipped():
    assert (ROOT / "pairhook" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["pairhook"]
    assert "Typing :: Typed" in PROJECT["classifiers"]


def test_every_direct_import_is_declared_and_torch_is_not_capped():
    imported = set()
    for path in (ROOT / "pairhook").rglob("*.py"):
        if path.name == "pytest_plugin.py":  # loaded by pytest only
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            imported.update(n.split(".")[0] for n in names)
    third_party = imported - set(sys.stdlib_module_names) - {"pairhook", "__future__"}
    for module, extra in OPTIONAL.items():  # imported only where the extra is needed: declared there
        if module in third_party:
            assert any(r.startswith(module) for r in PROJECT["optional-dependencies"][extra]), (module, extra)
            third_party.discard(module)
    assert third_party <= set(DISTRIBUTIONS), f"imports of unknown distributions: {third_party - set(DISTRIBUTIONS)}"
    declared = requirements()
    missing = {DISTRIBUTIONS[m] for m in third_party} - set(declared)
    assert not missing, f"imported but not declared: {missing}"
    capped = {name for name, spec in declared.items() if re.search(r"<|==|~=", spec)}
    assert capped == {"ultralytics"}, capped  # install() refuses a newer Ultralytics minor release; nothing else
    assert all(">=" in spec for spec in declared.values())  # a tested lower bound each


def test_version_has_one_source():
    assert "version" in PROJECT["dynamic"] and "version" not in PROJECT
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pairhook.__version__"}


def test_readme_images_and_links_work_on_a_package_index():
    """A package index shows the README without the repository's files: images and links to files must be absolute
    URLs into the repository that pyproject's Source names (the one place that says where it is)."""
    source = PROJECT["urls"]["Source"].rstrip("/")
    owner_repo = source.removeprefix("https://github.com/")
    raw = f"https://raw.githubusercontent.com/{owner_repo}/main/"
    targets = re.findall(r"(!?)\[[^\]]*\]\(([^)\s]+)\)", README)
    assert any(image for image, _ in targets)
    for image, url in targets:
        if url.startswith("#"):
            continue
        if image:
            assert url.startswith(raw), f"image {url} is not under {raw}"
            assert (ROOT / url.removeprefix(raw)).is_file(), url
        elif url.startswith(source):
            path = re.sub(r"^/(blob|tree)/main/", "", url.removeprefix(source))
            assert (ROOT / path).exists(), url
        else:
            assert url.startswith("https://"), f"relative link {url}: write {source}/blob/main/{url}"


def test_readme_has_no_hand_written_test_counts():
    """A count such as "254 passed" goes stale with the next test; the CI prints the real one."""
    assert not re.findall(r"\d+ passed", README)


def test_readme_is_short_and_points_into_the_docs():
    """The README is a front page (at most 200 lines); the rest lives in docs/, and every page there is linked."""
    assert len(README.splitlines()) <= 200
    source = PROJECT["urls"]["Source"].rstrip("/")
    for page in ("getting-started", "writing-a-regularizer", "effect-study", "reference", "faq"):
        assert f"{source}/blob/main/docs/{page}.md" in README, page


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(.*?)```", README, re.S)
    test_command = next(c.strip() for c in commands if "pytest" in c)
    assert test_command == "./scripts/setup.sh && .venv/bin/python -m pytest"
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_changelog_release_matches_the_version():
    """pairhook.__version__ (pyproject reads it) is the newest release section of the CHANGELOG, below the
    [Unreleased] heading kept for ongoing work."""
    init = (ROOT / "pairhook" / "__init__.py").read_text()
    version = re.search(r'^__version__ = "([^"]+)"$', init, re.M).group(1)
    headings = re.findall(r"^## \[([^\]]+)\](.*)$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings[0][0] == "Unreleased", headings[:2]
    released, rest = headings[1]
    assert released == version, f"CHANGELOG's newest release is {released}, pairhook.__version__ is {version}"
    assert re.fullmatch(r" - \d{4}-\d{2}-\d{2}", rest), f"## [{released}] needs ' - YYYY-MM-DD'"
    assert "0.1.0" in [v for v, _ in headings]

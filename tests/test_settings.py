"""The ``pairhook`` command uses the user's Ultralytics settings and run folders exactly as ``yolo`` does, and changes
none of the user's files; offline only where asked, and then without writing anything.

The commands run in subprocesses, as a user runs them: from a temporary directory, with their own ``HOME`` and
settings, and without the marks of a test run (Ultralytics redirects runs into its own folder when it sees pytest).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from pairhook import compat, offline

ROOT = Path(__file__).resolve().parents[1]
# environment the test session set up, or by which Ultralytics recognises a test run (TESTS_RUNNING)
CLEARED = ("YOLO_CONFIG_DIR", "YOLO_OFFLINE", "YOLO_AUTOINSTALL", "ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS",
           "PAIRHOOK_OFFLINE", "PAIRHOOK_ONLINE", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "PYTEST_CURRENT_TEST",
           "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "GITHUB_ACTIONS", "GITHUB_WORKFLOW", "RUNNER_OS")


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's environment: their own HOME, pairhook from this checkout, offline because they ask for it."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    for folder in (home / ".config", Path(extra.get("YOLO_CONFIG_DIR", home))):  # Ultralytics falls back to /tmp
        folder.mkdir(parents=True, exist_ok=True)                               # when the user's folder is missing
    return {**env, "HOME": str(home), "PAIRHOOK_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra}


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def pairhook_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pairhook.cli", *args]


#: what Ultralytics itself keeps in its config folder besides the settings (8.3: a device-info cache), as under `yolo`
ULTRALYTICS_OWN = ("persistent_cache.json",)


def files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name not in ULTRALYTICS_OWN}


def settings_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("settings.*") if p.suffix in (".json", ".yaml"))


def line_with(text: str, prefix: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(prefix))


@pytest.fixture
def user(tmp_path):
    """A user's temporary world: a working directory, a home, a data set, and where the runs should go."""
    return {"tmp": tmp_path, "cwd": tmp_path / "work", "home": tmp_path / "home", "runs": tmp_path / "my-runs"}


#: the logger integrations this user has turned off (whichever of them the environment has installed would run, and
#: 8.1's Ray Tune callback fails with today's ray, under `yolo train` as well)
NO_LOGGERS = [f"{k}=False" for k in ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")]


def train_args(dataset) -> list[str]:
    return ["model=yolov8n.yaml", f"data={dataset.data_yaml}", f"pairs={dataset.pairs_json}", "epochs=1",
            "imgsz=64", "batch=8", "workers=0", "plots=False"]


def test_train_and_evaluate_use_the_users_settings_file(user, dataset):
    """Done when: with YOLO_CONFIG_DIR pointing at settings whose runs_dir is set, `pairhook train` from a temporary
    directory writes its run under that runs_dir and creates no other settings file; `pairhook evaluate` and
    `model.val()` save next to each other there, as `yolo val` would."""
    tmp, cwd = user["tmp"], user["cwd"]
    cwd.mkdir()
    env = user_env(user["home"], YOLO_CONFIG_DIR=str(tmp / "yolo-config"))
    shown = run(pairhook_cmd("settings", f"runs_dir={user['runs']}", *NO_LOGGERS), cwd, env)  # as `yolo settings`
    (settings,) = settings_files(tmp)
    assert settings.is_relative_to(tmp / "yolo-config") and str(settings) in shown
    before = files(tmp)

    out = run(pairhook_cmd("train", *train_args(dataset)), cwd, env)
    save_dir = Path(line_with(out, "pairhook train: results in ").rsplit(" ", 1)[1])
    assert save_dir == user["runs"] / "detect" / "train" and (save_dir / "results.csv").is_file()
    best = save_dir / "weights" / "best.pt"
    out = run(pairhook_cmd("evaluate", f"model={best}", f"data={dataset.data_yaml}", f"pairs={dataset.pairs_json}",
                           "imgsz=64", "batch=4", "plots=False"), cwd, env)
    val_dir = Path(line_with(out, "pairhook evaluate: results in ").rsplit(" ", 1)[1])
    assert val_dir == user["runs"] / "detect" / "val"
    out = run([sys.executable, "-c", f"from ultralytics import YOLO; m = YOLO({str(best)!r}); "
               f"m.val(data={str(dataset.data_yaml)!r}, imgsz=64, batch=4, plots=False); "
               "print('VAL', m.metrics.save_dir)"], cwd, env)
    plain = Path(line_with(out, "VAL ").split(" ", 1)[1])
    assert plain.parent == val_dir.parent and plain.name.startswith("val") and plain != val_dir  # val-2 / val2

    after = files(tmp)
    assert after[settings] == before[settings], "the settings file was changed"
    created = [p for p in after if p not in before and not p.is_relative_to(user["runs"])]
    assert not created, f"files written outside runs_dir: {created}"
    assert settings_files(tmp) == [settings]


def test_without_yolo_config_dir_the_users_home_settings_are_used(user, dataset):
    """No YOLO_CONFIG_DIR: the settings `yolo` uses (under HOME) are the ones `pairhook settings` changes and
    `pairhook train` follows, with the same project/name resolution as `yolo train` from the current directory."""
    tmp, cwd = user["tmp"], user["cwd"]
    cwd.mkdir()
    env = user_env(user["home"])
    run(pairhook_cmd("settings", f"runs_dir={user['runs']}", *NO_LOGGERS), cwd, env)
    (settings,) = settings_files(tmp)
    assert settings.is_relative_to(user["home"])  # ~/.config/Ultralytics/, not a folder of pairhook's
    before = files(tmp)
    out = run(pairhook_cmd("train", *train_args(dataset), "project=proj", "name=exp", "exist_ok=True"), cwd, env)
    save_dir = Path(line_with(out, "pairhook train: results in ").rsplit(" ", 1)[1])
    out = run([sys.executable, "-c", "from ultralytics.cfg import get_cfg, get_save_dir; print('YOLO', get_save_dir("
               "get_cfg(overrides=dict(project='proj', name='exp', exist_ok=True, mode='train', task='detect'))))"],
              cwd, env)
    assert save_dir == cwd / line_with(out, "YOLO ").split(" ", 1)[1]  # where `yolo train` puts it (8.1: in cwd)
    assert (save_dir / "results.csv").is_file()
    after = files(tmp)
    assert after[settings] == before[settings] and settings_files(tmp) == [settings]
    created = [p for p in after if p not in before and not p.is_relative_to(save_dir)]
    assert not created, f"files written outside the run: {created}"


def test_settings_are_shown_as_yolo_shows_them(user):
    yolo = Path(sys.executable).parent / "yolo"
    if not yolo.exists():
        pytest.skip("no `yolo` script next to this Python")
    user["cwd"].mkdir()
    env = user_env(user["home"], YOLO_CONFIG_DIR=str(user["tmp"] / "cfg"), YOLO_OFFLINE="True")
    run([str(yolo), "settings", "tensorboard=False"], user["cwd"], env)  # creates the file, as a user's first call
    assert run(pairhook_cmd("settings"), user["cwd"], env) == run([str(yolo), "settings"], user["cwd"], env)
    changed = run(pairhook_cmd("settings", "tensorboard", "=", "True"), user["cwd"], env)
    (settings,) = settings_files(user["tmp"])
    assert str(settings) in changed and yaml.safe_load(settings.read_text())["tensorboard"] is True


def test_setup_offline_leaves_an_existing_config_dir_alone(tmp_path):
    """Examples and benchmarks call setup_offline() with no argument: a user's YOLO_CONFIG_DIR is used as it is."""
    cfg = tmp_path / "cfg"
    env = user_env(tmp_path / "home", YOLO_CONFIG_DIR=str(cfg))  # an existing, empty folder
    code = ("from pairhook.offline import setup_offline; print('DIR', setup_offline()); "
            "from ultralytics.utils import SETTINGS, ONLINE; print('ONLINE', ONLINE, 'SYNC', SETTINGS['sync'])")
    first = run([sys.executable, "-c", code], tmp_path, env)  # Ultralytics creates its settings file
    assert f"DIR {cfg}" in first and "ONLINE False SYNC True" in first
    before = files(cfg)
    run([sys.executable, "-c", code], tmp_path, env)
    assert files(cfg) == before  # no `sync: false`, no font copies


def test_setup_offline_removes_the_temporary_config_dir_it_made(tmp_path):
    """Without a config dir, setup_offline() makes a temporary one (15 MB with the fonts); it is gone when the
    process exits, so repeated runs (a CI machine's test sessions) do not fill the disk."""
    env = user_env(tmp_path / "home", TMPDIR=str(tmp_path))
    env.pop("YOLO_CONFIG_DIR", None)
    code = ("from pairhook.offline import setup_offline; d = setup_offline(); "
            "print('DIR', d, (d / 'Arial.ttf').is_file())")
    out = run([sys.executable, "-c", code], tmp_path, env)
    made = Path(out.split("DIR ", 1)[1].split()[0])
    assert made.parent == tmp_path and "True" in out  # it was there, prepared, during the run
    assert not made.exists()


@pytest.mark.parametrize("env, default, expected", [
    ({}, False, False),
    ({}, True, True),
    ({"PAIRHOOK_OFFLINE": "1"}, False, True),
    ({"PAIRHOOK_OFFLINE": "0"}, True, False),
    ({"YOLO_OFFLINE": "True"}, False, True),
    ({"YOLO_OFFLINE": "false"}, True, True),
    ({"YOLO_OFFLINE": "1", "PAIRHOOK_OFFLINE": "false"}, False, False),
    ({"PAIRHOOK_ONLINE": "1"}, True, False),
])
def test_offline_only_when_asked(env, default, expected, monkeypatch):
    for key in ("PAIRHOOK_OFFLINE", "YOLO_OFFLINE", "PAIRHOOK_ONLINE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert offline.offline_requested(default) is expected


def test_local_fonts_answer_without_download_and_are_undone(tmp_path, monkeypatch):
    import ultralytics.utils
    from ultralytics.data import utils as data_utils
    from ultralytics.utils import checks, plotting

    monkeypatch.setattr(ultralytics.utils, "USER_CONFIG_DIR", tmp_path)  # no font there
    originals = (checks.check_font, plotting.check_font, data_utils.check_font)
    with compat.local_fonts():
        font = data_utils.check_font("Arial.Unicode.ttf")
        assert Path(font).name == "DejaVuSans.ttf" and Path(font).is_file()
        assert plotting.check_font("Arial.ttf") == font
    assert (checks.check_font, plotting.check_font, data_utils.check_font) == originals
    assert not list(tmp_path.iterdir())  # nothing written


def test_benchmarks_do_not_set_up_offline_after_ultralytics_is_imported():
    """Importing the benchmark helpers in the test session used to warn "setup_offline() called after ultralytics
    was imported"."""
    import importlib

    import ultralytics  # noqa: F401

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import _common

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            importlib.reload(_common)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))

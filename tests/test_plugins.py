"""The registry: in-process plugins, entry-point discovery and its off switch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import pairhook


def make_distribution(root, name="demo_plugin", module_body=None, target="demo_plugin"):
    """An installed-looking distribution on ``root``: a module plus a dist-info with a ``pairhook`` entry point."""
    (root / f"{name}.py").write_text(module_body or textwrap.dedent('''
        import pairhook

        @pairhook.hookimpl
        def pairhook_register_regularizers(register):
            register("ep_term", lambda ctx, *, k=1.0: ctx.zero() + k, loss_name="ep_loss")
    '''))
    info = root / f"{name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[pairhook]\n{name} = {target}\n")


PROBE = """
import pairhook
from pairhook import plugins
regs = plugins.registry()
print("ep_term" in regs, regs["ep_term"].loss_name if "ep_term" in regs else None,
      regs["ep_term"].source if "ep_term" in regs else None, "pair_consistency" in regs)
"""


def run_probe(path, **env):
    base = {k: v for k, v in os.environ.items() if k != "PAIRHOOK_DISABLE_ENTRYPOINTS"}
    env = {**base, "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")]), **env}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split("\n")[-2], out.stderr


def test_entry_point_discovered_and_switchable(tmp_path):
    make_distribution(tmp_path)
    found, _ = run_probe(tmp_path)
    assert found == "True ep_loss entry point demo_plugin (demo_plugin 1.2.3) True"
    hidden, _ = run_probe(tmp_path, PAIRHOOK_DISABLE_ENTRYPOINTS="1")
    assert hidden == "False None None True"


def test_broken_entry_point_is_reported_and_the_rest_keep_working(tmp_path):
    make_distribution(tmp_path, module_body="raise ImportError('missing dependency xyz')\n")
    result, stderr = run_probe(tmp_path)
    assert result == "False None None True"
    assert "demo_plugin" in stderr and "missing dependency xyz" in stderr


def test_register_unregister_and_get_regularizer():
    class Plugin:
        @pairhook.hookimpl
        def pairhook_register_regularizers(self, register):
            register("tmp_term", fn)

    def fn(ctx):
        return ctx.zero()

    plugin = Plugin()
    with pairhook.registered(plugin):
        assert pairhook.get_regularizer("tmp_term") is fn
        assert pairhook.registry()["tmp_term"].loss_name == "tmp_term_loss"
        assert pairhook.registry()["tmp_term"].source == "in-process"
    with pytest.raises(KeyError,
                       match="tmp_term.*available: pair_consistency, pair_feature, pair_quality, symmetric_kl"):
        pairhook.get_regularizer("tmp_term")


def test_two_plugins_claiming_one_name_is_an_error():
    class Twin:
        @pairhook.hookimpl
        def pairhook_register_regularizers(self, register):
            register("pair_consistency", lambda ctx: ctx.zero())

    twin = Twin()
    with pairhook.registered(twin):
        with pytest.raises(ValueError, match="registered twice"):
            pairhook.registry()


def test_in_process_plugin_trains_with_the_tiny_training_fixture(tiny_training):
    """The fixture plugin authors use: the term's column in results.csv, pairs reaching it, cleanup after the run."""
    seen = []

    class Plugin:
        @pairhook.hookimpl
        def pairhook_register_regularizers(self, register):
            def const(ctx, *, value: float = 1.0):
                seen.append((ctx.training, ctx.num_pairs))
                return ctx.zero() + value

            register("fixture_const", const, loss_name="fx_loss")

    rows = tiny_training({"fixture_const": {"weight": 2.0, "value": 0.3}}, plugins=[Plugin()], epochs=1, imgsz=64)
    assert len(rows) == 1
    assert rows[0]["train/fx_loss"] == pytest.approx(0.6) and rows[0]["val/fx_loss"] == pytest.approx(0.6)
    assert any(training and pairs > 0 for training, pairs in seen)  # generated data carries pairs to the term
    assert any(not training for training, _ in seen)
    assert "fixture_const" not in pairhook.registry()


def test_pytest_plugin_import_changes_nothing():
    """pytest imports pairhook.pytest_plugin in every project where pairhook is installed: no Ultralytics, no env."""
    probe = ("import os, sys; before = dict(os.environ); import pairhook.pytest_plugin; "
             "print(sorted(m for m in ('ultralytics', 'pairhook.testing', 'pairhook.synthetic') if m in sys.modules), "
             "dict(os.environ) == before)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "PAIRHOOK_"))}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == "[] True"


def test_plugin_importing_from_pairhook_at_its_top_loads_through_its_entry_point(tmp_path):
    """Plugins load on first use, not while ``pairhook`` itself is being imported, so this ordinary import works."""
    make_distribution(tmp_path, module_body=textwrap.dedent('''
        from pairhook import PairContext, hookimpl, install

        @hookimpl
        def pairhook_register_regularizers(register):
            register("ep_term", lambda ctx, *, k=1.0: ctx.zero() + k, loss_name="ep_loss")
    '''))
    found, stderr = run_probe(tmp_path)
    assert found == "True ep_loss entry point demo_plugin (demo_plugin 1.2.3) True", stderr


def test_importing_pairhook_loads_no_plugin(tmp_path):
    make_distribution(tmp_path)
    probe = ("import sys, pairhook\nfrom pairhook import plugins\nbefore = 'demo_plugin' in sys.modules\n"
             "pairhook.registry()\nprint(before, 'demo_plugin' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    env.pop("PAIRHOOK_DISABLE_ENTRYPOINTS", None)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.split() == ["False", "True"], out.stderr[-2000:]


pytest_plugins = ["pytester"]


def test_pairhook_register_fixture_unregisters_after_the_test(pytester):
    pytester.makeconftest('pytest_plugins = ["pairhook.pytest_plugin"]')
    pytester.makepyfile(textwrap.dedent('''
        import pairhook

        class Plugin:
            @pairhook.hookimpl
            def pairhook_register_regularizers(self, register):
                register("throwaway", lambda ctx: ctx.zero())

        def test_registered(pairhook_register):
            assert pairhook_register(Plugin()) and "throwaway" in pairhook.registry()

        def test_gone_afterwards():
            assert "throwaway" not in pairhook.registry()
    '''))
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)

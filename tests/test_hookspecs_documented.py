"""Meta-tests: every hook is documented and tested, and the plugin-author docs match the code."""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
from pathlib import Path

import pytest

import pairhook
from pairhook import hookspecs, pytest_plugin
from pairhook.context import PairContext

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "writing-a-regularizer.md"
HOOKS = sorted(name for name, fn in vars(hookspecs).items() if hasattr(fn, "pairhook_spec"))


def test_there_are_hooks():
    assert "pairhook_register_regularizers" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_have_docstrings(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook))
    assert doc and len(doc) > 80, f"hookspec {hook} needs a docstring saying when it is called and what it gets"


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_are_documented(hook):
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"### `{hook}({params})`" in DOCS.read_text(), f"{DOCS.name} needs a '### `{hook}({params})`' entry"


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_have_tests(hook):
    tests = [p for p in (ROOT / "tests").glob("test_*.py") if p.name != Path(__file__).name]
    assert any(hook in p.read_text() for p in tests), f"no test in tests/ mentions the hook {hook}"


def test_every_pair_context_field_and_helper_is_documented():
    text = DOCS.read_text()
    public = [f.name for f in dataclasses.fields(PairContext)]
    public += [n for n, v in vars(PairContext).items()
               if not n.startswith("_") and (callable(v) or isinstance(v, property))]
    missing = [n for n in public if f"`{n}" not in text]
    assert not missing, f"{DOCS.name} does not describe PairContext.{', '.join(missing)}"


def test_every_fixture_is_documented():
    fixtures = [n for n, v in vars(pytest_plugin).items() if hasattr(v, "_fixture_function_marker") or
                type(v).__name__ == "FixtureFunctionDefinition"]
    assert set(fixtures) == {"pair_context_factory", "tiny_training", "pairhook_register"}
    text = DOCS.read_text()
    assert all(f"**`{n}`**" in text for n in fixtures)


def test_the_minimal_plugin_in_the_docs_works(pair_context_factory):
    """The page's 'complete minimal plugin' runs: registered in-process it is listed and gives a finite value."""
    section = DOCS.read_text().split("## A complete minimal plugin", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    plugin = types.ModuleType("docs_minimal_plugin")
    exec(compile(code, str(DOCS), "exec"), plugin.__dict__)
    with pairhook.registered(plugin):
        reg = pairhook.registry()["fg_entropy"]
        assert reg.source == "in-process" and reg.loss_name == "fg_entropy_loss" and reg.options == {"eps": 1e-6}
        ctx = pair_context_factory(B=2, A=16, C=3, G=4, pairs=2)
        value = reg.fn(ctx)
        assert value.ndim == 0 and 0 < value.item() < 3 * 0.7  # at most C x ln 2 per anchor
        value.backward()
        assert ctx.logits.grad[~ctx.fg_mask].abs().sum() == 0 and ctx.logits.grad[ctx.fg_mask].abs().sum() > 0
        with pytest.raises(ValueError, match="eps"):
            reg.fn(ctx, eps=0.0)

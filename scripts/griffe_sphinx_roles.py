"""Griffe extension for the docs site (mkdocs.yml): pairhook's docstrings are Google style with Sphinx roles
(``:func:`install```, ``:class:`~pairhook.tune.results.TuneResult```), which mkdocstrings would print as they are
written. Each role becomes inline code naming the object (the last part of the path for a ``~`` target), as a reader
of the source sees it; the docstrings themselves are left alone."""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?(?:mod|func|class|meth|attr|data|exc|obj):`(~?)([^`]+)`")


def plain(text: str) -> str:
    return ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


class SphinxRoles(Extension):
    def on_object(self, *, obj: Object, **kwargs: Any) -> None:  # noqa: ARG002 - griffe's hook signature
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)

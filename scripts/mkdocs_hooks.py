"""MkDocs hook (mkdocs.yml ``hooks:``): writes the API reference's ``:::`` directives from the code at build time.

``docs/reference.md`` holds two markers. ``<!-- pairhook-all -->`` becomes one mkdocstrings directive for every name
in ``pairhook.__all__``; ``<!-- pairhook-hookspecs -->`` one for every hook specification in
``pairhook.hookspecs`` (the functions pluggy marks with ``pairhook_spec``). No module name is written by hand, so a
module renamed or a name added to ``__all__`` shows up in the reference on the next build. A name is documented by
its public path (``pairhook.install``) unless a submodule of that name shadows it for a static reader
(``pairhook.evaluate`` the function and ``pairhook/evaluate.py``): then by the path where it is defined.
"""

from __future__ import annotations

import importlib.util
import inspect

OPTIONS = """
    options:
      show_root_heading: true
      show_root_full_path: false
      heading_level: 3
"""


def public_path(module: str, name: str) -> str:
    """The import path mkdocstrings should read ``module.name`` from."""
    mod = importlib.import_module(module)
    obj = getattr(mod, name)
    package = hasattr(mod, "__path__")
    shadowed = package and not inspect.ismodule(obj) and importlib.util.find_spec(f"{module}.{name}") is not None
    if shadowed and getattr(obj, "__module__", None) and getattr(obj, "__qualname__", None):
        return f"{obj.__module__}.{obj.__qualname__}"
    return f"{module}.{name}"


def directives() -> dict[str, str]:
    import pairhook
    from pairhook import hookspecs

    hooks = sorted(n for n, fn in vars(hookspecs).items() if hasattr(fn, "pairhook_spec"))
    return {
        "<!-- pairhook-all -->": "\n".join(f"::: {public_path('pairhook', n)}{OPTIONS}" for n in pairhook.__all__),
        "<!-- pairhook-hookspecs -->": "\n".join(f"::: {public_path(hookspecs.__name__, n)}{OPTIONS}"
                                                 for n in hooks),
    }


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs' hook signature
    if page.file.src_uri != "reference.md":
        return markdown
    for marker, text in directives().items():
        if marker not in markdown:
            raise ValueError(f"docs/reference.md lost its marker {marker}")
        markdown = markdown.replace(marker, text)
    return markdown

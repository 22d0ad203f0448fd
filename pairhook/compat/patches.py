"""Every Ultralytics attribute pairhook replaces, declared once: :data:`PATCHES`.

pairhook changes no Ultralytics class. It sets attributes on instances (the ``YOLO`` model, its trainer, validator,
datasets, criterion) and, for the duration of one call, on three modules' names. Each of those goes through
:func:`replace` and back through :func:`restore`, which refuse any attribute not declared here; :func:`replaced`
lists what is replaced in this process right now (``pairhook.replaced()``, and ``repr(handle)``). The trainer that
``model.train()`` builds through the replaced ``YOLO._smart_load`` is an instance of pairhook's subclass of
Ultralytics' trainer class (:mod:`pairhook.ranks`), which adds nothing but the multi-GPU hand-over.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

_ABSENT = object()


@dataclass(frozen=True)
class Patch:
    """One attribute pairhook replaces: ``owner`` (the kind of object, or the module) holds ``attribute``."""

    owner: str
    attribute: str
    purpose: str
    restored: str

    def __str__(self) -> str:
        return f"{self.owner}.{self.attribute}"


_INSTALL = "by uninstall()"
_TRAINING = "when training ends (teardown)"
_CALL = "when the call returns"
_FONT = "offline `pairhook` commands and the demo: no font download probe"
PATCHES: tuple[Patch, ...] = (
    Patch("YOLO", "_smart_load", "builds the trainer from pairhook's subclass, which hands the installation to "
          "multi-GPU ranks (pairhook.ranks)", _INSTALL),
    Patch("YOLO", "tune", "model.tune() trains every trial with the installation (pairhook.tuning.model_tune)",
          _INSTALL),
    Patch("YOLO", "reset_callbacks", "during model.tune(use_ray=True): each Ray trial installs pairhook again after "
          "Ultralytics resets its callbacks", _CALL),
    Patch("trainer", "build_dataset", "datasets carry the pairs (pairhook.pairs.attach.DatasetBuilder)", _TRAINING),
    Patch("trainer", "validate", "the metrics it returns get the epoch's term activity columns", _INSTALL),
    Patch("model", "criterion", "the loss with pairhook's terms (pairhook.criterion.PairhookCriterion), on the "
          "trained model and its EMA", _TRAINING),
    Patch("criterion", "assigner", "records the task-aligned assigner's decisions for the terms", _TRAINING),
    Patch("dataset", "get_image_and_label", "tags each label row with its pair", _TRAINING),
    Patch("dataset", "collate_fn", "collates the pair rows into the batch", _TRAINING),
    Patch("loader", "collate_fn", "the carrier's (Ultralytics builds the loaders from the carried datasets; a "
          "multi-GPU rank's loaders built before them get it from pairhook)", _TRAINING),
    Patch("validator", "build_dataset", "pairhook.evaluate(): the validation dataset carries the pairs",
          "with the validator (one evaluate() call)"),
    Patch("validator", "update_metrics", "the pair metrics see every batch's predictions", _TRAINING),
    Patch("validator", "get_stats", "its stats include the pair metrics", _TRAINING),
    Patch("validator", "print_results", "the pair metrics are printed after its table", _TRAINING),
    Patch("validator", "gather_stats", "multi-GPU ranks' pair counts are summed", _TRAINING),
    Patch("validator", "_pairhook_metrics", "(added) the pair-metrics collector", _TRAINING),
    Patch("ultralytics.engine.tuner", "subprocess", "model.tune() trials run pairhook's trial process", _CALL),
    Patch("ultralytics.engine.trainer", "subprocess", "model.tune() trials run pairhook's trial process", _CALL),
    Patch("ultralytics.utils.checks", "check_font", _FONT, _CALL),
    Patch("ultralytics.utils.plotting", "check_font", _FONT, _CALL),
    Patch("ultralytics.data.utils", "check_font", _FONT, _CALL),
)
_BY_NAME = {str(p): p for p in PATCHES}

#: (id(obj), attribute) -> (reference to obj, patch, value before); what is replaced now.
_live: dict[tuple[int, str], tuple[Any, Patch, Any]] = {}


def _declared(owner: str, attribute: str) -> Patch:
    patch = _BY_NAME.get(f"{owner}.{attribute}")
    if patch is None:
        raise AssertionError(f"pairhook: {owner}.{attribute} is not declared in pairhook.compat.patches.PATCHES")
    return patch


def _own_value(obj: Any, attribute: str) -> Any:
    """The value ``obj`` holds itself (instance dict, or an ``nn.Module``'s submodules), else ``_ABSENT``."""
    d = getattr(obj, "__dict__", {})
    if attribute in d:
        return d[attribute]
    return d.get("_modules", {}).get(attribute, _ABSENT)


def _ref(obj: Any) -> Any:
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


def replace(owner: str, obj: Any, attribute: str, value: Any) -> None:
    """Set the declared ``owner.attribute`` of ``obj`` to ``value``, remembering what ``obj`` held before."""
    patch = _declared(owner, attribute)
    key = (id(obj), attribute)
    if key not in _live or _live[key][0]() is not obj:
        _live[key] = (_ref(obj), patch, _own_value(obj, attribute))
    setattr(obj, attribute, value)


def restore(owner: str, obj: Any, attribute: str, original: Any = _ABSENT) -> None:
    """Put back what ``obj.attribute`` was before :func:`replace` (or ``original`` if given); ``obj`` then holds no
    value of its own where it held none (the class's attribute shows again)."""
    _declared(owner, attribute)
    ref, _, before = _live.pop((id(obj), attribute), (None, None, _ABSENT))
    if ref is not None and ref() is not obj:
        before = _ABSENT
    value = original if original is not _ABSENT else before
    if value is not _ABSENT:
        setattr(obj, attribute, value)
    elif _own_value(obj, attribute) is not _ABSENT:
        delattr(obj, attribute)


def is_replaced(obj: Any, attribute: str) -> bool:
    entry = _live.get((id(obj), attribute))
    return entry is not None and entry[0]() is obj


def replaced(*objects: Any) -> list[str]:
    """What pairhook has replaced in this process right now, one ``owner.attribute`` (``on <class>``) per object;
    with ``objects``, only on those."""
    out = []
    for key, (ref, patch, _) in list(_live.items()):
        obj = ref()
        if obj is None:
            del _live[key]
        elif not objects or any(obj is o for o in objects):
            where = "" if "." in patch.owner else f" on {type(obj).__name__}"
            out.append(f"{patch}{where}")
    return out

"""``install()`` / ``uninstall()``: the Ultralytics callbacks that put the criterion wrapper in place.

Only callbacks on the given ``YOLO`` instance are registered; no Ultralytics class or module is patched.
"""

from __future__ import annotations

import logging
import math
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

import torch
import yaml

from pairhook import compat, plugins
from pairhook.context import PairContext
from pairhook.criterion import PairhookCriterion

LOGGER = logging.getLogger("pairhook")

RegularizerSpec = Union[str, Sequence[str], Mapping[str, Mapping[str, Any]], None]
DEFAULT_REGULARIZERS = "pair_consistency"


@dataclass(frozen=True)
class ActiveRegularizer:
    """A regularizer as installed: the registered callable with the user's weight and options."""

    name: str
    fn: Callable[..., torch.Tensor]
    loss_name: str
    weight: float = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, ctx: PairContext) -> torch.Tensor:
        """The term as it enters the loss, per image: ``weight * fn(ctx, **options)`` in fp32."""
        value = self.fn(ctx, **self.options)
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            raise TypeError(
                f"pairhook: regularizer {self.name!r} must return a 0-d tensor, got "
                f"{type(value).__name__}{tuple(value.shape) if isinstance(value, torch.Tensor) else ''}"
            )
        return value.float() * self.weight


def parse_regularizers(spec: RegularizerSpec) -> list[ActiveRegularizer]:
    """Resolve a name, a list of names or a ``{name: {weight, **options}}`` dict against the registry."""
    if spec is None:
        return []
    if isinstance(spec, str):
        spec = {spec: {}}
    elif not isinstance(spec, Mapping):
        spec = {name: {} for name in spec}
    registry = plugins.registry()
    active = []
    for name, opts in spec.items():
        if name not in registry:
            raise ValueError(f"unknown regularizer {name!r}; available: {', '.join(sorted(registry)) or 'none'}")
        opts = dict(opts or {})
        weight = opts.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"regularizer {name!r}: weight must be a finite number >= 0, got {weight!r}")
        reg = registry[name]
        accepted = reg.options
        unknown = sorted(set(opts) - set(accepted))
        if unknown:
            raise ValueError(
                f"regularizer {name!r} has no option {', '.join(map(repr, unknown))}; "
                f"its options are: weight, {', '.join(accepted) or '(none)'}"
            )
        active.append(ActiveRegularizer(name, reg.fn, reg.loss_name, float(weight), opts))
    names = [r.loss_name for r in active]
    if len(set(names)) != len(names):
        raise ValueError(f"two active regularizers share a loss name: {names}")
    return active


def read_config(path: str | Path) -> dict[str, Any]:
    """Read an install config YAML (keys: ``regularizers``, ``pairs``) with ``yaml.safe_load``."""
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"cannot read pairhook config {path}: {e}") from e
    if not isinstance(cfg, dict):
        raise ValueError(f"pairhook config {path}: expected a mapping at the top level, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - {"regularizers", "pairs"})
    if unknown:
        raise ValueError(f"pairhook config {path}: unknown keys {unknown}; expected 'regularizers' and/or 'pairs'")
    if cfg.get("pairs") is not None:
        cfg["pairs"] = str((path.parent / cfg["pairs"]).resolve())
    return cfg


class Installation:
    """pairhook installed on one ``YOLO`` model: holds the active regularizers and the callbacks that apply them."""

    EVENTS = ("on_pretrain_routine_end", "on_train_epoch_start", "on_train_batch_start", "on_train_epoch_end",
              "on_train_end")

    def __init__(self, model: Any, active: list[ActiveRegularizer], pairs: str | None = None) -> None:
        self._model = weakref.ref(model)
        self.active = active
        self.pairs = pairs
        self.epoch, self.epochs = 0, 1

    @property
    def loss_names(self) -> list[str]:
        return [r.loss_name for r in self.active]

    # Callbacks -------------------------------------------------------------------------------------------------
    def on_pretrain_routine_end(self, trainer: Any) -> None:
        compat.add_loss_names(trainer, self.loss_names)
        self.epoch, self.epochs = trainer.start_epoch, trainer.epochs
        self._wrap(compat.unwrap(trainer.model), training=True)

    def on_train_epoch_start(self, trainer: Any) -> None:
        self.epoch, self.epochs = trainer.epoch, trainer.epochs

    def on_train_batch_start(self, trainer: Any) -> None:
        model = compat.unwrap(trainer.model)
        crit = getattr(model, "criterion", None)
        if not (isinstance(crit, PairhookCriterion) and crit.installation is self):
            self._wrap(model, training=True)  # Ultralytics rebuilt or removed the criterion

    def on_train_epoch_end(self, trainer: Any) -> None:
        ema = compat.ema_model(trainer)
        if ema is not None:
            self._wrap(ema, training=False)  # training-time validation computes its loss on the EMA model

    def on_train_end(self, trainer: Any) -> None:
        for model in (compat.unwrap(trainer.model), compat.ema_model(trainer)):
            if model is not None:
                _unwrap(model)

    # Plumbing --------------------------------------------------------------------------------------------------
    def _wrap(self, model: Any, training: bool) -> None:
        crit = compat.criterion_of(model)
        if isinstance(crit, PairhookCriterion):
            if crit.installation is self:
                return
            crit = crit.restore()
        model.criterion = PairhookCriterion(crit, self, training)

    def decode_batch(self, batch: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor | None]:
        """The batch as Ultralytics' loss must see it, and the batch's pair rows (``None`` if no pairs)."""
        return batch, None

    def uninstall(self) -> None:
        """Remove the callbacks from the model and restore any criterion they wrapped."""
        model = self._model()
        if model is not None:
            _remove_callbacks(model, self)
            trainer = getattr(model, "trainer", None)
            if trainer is not None:
                self.on_train_end(trainer)
                compat.remove_loss_names(trainer, self.loss_names)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_model"] = None  # a weakref cannot be pickled; worker processes never uninstall
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._model is None:
            self._model = lambda: None


def _unwrap(model: Any) -> None:
    crit = getattr(model, "criterion", None)
    if isinstance(crit, PairhookCriterion):
        model.criterion = crit.restore()


def _remove_callbacks(model: Any, only: Installation | None = None) -> list[Installation]:
    removed = []
    for event, funcs in getattr(model, "callbacks", {}).items():
        for fn in list(funcs):
            owner = getattr(fn, "__self__", None)
            if isinstance(owner, Installation) and (only is None or owner is only):
                funcs.remove(fn)
                removed.append(owner)
    return removed


def install(
    model: Any,
    *,
    pairs: str | Path | None = None,
    regularizers: RegularizerSpec = DEFAULT_REGULARIZERS,
    config: str | Path | None = None,
) -> Installation:
    """Install pairhook on an ``ultralytics.YOLO`` model; call before ``model.train()``.

    Args:
        model: the ``YOLO`` instance. Only callbacks on this instance are registered.
        pairs: path of a pair file (see the README). Without one, the dataset YAML's ``pairs:`` key is used if present.
        regularizers: a name, a list of names, or ``{name: {"weight": w, **options}}``.
        config: a YAML file with the same keys; an argument left at its default takes the config's value.

    Returns:
        The :class:`Installation`; ``handle.uninstall()`` removes it. Installing again replaces it.

    Raises:
        ValueError: unknown regularizer or option, bad weight, unreadable config, unsupported task.
        RuntimeError: an Ultralytics release outside the supported range.
    """
    compat.check_supported()
    if not hasattr(model, "add_callback") or not hasattr(model, "callbacks"):
        raise TypeError(f"pairhook.install expects an ultralytics YOLO model, got {type(model).__name__}")
    cfg = read_config(config) if config is not None else {}
    if regularizers == DEFAULT_REGULARIZERS and "regularizers" in cfg:
        regularizers = cfg["regularizers"]
    if pairs is None:
        pairs = cfg.get("pairs")
    active = parse_regularizers(regularizers)
    if getattr(model, "model", None) is not None and hasattr(model.model, "init_criterion"):
        compat.check_task(model.model)
    uninstall(model)
    handle = Installation(model, active, str(pairs) if pairs is not None else None)
    for event in Installation.EVENTS:
        model.add_callback(event, getattr(handle, event))
    return handle


def uninstall(model: Any) -> None:
    """Remove every pairhook installation from ``model`` (no-op if there is none)."""
    for owner in {id(o): o for o in _remove_callbacks(model)}.values():
        owner.uninstall()

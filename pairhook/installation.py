"""``install()`` / ``uninstall()``: the Ultralytics callbacks that put the criterion wrapper in place.

Only callbacks on the given ``YOLO`` instance are registered; no Ultralytics class or module is patched.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

import torch
import yaml

from pairhook import compat, plugins, validation, workers
from pairhook.context import PairContext
from pairhook.criterion import PairhookCriterion
from pairhook.pairs import PairCarrier, PairFile, image_stem, load_pair_file, log, match_dataset, resolve_pairs_path


RegularizerSpec = Union[str, Sequence[str], Mapping[str, Mapping[str, Any]], None]
DEFAULT_REGULARIZERS = "pair_consistency"
DEFAULT_MATCH_IOU = 0.5
CONFIG_KEYS = {"regularizers", "pairs", "match_iou"}


class RegularizerError(RuntimeError):
    """A regularizer raised during training; the message names it and the plugin it came from."""


@dataclass(frozen=True)
class ActiveRegularizer:
    """A regularizer as installed: the registered callable with the user's weight and options."""

    name: str
    fn: Callable[..., torch.Tensor]
    loss_name: str
    weight: float = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = "in-process"
    _warned: set = field(default_factory=set, init=False, repr=False, compare=False)

    @property
    def label(self) -> str:
        """``'name' (from source)``, for messages."""
        return f"regularizer {self.name!r} (from {self.source})"

    def __call__(self, ctx: PairContext) -> torch.Tensor:
        """The term as it enters the loss, per image: ``weight * fn(ctx, **options)`` in fp32.

        An exception from the plugin is re-raised as :class:`RegularizerError` naming the regularizer and its
        plugin; a result that is not a 0-d floating-point tensor is a ``TypeError``. A result without gradient while
        the logits have one is allowed (it is logged but trains nothing) and warned about once.
        """
        try:
            value = self.fn(ctx, **self.options)
        except Exception as e:
            raise RegularizerError(f"pairhook: {self.label} raised {type(e).__name__}: {e}") from e
        if not isinstance(value, torch.Tensor) or value.dim() != 0 or not value.is_floating_point():
            got = (f"a {value.dtype} tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor)
                   else type(value).__name__)
            raise TypeError(f"pairhook: {self.label} must return a 0-d floating-point tensor, got {got}")
        if ctx.logits.requires_grad and not value.requires_grad and "no-grad" not in self._warned:
            self._warned.add("no-grad")
            warn(f"{self.label} returned a tensor without gradient: it is logged but does not train the model")
        return value.float() * self.weight


def parse_regularizers(spec: RegularizerSpec) -> list[ActiveRegularizer]:
    """Resolve a name, a list of names or a ``{name: {weight, **options}}`` dict against the registry."""
    if spec is None:
        return []
    if isinstance(spec, str):
        spec = {spec: {}}
    elif isinstance(spec, (list, tuple)) and all(isinstance(n, str) for n in spec):
        spec = {name: {} for name in spec}
    elif not isinstance(spec, Mapping):
        raise ValueError(f"regularizers must be a name, a list of names or a mapping of name to options, got {spec!r}")
    registry = plugins.registry()
    active = []
    for name, opts in spec.items():
        if name not in registry:
            raise ValueError(f"unknown regularizer {name!r}; available: {', '.join(sorted(registry)) or 'none'}")
        if opts is not None and not isinstance(opts, Mapping):
            raise ValueError(f"regularizer {name!r}: options must be a mapping such as {{weight: 1.0}}, got {opts!r}")
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
        _check_option_types(name, opts, accepted)
        active.append(ActiveRegularizer(name, reg.fn, reg.loss_name, float(weight), opts, reg.source))
        if reg.source == "built-in":
            _dry_run(active[-1])
    names = [r.loss_name for r in active]
    if len(set(names)) != len(names):
        raise ValueError(f"two active regularizers share a loss name: {names}")
    return active


def _check_option_types(name: str, opts: Mapping[str, Any], accepted: Mapping[str, Any]) -> None:
    """An option whose default is a number, string or bool must be given as one (ints pass for floats)."""
    for key, value in opts.items():
        default = accepted[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif isinstance(default, str):
            ok = isinstance(value, str)
        else:
            continue  # None, required or another type: the regularizer checks it
        if not ok:
            raise ValueError(
                f"regularizer {name!r}: option {key!r} must be a {type(default).__name__} like its default "
                f"{default!r}, got {value!r}"
            )


def _dry_run(reg: ActiveRegularizer) -> None:
    """Call a built-in once on an empty context so a bad option value fails at ``install()``, not at batch 1."""
    ctx = PairContext(logits=torch.zeros(1, 1, 1), target_scores=torch.zeros(1, 1, 1),
                      target_bboxes=torch.zeros(1, 1, 4), fg_mask=torch.zeros(1, 1, dtype=torch.bool),
                      target_gt_idx=torch.zeros(1, 1, dtype=torch.long), gt_labels=torch.zeros(1, 0, dtype=torch.long),
                      gt_bboxes=torch.zeros(1, 0, 4), training=False)
    try:
        reg.fn(ctx, **reg.options)
    except (ValueError, TypeError) as e:
        raise ValueError(f"regularizer {reg.name!r}: {e}") from e


def warn(message: str) -> None:
    from ultralytics.utils import LOGGER

    LOGGER.warning(f"pairhook: {message}")


def read_config(path: str | Path) -> dict[str, Any]:
    """Read an install config YAML (keys: ``regularizers``, ``pairs``) with ``yaml.safe_load``."""
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"cannot read pairhook config {path}: {e}") from e
    if not isinstance(cfg, dict):
        raise ValueError(f"pairhook config {path}: expected a mapping at the top level, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - CONFIG_KEYS)
    if unknown:
        raise ValueError(f"pairhook config {path}: unknown keys {unknown}; expected some of {sorted(CONFIG_KEYS)}")
    if cfg.get("pairs") is not None and not isinstance(cfg["pairs"], str):
        raise ValueError(f"pairhook config {path}: 'pairs' must be a path, got {cfg['pairs']!r}")
    if cfg.get("pairs") is not None:
        cfg["pairs"] = str((path.parent / cfg["pairs"]).resolve())
    return cfg


class Installation:
    """pairhook installed on one ``YOLO`` model: holds the active regularizers and the callbacks that apply them."""

    EVENTS = ("on_pretrain_routine_start", "on_pretrain_routine_end", "on_train_epoch_start", "on_train_batch_start",
              "on_train_batch_end", "on_train_epoch_end", "on_val_start", "on_fit_epoch_end", "on_train_end")

    def __init__(self, model: Any, active: list[ActiveRegularizer], pairs: str | None = None,
                 match_iou: float = DEFAULT_MATCH_IOU) -> None:
        self._model = weakref.ref(model)
        self.active = active
        self.pairs = pairs
        self.match_iou = match_iou
        self.epoch, self.epochs = 0, 1
        self._pair_file: PairFile | None = None
        self._seen_images: set[str] = set()
        self._skips: dict[str, torch.Tensor] = {}  # loss name -> device-side count of skipped batches this epoch
        self.skipped: dict[str, int] = {}  # regularizer name -> batches skipped so far (read once per epoch)

    @property
    def loss_names(self) -> list[str]:
        return [r.loss_name for r in self.active]

    # Callbacks -------------------------------------------------------------------------------------------------
    def on_pretrain_routine_start(self, trainer: Any) -> None:
        """Before any dataset (and so any loader worker) exists: route dataset building through the pair carrier."""
        build = trainer.build_dataset
        trainer.build_dataset = DatasetBuilder(getattr(build, "inner", build), self, trainer)

    def on_pretrain_routine_end(self, trainer: Any) -> None:
        if self._pair_file is not None:
            missing = len(self._pair_file.images - self._seen_images)
            if missing:
                log(f"{missing} image(s) listed in {self._pair_file.path.name} are in neither train nor val")
        self._attach_late(trainer)
        compat.add_loss_names(trainer, self.loss_names)
        self.epoch, self.epochs = trainer.start_epoch, trainer.epochs
        self._wrap(compat.unwrap(trainer.model), training=True)
        validation.on_pretrain_routine_end(trainer)  # after the carriers: pair metrics need the val loader's

    def on_train_epoch_start(self, trainer: Any) -> None:
        self.epoch, self.epochs = trainer.epoch, trainer.epochs

    def on_train_batch_start(self, trainer: Any) -> None:
        model = compat.unwrap(trainer.model)
        crit = getattr(model, "criterion", None)
        if not (isinstance(crit, PairhookCriterion) and crit.installation is self):
            self._wrap(model, training=True)  # Ultralytics rebuilt or removed the criterion

    def on_train_batch_end(self, trainer: Any) -> None:
        compat.align_loss_names(trainer, self.loss_names)

    def on_train_epoch_end(self, trainer: Any) -> None:
        ema = compat.ema_model(trainer)
        if ema is not None:
            self._wrap(ema, training=False)  # training-time validation computes its loss on the EMA model

    def on_val_start(self, validator: Any) -> None:
        validation.on_val_start(validator)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        self.report_skips()
        validation.on_fit_epoch_end(trainer)

    def on_train_end(self, trainer: Any) -> None:
        for model in (compat.unwrap(trainer.model), compat.ema_model(trainer)):
            if model is not None:
                _unwrap(model)
        validation.on_train_end(trainer)

    def skip_counter(self, loss_name: str, device: torch.device) -> torch.Tensor:
        """The 0-d device-side counter of batches whose ``loss_name`` term was not finite and so was skipped."""
        count = self._skips.get(loss_name)
        if count is None or count.device != device:
            count = self._skips[loss_name] = torch.zeros((), dtype=torch.long, device=device)
        return count

    def report_skips(self) -> None:
        """Warn, once per epoch and regularizer, how many batches' terms were skipped as non-finite; reset."""
        for reg in self.active:
            count = self._skips.get(reg.loss_name)
            n = int(count) if count is not None else 0  # the one host read per epoch
            if n:
                count.zero_()
                self.skipped[reg.name] = self.skipped.get(reg.name, 0) + n
                warn(f"{reg.label} was NaN or infinite in {n} batch(es) this epoch; its term was skipped (0) there")

    # Plumbing --------------------------------------------------------------------------------------------------
    def _wrap(self, model: Any, training: bool) -> None:
        crit = compat.criterion_of(model)
        if isinstance(crit, PairhookCriterion):
            if crit.installation is self:
                return
            crit = crit.restore()
        model.criterion = PairhookCriterion(crit, self, training)

    def pair_file(self, path: Path) -> PairFile:
        if self._pair_file is None or self._pair_file.path != path:
            self._pair_file = load_pair_file(path)
            log(f"read {self._pair_file.num_pairs} pairs on {len(self._pair_file.images)} images from {path}")
        return self._pair_file

    def attach_pairs(self, dataset: Any, mode: str, data: dict[str, Any]) -> None:
        """Match the pair file against a freshly built dataset and put the carrier on it."""
        path = resolve_pairs_path(self.pairs, data)
        if path is None:
            if mode == "train" and any(r.name in PAIR_REGULARIZERS for r in self.active):
                log("no pair file (install(pairs=...) or 'pairs:' in the data YAML): pair terms will be 0")
            return
        pair_file = self.pair_file(path)
        pair_file.check_classes(len(data["names"]))
        rows, report = match_dataset(pair_file, dataset.labels, self.match_iou, mode)
        log(report.summary())
        self._seen_images.update(image_stem(lb["im_file"]) for lb in dataset.labels)
        PairCarrier(dataset, rows, nc=len(data["names"])).attach(dataset)

    def _attach_late(self, trainer: Any) -> None:
        """Carry pairs on datasets built without ``on_pretrain_routine_start`` (multi-GPU ranks other than 0).

        Their loaders already exist, so they get the carrier's collate function and fresh workers.
        """
        for loader, mode in compat.loaders(trainer):
            dataset = loader.dataset
            if not PairCarrier.attached(dataset):
                self.attach_pairs(dataset, mode, trainer.data)
                if PairCarrier.attached(dataset):
                    compat.refresh_loader(loader, dataset.collate_fn)

    def register_on(self, callbacks: dict[str, list]) -> None:
        """Add this installation's callbacks to a model's or trainer's callback lists."""
        for event in self.EVENTS:
            callbacks.setdefault(event, []).append(getattr(self, event))

    def uninstall(self) -> None:
        """Remove the callbacks from the model and restore any criterion, dataset builder and dataset they changed."""
        model = self._model()
        if model is not None:
            _remove_callbacks(model, self)
            compat.unroute_trainer(model)
            trainer = getattr(model, "trainer", None)
            if trainer is not None:
                self.on_train_end(trainer)
                compat.remove_loss_names(trainer, self.loss_names)
                if isinstance(trainer.__dict__.get("build_dataset"), DatasetBuilder):
                    del trainer.build_dataset
                for loader, _ in compat.loaders(trainer):
                    PairCarrier.detach(loader.dataset)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_model"] = None  # a weakref cannot be pickled; worker processes never uninstall
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._model is None:
            self._model = lambda: None


PAIR_REGULARIZERS = ("pair_consistency", "symmetric_kl")


class DatasetBuilder:
    """Stands in for one trainer's ``build_dataset``: builds as before, then attaches the pair carrier."""

    def __init__(self, inner: Callable[..., Any], installation: Installation, trainer: Any) -> None:
        self.inner, self.installation, self.trainer = inner, installation, trainer

    def __call__(self, img_path: str, mode: str = "train", batch: int | None = None) -> Any:
        dataset = self.inner(img_path, mode, batch)
        self.installation.attach_pairs(dataset, mode, self.trainer.data)
        return dataset


def _unwrap(model: Any) -> None:
    crit = getattr(model, "criterion", None)
    if isinstance(crit, PairhookCriterion):
        model.criterion = crit.restore()


def installations_in(callbacks: dict[str, list]) -> list[Installation]:
    """The distinct installations whose callbacks are in ``callbacks``, in order of appearance."""
    found = {id(fn.__self__): fn.__self__ for funcs in callbacks.values() for fn in funcs
             if isinstance(getattr(fn, "__self__", None), Installation)}
    return list(found.values())


def _remove_callbacks(model: Any, only: Installation | None = None) -> list[Installation]:
    callbacks = getattr(model, "callbacks", {})
    removed = [owner for owner in installations_in(callbacks) if only is None or owner is only]
    for funcs in callbacks.values():
        funcs[:] = [fn for fn in funcs if not any(getattr(fn, "__self__", None) is o for o in removed)]
    return removed


def install(
    model: Any,
    *,
    pairs: str | Path | None = None,
    regularizers: RegularizerSpec = DEFAULT_REGULARIZERS,
    config: str | Path | None = None,
    match_iou: float | None = None,
) -> Installation:
    """Install pairhook on an ``ultralytics.YOLO`` model; call before ``model.train()``.

    Args:
        model: the ``YOLO`` instance. Only callbacks on this instance are registered.
        pairs: path of a pair file (see the README). Without one, the dataset YAML's ``pairs:`` key is used if present.
        regularizers: a name, a list of names, or ``{name: {"weight": w, **options}}``.
        config: a YAML file with the same keys; an argument left at its default takes the config's value.
        match_iou: least IoU between a pair member and its label row (default 0.5).

    Returns:
        The :class:`Installation`; ``handle.uninstall()`` removes it. Installing again replaces it.

    Raises:
        ValueError: unknown regularizer or option, an option of the wrong type or out of range, bad weight,
            unreadable config, unsupported task.
        PairsError: a malformed pair file (a ``ValueError``).
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
    match_iou = cfg.get("match_iou", DEFAULT_MATCH_IOU) if match_iou is None else match_iou
    if isinstance(match_iou, bool) or not isinstance(match_iou, (int, float)) or not 0 < match_iou <= 1:
        raise ValueError(f"match_iou must be a number in (0, 1], got {match_iou!r}")
    active = parse_regularizers(regularizers)
    if pairs is not None:
        load_pair_file(pairs)  # fail now, before anything about training starts
    if getattr(model, "model", None) is not None and hasattr(model.model, "init_criterion"):
        compat.check_task(model.model)
    uninstall(model)
    handle = Installation(model, active, str(pairs) if pairs is not None else None, float(match_iou))
    handle.register_on(model.callbacks)
    if not compat.callbacks_reach_workers():
        compat.route_trainer(model, workers.trainer_for)  # so multi-GPU workers can rebuild the installation
    return handle


def uninstall(model: Any) -> None:
    """Remove every pairhook installation from ``model`` (no-op if there is none)."""
    for owner in _remove_callbacks(model):
        owner.uninstall()
    compat.unroute_trainer(model)

"""``install()`` / ``uninstall()``: the Ultralytics callbacks that put pairhook in place on one model.

Callbacks are registered on the given ``YOLO`` instance only. They route dataset building through the pair carrier
(:mod:`pairhook.pairs`), wrap the criterion (:mod:`pairhook.criterion`) with the installation's
:class:`~pairhook.terms.LossTerms`, and run the pair metrics at validation (:mod:`pairhook.val_metrics`). Modules that
carry an installation further register a route here (:func:`add_route`): multi-GPU ranks (:mod:`pairhook.ranks`) and
``model.tune()`` (:mod:`pairhook.tuning.model_tune`); ``install()`` applies every route, ``uninstall()`` removes them.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any, Callable, Optional, Union

from pairhook import compat, log, val_metrics
from pairhook.config import CONFIG_KEYS, DEFAULTS, UNSET, resolve
from pairhook.criterion import PairhookCriterion
from pairhook.pairs.attach import DatasetBuilder, PairAttacher
from pairhook.pairs.carrier import PairCarrier
from pairhook.pairs.file import PairFile, load_pair_file
from pairhook.terms import ConfiguredRegularizer, LossTerms, RegularizerSpec, parse_regularizers


class Installation:
    """pairhook installed on one ``YOLO`` model: holds the active terms and the callbacks that apply them."""

    EVENTS = ("on_pretrain_routine_start", "on_pretrain_routine_end", "on_train_epoch_start", "on_train_batch_start",
              "on_train_batch_end", "on_train_epoch_end", "on_val_start", "on_fit_epoch_end", "on_train_end",
              "teardown")

    def __init__(self, model: Optional[Any], active: list[ConfiguredRegularizer], pairs: Optional[str] = None,
                 match_iou: float = DEFAULTS["match_iou"], strict_pairs: bool = DEFAULTS["strict_pairs"],
                 pair_file: Optional[PairFile] = None) -> None:
        self._model = weakref.ref(model) if model is not None else _no_model
        self.terms = LossTerms(active)
        self.pairs = pairs
        self.match_iou = match_iou
        self.strict_pairs = strict_pairs
        self.attacher = PairAttacher(pairs, match_iou, expects_pairs=self.terms.need_pairs, strict=strict_pairs,
                                     pair_file=pair_file)

    @property
    def active(self) -> list[ConfiguredRegularizer]:
        return self.terms.active

    @property
    def loss_names(self) -> list[str]:
        return self.terms.loss_names

    @property
    def skipped(self) -> dict[str, int]:
        """Regularizer name -> batches whose term was skipped as non-finite so far."""
        return self.terms.skipped

    # Callbacks -------------------------------------------------------------------------------------------------
    def on_pretrain_routine_start(self, trainer: Any) -> None:
        """Before any dataset (and so any loader worker) exists: route dataset building through the pair carrier."""
        build = trainer.build_dataset
        builder = DatasetBuilder(getattr(build, "inner", build), self.attacher, trainer)
        compat.replace("trainer", trainer, "build_dataset", builder)

    def on_pretrain_routine_end(self, trainer: Any) -> None:
        problem = compat.drop_broken_ray_callback(trainer)
        if problem:
            log.info(f"{problem}; it is left out of this training (it only reports to a Ray Tune session)")
        self._attach_late(trainer)
        log.info(self.summary())
        compat.add_loss_names(trainer, self.loss_names)
        self.terms.epoch, self.terms.epochs = trainer.start_epoch, trainer.epochs
        self._wrap(compat.unwrap(trainer.model), training=True)
        val_metrics.on_pretrain_routine_end(trainer)  # after the carriers: pair metrics need the val loader's

    def on_train_epoch_start(self, trainer: Any) -> None:
        self.terms.epoch, self.terms.epochs = trainer.epoch, trainer.epochs

    def on_train_batch_start(self, trainer: Any) -> None:
        model = compat.unwrap(trainer.model)
        crit = getattr(model, "criterion", None)
        if not (isinstance(crit, PairhookCriterion) and crit.terms is self.terms):
            self._wrap(model, training=True)  # Ultralytics rebuilt or removed the criterion

    def on_train_batch_end(self, trainer: Any) -> None:
        compat.align_loss_names(trainer, self.loss_names)

    def on_train_epoch_end(self, trainer: Any) -> None:
        if compat.world_size() > 1:  # every rank runs this callback once per epoch: sum the ranks' counts
            self.terms.reduce_counts(compat.all_reduce_sum, trainer.device)
        if self.terms.activity:
            compat.add_epoch_columns(trainer, self.terms.activity_columns())  # the one host read of the counts
        ema = compat.ema_model(trainer)
        if ema is not None:
            self._wrap(ema, training=False)  # training-time validation computes its loss on the EMA model

    def on_val_start(self, validator: Any) -> None:
        val_metrics.on_val_start(validator)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        self.terms.report_skips()
        val_metrics.on_fit_epoch_end(trainer)

    def on_train_end(self, trainer: Any) -> None:
        for model in (compat.unwrap(trainer.model), compat.ema_model(trainer)):
            if model is not None:
                _unwrap(model)
        val_metrics.on_train_end(trainer)

    def teardown(self, trainer: Any) -> None:
        """Last event of a training, on every multi-GPU rank (``on_train_end`` runs on rank 0 only): put the
        criterion, the validator, the trainer's dataset builder and its datasets back."""
        self.on_train_end(trainer)
        self._restore_datasets(trainer)

    # Plumbing --------------------------------------------------------------------------------------------------
    def _wrap(self, model: Any, training: bool) -> None:
        crit = compat.criterion_of(model)
        if isinstance(crit, PairhookCriterion):
            if crit.terms is self.terms:
                return
            crit = crit.restore()
        compat.replace("model", model, "criterion", PairhookCriterion(crit, self.terms, training))

    def _attach_late(self, trainer: Any) -> None:
        """Carry pairs on datasets built without ``on_pretrain_routine_start`` (multi-GPU ranks other than 0).

        Their loaders already exist, so they get the carrier's collate function and fresh workers.
        """
        for loader, mode in compat.loaders(trainer):
            dataset = loader.dataset
            if not PairCarrier.attached(dataset):
                self.attacher(dataset, mode, trainer)
                if PairCarrier.attached(dataset):
                    compat.refresh_loader(loader, dataset.collate_fn)

    def _restore_datasets(self, trainer: Any) -> None:
        if isinstance(trainer.__dict__.get("build_dataset"), DatasetBuilder):
            compat.restore("trainer", trainer, "build_dataset")
        for loader, _ in compat.loaders(trainer):
            PairCarrier.detach(loader.dataset)
            if PairCarrier.attached(loader):  # loaders built from a carried dataset, or refreshed (ranks)
                compat.restore("loader", loader, "collate_fn", loader.dataset.collate_fn)

    def register_on(self, callbacks: dict[str, list]) -> None:
        """Add this installation's callbacks to a model's or trainer's callback lists."""
        for event in self.EVENTS:
            callbacks.setdefault(event, []).append(getattr(self, event))

    def settings(self) -> dict[str, Any]:
        """The ``install()`` arguments that rebuild this installation: each key of the config file
        (:data:`pairhook.config.CONFIG_KEYS`) it holds, regularizers as ``{name: {"weight": w, **options}}``."""
        out: dict[str, Any] = {"regularizers": {r.name: {"weight": r.weight, **r.options} for r in self.active}}
        out.update({key: getattr(self, key) for key in CONFIG_KEYS if key != "regularizers" and hasattr(self, key)})
        return out

    def uninstall(self) -> None:
        """Remove the callbacks from the model and restore any criterion, dataset builder and dataset they changed."""
        model = self._model()
        if model is not None:
            _remove_callbacks(model, self)
            _unroute(model)
            trainer = getattr(model, "trainer", None)
            if trainer is not None:
                self.teardown(trainer)
                compat.remove_loss_names(trainer, self.loss_names)
                compat.remove_epoch_columns(trainer)

    def summary(self) -> str:
        """One line: the active regularizers with weights and every option, the pair file, the match per split."""
        terms = ", ".join(r.describe() for r in self.active) or "no regularizer (pairs for the metrics only)"
        pairs = self.pairs or "the data YAML's 'pairs:' key"
        matched = "; ".join(f"{split} {r.matched}/{r.pairs} matched" for split, r in self.attacher.reports.items())
        return f"{terms}; pairs from {pairs}" + (f" ({matched})" if matched else "")

    def __repr__(self) -> str:
        """The summary and what pairhook replaces in this process now (:func:`pairhook.replaced`)."""
        return f"<pairhook.Installation {self.summary()}; replaces: {', '.join(compat.replaced()) or 'nothing'}>"


def _no_model() -> None:
    return None


def _unwrap(model: Any) -> None:
    crit = getattr(model, "criterion", None)
    if isinstance(crit, PairhookCriterion):
        compat.restore("model", model, "criterion", crit.restore())


def _remove_callbacks(model: Any, only: Optional[Installation] = None) -> list[Installation]:
    callbacks = getattr(model, "callbacks", {})
    removed = [owner for owner in installations_in(callbacks) if only is None or owner is only]
    for funcs in callbacks.values():
        funcs[:] = [fn for fn in funcs if not any(getattr(fn, "__self__", None) is o for o in removed)]
    return removed


def install(
    model: Any,
    *,
    pairs: Optional[Union[str, Path]] = None,
    regularizers: RegularizerSpec = UNSET,
    config: Optional[Union[str, Path]] = None,
    match_iou: Optional[float] = None,
    strict_pairs: Optional[bool] = None,
) -> Installation:
    """Install pairhook on an ``ultralytics.YOLO`` model; call before ``model.train()``.

    Args:
        model: the ``YOLO`` instance. Only callbacks on this instance are registered.
        pairs: a pair file (docs/pair-file.md). Without one, the dataset YAML's ``pairs:`` key is used if present.
        regularizers: a name, comma-separated names, a list of names, or ``{name: {"weight": w, **options}}``;
            ``None`` for none. Default: the config's, else ``"pair_consistency"``.
        config: a YAML file with the keys ``regularizers``, ``pairs``, ``match_iou``, ``strict_pairs``; an argument
            given here wins.
        match_iou: least IoU between a pair member and its label row (default 0.5).
        strict_pairs: stop before training, with a ``PairsError``, when a split's listed pairs all fail to match or
            more than 10% are skipped, or when a key is a file name shared by different images (default False:
            those are warnings).

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
    opts = resolve(config, regularizers=regularizers, pairs=UNSET if pairs is None else pairs,
                   match_iou=UNSET if match_iou is None else match_iou,
                   strict_pairs=UNSET if strict_pairs is None else strict_pairs)
    if not isinstance(opts["strict_pairs"], bool):
        raise ValueError(f"strict_pairs must be true or false, got {opts['strict_pairs']!r}")
    match_iou = opts["match_iou"]
    if isinstance(match_iou, bool) or not isinstance(match_iou, (int, float)) or not 0 < match_iou <= 1:
        raise ValueError(f"match_iou must be a number in (0, 1], got {match_iou!r}")
    active = parse_regularizers(opts["regularizers"])
    pairs, pair_file = opts["pairs"], None
    if pairs is not None:
        pairs = Path(pairs).resolve()  # trials and workers may run in another directory
        pair_file = load_pair_file(pairs)  # fail now, before anything about training starts
    if getattr(model, "model", None) is not None and hasattr(model.model, "init_criterion"):
        compat.check_task(model.model)
    uninstall(model)
    handle = Installation(model, active, str(pairs) if pairs is not None else None, float(match_iou),
                          opts["strict_pairs"], pair_file)
    handle.register_on(model.callbacks)
    for route, _ in _ROUTES.values():
        route(model)
    return handle


def uninstall(model: Any) -> None:
    """Remove every pairhook installation from ``model`` (no-op if there is none)."""
    for owner in _remove_callbacks(model):
        owner.uninstall()
    _unroute(model)


#: Routes that carry an installation beyond the model's callbacks, by name: ``(route(model), unroute(model))``.
_ROUTES: dict[str, tuple[Callable[[Any], None], Callable[[Any], None]]] = {}


def add_route(name: str, route: Callable[[Any], None], unroute: Callable[[Any], None]) -> None:
    """Have ``install()`` call ``route(model)`` and ``uninstall()`` call ``unroute(model)`` (registered again under
    the same name, the new pair replaces the old). The modules above the core (multi-GPU ranks, tuning) register
    themselves here, so the core never imports them."""
    _ROUTES[name] = (route, unroute)


def _unroute(model: Any) -> None:
    for _, unroute in _ROUTES.values():
        unroute(model)


def installations_in(callbacks: dict[str, list]) -> list[Installation]:
    """The distinct installations whose callbacks are in ``callbacks``, in order of appearance."""
    found = {id(fn.__self__): fn.__self__ for funcs in callbacks.values() for fn in funcs
             if isinstance(getattr(fn, "__self__", None), Installation)}
    return list(found.values())

"""The terms an installation adds: regularizers resolved from the user's spec, their options and weights, the training
schedule they see, the per-term counters of skipped (non-finite) batches, and what each pair term did with the pairs.

:class:`LossTerms` is all the criterion needs to know about an installation; it never sees the callbacks.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import torch

from pairhook import log, plugins
from pairhook.config import split_names
from pairhook.context import PairActivity, PairContext
from pairhook.deprecation import renamed
from pairhook.fused import compiler

#: Epochs a pair regularizer may act on no pair before pairhook warns.
IDLE_EPOCHS = 3

RegularizerSpec = Union[str, Sequence[str], Mapping[str, Mapping[str, Any]], None]


class RegularizerError(RuntimeError):
    """A regularizer raised during training; the message names it and the plugin it came from."""


def activity_columns(loss_name: str) -> tuple[str, str]:
    """``results.csv`` columns of a term's activity (``train/pair_reached``, ``train/pair_acted`` for
    ``pair_loss``): the fractions of the carried pairs it reached and acted on."""
    base = loss_name.removesuffix("_loss")
    return f"train/{base}_reached", f"train/{base}_acted"


@dataclass(frozen=True)
class ConfiguredRegularizer:
    """A regularizer as installed: the registered callable with the user's weight and options."""

    name: str
    fn: Callable[..., torch.Tensor]
    loss_name: str
    weight: float = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = "in-process"
    builtin: bool = False
    needs_pairs: bool = False
    gate: Optional[str] = None
    _warned: set = field(default_factory=set, init=False, repr=False, compare=False)

    @property
    def label(self) -> str:
        """``regularizer 'name' (from source)``, for messages."""
        return f"regularizer {self.name!r} (from {self.source})"

    @property
    def columns(self) -> tuple[str, str]:
        """The ``results.csv`` columns of its activity: fractions of the carried pairs it reached and acted on."""
        return activity_columns(self.loss_name)

    @property
    def defaults(self) -> dict[str, Any]:
        """The options of ``fn`` that have defaults, with them (read from ``fn`` itself: an installation handed to
        another process has no registry there)."""
        return {k: v for k, v in plugins.signature_options(self.fn).items() if v is not inspect.Parameter.empty}

    def describe(self) -> str:
        """``name(weight=1, tau_high=0.5, ...)``: the term as installed, every option shown with its value."""
        options = {**self.defaults, **self.options}
        return f"{self.name}(weight={self.weight:g}{''.join(f', {k}={v!r}' for k, v in options.items())})"

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
            log.warning(f"{self.label} returned a tensor without gradient: it is logged but does not train the model")
        value = value if value.dtype == torch.float32 else value.float()
        return value if self.weight == 1.0 else value * self.weight


def parse_regularizers(spec: RegularizerSpec) -> list[ConfiguredRegularizer]:
    """Resolve a name, comma-separated names, a list of names or ``{name: {weight, **options}}`` against the
    registry; every problem is a ``ValueError`` here, before anything is installed."""
    if spec is None:
        return []
    if isinstance(spec, str):
        spec = split_names(spec)
    if isinstance(spec, (list, tuple)) and all(isinstance(n, str) for n in spec):
        spec = {name: {} for name in spec}
    elif not isinstance(spec, Mapping):
        raise ValueError(f"regularizers must be a name, a list of names or a mapping of name to options, got {spec!r}")
    registry = plugins.registry()
    compiler.mode()  # a bad PAIRHOOK_COMPILE fails here, at install(), not at the first batch
    active = []
    for name, opts in spec.items():
        if name not in registry:
            raise ValueError(plugins.unknown_regularizer(name, registry))
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
        active.append(ConfiguredRegularizer(name, reg.fn, reg.loss_name, float(weight), opts, reg.source, reg.builtin,
                                        reg.needs_pairs, reg.gate))
        if reg.builtin:
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


def _dry_run(reg: ConfiguredRegularizer) -> None:
    """Call a built-in once on an empty context so a bad option value fails at ``install()``, not at batch 1."""
    ctx = PairContext(logits=torch.zeros(1, 1, 1), target_scores=torch.zeros(1, 1, 1),
                      target_bboxes=torch.zeros(1, 1, 4), fg_mask=torch.zeros(1, 1, dtype=torch.bool),
                      target_gt_idx=torch.zeros(1, 1, dtype=torch.long), gt_labels=torch.zeros(1, 0, dtype=torch.long),
                      gt_bboxes=torch.zeros(1, 0, 4), training=False)
    try:
        reg.fn(ctx, **reg.options)
    except (ValueError, TypeError) as e:
        raise ValueError(f"regularizer {reg.name!r}: {e}") from e


class LossTerms:
    """The active regularizers of one installation, the epoch they see, and their per-epoch bookkeeping.

    Each term counts, on the device (no host sync), what it did with the pairs of the training batches and the
    batches where it was not finite (:class:`~pairhook.context.PairActivity`): the pair counts are read once per
    epoch by :meth:`activity_columns`, the skips by :meth:`report_skips` (:attr:`skipped` keeps their totals per
    regularizer name).
    """

    def __init__(self, active: list[ConfiguredRegularizer]) -> None:
        self.active = active
        self.epoch, self.epochs = 0, 1
        # per loss name, the counts of training batches and, apart, of validation batches (only their skips count)
        self._train = {r.loss_name: PairActivity() for r in active}
        self._val = {r.loss_name: PairActivity() for r in active}
        self.skipped: dict[str, int] = {}
        self._idle: dict[str, int] = {}  # loss name -> consecutive epochs without acting (-1: warned)

    @property
    def loss_names(self) -> list[str]:
        return [r.loss_name for r in self.active]

    @property
    def need_pairs(self) -> bool:
        return any(r.needs_pairs for r in self.active)

    @property
    def activity(self) -> dict[str, PairActivity]:
        """The training counts of each pair regularizer, by loss name."""
        return {r.loss_name: self._train[r.loss_name] for r in self.active if r.needs_pairs}

    def counter(self, loss_name: str, training: bool, device: torch.device) -> PairActivity:
        """The device-side counts a call of ``loss_name``'s term adds to (training and validation apart)."""
        return (self._train if training else self._val)[loss_name].on(device)

    def skip_counter(self, loss_name: str, device: torch.device) -> torch.Tensor:
        """0-d: this epoch's batches, training and validation, whose ``loss_name`` term was not finite and so was
        skipped."""
        return sum(self.counter(loss_name, training, device).counts[3] for training in (True, False))

    def reduce_counts(self, reduce: Callable[[torch.Tensor], torch.Tensor], device: torch.device) -> None:
        """Replace this epoch's training counts by ``reduce`` of them, e.g. their sum over multi-GPU ranks.

        One ``(len(active), 5)`` long tensor on ``device`` goes through ``reduce`` (one collective); every rank must
        call it at the same point (``compat.all_reduce_sum`` from a callback every rank runs). Validation runs on
        one rank, so its counts need no reduction.
        """
        if not self.active:
            return
        counters = [self.counter(name, True, torch.device(device)) for name in self.loss_names]
        reported = torch.tensor([[int(c.reported)] for c in counters], device=device)
        total = reduce(torch.cat([torch.stack([c.counts for c in counters]), reported], 1))
        for counter, row in zip(counters, total):
            counter.counts.copy_(row[:4])
            counter.reported = bool(row[4] > 0)

    def report_skips(self) -> None:
        """Warn, once per epoch and regularizer, how many batches' terms were skipped as non-finite; reset."""
        for reg in self.active:
            n = sum(c.read(slice(3, 4))[0] for c in (self._train[reg.loss_name], self._val[reg.loss_name]))
            if n:  # the one host read per epoch
                self.skipped[reg.name] = self.skipped.get(reg.name, 0) + n
                log.warning(f"{reg.label} was NaN or infinite in {n} batch(es) this epoch; its term was skipped (0) "
                            "there")

    def activity_columns(self) -> dict[str, float]:
        """This epoch's activity columns of every pair regularizer (NaN where no pair was carried, or where the
        regularizer does not count through ``pair_mean``); warns once when one has been idle for
        :data:`IDLE_EPOCHS` epochs. Resets the counts."""
        columns: dict[str, float] = {}
        for reg in self.active:
            if reg.loss_name not in self.activity:
                continue
            counts = self._train[reg.loss_name]
            (carried, reached, acted), reported = counts.read(slice(0, 3)), counts.reported
            counts.reported = False
            known = carried > 0 and reported
            columns.update(zip(reg.columns, (reached / carried, acted / carried) if known else (math.nan, math.nan)))
            if known:
                self._note_idle(reg, reached / carried, acted)
        return columns

    def _note_idle(self, reg: ConfiguredRegularizer, reached: float, acted: int) -> None:
        idle = self._idle.get(reg.loss_name, 0)
        if idle < 0:
            return
        idle = idle + 1 if acted == 0 else 0
        self._idle[reg.loss_name] = idle
        if idle < IDLE_EPOCHS:
            return
        self._idle[reg.loss_name] = -1
        if reached == 0:
            why = "no pair reached it: no member of any pair had an anchor assigned to it"
        elif reg.gate:
            value = reg.options.get(reg.gate, reg.defaults.get(reg.gate))
            why = (f"{reached:.0%} of the pairs reached it, but its option {reg.gate}={value!r} gates it (e.g. no "
                   f"teacher that confident yet): lower {reg.gate}, or expect it to start later in training")
        else:
            why = f"{reached:.0%} of the pairs reached it, but its value was 0 on every one"
        log.warning(f"{reg.label} has acted on no pair for {IDLE_EPOCHS} epochs ({reg.loss_name} is 0): {why}")


__getattr__ = renamed(globals(), {"ActiveRegularizer": "ConfiguredRegularizer", "Terms": "LossTerms"})

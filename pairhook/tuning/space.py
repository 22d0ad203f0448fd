"""Search spaces: Ultralytics training arguments and regularizer options in one mapping.

A key is an Ultralytics training argument (``lr0``) or ``<regularizer>.<option>`` (``pair_consistency.weight``,
``symmetric_kl.T``). A value is:

* ``(min, max)`` or ``(min, max, gain)`` (in YAML a list of 2 or 3 numbers): a range, the form of Ultralytics'
  tuner. The local engine mutates it like that tuner (``gain`` scales the step); Ray Tune samples it uniformly.
  Integer training arguments (``close_mosaic``, ...) take integers.
* ``{"uniform": [a, b]}``, ``{"loguniform": [a, b]}``, ``{"randint": [a, b]}`` (``b`` excluded, as in Ray Tune),
  ``{"choice": [v1, v2, ...]}``: Ray Tune's sampling functions by name. In Python a ``ray.tune`` domain
  (``tune.choice([...])``, ``tune.loguniform(a, b)``, ...) is accepted too.
* anything else: a fixed value for every trial.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

NAMED = ("uniform", "loguniform", "randint", "choice")


@dataclass(frozen=True)
class Dim:
    """One dimension: ``kind`` is ``range``, one of :data:`NAMED`, ``fixed``, or ``ray`` (another Ray domain)."""

    key: str
    kind: str
    values: tuple
    gain: float = 1.0
    integer: bool = False

    @property
    def option(self) -> Optional[tuple[str, str]]:
        """``(regularizer, option)`` for a regularizer option, ``None`` for a training argument."""
        name, dot, option = self.key.partition(".")
        return (name, option) if dot else None

    @property
    def numeric(self) -> bool:
        return self.kind in ("range", "uniform", "loguniform", "randint")

    @property
    def bounds(self) -> tuple[float, float]:
        low, high = self.values[:2]
        return (low, high - 1) if self.kind == "randint" else (low, high)

    def corners(self) -> list[Any]:
        """Values a trial may get at the edges of the dimension (checked before the search starts)."""
        if self.numeric:
            return [self.cast(v) for v in self.bounds]
        return list(self.values) if self.kind in ("choice", "fixed") else []

    def cast(self, value: float) -> Any:
        return int(round(value)) if self.integer or self.kind == "randint" else float(value)

    def to_unit(self, value: Any) -> float:
        low, high = self.bounds
        if high == low:
            return 0.0
        if self.kind == "loguniform":
            return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
        return (float(value) - low) / (high - low)

    def from_unit(self, u: float) -> Any:
        low, high = self.bounds
        u = min(max(u, 0.0), 1.0)
        value = math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if self.kind == "loguniform" \
            else low + u * (high - low)
        return self.cast(min(max(value, low), high))


def parse_space(space: Mapping[str, Any], int_keys: frozenset[str] = frozenset()) -> list[Dim]:
    """The :class:`Dim` of each key of ``space`` (see the module docstring); ``ValueError`` on a malformed one."""
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"the search space must be a non-empty mapping of key to range or choices, got {space!r}")
    return [_dim(str(key), value, key in int_keys) for key, value in space.items()]


def _dim(key: str, value: Any, integer: bool) -> Dim:
    def numbers(v: Any, n: tuple[int, ...]) -> tuple:
        if not isinstance(v, (list, tuple)) or len(v) not in n or not all(_is_number(x) for x in v):
            raise ValueError(f"search space {key!r}: expected {' or '.join(map(str, n))} numbers, got {v!r}")
        return tuple(v)

    if isinstance(value, (list, tuple)):
        low, high, *gain = numbers(value, (2, 3))
        if not low <= high:
            raise ValueError(f"search space {key!r}: min {low} is above max {high}")
        return Dim(key, "range", (low, high), float(gain[0]) if gain else 1.0, integer)
    if isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in NAMED:
        kind, args = next(iter(value.items()))
        if kind == "choice":
            if not isinstance(args, (list, tuple)) or not args:
                raise ValueError(f"search space {key!r}: choice needs a non-empty list, got {args!r}")
            return Dim(key, "choice", tuple(args))
        low, high = numbers(args, (2,))
        if not (low < high if kind == "randint" else low <= high) or (kind == "loguniform" and low <= 0):
            raise ValueError(f"search space {key!r}: {kind} needs 0 < a <= b (a < b for randint), got {args!r}")
        return Dim(key, kind, (low, high), 1.0, integer or kind == "randint")
    ray_dim = _from_ray(key, value, integer)
    return ray_dim if ray_dim is not None else Dim(key, "fixed", (value,))


def _from_ray(key: str, value: Any, integer: bool) -> Optional[Dim]:
    """A ``ray.tune`` domain as a :class:`Dim` (without importing Ray: only a Ray domain has these attributes)."""
    if not callable(getattr(value, "sample", None)) or not hasattr(value, "get_sampler"):
        return None
    sampler = type(value.get_sampler()).__name__.lstrip("_")  # Ray's private subclasses: _Uniform, _LogUniform
    if hasattr(value, "categories"):
        return Dim(key, "choice", tuple(value.categories))
    if sampler in ("Uniform", "LogUniform") and hasattr(value, "lower"):
        kind = "loguniform" if sampler == "LogUniform" else "randint" if type(value).__name__ == "Integer" \
            else "uniform"
        return Dim(key, kind, (value.lower, value.upper), 1.0, integer or kind == "randint")
    return Dim(key, "ray", (value,))


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def split(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``(training arguments, {regularizer: {option: value}})`` of one trial's parameters."""
    train: dict[str, Any] = {}
    options: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        name, dot, option = key.partition(".")
        if dot:
            options.setdefault(name, {})[option] = value
        else:
            train[key] = value
    return train, options


def with_options(settings: Mapping[str, Any], options: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Install settings (:meth:`pairhook.Installation.settings`) with some regularizer options replaced."""
    regs = {name: dict(opts) for name, opts in settings["regularizers"].items()}
    for name, opts in options.items():
        regs[name].update(opts)
    return {**settings, "regularizers": regs}


def base_point(dims: list[Dim], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The first trial: each key at its current value (``defaults``), kept inside its dimension, as Ultralytics'
    tuner starts from the current arguments."""
    point = {}
    for d in dims:
        value = defaults.get(d.key)
        if d.kind == "fixed":
            point[d.key] = d.values[0]
        elif d.kind == "choice":
            point[d.key] = value if value in d.values else d.values[0]
        elif d.kind == "ray":
            point[d.key] = value if value is not None else d.values[0].sample()
        else:
            low, high = d.bounds
            point[d.key] = d.cast(min(max(value, low), high) if _is_number(value) else (low + high) / 2)
    return point


def mutate(dims: list[Dim], history: list[tuple[float, dict[str, Any]]], rng: random.Random, *, top: int = 5,
           sigma: float = 0.2, attempts: int = 100) -> dict[str, Any]:
    """A new point from the best of ``history`` (``(objective, params)``), Ultralytics' tuner style: a parent among
    the ``top`` best, picked with probability growing with its objective; about half of the dimensions moved by a
    Gaussian step of ``sigma * gain`` of their width (choices: a random choice), at least one. Tries to avoid
    points already in ``history``."""
    ranked = sorted(history, key=lambda h: h[0], reverse=True)[:top]
    scores = [h[0] for h in ranked]
    weights = [s - min(scores) + 1e-6 for s in scores]
    seen = [h[1] for h in history]
    movable = [d for d in dims if d.kind not in ("fixed",)]
    point: dict[str, Any] = {}
    for _ in range(attempts):
        parent = rng.choices([h[1] for h in ranked], weights=weights)[0]
        point = dict(parent)
        moved = [d for d in movable if rng.random() < 0.5] or ([rng.choice(movable)] if movable else [])
        for d in moved:
            if d.kind == "choice":
                point[d.key] = rng.choice(d.values)
            elif d.kind == "ray":
                point[d.key] = d.values[0].sample()
            else:
                point[d.key] = d.from_unit(d.to_unit(parent[d.key]) + rng.gauss(0.0, sigma * d.gain))
        if point not in seen:
            return point
    return point


def to_ray(dims: list[Dim]) -> dict[str, Any]:
    """The Ray Tune ``param_space`` of the dimensions."""
    from ray import tune

    space: dict[str, Any] = {}
    for d in dims:
        if d.kind in ("fixed", "ray"):
            space[d.key] = d.values[0]
        elif d.kind == "choice":
            space[d.key] = tune.choice(list(d.values))
        elif d.kind == "loguniform":
            space[d.key] = tune.loguniform(*d.values)
        elif d.integer:
            low, high = d.bounds
            space[d.key] = tune.randint(math.ceil(low), math.floor(high) + 1)
        else:
            space[d.key] = tune.uniform(*d.values)
    return space

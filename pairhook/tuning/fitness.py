"""What a search maximises: Ultralytics' fitness, any metric of an epoch's row, or a weighted sum of them.

Forms: a metric name (``"fitness"``, ``"pairs/both_detected"``, ``"metrics/mAP50-95(B)"``), a sum such as
``"fitness + 0.5*pairs/both_detected"`` or ``"0.7*metrics/mAP50(B) + -0.1*val/pair_loss"`` (terms joined by ``+``,
each ``[weight*]name``), or a mapping ``{name: weight}``. ``fitness`` is Ultralytics' own (the value its tuner
maximises and ``best.pt`` is chosen by). A row whose value is NaN (e.g. a pair metric with no pair to measure)
gives NaN, which ranks below every number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

PREFIXES = ("metrics/", "pairs/", "val/", "train/", "lr/")
TERM = re.compile(r"^\s*(?:([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*\s*)?(\S(?:.*\S)?)\s*$")
FitnessSpec = Union[str, Mapping[str, float], "Fitness"]


@dataclass(frozen=True)
class Fitness:
    """A weighted sum of metrics, ``{name: weight}``; call it on an epoch's row."""

    weights: tuple[tuple[str, float], ...]

    @classmethod
    def parse(cls, spec: FitnessSpec) -> Fitness:
        """Read one of the forms of the module docstring; ``ValueError`` on anything else."""
        if isinstance(spec, Fitness):
            return spec
        if isinstance(spec, Mapping):
            pairs = [(str(k), v) for k, v in spec.items()]
        elif isinstance(spec, str) and spec.strip():
            pairs = []
            for term in spec.split("+"):
                match = TERM.match(term) if term.strip() else None
                if match is None:
                    raise ValueError(f"fitness {spec!r}: cannot read the term {term!r}; write [weight*]name terms "
                                     "joined by '+', e.g. 'fitness + 0.5*pairs/both_detected'")
                pairs.append((match.group(2), float(match.group(1)) if match.group(1) else 1.0))
        else:
            raise ValueError(f"fitness must be a metric name, a weighted sum or a mapping, got {spec!r}")
        for name, weight in pairs:
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
                raise ValueError(f"fitness: the weight of {name!r} must be a finite number, got {weight!r}")
            if name != "fitness" and not name.startswith(PREFIXES):
                raise ValueError(f"fitness: {name!r} is not a metric of a training epoch; use 'fitness' "
                                 f"(Ultralytics') or a name starting with {', '.join(PREFIXES)}")
        return cls(tuple((name, float(weight)) for name, weight in pairs))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.weights]

    def __call__(self, row: Mapping[str, Any]) -> float:
        """The objective of one epoch's row; ``ValueError`` naming what the row has when a metric is missing."""
        missing = [n for n in self.names if n not in row]
        if missing:
            hint = (" (pair metrics need pairs on the validation split)" if any(n.startswith("pairs/") for n in missing)
                    else "")
            raise ValueError(f"fitness uses {', '.join(missing)}, which this trial's epochs do not report{hint}; "
                             f"they report: {', '.join(sorted(row))}")
        return sum(weight * float(row[name]) for name, weight in self.weights)

    def __str__(self) -> str:
        return " + ".join(name if weight == 1 else f"{weight:g}*{name}" for name, weight in self.weights)


def rank_key(objective: float) -> float:
    """Sort key for objectives: NaN below every number."""
    return -math.inf if math.isnan(objective) else objective

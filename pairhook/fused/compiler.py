"""When the fused terms run through ``torch.compile``, and what happens when it cannot.

On a GPU the cost of a small loss term is the number of kernels it launches, not its arithmetic; compiled, a
built-in term is a few fused kernels instead of about a hundred small ones. On the CPU the arithmetic is all there
is and a compile costs tens of seconds, so by default (``auto``) the terms compile on CUDA only. The environment
variable ``PAIRHOOK_COMPILE`` chooses (every process of a run inherits it: multi-GPU ranks, tuning trials):

* ``auto`` (default): compiled on CUDA devices, eager elsewhere;
* ``always``: compiled on every device;
* ``never``: eager everywhere.

Graphs are dynamic in every size, so a pair count that changes every batch does not recompile (sizes 0 and 1
specialise, as ``torch.compile`` does: a batch with exactly one pair compiles once more). The first call's compile
time is logged. A compile that fails is said once per term, and the term runs eagerly from then on: the same values,
more kernel launches.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any, Callable, Optional

import torch

from pairhook import log

ENV = "PAIRHOOK_COMPILE"
MODES = ("auto", "always", "never")
RECOMPILES = 64  # per core: option sets (tuning trials in one process) x training/validation x size-1 cases

_graphs: dict[tuple, Callable[..., Any]] = {}
_constants: dict[tuple[float, torch.device], torch.Tensor] = {}
_broken: set[Callable[..., Any]] = set()
_timed: set[tuple[Callable[..., Any], bool]] = set()


def mode() -> str:
    """The compile policy from ``PAIRHOOK_COMPILE`` (``auto`` when unset)."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"pairhook: {ENV}={value!r} is not one of {', '.join(MODES)} (unset it for 'auto')")
    return value


def compiles(device: torch.device) -> bool:
    """Whether the fused terms run compiled on ``device`` under the current policy."""
    current = mode()
    return current == "always" or (current == "auto" and device.type == "cuda")


def graph(core: Callable[..., Any], options: dict[str, Any]) -> Callable[..., Any]:
    """The compiled ``core`` with ``options``. Options are compiled in as constants (a run keeps them; a float passed
    as an input would cost three host ops per call), so each set of options compiles once."""
    key = (core, tuple(sorted(options.items())))
    if key not in _graphs:
        compiled = torch.compile(functools.partial(core, **options), dynamic=True)
        # options as constants; the graphs of every option set share the core's code, hence its recompile limit
        _graphs[key] = torch._dynamo.config.patch(specialize_float=True, recompile_limit=RECOMPILES)(compiled)
    return _graphs[key]


def call(core: Callable[..., Any], device: torch.device, *args: Any,
         eager_kwargs: Optional[dict[str, Any]] = None, **options: Any) -> Any:
    """``core(*args, **options)``, compiled where :func:`compiles` says so; ``eager_kwargs`` are added when it runs
    eagerly (e.g. the context's cheap-backward gather, which a graph cannot trace)."""
    if core in _broken or not compiles(device):
        return core(*args, **options, **(eager_kwargs or {}))
    first = (core, torch.is_grad_enabled())
    start = time.perf_counter()
    try:
        out = graph(core, options)(*args)
    except Exception as e:  # noqa: BLE001 - a compiler missing or failing: the eager core gives the same numbers
        _broken.add(core)
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        log.warning(f"torch.compile failed for the fused {core.__name__} term ({type(e).__name__}: {reason}); it "
                    f"runs eagerly from now on: the same values, more kernel launches ({ENV}=never skips the "
                    "attempt)")
        return core(*args, **options, **(eager_kwargs or {}))
    if first not in _timed:
        _timed.add(first)
        log.info(f"compiled the fused {core.__name__} term ({'training' if first[1] else 'validation'}) in "
                 f"{time.perf_counter() - start:.1f} s, once per process ({ENV}=never runs it eagerly)")
    return out


def constant(value: float, device: torch.device) -> torch.Tensor:
    """A 0-d fp32 tensor of ``value`` on ``device``, made once per value: an input that changes between epochs (a
    ramp-up) without a recompile or a host-to-device copy per call."""
    key = (value, device)
    if key not in _constants:
        if len(_constants) > 256:
            _constants.clear()
        with torch.inference_mode(False):
            _constants[key] = torch.tensor(value, dtype=torch.float32, device=device)
    return _constants[key]

"""The hooks a pairhook plugin can implement, and the markers to declare them.

A plugin is any module or object with functions marked ``@pairhook.hookimpl`` whose names match a spec below.
pairhook's own regularizers (:mod:`pairhook.regularizers`) are registered through these same hooks.
Every hook has an entry in ``docs/writing-a-regularizer.md`` and a test (``tests/test_hookspecs_documented.py``
fails otherwise).
"""

from __future__ import annotations

from typing import Callable, Optional

import pluggy

hookspec = pluggy.HookspecMarker("pairhook")
hookimpl = pluggy.HookimplMarker("pairhook")

#: ``register(name, fn, loss_name=None, *, needs_pairs=False, gate=None)``, handed to
#: :func:`pairhook_register_regularizers`.
RegisterFn = Callable[..., None]


@hookspec
def pairhook_register_regularizers(register: RegisterFn) -> Optional[None]:
    """Register regularizers by calling ``register(name, fn, loss_name=None, *, needs_pairs=False, gate=None)``.

    ``fn(ctx: PairContext, **options) -> torch.Tensor`` returns a 0-d tensor: the term's value for the batch,
    before the user's ``weight``. ``name`` is what users pass to ``pairhook.install(regularizers=...)``;
    ``loss_name`` (default ``f"{name}_loss"``) names the loss item in the progress bar and ``results.csv``
    (``train/<loss_name>``, ``val/<loss_name>``). Keyword-only parameters of ``fn`` with defaults are its options;
    pairhook rejects options ``fn`` does not accept at ``install()`` time. ``needs_pairs=True`` says the term acts on
    ``ctx.pairs``: pairhook then says so when a run has no pair file, and logs, per epoch, the fractions of pairs that
    reached the term and that it acted on (counted by :meth:`PairContext.pair_mean`). ``gate`` names the option that
    decides when the term acts at all, for the warning when it has acted on no pair for several epochs.

    Called whenever pairhook builds its registry (``install()``, ``registry()``, ``pairhook plugins``), so it must
    only call ``register``. Two plugins registering one ``name`` is a ``ValueError``.
    """

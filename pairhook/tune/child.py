"""One trial of ``model.tune()`` with pairhook installed (see :mod:`pairhook.tune.builtin`).

``python -m pairhook.tune.child STATE key=value ...`` trains what ``yolo train key=value ...`` would, with the
installations pickled in ``STATE`` on the model. ``python -m pairhook.tune.child --check STATE`` only loads them.
The environment is the tuner's, unchanged (offline switches included).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Optional

from pairhook import compat, workers


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--check"]:
        workers.read_installations(args[1])
        return 0
    installations = workers.read_installations(args[0])
    from ultralytics import YOLO

    model_path, task, kwargs = compat.trial_train_args(args[1:])
    model = YOLO(model_path, task=task)
    for installation in installations:
        installation.attach_to(model)
    model.train(**kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One trial of ``model.tune()`` with pairhook installed (see :mod:`pairhook.tuning.model_tune`).

``python -m pairhook.tuning.child key=value ...`` trains what ``yolo train key=value ...`` would, with the
installations described in ``$PAIRHOOK_INSTALLATIONS`` (:mod:`pairhook.handover`) on the model. ``python -m
pairhook.tuning.child --check`` only reads them and loads their regularizers. The environment is the tuner's,
unchanged (offline switches included).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Optional

from pairhook import compat, handover


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    descriptions = handover.decode(os.environ[handover.ENV])
    if args[:1] == ["--check"]:
        for d in descriptions:
            handover.build(d)
        return 0
    from ultralytics import YOLO

    model_path, task, kwargs = compat.trial_train_args(args)
    model = YOLO(model_path, task=task)
    for d in descriptions:
        handover.install_on(model, d)
    model.train(**kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One rank of a multi-GPU training on the CPU, launched by ``python -m torch.distributed.run --nproc_per_node 2``
(or alone, for the single-process reference): every rank calls ``pairhook.install()`` itself.

    train.py DATA_YAML PAIRS_JSON RUN_DIR   (records in $PAIRHOOK_TEST_OUT/rank<R>.json)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pairhook.offline import setup_offline  # noqa: E402

setup_offline(os.environ.get("YOLO_CONFIG_DIR"))
import cpu_gloo  # noqa: E402
import probe  # noqa: E402
import torch  # noqa: E402

import pairhook  # noqa: E402

if "WORLD_SIZE" in os.environ:
    cpu_gloo.apply()
from ultralytics import YOLO  # noqa: E402

data, pairs, run = sys.argv[1:4]
torch.manual_seed(0)
pairhook.register(probe.NanPlugin())
model = YOLO("yolov8n.yaml")
pairhook.install(model, pairs=pairs, regularizers={"pair_consistency": {"tau_high": 0.0},
                                                   "symmetric_kl": {"weight": 1000.0}, "nan_on_rank1": {}})
probe.add_to(model)
model.train(data=data, epochs=2, imgsz=64, batch=8, workers=0, device="cpu", plots=False, amp=False, seed=0, nbs=4,
            deterministic=True, project=os.path.dirname(run), name=os.path.basename(run), exist_ok=True)

"""The launching process of a multi-GPU training: Ultralytics writes its worker script and runs it as 2 ranks under
``torch.distributed.run``; the workers get the CPU patches through ``sitecustomize.py``. pairhook is installed
here only and reaches the workers the way the release hands it over.

    launch.py DATA_YAML PAIRS_JSON RUN_DIR
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pairhook.offline import setup_offline  # noqa: E402

setup_offline(os.environ.get("YOLO_CONFIG_DIR"))
import cpu_gloo  # noqa: E402
import probe  # noqa: E402

import pairhook  # noqa: E402

cpu_gloo.launch_as_ddp_parent()
from ultralytics import YOLO  # noqa: E402

data, pairs, run = sys.argv[1:4]
pairhook.register(probe.NanPlugin())  # here only: the workers get the installation, not the registry
model = YOLO("yolov8n.yaml")
pairhook.install(model, pairs=pairs, regularizers={"pair_consistency": {"tau_high": 0.0},
                                                   "symmetric_kl": {"weight": 1000.0}, "nan_on_rank1": {}})
probe.add_to(model)
model.train(data=data, epochs=2, imgsz=64, batch=8, workers=0, device="cpu", plots=False, amp=False, seed=0, nbs=4,
            project=os.path.dirname(run), name=os.path.basename(run), exist_ok=True)

"""Train a YOLO detector with the pair-consistency term on a generated paired-defect dataset.

    python examples/train_with_pairs.py

Replace the generated dataset by your own `data.yaml` and `pairs.json` to use it on real data.
"""

from pairhook.offline import setup_offline

setup_offline()  # this example never touches the network; drop the call on a connected machine

from ultralytics import YOLO  # noqa: E402

import pairhook  # noqa: E402
from pairhook.synthetic import make_dataset  # noqa: E402

ds = make_dataset("example-data", n_train=32, n_val=8)
model = YOLO("yolov8n.yaml")
pairhook.install(model, pairs=ds.pairs_json, regularizers={"pair_consistency": {"weight": 1.0, "tau_high": 0.5}})
model.train(data=str(ds.data_yaml), epochs=3, imgsz=128, batch=8, workers=0, project="example-runs", name="pairs")

"""Register your own regularizer in-process and train with it next to the built-in pair term.

    python examples/custom_regularizer.py
"""

from pairhook.offline import setup_offline

setup_offline()

import torch  # noqa: E402
from ultralytics import YOLO  # noqa: E402

import pairhook  # noqa: E402
from pairhook.synthetic import make_dataset  # noqa: E402


class ForegroundEntropy:
    """Penalise uncertain class probabilities on the anchors the assigner made positive."""

    @pairhook.hookimpl
    def pairhook_register_regularizers(self, register):
        def fg_entropy(ctx: pairhook.PairContext, *, eps: float = 1e-6) -> torch.Tensor:
            p = ctx.logits.sigmoid()
            entropy = -(p * (p + eps).log()).sum(-1)
            fg = ctx.fg_mask.float()
            return (entropy * fg).sum() / fg.sum().clamp_min(1)

        register("fg_entropy", fg_entropy)


pairhook.register(ForegroundEntropy())
ds = make_dataset("example-data", n_train=32, n_val=8)
model = YOLO("yolov8n.yaml")
pairhook.install(model, pairs=ds.pairs_json, regularizers={"pair_consistency": {}, "fg_entropy": {"weight": 0.1}})
model.train(data=str(ds.data_yaml), epochs=2, imgsz=128, batch=8, workers=0, project="example-runs", name="custom")
print(open(f"{model.trainer.save_dir}/results.csv").readline())  # ... train/fg_entropy_loss ... val/fg_entropy_loss

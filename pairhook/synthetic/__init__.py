"""Small synthetic YOLO detection datasets with *paired defects*, for tests and demos.

The images mimic the users' inspection setup: the same physical defect is seen twice, once in the upper part of
the image and once ``shift * height`` pixels lower (a second view of the part). Besides the standard YOLO files the
generator writes the users' ``pairs.json``, which says which two boxes of an image are the same defect, and returns
the same information as row indices (:attr:`SyntheticDataset.truth`) for tests of pair matching and discovery.

Unpaired *distractors* are added, some of them deliberately confusing: same class, same size and same x centre as
a pair but at a vertical offset other than ``shift``, so a matcher that only looks at class and column fails.

Everything is drawn with numpy and OpenCV and is fully determined by ``seed``; 40 images take a few tens of ms.
"""

from pairhook.synthetic.dataset import SyntheticDataset, class_names, make_dataset

__all__ = ["SyntheticDataset", "make_dataset", "class_names"]

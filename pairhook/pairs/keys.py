"""Which pair-file key names which image.

A key is an image's file name without extension (``img_001``) or its path relative to the dataset's ``path``
(``images/train/a/img_001``; see :func:`pairhook.pairs.file.normalize_key`). A file name shared by two different
image files (two folders, or two splits) is *ambiguous*: a bare key cannot say which image it means, so its pairs are
skipped, never applied to both; a path key still names one. The same file listed in two splits is one image.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional, Union

from pairhook.config import split_names
from pairhook.pairs.file import image_stem, image_suffixes

SPLITS = "train,val,test"


def image_files(path: Union[str, Path, list]) -> list[Path]:
    """Images of a data-YAML split: a directory (recursive), a ``.txt`` list (``./`` relative to it), or a list."""
    suffixes = image_suffixes()
    out: list[Path] = []
    for p in path if isinstance(path, list) else [path]:
        p = Path(p)
        if p.is_dir():
            out += list(p.rglob("*.*"))
        elif p.is_file():
            lines = p.read_text(encoding="utf-8-sig").split()
            out += [p.parent / x[2:] if x.startswith("./") else Path(x) for x in lines]
        else:
            raise FileNotFoundError(f"{p} does not exist")
    return sorted(f for f in out if f.suffix[1:].lower() in suffixes)


def split_images(data: dict[str, Any], splits: str = SPLITS) -> list[str]:
    """Every image of the data YAML's ``splits`` that exist (a split whose files cannot be listed is left out)."""
    files: list[str] = []
    for split in split_names(splits):
        if data.get(split):
            try:
                files += [os.fspath(f) for f in image_files(data[split])]
            except OSError:
                continue
    return files


class ImageKeys:
    """The keys of a pair file resolved against the images pairhook sees.

    Args:
        keys: the pair file's (normalized) keys.
        root: the dataset's ``path``, against which path keys are resolved (``None``: only file names).
        images: every image file of the splits, to find file names shared by different files.
    """

    def __init__(self, keys: Iterable[str], root: Optional[Union[str, Path]], images: Iterable[str]) -> None:
        self.keys = set(keys)
        self.root = os.fspath(root) if root else None
        files: dict[str, set[str]] = {}
        for f in images:
            files.setdefault(image_stem(f), set()).add(f)
        self.stems = set(files)
        self.shared = {stem: sorted(found) for stem, found in files.items()
                       if len(found) > 1 and len({os.path.realpath(f) for f in found}) > 1}
        self.used = {k for found in files.values() for f in found for k in self.names(f) if k in self.keys}

    def names(self, im_file: str) -> list[str]:
        """The keys that can name ``im_file``: its path relative to the root, its absolute path, its file name."""
        stem = os.path.splitext(im_file)[0]
        out = []
        if self.root:
            rel = os.path.relpath(stem, self.root)
            if not rel.startswith(".."):
                out.append(rel.replace(os.sep, "/"))
        return [*out, stem.replace(os.sep, "/"), image_stem(im_file)]

    def key_of(self, im_file: str) -> tuple[Optional[str], Optional[str]]:
        """``(key, None)`` for the key naming ``im_file``; ``(None, why)`` when only an ambiguous file name does;
        ``(None, None)`` when no key names it."""
        *paths, stem = self.names(im_file)
        for key in paths:
            if key in self.keys:
                return key, None
        if stem not in self.keys:
            return None, None
        if stem in self.shared:
            return None, f"{stem!r} is the file name of {len(self.shared[stem])} different images"
        return stem, None

    def unused(self) -> list[str]:
        """Keys that name no image of the splits."""
        return sorted(self.keys - self.used)

    def hint(self, key: str) -> str:
        """The likely reason why ``key`` names no image."""
        base = key.rsplit("/", 1)[-1]
        if base != key and base in self.stems:
            return f"a folder prefix differs: no image at that path under {self.root}, but one named {base!r}"
        folded = {s.casefold(): s for s in self.stems}
        if base.casefold() in folded:
            return f"case differs: an image is named {folded[base.casefold()]!r}"
        if "." in base:
            return f"'.{base.rsplit('.', 1)[1]}' is not an image extension; use the image's name"
        return "no image has that name or path"

"""pairhook: add loss terms to Ultralytics YOLO training at runtime.

    handle = pairhook.install(model, regularizers={"pair_consistency": {"weight": 2.0}})
    model.train(data="data.yaml", epochs=10)
"""

from pairhook.context import PairContext
from pairhook.discover import DiscoveryResult, discover
from pairhook.hookspecs import hookimpl, hookspec
from pairhook.installation import ActiveRegularizer, Installation, RegularizerError, install, uninstall
from pairhook.pairs import PairsError, load_pair_file
from pairhook.plugins import get_regularizer, register, registry, unregister
from pairhook.validation import evaluate

__version__ = "0.1.0"

__all__ = [
    "ActiveRegularizer",
    "DiscoveryResult",
    "Installation",
    "PairContext",
    "PairsError",
    "RegularizerError",
    "discover",
    "evaluate",
    "get_regularizer",
    "hookimpl",
    "hookspec",
    "install",
    "load_pair_file",
    "register",
    "registry",
    "uninstall",
    "unregister",
]

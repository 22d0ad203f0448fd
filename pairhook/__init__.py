"""pairhook: add loss terms to Ultralytics YOLO training at runtime.

    handle = pairhook.install(model, regularizers={"pair_consistency": {"weight": 2.0}})
    model.train(data="data.yaml", epochs=10)
"""

from pairhook import deprecation as _deprecation
from pairhook import ranks as _ranks  # noqa: F401 - registers the multi-GPU route
from pairhook.compat.patches import replaced
from pairhook.context import PairContext
from pairhook.evaluation import evaluate
from pairhook.hookspecs import hookimpl, hookspec
from pairhook.installation import Installation, install, uninstall
from pairhook.pairs.discover import DiscoveryResult, discover
from pairhook.pairs.file import PairsError, load_pair_file
from pairhook.plugins import get_regularizer, register, registered, registry, unregister
from pairhook.terms import ConfiguredRegularizer, RegularizerError
from pairhook.tuning import TuneResult, tune  # registers the model.tune() route

__version__ = "0.1.0"

__all__ = [
    "ConfiguredRegularizer",
    "DiscoveryResult",
    "Installation",
    "PairContext",
    "PairsError",
    "RegularizerError",
    "TuneResult",
    "discover",
    "evaluate",
    "get_regularizer",
    "hookimpl",
    "hookspec",
    "install",
    "load_pair_file",
    "register",
    "registered",
    "registry",
    "replaced",
    "tune",
    "uninstall",
    "unregister",
]

__getattr__ = _deprecation.renamed(globals(), {"ActiveRegularizer": "ConfiguredRegularizer"})

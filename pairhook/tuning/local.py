"""The local engine: Ultralytics' tuner's evolution, in this process, no extra dependency.

Trial 1 trains the current arguments and options (each kept inside its dimension); every later trial mutates one of
the best trials so far (:func:`pairhook.tuning.space.mutate`). Trials run one after another in this process, each a
fresh model with pairhook installed, into ``<out>/trial<N>``. A trial that raises stops the search (the trials so far
are kept in ``trials.csv``): every trial trains what was asked, or the search says why not.
"""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path
from typing import Any, Callable

from pairhook import log
from pairhook.tuning import space
from pairhook.tuning.fitness import rank_key
from pairhook.tuning.results import TrialRecord, best_of
from pairhook.tuning.run import TrialJob, run_trial


def run_local(job: TrialJob, dims: list[space.Dim], base: dict[str, Any], iterations: int, *, seed: int = 0,
              keep_weights: bool = False, on_trial: Callable[[list[TrialRecord]], None] = lambda trials: None
              ) -> list[TrialRecord]:
    """Run ``iterations`` trials; ``on_trial(trials so far)`` after each (the caller writes ``trials.csv``).

    Without ``keep_weights``, the ``weights/`` of every trial but the best so far are deleted as the search goes,
    like Ultralytics' tuner does; ``results.csv`` and plots of every trial stay.
    """
    rng = random.Random(seed)
    trials: list[TrialRecord] = []
    for i in range(1, iterations + 1):
        history = [(rank_key(t.objective), t.params) for t in trials]
        params = base if i == 1 else space.mutate(dims, history, rng)
        log.info(f"tune: trial {i}/{iterations}: {params}")
        try:
            outcome = run_trial(job, params, f"trial{i}")
        except Exception as e:
            raise RuntimeError(f"pairhook tune: trial {i} failed ({type(e).__name__}: {e}); the {len(trials)} trial(s) "
                               f"before it are in {Path(job.project) / 'trials.csv'}") from e
        trials.append(TrialRecord(i, dict(params), outcome.last, outcome.run_dir))
        objective = trials[-1].objective
        log.info(f"tune: trial {i}/{iterations}: objective {objective:.6g}" if math.isfinite(objective)
                 else f"tune: trial {i}/{iterations}: objective {objective}")
        if not keep_weights:
            best = best_of(trials)
            for t in trials:
                if t is not best:
                    shutil.rmtree(Path(t.run_dir) / "weights", ignore_errors=True)
        on_trial(trials)
    return trials

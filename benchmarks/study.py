"""The effect study: does a pair term make the two views agree, and what does it cost? (README, Effect study)

On the inspection benchmark (the demo's dataset: the lower view blurred, low-contrast and noisy), yolov8n from
scratch with the demo's training settings:

1. **tune**: ``pairhook.tune`` (local engine) chooses ``pair_consistency``'s ``weight`` and ``tau_high`` and
   ``symmetric_kl``'s ``weight`` and ``T`` on the validation split, one training seed (``--tune-seed``), maximising
   ``--fitness``; the two searches run side by side;
2. **study**: baseline (pairhook installed with the pairs, no regularizer), ``pair_consistency`` with its defaults,
   with ``tau_high=0.3`` (the gate alone lowered, default weight) and tuned, ``symmetric_kl`` tuned, each trained with
   seeds ``0 .. --seeds - 1`` (the same seeds for every variant), each run's ``last.pt`` evaluated on the held-out
   test split (``pairhook.evaluate(..., split="test")``);
3. **report**: mean ± std per variant, and each variant against the baseline seed by seed (mean difference and its
   95% t-interval over seeds): ``study.md``, ``study.csv`` (one row per run, written as runs finish: ``--resume``
   continues an interrupted study), ``study-recall.png`` (each view's validation recall per epoch, mean over seeds).

Two trainings run at once (``--jobs``), each in its own process: Ultralytics trains on one torch thread on a 2-core
machine, so two processes use both cores.

    python benchmarks/study.py [--out pairhook-study] [--seeds 5] [--trials 4] [--epochs 50] [--images 64] [--jobs 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402  (sets up offline mode first)

from pairhook.demo import DATASET, TRAIN  # noqa: E402
from pairhook.machine import load_average, spawn_pool  # noqa: E402
from pairhook.results import last_results, read_results  # noqa: E402

#: What each search may choose (the defaults are among the choices, and trial 1 trains them).
SPACES: dict[str, dict[str, Any]] = {
    "pair_consistency": {"pair_consistency.weight": {"choice": [0.5, 1.0, 2.0, 4.0, 8.0]},
                         "pair_consistency.tau_high": {"choice": [0.1, 0.2, 0.3, 0.4, 0.5]}},
    "symmetric_kl": {"symmetric_kl.weight": {"choice": [0.25, 0.5, 1.0, 2.0, 4.0]},
                     "symmetric_kl.T": {"choice": [0.5, 1.0, 2.0, 4.0]}},
}
#: Rows of the report: (label, key); ``gap`` is recall_upper - recall_lower.
ROWS = [("mAP50-95", "metrics/mAP50-95(B)"), ("mAP50", "metrics/mAP50(B)"), ("recall upper view", "pairs/recall_upper"),
        ("recall lower view", "pairs/recall_lower"), ("upper - lower", "gap"),
        ("one view only (inconsistent)", "pairs/one_detected"), ("both views", "pairs/both_detected"),
        ("class agreement", "pairs/class_agree"), ("confidence gap", "pairs/conf_gap")]
BASELINE = "baseline"
ACTED = "term acted on (training, last epoch)"
#: The variants besides the tuned ones: ``{name: regularizers for install()}``.
FIXED: dict[str, Any] = {BASELINE: None, "pair_consistency": "pair_consistency",
                         "pair_consistency tau_high=0.3": {"pair_consistency": {"tau_high": 0.3}}}


def paired(values: list[float], base: list[float]) -> tuple[float, float, float]:
    """Mean of ``values[i] - base[i]`` and its 95% t-interval over the pairs (NaN pairs left out)."""
    from scipy import stats

    d = [v - b for v, b in zip(values, base) if not (math.isnan(v) or math.isnan(b))]
    if len(d) < 2:
        return (d[0] if d else math.nan), math.nan, math.nan
    mean, half = statistics.fmean(d), stats.t.ppf(0.975, len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d))
    return mean, mean - half, mean + half


def _tune(name: str, data: str, pairs: str, out: str, trials: int, fitness: str, train: dict) -> dict[str, Any]:
    """One search (in a worker process): the best trial's options for ``name``, and the trials' table."""
    from ultralytics import YOLO

    import pairhook

    yolo = YOLO(train.pop("model"))
    pairhook.install(yolo, pairs=pairs, regularizers=name)
    result = pairhook.tune(yolo, data=data, space=SPACES[name], iterations=trials, fitness=fitness,
                           out=out, **train)
    best = {k.split(".", 1)[1]: v for k, v in result.best.params.items() if k.startswith(f"{name}.")}
    return {"name": name, "options": best, "objective": result.best.objective, "dir": str(result.dir),
            "trials": [{**t.params, "objective": t.objective} for t in result.trials], "seconds": result.seconds}


def _train(variant: str, regularizers: Any, seed: int, data: str, pairs: str, runs: str, train: dict
           ) -> dict[str, Any]:
    """One training and its test-split evaluation (in a worker process)."""
    from ultralytics import YOLO

    import pairhook

    started = time.monotonic()
    yolo = YOLO(train.pop("model"))
    pairhook.install(yolo, pairs=pairs, regularizers=regularizers)
    yolo.train(data=data, seed=seed, project=runs, name=f"{variant}-seed{seed}", **train)
    run = Path(yolo.trainer.save_dir)
    test = pairhook.evaluate(str(run / "weights" / "last.pt"), data, pairs, split="test", imgsz=train["imgsz"],
                             batch=train["batch"], plots=False, project=str(run), name="test", exist_ok=True)
    return {"variant": variant, "seed": seed, "run": str(run), "test": test, "seconds": time.monotonic() - started}


def _value(metrics: dict[str, float], key: str) -> float:
    if key == "gap":
        return metrics.get("pairs/recall_upper", math.nan) - metrics.get("pairs/recall_lower", math.nan)
    return float(metrics.get(key, math.nan))


def _acted(run: str) -> float:
    """The fraction of the carried pairs the run's term acted on in its last training epoch (NaN: no term)."""
    last = last_results(Path(run))
    return next((v for k, v in last.items() if k.endswith("_acted")), math.nan)


def report(runs: list[dict[str, Any]], variants: list[str], seeds: list[int]) -> str:
    """Two markdown tables: mean ± std per variant, then each variant minus the baseline, paired by seed (mean
    difference and its 95% t-interval). The last row of the first is training activity, not a test metric."""
    by = {(r["variant"], r["seed"]): r for r in runs}
    rows = [*ROWS, (ACTED, "acted")]
    col = {v: {key: [_acted(by[v, s]["run"]) if key == "acted" else _value(by[v, s]["test"], key) for s in seeds]
               for _, key in rows} for v in variants}
    others = [v for v in variants if v != BASELINE]
    means = ["| test split, last epoch | " + " | ".join(variants) + " |", "|---" + "|---:" * len(variants) + "|"]
    diffs = ["| minus the baseline, same seed | " + " | ".join(others) + " |", "|---" + "|---:" * len(others) + "|"]
    for label, key in rows:
        cells = []
        for v in variants:
            xs = [x for x in col[v][key] if not math.isnan(x)]
            cells.append(f"{statistics.fmean(xs):.3f} ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else "-")
        means.append(f"| {label} | " + " | ".join(cells) + " |")
        if key == "acted":
            continue
        cells = []
        for v in others:
            mean, low, high = paired(col[v][key], col[BASELINE][key])
            cells.append("-" if math.isnan(mean) else f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]")
        diffs.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(means) + "\n\n" + "\n".join(diffs)


def plot_recall(runs: list[dict[str, Any]], variants: list[str], path: Path) -> None:
    """Validation recall of each view per epoch, mean over seeds: a panel per view, a line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (key, view) in zip(axes, (("pairs/recall_upper", "upper"), ("pairs/recall_lower", "lower"))):
        for i, v in enumerate(variants):
            curves = [[row.get(key, math.nan) for row in read_results(Path(r["run"]) / "results.csv")]
                      for r in runs if r["variant"] == v]
            n = min(map(len, curves))
            ax.plot(range(1, n + 1), [statistics.fmean(c[e] for c in curves) for e in range(n)], color=f"C{i}",
                    lw=2.2 if v == BASELINE else 1.4, label=v)
        ax.set(xlabel="epoch", title=f"{view} view (easy)" if view == "upper" else f"{view} view (degraded)",
               ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("recall of the pair members in the view (validation)")
    axes[1].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Each view's recall per epoch, mean over {len(runs) // len(variants)} seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _folder(variant: str) -> str:
    return variant.replace(" ", "-").replace("=", "")


def _write_csv(path: Path, runs: list[dict[str, Any]]) -> None:
    """One row per finished run (written after each, so an interrupted study can ``--resume``)."""
    keys = [key for _, key in ROWS if key != "gap"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "seed", "run", "seconds", *keys])
        for r in runs:
            writer.writerow([r["variant"], r["seed"], r["run"], f"{r['seconds']:.1f}",
                             *(r["test"].get(k) for k in keys)])


def _done(out: Path) -> tuple[dict[str, Any], dict[tuple[str, int], dict[str, Any]]]:
    """What an earlier call finished: the searches and the runs (``{(variant, seed): run}``)."""
    tuned = json.loads((out / "tuning.json").read_text()) if (out / "tuning.json").is_file() else {}
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    if (out / "study.csv").is_file():
        with open(out / "study.csv") as f:
            for row in csv.DictReader(f):
                test = {k: float(v) for k, v in row.items() if "/" in k and v not in ("", None)}
                runs[row["variant"], int(row["seed"])] = {"variant": row["variant"], "seed": int(row["seed"]),
                                                          "run": row["run"], "test": test,
                                                          "seconds": float(row.get("seconds") or "nan")}
    return tuned, runs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="pairhook-study")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=4, help="trials per search (the first trains the defaults)")
    ap.add_argument("--tune-seed", type=int, default=100, help="training seed of every tuning trial")
    ap.add_argument("--fitness", default="fitness + pairs/both_detected", help="what the searches maximise")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--imgsz", type=int, default=128)
    ap.add_argument("--model", default="yolov8n.yaml")
    ap.add_argument("--jobs", type=int, default=2, help="trainings at once")
    ap.add_argument("--resume", action="store_true",
                    help="reuse the searches (tuning.json) and the runs (study.csv) an earlier call left in --out")
    args = ap.parse_args(argv)
    from pairhook.synthetic import make_dataset

    started, load_before = time.monotonic(), load_average()
    out = Path(args.out).resolve()
    held = max(8, args.images // 4)
    ds = make_dataset(out / "data", n_train=args.images, n_val=held, n_test=held, seed=0, **DATASET)
    data, pairs = str(ds.data_yaml), str(ds.pairs_json)
    train = dict(TRAIN, plots=False, epochs=args.epochs, imgsz=args.imgsz, model=args.model)
    print(f"study: {args.images} train / {held} val / {held} test images in {ds.root}; {machine()}", flush=True)

    done = _done(out) if args.resume else ({}, {})
    with spawn_pool(args.jobs) as pool:
        futures = {name: pool.submit(_tune, name, data, pairs, str(out / "tune" / name), args.trials, args.fitness,
                                     dict(train, seed=args.tune_seed)) for name in SPACES if name not in done[0]}
        tuned = {name: done[0][name] if name in done[0] else futures[name].result() for name in SPACES}
    (out / "tuning.json").write_text(json.dumps(tuned, indent=1, default=str))
    for name, t in tuned.items():
        print(f"study: tuned {name}: {t['options']} (objective {t['objective']:.4f}, {t['dir']})", flush=True)
    variants = {**FIXED, **{f"{name} tuned": {name: t["options"]} for name, t in tuned.items()}}
    seeds = list(range(args.seeds))
    jobs = [(v, reg, s) for s in seeds for v, reg in variants.items()]
    runs: list[dict[str, Any]] = [done[1][v, s] for v, _, s in jobs if (v, s) in done[1]]
    if runs:
        print(f"study: {len(runs)} of {len(jobs)} runs read from {out / 'study.csv'} (--resume)", flush=True)
    todo = [(v, reg, s) for v, reg, s in jobs if (v, s) not in done[1]]
    with spawn_pool(args.jobs) as pool:
        futures = [pool.submit(_train, _folder(v), reg, s, data, pairs, str(out / "runs"), dict(train))
                   for v, reg, s in todo]
        for (v, _, s), f in zip(todo, futures):
            runs.append({**f.result(), "variant": v})
            _write_csv(out / "study.csv", runs)
            print(f"study: [{len(runs)}/{len(jobs)}] {v} seed {s}: {runs[-1]['seconds']:.0f} s", flush=True)

    names = list(variants)
    table = report(runs, names, seeds)
    plot_recall(runs, names, out / "study-recall.png")
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    resumed = len(jobs) - len(todo)
    footer = (f"{len(todo)} trainings{' and ' if len(done[0]) < len(SPACES) else ''}"
              f"{sum(len(t['trials']) for n, t in tuned.items() if n not in done[0]) or ''}"
              f"{' tuning trials' if len(done[0]) < len(SPACES) else ''} in {minutes} min {seconds} s"
              f"{f' (and {resumed} runs read from an earlier call)' if resumed else ''} on {machine()} "
              f"(load avg at the start {load_before})")
    options = "\n".join(f"- {n} tuned: {t['options']} (best of {len(t['trials'])} trials, objective "
                        f"{t['objective']:.4f})" for n, t in tuned.items())
    (out / "study.md").write_text(f"{table}\n\n{options}\n\n{footer}\n")
    print(f"\n{table}\n\n{options}\n\nstudy: {footer}\nstudy: {out / 'study.md'}, {out / 'study-recall.png'}")
    return {"table": table, "tuned": tuned, "runs": runs, "out": out}


if __name__ == "__main__":
    main()

"""The effect study: does a pair term make the two views agree, and what does it cost? (README, Effect study)

On the inspection benchmark (the demo's dataset: the lower view blurred, low-contrast and noisy), yolov8n from
scratch with the demo's training settings:

1. **tune**: ``pairhook.tune`` (local engine) chooses ``pair_consistency``'s ``weight`` and ``tau_high`` and
   ``symmetric_kl``'s ``weight`` and ``T`` on the validation split, one training seed (``--tune-seed``), maximising
   ``--fitness``; the two searches run side by side;
2. **study**: baseline (pairhook installed with the pairs, no regularizer), ``pair_consistency`` with its defaults and
   tuned, ``symmetric_kl`` tuned, each trained with seeds ``0 .. --seeds - 1`` (the same seeds for every variant),
   each run's ``last.pt`` evaluated on the held-out test split (``pairhook.evaluate(..., split="test")``);
3. **report**: mean ± std per variant, and each variant against the baseline seed by seed (mean difference and its
   95% t-interval over seeds): ``study.md``, ``study.csv`` (one row per run), ``study-recall.png`` (each view's
   validation recall per epoch, mean over seeds).

Two trainings run at once (``--jobs``), each in its own process: Ultralytics trains on one torch thread on a 2-core
machine, so two processes use both cores.

    python benchmarks/study.py [--out pairhook-study] [--seeds 5] [--trials 4] [--epochs 50] [--images 64] [--jobs 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402  (sets up offline mode first)

from pairhook.demo import DATASET, TRAIN  # noqa: E402
from pairhook.machine import load_average  # noqa: E402
from pairhook.results import read_results  # noqa: E402

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


def _pool(jobs: int) -> ProcessPoolExecutor:
    """Workers started fresh (spawn; they import this script, hence ``_common``'s offline set-up), one task each."""
    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1)


def _value(metrics: dict[str, float], key: str) -> float:
    if key == "gap":
        return metrics.get("pairs/recall_upper", math.nan) - metrics.get("pairs/recall_lower", math.nan)
    return float(metrics.get(key, math.nan))


def report(runs: list[dict[str, Any]], variants: list[str], seeds: list[int]) -> str:
    """The markdown table: mean ± std per variant, then each variant minus the baseline, paired by seed."""
    by = {(r["variant"], r["seed"]): r["test"] for r in runs}
    col = {v: {key: [_value(by[v, s], key) for s in seeds] for _, key in ROWS} for v in variants}
    head = ["test split, last epoch", *(f"{v}: mean ± std" for v in variants),
            *(f"{v} − baseline [95% CI]" for v in variants if v != BASELINE)]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for label, key in ROWS:
        cells = [label]
        for v in variants:
            xs = [x for x in col[v][key] if not math.isnan(x)]
            cells.append(f"{statistics.fmean(xs):.3f} ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else "-")
        for v in variants:
            if v != BASELINE:
                mean, low, high = paired(col[v][key], col[BASELINE][key])
                cells.append("-" if math.isnan(mean) else f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_recall(runs: list[dict[str, Any]], variants: list[str], path: Path) -> None:
    """Validation recall of each view per epoch, mean over seeds: one line per variant, upper solid, lower dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, v in enumerate(variants):
        tables = [read_results(Path(r["run"]) / "results.csv") for r in runs if r["variant"] == v]
        for key, style in (("pairs/recall_upper", "-"), ("pairs/recall_lower", "--")):
            curves = [[row.get(key, math.nan) for row in t] for t in tables]
            n = min(map(len, curves))
            mean = [statistics.fmean(c[e] for c in curves) for e in range(n)]
            ax.plot(range(1, n + 1), mean, style, color=f"C{i}", label=f"{v}, {key.split('_')[1]} view")
    ax.set(xlabel="epoch", ylabel="recall (validation, pairs)", ylim=(0, 1),
           title=f"Each view's recall, mean over {len(runs) // len(variants)} seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    args = ap.parse_args(argv)
    from pairhook.synthetic import make_dataset

    started, load_before = time.monotonic(), load_average()
    out = Path(args.out).resolve()
    held = max(8, args.images // 4)
    ds = make_dataset(out / "data", n_train=args.images, n_val=held, n_test=held, seed=0, **DATASET)
    data, pairs = str(ds.data_yaml), str(ds.pairs_json)
    train = dict(TRAIN, plots=False, epochs=args.epochs, imgsz=args.imgsz, model=args.model)
    print(f"study: {args.images} train / {held} val / {held} test images in {ds.root}; {machine()}", flush=True)

    with _pool(args.jobs) as pool:
        futures = [pool.submit(_tune, name, data, pairs, str(out / "tune" / name), args.trials, args.fitness,
                               dict(train, seed=args.tune_seed)) for name in SPACES]
        tuned = {f.result()["name"]: f.result() for f in futures}
    for name, t in tuned.items():
        print(f"study: tuned {name}: {t['options']} (objective {t['objective']:.4f}, {t['dir']})", flush=True)
    variants = {BASELINE: None, "pair_consistency": "pair_consistency",
                "pair_consistency tuned": {"pair_consistency": tuned["pair_consistency"]["options"]},
                "symmetric_kl tuned": {"symmetric_kl": tuned["symmetric_kl"]["options"]}}
    seeds = list(range(args.seeds))
    jobs = [(v, reg, s) for s in seeds for v, reg in variants.items()]
    runs: list[dict[str, Any]] = []
    with _pool(args.jobs) as pool:
        futures = [pool.submit(_train, v.replace(" ", "-"), reg, s, data, pairs, str(out / "runs"), dict(train))
                   for v, reg, s in jobs]
        for (v, _, s), f in zip(jobs, futures):
            runs.append({**f.result(), "variant": v})
            print(f"study: [{len(runs)}/{len(jobs)}] {v} seed {s}: {runs[-1]['seconds']:.0f} s", flush=True)

    names = list(variants)
    table = report(runs, names, seeds)
    plot_recall(runs, names, out / "study-recall.png")
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    footer = (f"{len(runs)} trainings and {sum(len(t['trials']) for t in tuned.values())} tuning trials in {minutes} "
              f"min {seconds} s on {machine()} (load avg at the start {load_before})")
    options = "\n".join(f"- {n} tuned: {t['options']} (best of {len(t['trials'])} trials, objective "
                        f"{t['objective']:.4f})" for n, t in tuned.items())
    (out / "study.md").write_text(f"{table}\n\n{options}\n\n{footer}\n")
    (out / "tuning.json").write_text(json.dumps(tuned, indent=1, default=str))
    with open(out / "study.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "seed", "run", *(key for _, key in ROWS if key != "gap")])
        for r in runs:
            writer.writerow([r["variant"], r["seed"], r["run"], *(r["test"].get(k) for _, k in ROWS if k != "gap")])
    print(f"\n{table}\n\n{options}\n\nstudy: {footer}\nstudy: {out / 'study.md'}, {out / 'study-recall.png'}")
    return {"table": table, "tuned": tuned, "runs": runs, "out": out}


if __name__ == "__main__":
    main()

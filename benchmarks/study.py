"""The effect study: which pair term finds the hard view more often without costing mAP? (docs/effect-study.md)

On the inspection benchmark (the demo's dataset: the lower view blurred, low-contrast and noisy), yolov8n from
scratch with the demo's training settings, validation only at the last epoch (``val=False``):

1. **diagnose**: the baseline (pairhook installed with the pairs, no regularizer) and the earlier study's tuned
   ``pair_consistency(weight=8, tau_high=0.3)``, seeds 0-2, on the held-out test split: per-view AP, recall at
   matched precision, wrong-class boxes, and what its teacher is (:func:`teacher_stats`);
2. **tune**: each candidate term's ``weight`` and ``tau`` with ``pairhook.tune`` (local engine) on the validation
   split, training seed ``--tune-seed``, maximising ``--fitness`` (threshold-free: mAP50-95 plus the lower view's
   AP50-95). A trial whose mAP50-95 is more than ``--max-loss`` below the baseline's at the same seed loses; a best
   value at an edge of its range widens the range (a second search beyond it);
3. **confirm**: the baseline, ``pair_consistency`` with its defaults and every tuned candidate with seeds
   ``0 .. --seeds - 1``, each run's ``last.pt`` evaluated on the test split;
4. **report**: ``study.md`` (mean ± std, paired differences with 95% t-intervals, the diagnosis, the tuning trials,
   the target check), ``differences.csv`` (``variant,metric,mean,ci_low,ci_high,seeds``) and ``differences.png``.

Runs are kept in ``--out/runs``; a run whose ``last.pt`` exists is not trained again (an interrupted study
continues where it stopped), and evaluation is always redone. Two trainings run at once (``--jobs``), each in its
own process: Ultralytics trains on one torch thread on a 2-core machine, so two processes use both cores.

    python benchmarks/study.py [--out pairhook-study] [--seeds 10] [--trials 8] [--epochs 50] [--jobs 2]
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
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402  (sets up offline mode first)

from pairhook.demo import DATASET, TRAIN  # noqa: E402
from pairhook.machine import load_average, spawn_pool  # noqa: E402
from pairhook.results import last_results  # noqa: E402

BASELINE = "baseline"
#: The earlier study's tuned setting, diagnosed here (docs/effect-study.md: it cost 0.1 mAP50-95).
DIAGNOSED = {"pair_consistency tuned": {"pair_consistency": {"weight": 8.0, "tau_high": 0.3}}}
#: Confirmed beside the tuned candidates: what ``install(model)`` trains today (its defaults).
DEFAULT = {"pair_consistency default": "pair_consistency"}
#: The candidate terms and what each search may choose (the defaults are among the choices; trial 1 trains them).
SPACES: dict[str, dict[str, Any]] = {
    "pair_quality": {"pair_quality.weight": {"choice": [0.5, 1.0, 2.0, 4.0, 8.0]},
                     "pair_quality.tau": {"choice": [0.1, 0.25, 0.4]}},
    "pair_feature": {"pair_feature.weight": {"choice": [1.0, 4.0, 16.0, 64.0]},
                     "pair_feature.tau": {"choice": [0.1, 0.25, 0.4]}},
}
#: The metrics of the report and of ``differences.csv``: (name, results.csv key, label).
METRICS = [("map50_95", "metrics/mAP50-95(B)", "mAP50-95"), ("map50", "metrics/mAP50(B)", "mAP50"),
           ("ap_upper", "pairs/ap_upper", "AP50-95 upper view"), ("ap_lower", "pairs/ap_lower", "AP50-95 lower view"),
           ("ap50_upper", "pairs/ap50_upper", "AP50 upper view"), ("ap50_lower", "pairs/ap50_lower", "AP50 lower view"),
           ("recall_p80_upper", "pairs/recall_p80_upper", "recall at precision 0.8, upper"),
           ("recall_p80_lower", "pairs/recall_p80_lower", "recall at precision 0.8, lower"),
           ("recall_upper", "pairs/recall_upper", "recall upper view (conf 0.25)"),
           ("recall_lower", "pairs/recall_lower", "recall lower view (conf 0.25)"),
           ("one_detected", "pairs/one_detected", "one view only (conf 0.25)"),
           ("both_detected", "pairs/both_detected", "both views (conf 0.25)"),
           ("wrong_class_upper", "pairs/wrong_class_upper", "wrong-class boxes, upper members"),
           ("wrong_class_lower", "pairs/wrong_class_lower", "wrong-class boxes, lower members")]
TEACHER = [("teacher_wrong_class", "teacher's top class is not the pair's"),
           ("teacher_upper", "teacher is the upper member"),
           ("teacher_minus_student_p", "teacher's minus student's GT-class confidence"),
           ("teacher_minus_student_iou", "teacher's minus student's IoU (GT-class boxes)")]


def paired(values: list[float], base: list[float]) -> tuple[float, float, float, int]:
    """Mean of ``values[i] - base[i]``, its 95% t-interval over the pairs (NaN pairs left out), and their number."""
    from scipy import stats

    d = [v - b for v, b in zip(values, base) if not (math.isnan(v) or math.isnan(b))]
    if len(d) < 2:
        return (d[0] if d else math.nan), math.nan, math.nan, len(d)
    mean, half = statistics.fmean(d), stats.t.ppf(0.975, len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d))
    return mean, mean - half, mean + half, len(d)


def teacher_stats(record: list[dict[str, float]]) -> dict[str, float]:
    """What a confidence-picked teacher is, over the vertically shifted pairs whose members are both localized."""
    both = [r for r in record if r["loc_a"] and r["loc_b"]]
    if not both:
        return {k: math.nan for k, _ in TEACHER}
    out = {"teacher_wrong_class": statistics.fmean(r["t_wrong"] for r in both),
           "teacher_upper": statistics.fmean(r["t_upper"] for r in both),
           "teacher_minus_student_p": statistics.fmean(r["dp"] for r in both)}
    ious = [r["diou"] for r in both if not math.isnan(r["diou"])]
    out["teacher_minus_student_iou"] = statistics.fmean(ious) if ious else math.nan
    return out


def _recorder(record: list[dict[str, float]]) -> Any:
    """A :class:`pairhook.metrics.PairMetrics` that also records, per vertical pair, what pair_consistency's teacher
    (the member whose most confident box there is the more confident) would be."""
    import torch
    from torchvision.ops import box_iou

    from pairhook import metrics

    class Recording(metrics.PairMetrics):
        def update(self, gt_boxes, gt_cls, pairs, boxes, conf, cls) -> None:  # noqa: ANN001
            super().update(gt_boxes, gt_cls, pairs, boxes, conf, cls)
            if pairs.shape[0] == 0:
                return
            upper, lower, vertical = metrics.view_members(gt_boxes, pairs)
            iou = box_iou(gt_boxes.float(), boxes.float()) if boxes.shape[0] else torch.zeros(len(gt_boxes), 0)
            near = iou >= self.iou
            for u, lo in zip(upper[vertical].tolist(), lower[vertical].tolist()):
                row: dict[str, float] = {}
                best = {}
                for key, g in (("a", u), ("b", lo)):
                    hit = near[g].nonzero().flatten()
                    row[f"loc_{key}"] = float(hit.numel() > 0)
                    top = hit[conf[hit].argmax()] if hit.numel() else None
                    right = hit[cls[hit].long() == gt_cls[g].long()] if hit.numel() else hit
                    r = right[conf[right].argmax()] if right.numel() else None
                    best[key] = (top, r)
                if not (row["loc_a"] and row["loc_b"]):
                    record.append(row)
                    continue
                (ta, ra), (tb, rb) = best["a"], best["b"]
                a_teaches = bool(conf[ta] >= conf[tb])
                (t_top, t_right, t_gt), (_, s_right, s_gt) = ((ta, ra, u), (tb, rb, lo)) if a_teaches else (
                    (tb, rb, lo), (ta, ra, u))
                p = [float(conf[x]) if x is not None else 0.0 for x in (t_right, s_right)]
                ious = [float(iou[g, x]) if x is not None else math.nan for g, x in ((t_gt, t_right), (s_gt, s_right))]
                row.update(t_wrong=float(int(cls[t_top]) != int(gt_cls[t_gt])), t_upper=float(a_teaches),
                           dp=p[0] - p[1], diou=ious[0] - ious[1])
                record.append(row)

    return Recording


def train_and_evaluate(folder: str, regularizers: Any, seed: int, data: str, pairs: str, runs: str,
                       train: dict[str, Any]) -> dict[str, Any]:
    """One training (skipped when its ``last.pt`` exists) and its test-split evaluation (in a worker process)."""
    from ultralytics import YOLO

    import pairhook
    from pairhook import val_metrics

    started = time.monotonic()
    run = Path(runs) / f"{folder}-seed{seed}"
    trained = (run / "weights" / "last.pt").is_file()
    if not trained:
        yolo = YOLO(train.pop("model"))
        pairhook.install(yolo, pairs=pairs, regularizers=regularizers)
        yolo.train(data=data, seed=seed, project=runs, name=run.name, **train)  # TRAIN has exist_ok
    record: list[dict[str, float]] = []
    val_metrics.PairMetrics = _recorder(record)
    test = pairhook.evaluate(str(run / "weights" / "last.pt"), data, pairs, split="test", imgsz=train["imgsz"],
                             batch=train["batch"], device=train.get("device"), plots=False, project=str(run),
                             name="test", exist_ok=True)
    acted = next((v for k, v in last_results(run).items() if k.endswith("_acted")), math.nan)
    return {"folder": folder, "seed": seed, "run": str(run), "test": test, "teacher": teacher_stats(record),
            "acted": acted, "trained": not trained, "seconds": time.monotonic() - started}


def _trials_csv(name: str, path: Path) -> list[dict[str, Any]]:
    """The trials of a search that finished earlier, from its ``trials.csv``."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    number = lambda v: float(v) if v not in ("", None) else math.nan  # noqa: E731
    return [{"options": {k.split(".", 1)[1]: number(v) for k, v in r.items() if k.startswith(f"{name}.")},
             "objective": number(r["objective"]), "map50_95": number(r["metrics/mAP50-95(B)"])} for r in rows]


def search(name: str, space: dict[str, Any], data: str, pairs: str, out: str, trials: int, fitness: str,
           train: dict[str, Any]) -> dict[str, Any]:
    """One search with ``pairhook.tune`` (in a worker process): every trial's options, metrics and objective. A
    search that finished earlier in ``out`` (its ``trials.csv`` has ``trials`` rows) is read, not run again."""
    from ultralytics import YOLO

    import pairhook

    done = Path(out) / "trials.csv"
    if done.is_file():
        earlier = _trials_csv(name, done)
        if len(earlier) >= trials:
            return {"name": name, "dir": out, "seconds": 0.0, "trials": earlier}
    yolo = YOLO(train.pop("model"))
    pairhook.install(yolo, pairs=pairs, regularizers=name)
    result = pairhook.tune(yolo, data=data, space=space, iterations=trials, fitness=fitness, out=out, **train)
    return {"name": name, "dir": str(result.dir), "seconds": result.seconds,
            "trials": [{"options": {k.split(".", 1)[1]: v for k, v in t.params.items() if k.startswith(f"{name}.")},
                        "objective": t.objective, "map50_95": t.metrics.get("metrics/mAP50-95(B)", math.nan)}
                       for t in result.trials]}


def select(trials: list[dict[str, Any]], floor: float) -> Optional[dict[str, Any]]:
    """The trial with the highest objective among those whose mAP50-95 is at least ``floor``; when none is, the
    best of all, marked ``"below_floor"`` (the confirmation then tests it anyway, and the report says so)."""
    finite = [t for t in trials if math.isfinite(t["objective"])]
    ok = [t for t in finite if t["map50_95"] >= floor]
    if ok:
        return max(ok, key=lambda t: t["objective"])
    return {**max(finite, key=lambda t: t["objective"]), "below_floor": True} if finite else None


def widened(name: str, space: dict[str, Any], best: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The space beyond each option whose best value sits at an edge of its range (a weight at the top: x2, x4, x8;
    at the bottom: /2, /4, /8; ``tau`` at the bottom: down to 0; at the top: up to 0.6), the other options kept at
    their best; None when no best value is at an edge."""
    out: dict[str, Any] = {}
    for key, rng in space.items():
        option, choices = key.split(".", 1)[1], sorted(rng["choice"])
        value = best["options"].get(option)
        if option == "weight" and value == choices[-1]:
            out[key] = {"choice": [value * 2, value * 4, value * 8]}
        elif option == "weight" and value == choices[0]:
            out[key] = {"choice": [value / 8, value / 4, value / 2]}
        elif option == "tau" and value == choices[0] and value > 0:
            out[key] = {"choice": [0.0, value / 2]}
        elif option == "tau" and value == choices[-1] and value < 0.6:
            out[key] = {"choice": [min(0.6, value + 0.1), 0.6]}
    if not out:
        return None
    return {**{k: best["options"][k.split(".", 1)[1]] for k in space if k not in out}, **out}


def tuning_table(name: str, tuning: dict[str, Any]) -> str:
    """One search's trials as a markdown table, the chosen one in bold, those below the floor marked."""
    best = tuning.get("best") or {}
    lines = [f"| {name} trial | options | mAP50-95 (val) | objective | |", "|---|---|---:|---:|---|"]
    for i, t in enumerate(tuning["trials"], 1):
        chosen = t["options"] == best.get("options")
        options = ", ".join(f"{k}={v:g}" for k, v in t["options"].items())
        lines.append(f"| {i} | {'**' + options + '**' if chosen else options} | {t['map50_95']:.3f} | "
                     f"{t['objective']:.3f} | {'below the floor' if t['map50_95'] < tuning['floor'] else ''} |")
    floor = f"floor: mAP50-95 {tuning['floor']:.3f} (the baseline's at the tuning seed minus --max-loss)"
    return "\n".join(lines) + "\n\n" + floor


def meets_target(diff: dict[str, tuple[float, float, float, int]], base_one: float) -> dict[str, bool]:
    """The issue's target, point by point (``diff``: metric -> paired mean, low, high, n)."""
    return {"lower-view recall at least +0.10, interval above 0": diff["recall_lower"][0] >= 0.10
            and diff["recall_lower"][1] > 0,
            "pairs on one view only at most half the baseline's": base_one + diff["one_detected"][0] <= base_one / 2,
            "mAP50-95 interval lower bound at least -0.02": diff["map50_95"][1] >= -0.02,
            "lower-view recall at matched precision up, interval above 0": diff["recall_p80_lower"][1] > 0}


def _value(run: dict[str, Any], key: str) -> float:
    return float(run["test"].get(key, math.nan))


def report(runs: list[dict[str, Any]], variants: list[str], seeds: list[int], rows: list[tuple[str, str, str]]
           ) -> tuple[str, dict[str, dict[str, tuple[float, float, float, int]]]]:
    """Two markdown tables (mean ± std per variant; each variant minus the baseline, paired by seed) and the paired
    differences ``{variant: {metric: (mean, low, high, n)}}``."""
    by = {(r["variant"], r["seed"]): r for r in runs}

    def value(run: dict[str, Any], metric: str, key: str) -> float:
        return run["teacher"][metric] if metric.startswith("teacher") else _value(run, key)

    col = {v: {m: [value(by[v, s], m, key) for s in seeds if (v, s) in by] for m, key, _ in rows} for v in variants}
    others = [v for v in variants if v != BASELINE]
    means = ["| test split, last epoch | " + " | ".join(variants) + " |", "|---" + "|---:" * len(variants) + "|"]
    diffs = ["| minus the baseline, same seed | " + " | ".join(others) + " |", "|---" + "|---:" * len(others) + "|"]
    out: dict[str, dict[str, tuple[float, float, float, int]]] = {v: {} for v in others}
    for m, _, label in rows:
        cells = []
        for v in variants:
            xs = [x for x in col[v][m] if not math.isnan(x)]
            cells.append(f"{statistics.fmean(xs):.3f} ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else "-")
        means.append(f"| {label} | " + " | ".join(cells) + " |")
        cells = []
        for v in others:
            out[v][m] = paired(col[v][m], col[BASELINE][m])
            mean, low, high, _ = out[v][m]
            cells.append("-" if math.isnan(mean) else f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]")
        diffs.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(means) + "\n\n" + "\n".join(diffs), out


def plot_differences(diffs: dict[str, dict[str, tuple[float, float, float, int]]], path: Path) -> None:
    """Each variant minus the baseline with its 95% interval, one panel per metric group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("accuracy (threshold-free)", ["map50_95", "map50", "ap_upper", "ap_lower", "recall_p80_upper",
                                             "recall_p80_lower"]),
              ("at conf 0.25", ["recall_upper", "recall_lower", "one_detected", "both_detected", "wrong_class_upper",
                                "wrong_class_lower"])]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharex=False)
    names = list(diffs)
    for ax, (title, metrics) in zip(axes, groups):
        for i, v in enumerate(names):
            ys = [j + (i - (len(names) - 1) / 2) * 0.8 / max(len(names), 1) for j in range(len(metrics))]
            mean = [diffs[v][m][0] for m in metrics]
            err = [[diffs[v][m][0] - diffs[v][m][1] for m in metrics], [diffs[v][m][2] - diffs[v][m][0]
                                                                         for m in metrics]]
            ax.errorbar(mean, ys, xerr=err, fmt="o", color=f"C{i}", capsize=3, label=v)
        ax.axvline(0, color="0.3", lw=1)
        ax.set_yticks(range(len(metrics)), [dict((m, lab) for m, _, lab in METRICS)[m] for m in metrics])
        ax.invert_yaxis()
        ax.set(title=title, xlabel="minus the baseline")
        ax.grid(alpha=0.3, axis="x")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(names), fontsize=9, frameon=False)
    fig.suptitle("Each variant minus the baseline, paired by seed: mean and 95% interval (test split)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_differences(path: Path, diffs: dict[str, dict[str, tuple[float, float, float, int]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "metric", "mean", "ci_low", "ci_high", "seeds"])
        for v, by_metric in diffs.items():
            for m, (mean, low, high, n) in by_metric.items():
                if not m.startswith("teacher"):
                    w.writerow([v, m, *(f"{x:.4f}" for x in (mean, low, high)), n])


def _folder(variant: str, regularizers: Any) -> str:
    """A run folder's name: the variant's, with a tuned term's options (so other options never reuse its runs)."""
    name = variant.replace(" ", "-").replace("=", "")
    if variant.endswith(" tuned") and variant not in DIAGNOSED:
        (term, options), = regularizers.items()
        name = term + "".join(f"-{k}{v:g}" for k, v in sorted(options.items()))
    return name


def _run_all(pool: Any, jobs: list[tuple[str, Any, int]], data: str, pairs: str, runs: str, train: dict[str, Any],
             done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    futures = [pool.submit(train_and_evaluate, _folder(v, reg), reg, s, data, pairs, runs, dict(train))
               for v, reg, s in jobs]
    out = []
    for (v, _, s), f in zip(jobs, futures):
        out.append({**f.result(), "variant": v})
        done.append(out[-1])
        print(f"study: [{len(done)}] {v} seed {s}: {out[-1]['seconds']:.0f} s"
              f"{'' if out[-1]['trained'] else ' (trained earlier; evaluated)'}", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="pairhook-study")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--diagnose-seeds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=8, help="trials per search (the first trains the defaults)")
    ap.add_argument("--tune-seed", type=int, default=100, help="training seed of every tuning trial")
    ap.add_argument("--fitness", default="metrics/mAP50-95(B) + pairs/ap_lower", help="what the searches maximise")
    ap.add_argument("--max-loss", type=float, default=0.01, help="a trial this far below its baseline's mAP50-95 loses")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--val-images", type=int, default=64)
    ap.add_argument("--test-images", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--imgsz", type=int, default=128)
    ap.add_argument("--model", default="yolov8n.yaml")
    ap.add_argument("--jobs", type=int, default=2, help="trainings at once")
    ap.add_argument("--differences", default="docs/study/differences.csv", help="where the paired table goes")
    ap.add_argument("--device", default=None, help="training and evaluation device (Ultralytics' device=)")
    ap.add_argument("--tuning", default=None,
                    help="a tuning.json of an earlier study: confirm its choices instead of searching again")
    args = ap.parse_args(argv)
    from pairhook.synthetic import make_dataset

    started, load_before = time.monotonic(), load_average()
    out = Path(args.out).resolve()
    ds = make_dataset(out / "data", n_train=args.images, n_val=args.val_images, n_test=args.test_images, seed=0,
                      **DATASET)
    data, pairs, runs = str(ds.data_yaml), str(ds.pairs_json), str(out / "runs")
    train = dict(TRAIN, plots=False, val=False, epochs=args.epochs, imgsz=args.imgsz, model=args.model,
                 **({"device": args.device} if args.device is not None else {}))
    print(f"study: {args.images} train / {args.val_images} val / {args.test_images} test images in {ds.root}; "
          f"{machine()}", flush=True)
    finished: list[dict[str, Any]] = []
    with spawn_pool(args.jobs) as pool:
        diag_seeds = list(range(args.diagnose_seeds))
        diag = _run_all(pool, [(v, reg, s) for s in diag_seeds for v, reg in {BASELINE: None, **DIAGNOSED}.items()],
                        data, pairs, runs, train, finished)
    earlier = Path(args.tuning) if args.tuning else out / "tuning.json"
    tuning = json.loads(earlier.read_text()) if earlier.is_file() else {}
    if set(tuning) != set(SPACES):
        with spawn_pool(args.jobs) as pool:
            base_tune = pool.submit(train_and_evaluate, "tune-baseline", None, args.tune_seed, data, pairs, runs,
                                    dict(train))
            futures = {n: pool.submit(search, n, space, data, pairs, str(out / "tune" / n), args.trials, args.fitness,
                                      dict(train, seed=args.tune_seed)) for n, space in SPACES.items()}
            floor = float(last_results(Path(base_tune.result()["run"]))["metrics/mAP50-95(B)"]) - args.max_loss
            tuning = {n: f.result() for n, f in futures.items()}
            wider = {}
            for n, t in tuning.items():
                best = select(t["trials"], floor)
                more = widened(n, SPACES[n], best) if best else None
                if more:
                    print(f"study: {n}'s best {best['options']} is at an edge of its range: searching {more}",
                          flush=True)
                    wider[n] = pool.submit(search, n, more, data, pairs, str(out / "tune" / f"{n}-wider"),
                                           max(3, args.trials // 2), args.fitness, dict(train, seed=args.tune_seed))
            for n, f in wider.items():
                tuning[n]["trials"] += f.result()["trials"]
        for t in tuning.values():
            t["floor"] = floor
            t["best"] = select(t["trials"], floor)
        (out / "tuning.json").write_text(json.dumps(tuning, indent=1, default=str))
    chosen = {f"{n} tuned": {n: t["best"]["options"]} for n, t in tuning.items() if t.get("best")}
    for n, t in tuning.items():
        print(f"study: tuned {n}: {t['best']}", flush=True)
    seeds = list(range(args.seeds))
    variants = {BASELINE: None, **DEFAULT, **chosen}
    with spawn_pool(args.jobs) as pool:
        confirm = _run_all(pool, [(v, reg, s) for s in seeds for v, reg in variants.items()], data, pairs, runs,
                           train, finished)

    rows = [(m, k, lab) for m, k, lab in METRICS]
    diag_table, _ = report(diag, [BASELINE, *DIAGNOSED], diag_seeds, rows + [(m, "", lab) for m, lab in TEACHER])
    table, diffs = report(confirm, list(variants), seeds, rows)
    write_differences(Path(args.differences), diffs)
    plot_differences(diffs, Path(args.differences).with_suffix(".png"))
    base_one = statistics.fmean(_value(r, "pairs/one_detected") for r in confirm if r["variant"] == BASELINE)
    targets = "\n".join(f"- {v}: " + "; ".join(f"{k}: {'yes' if ok else 'no'}"
                                               for k, ok in meets_target(d, base_one).items())
                        for v, d in diffs.items())
    trials = "\n\n".join(tuning_table(n, t) for n, t in tuning.items())
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    trained = sum(r["trained"] for r in finished)
    footer = (f"{trained} trainings (others reused from {runs}) and {len(finished)} evaluations in {minutes} min "
              f"{seconds} s on {machine()} (load avg at the start {load_before})")
    text = (f"## Diagnosis ({len(diag_seeds)} seeds)\n\n{diag_table}\n\n## Tuning ({args.fitness})\n\n{trials}\n\n"
            f"## Confirmation ({len(seeds)} seeds)\n\n{table}\n\n## Target\n\n{targets}\n\n{footer}\n")
    (out / "study.md").write_text(text)
    print(f"\n{text}\nstudy: {out / 'study.md'}, {args.differences}")
    return {"table": table, "differences": diffs, "tuning": tuning, "runs": finished, "out": out}


if __name__ == "__main__":
    main()

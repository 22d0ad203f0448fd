"""Benchmark 2: the vectorized ``pair_consistency`` vs. a plain per-pair Python loop computing the same value.

Both run on the same ``PairContext`` (batch 16, 8400 anchors, 80 classes, the pairs spread over the images, about
10 assigned anchors per ground truth); the loop is what one writes first: per pair, ``.item()`` / ``int()`` reads,
``nonzero()`` for the member's anchors, Python branching. Their values and gradients are asserted equal. Times are
medians of interleaved repeats, for the value alone (no gradient) and for value + backward into the (leaf) logits.
Each host sync is cheap on a CPU; on a GPU each one stalls the device, so the gap there is far larger.

    python benchmarks/vectorized_vs_loop.py [--repeats 15] [--repeats-bwd 3] [--pairs 8 16 32 64 128 256] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _common import add_device_option, add_threads_option, apply_threads, interleaved, machine, median, synced, table  # noqa: E402  (sets up offline mode first)

from pairhook.context import PairContext  # noqa: E402
from pairhook.regularizers import pair_consistency  # noqa: E402


def make_ctx(pairs: int, batch: int = 16, anchors: int = 8400, nc: int = 80, per_gt: int = 10, seed: int = 0,
             device: str = "cpu") -> PairContext:
    """A context with ``pairs`` pairs over ``batch`` images, ``2 * ceil(pairs / batch) + 2`` GTs per image."""
    g = torch.Generator().manual_seed(seed)
    per_image = -(-pairs // batch)
    G = 2 * per_image + 2
    gt_labels = torch.randint(nc, (batch, G), generator=g)
    fg = torch.rand(batch, anchors, generator=g) < G * per_gt / anchors
    gt_idx = torch.randint(G, (batch, anchors), generator=g)
    align = torch.rand(batch, anchors, generator=g) * fg
    target_scores = F.one_hot(gt_labels.gather(1, gt_idx), nc).float() * align.unsqueeze(-1)
    logits = torch.randn(batch, anchors, nc, generator=g) * 3 - 2
    k = torch.arange(pairs)
    rows = torch.stack([k % batch, 2 * (k // batch), 2 * (k // batch) + 1], 1)
    t = {k: v.to(device) for k, v in dict(logits=logits, target_scores=target_scores, fg_mask=fg, target_gt_idx=gt_idx,
                                            gt_labels=gt_labels, pairs=rows).items()}
    return PairContext(target_bboxes=torch.zeros(batch, anchors, 4, device=device),
                       gt_bboxes=torch.zeros(batch, G, 4, device=device), **t)


def loop_pair_consistency(ctx: PairContext, tau_high: float = 0.5, margin: float = 0.05, delta: float = 0.1,
                          mismatch_weight: float = 1.0) -> torch.Tensor:
    """The same term, written pair by pair (differentiable, teacher detached, as the vectorized one)."""
    values = []
    for p in range(ctx.pairs.shape[0]):
        b, ga, gb = (int(v) for v in ctx.pairs[p])
        probs = []
        for g in (ga, gb):
            anchors = torch.nonzero(ctx.fg_mask[b] & (ctx.target_gt_idx[b] == g)).flatten()
            if anchors.numel() == 0:
                break
            scores = ctx.target_scores[b, anchors, int(ctx.gt_labels[b, g])]
            probs.append(ctx.logits[b, anchors[int(scores.argmax())]].float().sigmoid())  # first max: lowest anchor
        if len(probs) < 2:
            continue  # a member without anchor: the pair does not count
        pa, pb = probs
        t, s = (pa, pb) if pa.max().item() >= pb.max().item() else (pb, pa)
        t = t.detach()
        conf_t, cls_t = t.max(0)
        if conf_t.item() < tau_high:
            values.append(s.sum() * 0)
        elif cls_t.item() == s.argmax().item():
            gap = (conf_t - s.max() - margin).clamp_min(0)
            values.append(F.huber_loss(gap, torch.zeros_like(gap), delta=delta))
        else:
            values.append(mismatch_weight * (conf_t - s[cls_t]).clamp_min(0).square())
    return torch.stack(values).mean() if values else ctx.logits.sum() * 0


def run(repeats: int = 15, sizes: tuple[int, ...] = (8, 16, 32, 64, 128, 256), repeats_bwd: int = 3,
        device: str = "cpu") -> list[tuple[int, dict[str, float]]]:
    """Per size, median seconds of ``{vectorized, loop} x {forward (value only), forward + backward}``."""
    fns = {"vectorized": pair_consistency, "loop": loop_pair_consistency}
    out = []
    for n in sizes:
        ctx = make_ctx(n, device=device)
        ctx.logits.requires_grad_()
        values = {k: f(ctx) for k, f in fns.items()}
        torch.testing.assert_close(values["vectorized"], values["loop"], rtol=1e-4, atol=1e-6)
        grads = [torch.autograd.grad(v, ctx.logits)[0] for v in values.values()]
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)

        def forward(f=None, ctx=ctx):
            with torch.no_grad():
                f(ctx)

        def backward(f=None, ctx=ctx):
            f(ctx).backward()
            ctx.logits.grad = None

        times = interleaved({f"{k} fwd": synced(lambda f=f: forward(f), device) for k, f in fns.items()}, repeats)
        times |= interleaved({f"{k} fwd+bwd": synced(lambda f=f: backward(f), device) for k, f in fns.items()},
                             repeats_bwd, warmup=1)
        out.append((n, {k: median(v) for k, v in times.items()}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--repeats-bwd", type=int, default=3, help="repeats with backward (the loop's is slow)")
    ap.add_argument("--pairs", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256])
    add_threads_option(ap)
    add_device_option(ap)
    a = ap.parse_args()
    apply_threads(a.threads)
    res = run(a.repeats, tuple(a.pairs), a.repeats_bwd, a.device)
    print(machine())
    rows = []
    for n, t in res:
        rows.append([str(n)] + [f"{t[f'{k} {w}'] * 1e3:.2f}" for w in ("fwd", "fwd+bwd")
                                for k in ("loop", "vectorized")]
                    + [f"{t[f'loop {w}'] / t[f'vectorized {w}']:.1f}x" for w in ("fwd", "fwd+bwd")])
    print(table(["pairs", "loop fwd ms", "vectorized fwd ms", "loop fwd+bwd ms", "vectorized fwd+bwd ms",
                 "speedup fwd", "speedup fwd+bwd"], rows))


if __name__ == "__main__":
    main()

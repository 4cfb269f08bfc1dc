"""What each part of the tracker buys: train variants on the same pairs, score them the same way.

Variants (constructor switches of ``LesionTracker``):
- ``subtract``: the paper's design, features merged by subtraction, one level (stride 8);
- ``+corr``: plus a local correlation volume (radius 4) at stride 8;
- ``+c2f``: plus the coarse-to-fine pyramid (strides 32, 16, 8) with warping;
- ``+refine``: plus one refinement iteration at stride 8 (the default tracker).
All variants train for the same number of steps on one pool of pairs made once from
``--seed`` (known deformations of the base photos) and are scored on held-out pairs
(another seed) and on pairs from the real tiles.

    python -m training.tracker_ablation --images ../shared/data/pad-ufes20-dev/images \
        --tiles ../shared/data/itobos-tbp-dev/images --steps 600 --out runs/ablation
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from core.device import choose_device
from core.model_folder import save_model_folder
from core.models.registry import build_model
from core.tracking import network_flow_fn
from training.evaluate_tracker import ALPHAS, evaluate, real_tile_pairs
from training.tracker_data import WarpPairDataset
from training.tracking_pairs import make_known_pair
from training.train_tracker import multiscale_loss

VARIANTS: dict[str, dict] = {
    "subtract": {"correlation_radius": 0, "pyramid_levels": 1, "refinement_iterations": 0},
    "+corr": {"correlation_radius": 4, "pyramid_levels": 1, "refinement_iterations": 0},
    "+c2f": {"correlation_radius": 4, "pyramid_levels": 3, "refinement_iterations": 0},
    "+refine": {"correlation_radius": 4, "pyramid_levels": 3, "refinement_iterations": 1},
}


def _item(args: tuple) -> dict[str, np.ndarray]:
    folder, size, seed, index = args
    item = WarpPairDataset(1 << 30, seed, size=size, folder=folder)[index]
    return {k: v.numpy() for k, v in item.items()}


def make_pool(folder: str, size: tuple[int, int], seed: int, count: int, workers: int) -> dict:
    with ProcessPoolExecutor(workers) as pool:
        items = list(pool.map(_item, [(folder, size, seed, i) for i in range(count)], chunksize=8))
    return {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}


def _held_out(folder: str, size: tuple[int, int], seed: int, count: int):
    base = WarpPairDataset(count, seed, size=size, folder=folder)
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        yield make_known_pair(base._base_image(i, rng), rng, lesions=10, gone=2, new=2)


def train_variant(
    kwargs: dict, pool: dict, steps: int, batch: int, device: torch.device, seed: int
):
    torch.manual_seed(seed)
    model = build_model("lesion_tracker", **kwargs).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=8e-4, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=8e-4, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    n = pool["flow"].shape[0]
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, n, (batch,), generator=gen)
        a = pool["image_a"][idx].to(device).float() / 255
        b = pool["image_b"][idx].to(device).float() / 255
        loss = multiscale_loss(
            model.forward_pyramid(a, b),
            pool["flow"][idx].to(device),
            pool["valid"][idx].to(device),
            gamma=0.8,
            q=0.7,
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", required=True)
    p.add_argument("--tiles", required=True)
    p.add_argument("--size", default="384x288")
    p.add_argument("--pool", type=int, default=1200)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seed", type=int, default=3001)
    p.add_argument("--held-out-seed", type=int, default=777001)
    p.add_argument("--held-out", type=int, default=16)
    p.add_argument("--tile-pairs", type=int, default=3)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--baselines", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=Path("runs/ablation"))
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    device = choose_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pool = make_pool(args.images, (w, h), args.seed, args.pool, args.workers)
    print(f"pool of {args.pool} pairs in {time.perf_counter() - t0:.0f}s", flush=True)
    held = list(_held_out(args.images, (w, h), args.held_out_seed, args.held_out))
    tiles = list(real_tile_pairs(Path(args.tiles), args.tile_pairs, args.held_out_seed))
    methods, report = {}, {}
    for name in args.variants.split(","):
        kwargs = {**VARIANTS[name], "working_size": max(w, h)}
        t1 = time.perf_counter()
        model = train_variant(kwargs, pool, args.steps, args.batch, device, args.seed)
        seconds = time.perf_counter() - t1
        methods[name] = network_flow_fn(model, device)
        report[name] = {"kwargs": kwargs, "train_seconds": round(seconds, 1), "steps": args.steps}
        if name == "+refine":
            save_model_folder(
                args.out / "tracker",
                model.cpu(),
                arch="lesion_tracker",
                arch_kwargs=kwargs,
                meta={
                    "name": "tracker",
                    "version": "0.1.0-ablation",
                    "training": {
                        "command": "python -m training.tracker_ablation " + " ".join(argv or []),
                        "seed": args.seed,
                        "steps": args.steps,
                        "batch": args.batch,
                        "data": f"{args.pool} known-deformation pairs of {args.images}",
                    },
                },
            )
            model.to(device)
        print(f"trained {name} in {seconds:.0f}s", flush=True)
    if args.baselines:
        from training.baselines.flow_baselines import BASELINES

        methods.update(BASELINES)
    results = {
        "held-out": evaluate(methods, iter(held), max(w, h)),
        "real tiles": evaluate(methods, iter(tiles), max(w, h)),
    }
    for set_name, per in results.items():
        print(set_name)
        for name, s in per.items():
            print(
                f"  {name:24s} PCK@.01 {s['pck@0.01']:.3f} @.02 {s['pck@0.02']:.3f} "
                f"@.05 {s['pck@0.05']:.3f} EPE {s['epe_px']:6.2f} "
                f"match {s['lesion_matching_accuracy']:.3f} newR {s['new_lesion_recall']:.3f} "
                f"newP {s['new_lesion_precision']} t {s['median_seconds']}"
            )
    report["results"] = results
    report["alphas"] = [round(float(a), 4) for a in ALPHAS]
    (args.out / "ablation.json").write_text(json.dumps(report, indent=1))
    from training.evaluate_tracker import plot_pck

    plot_pck(results, args.out / "ablation_pck.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

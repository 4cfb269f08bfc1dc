"""`lesion-train tracker`: train the tracking network on pairs with known flow.

The recipe is the config (``training/configs/tracker.json``). In short: whole pairs at the
working resolution (so that displacements of a fifth of the width are seen as at inference),
from synthetic pairs or known deformations (``training.tracker_data``); the trunk starts from
the trained detector (``resources/models/detector``) when it exists; AdamW with a one-cycle
schedule; loss = robust multi-scale end-point error on valid pixels (every pyramid level and
refinement step, later ones weighted more: gamma^(N-1-i)); validation (EPE, PCK at
alpha = 0.02 / 0.05 of the diagonal) on a fixed set made from another seed after each epoch;
a checkpoint after each epoch (``--resume`` continues); the weights go into a model folder.

    lesion-train tracker --config training/configs/tracker.json
    torchrun --nproc-per-node 2 -m training.cli tracker --config training/configs/tracker.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from core.errors import DataError
from core.model_folder import load_model_folder, save_model_folder
from core.models.registry import build_model
from core.models.tracker import init_from_detector
from core.resources import models_dir
from training import distributed as dist_utils
from training.tracker_data import CachedPairs, tracker_dataset, validation_config
from training.train_options import add_common_training_options
from training.warm_start import load_warm_start

DEFAULT_CONFIG = Path("training/configs/tracker.json")


def configure(parser: argparse.ArgumentParser) -> None:
    add_common_training_options(parser, task="tracker", default_config=DEFAULT_CONFIG)
    parser.add_argument("--steps", type=int, default=None, help="override train.steps_per_epoch")
    parser.add_argument(
        "--stop-after", type=int, default=None, help="end this run after N epochs (then --resume)"
    )
    parser.add_argument("--detector", type=Path, default=None, help="detector folder to start from")
    parser.add_argument("--no-detector-init", action="store_true", help="start from random weights")
    parser.add_argument(
        "--arch-kwargs", default=None, help="JSON overriding model.kwargs (ablation)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )


def load_config(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(path, f"cannot read the config ({exc})") from exc


def multiscale_loss(
    flows: list[torch.Tensor], target: torch.Tensor, valid: torch.Tensor, *, gamma: float, q: float
) -> torch.Tensor:
    """Robust multi-scale EPE: sum_i gamma^(N-1-i) * mean_valid (|f_i - gt|_2 + 0.01)^q.

    flows: list of (B, 2, H / s_i, W / s_i) in input pixels; target (B, 2, H, W) with H, W
    multiples of 32; valid (B, H, W) bool. The target is averaged to each level over valid pixels.
    """
    total = target.new_zeros(())
    n = len(flows)
    vf = valid.unsqueeze(1).float()
    for i, flow in enumerate(flows):
        stride = target.shape[-2] // flow.shape[-2]  # sizes are multiples of 32
        ms = F.avg_pool2d(vf, stride)
        gt = F.avg_pool2d(target * vf, stride) / ms.clamp_min(1e-6)
        level_valid = (ms > 0.5).float()
        epe = torch.linalg.vector_norm(flow - gt, dim=1, keepdim=True)
        loss = (((epe + 0.01) ** q) * level_valid).sum() / level_valid.sum().clamp_min(1.0)
        total = total + gamma ** (n - 1 - i) * loss
    return total


@torch.no_grad()
def validate(model: torch.nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """EPE (pixels) and PCK at alpha 0.02 / 0.05 of the image diagonal over valid pixels."""
    model.eval()
    epes, hits2, hits5, n = 0.0, 0.0, 0.0, 0
    for batch in loader:
        a, b = batch["image_a"].to(device).float() / 255, batch["image_b"].to(device).float() / 255
        gt, valid = batch["flow"].to(device), batch["valid"].to(device)
        err = torch.linalg.vector_norm(model(a, b) - gt, dim=1)[valid]
        diag = float(np.hypot(*a.shape[-2:]))
        epes += float(err.sum())
        hits2 += float((err < 0.02 * diag).sum())
        hits5 += float((err < 0.05 * diag).sum())
        n += int(err.numel())
    model.train()
    n = max(n, 1)
    return {"epe_px": epes / n, "pck_0.02": hits2 / n, "pck_0.05": hits5 / n}


def _detector_state(path: Path | None) -> tuple[dict | None, str | None]:
    folder = path if path is not None else models_dir() / "detector"
    if not (folder / "model.json").is_file():
        if path is not None:
            raise DataError(folder, "detector model folder not found")
        return None, None
    detector, meta = load_model_folder(folder, "cpu")
    return (
        detector.state_dict(),
        f"{meta.get('name')} {meta.get('version')} sha256:{meta.get('sha256')}",
    )


def pool_description(data: dict) -> dict | list | None:
    """What the pools hold: a ``synth_folder``'s manifest (seed, size, synthesis config), the
    on-the-fly part of a ``mix`` (source, folder, patient split, pool size, seed)."""
    if data.get("source") == "mix":
        return [pool_description(part) or dict(part) for part in data["mix"]]
    if data.get("source") != "synth_folder":
        return None
    from training.synthesis.store import read_manifest

    manifest = read_manifest(Path(data["folder"]), "pairs")
    return {
        "folder": str(data["folder"]),
        "seed": manifest.get("seed"),
        "n": manifest.get("n"),
        "synth_config": manifest.get("config"),
        "lesion_split": "train (default lesion bank: held-out patients never used)"
        if (manifest.get("config") or {}).get("lesion_source") == "default"
        else None,
    }


def run(args: argparse.Namespace) -> int:
    run_start = time.time()
    config = load_config(args.config)
    if args.threads is not None:
        torch.set_num_threads(max(1, int(args.threads)))
    info = dist_utils.init_distributed(args.device)
    seed = int(config["seed"])
    torch.manual_seed(seed + info.rank)
    train_cfg, data_cfg = config["train"], config["data"]
    epochs = int(args.epochs if args.epochs is not None else train_cfg["epochs"])
    steps = int(args.steps if args.steps is not None else train_cfg["steps_per_epoch"])
    batch = int(train_cfg["batch_size"])
    arch_kwargs = dict(config["model"]["kwargs"])
    if args.arch_kwargs:
        arch_kwargs.update(json.loads(args.arch_kwargs))
    arch_kwargs["working_size"] = max(int(data_cfg["width"]), int(data_cfg["height"]))
    model = build_model(config["model"]["arch"], **arch_kwargs)
    detector_note = "random (--no-detector-init)" if args.no_detector_init else None
    init_record = None
    if args.init_from is not None:
        # a trained tracker replaces every weight, so the detector trunk is not loaded
        init_record = load_warm_start(
            model, Path(args.init_from), config["model"]["arch"], arch_kwargs
        )
        detector_note = (
            f"tracker {init_record['version']} sha256:{init_record['sha256']} (--init-from)"
        )
    elif not args.no_detector_init:
        state, detector_note = _detector_state(args.detector)
        if state is not None:
            init_from_detector(model, state)
    net = dist_utils.wrap_model(model, info)
    train_set = tracker_dataset(
        data_cfg, length=steps * batch * info.world_size, seed=int(data_cfg["train_seed"])
    )
    val_set = CachedPairs(
        tracker_dataset(
            validation_config(data_cfg),
            length=int(data_cfg["val_pairs"]),
            seed=int(data_cfg["val_seed"]),
        )
    )
    sampler = dist_utils.make_sampler(train_set, info, shuffle=True, seed=seed)
    workers = int(train_cfg.get("workers", 0))
    loader_gen = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        train_set,
        batch_size=batch,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        generator=loader_gen,
        persistent_workers=workers > 0,
    )
    val_loader = DataLoader(val_set, batch_size=batch, num_workers=workers)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=float(train_cfg["lr"]), weight_decay=float(train_cfg["weight_decay"])
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=float(train_cfg["lr"]),
        total_steps=max(1, epochs * steps),
        pct_start=float(train_cfg.get("warmup_fraction", 0.1)),
    )
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = work / "last.pt"
    start_epoch, history = 0, []
    if args.resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch, history = int(state["epoch"]), json.loads(state["history"])
    device = info.device
    gamma, q = float(config["loss"]["gamma"]), float(config["loss"]["q"])
    last_epoch = epochs if args.stop_after is None else min(epochs, start_epoch + args.stop_after)
    stopped_early = None
    for epoch in range(start_epoch, last_epoch):
        if sampler is not None:
            sampler.set_epoch(epoch)
        net.train()
        t0, running = time.perf_counter(), []
        bar = tqdm(
            train_loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not info.is_main, leave=False
        )
        for item in bar:
            a = item["image_a"].to(device).float() / 255
            b = item["image_b"].to(device).float() / 255
            loss = multiscale_loss(
                net.forward_pyramid(a, b)
                if not info.distributed
                else net.module.forward_pyramid(a, b),
                item["flow"].to(device),
                item["valid"].to(device),
                gamma=gamma,
                q=q,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), float(train_cfg["grad_clip"]))
            optimizer.step()
            schedule.step()
            running.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(running[-20:]):.3f}")
        metrics = validate(dist_utils.unwrap_model(net), val_loader, device) if info.is_main else {}
        record = {
            "epoch": epoch + 1,
            "loss": float(np.mean(running)),
            "seconds": time.perf_counter() - t0,
            **metrics,
        }
        history.append(record)
        if info.is_main:
            print(json.dumps(record), flush=True)
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "epoch": epoch + 1,
                    "history": json.dumps(history),
                },
                checkpoint,
            )
        dist_utils.barrier()
        if args.time_limit_min is not None and epoch + 1 < last_epoch:
            elapsed = time.time() - run_start
            if elapsed + record["seconds"] > 60.0 * float(args.time_limit_min):
                stopped_early = (
                    f"stopped after epoch {epoch + 1} of {epochs} by --time-limit-min "
                    f"{args.time_limit_min} ({elapsed / 60:.1f} min elapsed)"
                )
                print(stopped_early, flush=True)
                break
    if info.is_main:
        meta = {
            "name": str(config.get("name", "tracker")),
            "version": str(config.get("version", "0")),
            "task": "dense flow from photo A to photo B (A pixel + flow = position in B)",
            "working_size": arch_kwargs["working_size"],
            "training": {
                "command": shlex.join(["lesion-train", *sys.argv[1:]])
                if sys.argv[0].endswith("lesion-train")
                else shlex.join(sys.argv),
                "config": config,
                "arch_kwargs_override": args.arch_kwargs,
                "seed": seed,
                "epochs": epochs,
                "steps_per_epoch": steps,
                "world_size": info.world_size,
                "initialised_from": detector_note or "random (no detector model folder found)",
                "init_from": init_record,
                "data": data_cfg,
                "pool": pool_description(data_cfg),
                "threads": torch.get_num_threads(),
                "wall_minutes": round((time.time() - run_start) / 60, 1),
                "epochs_run": len(history),
                "stopped_early": stopped_early,
            },
            "metrics": {"validation": history[-1] if history else {}},
            "history": history,
        }
        digest = save_model_folder(
            args.out, model, arch=config["model"]["arch"], arch_kwargs=arch_kwargs, meta=meta
        )
        print(f"saved {args.out} (sha256 {digest[:12]})")
    dist_utils.cleanup()
    return 0

"""`lesion-train detector`: train the lesion detection network on synthetic photos.

The recipe lives in the config (``training/configs/detector.json``); this script only
reads it. In short: synthetic 1024x768 body photos (made on the fly by DataLoader workers
from a seed, or read from a ``lesion-train synth`` folder), several random crops per photo
with scale (lesions ~6 to ~200 px), rotation, flip and colour augmentation; AdamW with a
one-cycle (cosine) schedule; class-weighted cross-entropy plus soft Dice on the lesion
classes (lesions are a tiny fraction of the pixels); validation on a fixed synthetic set
(another seed) after each epoch; a checkpoint after each epoch (``--resume`` continues);
the final weights go into a model folder (``weights.safetensors`` + ``model.json``).

Single process::

    lesion-train detector --config training/configs/detector.json

Several GPUs or machines (DistributedDataParallel, see ``training.distributed``)::

    torchrun --nproc-per-node 4 -m training.cli detector --config training/configs/detector.json
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from core.errors import DataError, ModelError
from training import distributed as dist_utils
from training.detector_crops import CropDataset, CropRecipe, EpochSampler, collate_crops
from training.detector_data import (
    ValidationSet,
    data_summary,
    detection_dataset,
    hard_negatives,
)
from training.metrics import MIN_DIAMETER_PX, LesionDetectionMetric
from training.train_options import add_common_training_options
from training.warm_start import load_warm_start

DEFAULT_CONFIG = Path("training/configs/detector.json")
CLASSES = ("background", "benign", "malignant")


def configure(parser: argparse.ArgumentParser) -> None:
    add_common_training_options(parser, task="detector", default_config=DEFAULT_CONFIG)
    parser.add_argument("--steps", type=int, default=None, help="cap the steps of each epoch")
    parser.add_argument("--workers", type=int, default=None, help="override train.workers")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of this process")


# ----------------------------------------------------------------------------- recipe


def load_config(path: Path) -> dict:
    """The recipe as a dict; raises DataError naming the file when it is unusable."""
    try:
        cfg = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise DataError(path, "config file not found") from exc
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON ({exc})") from exc
    for key in ("seed", "model", "data", "crops", "train", "loss"):
        if key not in cfg:
            raise DataError(path, f"config lacks the {key!r} section")
    return cfg


def config_digest(cfg: dict) -> str:
    """Short hash of the recipe, stored in checkpoints so a resume cannot mix recipes."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]


def command_line() -> str:
    """The command that is running, as a user would type it (program name, not its path)."""
    prog = Path(sys.argv[0]).name
    if prog in ("cli.py", "__main__.py", "-m", "-c"):
        prog = "python -m training.cli"
    return " ".join([prog, *(shlex.quote(a) for a in sys.argv[1:])])


# ------------------------------------------------------------------------------ loss


def small_lesion_weights(
    instance_map: torch.Tensor, diameter_px: float, max_weight: float
) -> torch.Tensor:
    """Per-pixel loss weights that lift small lesions: a lesion pixel weighs
    ``clamp(diameter_px / d, 1, max_weight)``, d being its lesion's equivalent-circle
    diameter within the crop; background pixels weigh 1.

    A 3 px mole has ~7 pixels against a 40 px lesion's ~1250, so without this the loss
    hardly notices missing it, while recall counts every lesion alike.
    instance_map: (B, H, W) integer lesion ids per crop (0 = none). Returns float32 (B, H, W).
    """
    b = instance_map.shape[0]
    ids = instance_map.long()
    keys = ids + (ids.amax() + 1) * torch.arange(b, device=ids.device).view(b, 1, 1)
    _, inverse, counts = torch.unique(keys, return_inverse=True, return_counts=True)
    diameter = 2.0 * torch.sqrt(counts[inverse].float() / math.pi)
    weights = (diameter_px / diameter).clamp(1.0, max_weight)
    return torch.where(ids > 0, weights, torch.ones_like(weights))


class DetectorLoss(torch.nn.Module):
    """Class-weighted cross-entropy + ``dice_weight`` x soft Dice loss.

    The Dice term is averaged over three foreground masks: "any lesion" (benign +
    malignant probability vs. label > 0), benign and malignant; it is computed over the
    whole batch so that crops without lesions do not produce 0/0.
    ``small_lesion``: {"diameter_px", "max_weight"} for :func:`small_lesion_weights` on
    the cross-entropy (the mean is over weights, so equal to the plain loss when every
    weight is 1), or None.
    logits: (B, 3, H, W) float; target: (B, H, W) int64 in {0, 1, 2}; instance_map:
    (B, H, W) int lesion ids, needed with ``small_lesion``. Returns a scalar.
    """

    def __init__(
        self, class_weights: list[float], dice_weight: float, small_lesion: dict | None = None
    ) -> None:
        super().__init__()
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32))
        self.dice_weight = float(dice_weight)
        self.small_lesion = dict(small_lesion) if small_lesion else None

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        instance_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        logits = logits.float()
        if self.small_lesion is None:
            ce = F.cross_entropy(logits, target, weight=self.class_weights)
        else:
            if instance_map is None:
                raise ValueError("small-lesion weighting needs the crops' instance maps")
            pixel = small_lesion_weights(
                instance_map,
                float(self.small_lesion["diameter_px"]),
                float(self.small_lesion["max_weight"]),
            )
            pixel = pixel * self.class_weights[target]
            per_pixel = F.cross_entropy(logits, target, reduction="none")
            ce = (per_pixel * pixel).sum() / pixel.sum()
        if self.dice_weight == 0:
            return ce
        probs = logits.softmax(dim=1)
        fg_p = [probs[:, 1] + probs[:, 2], probs[:, 1], probs[:, 2]]
        fg_t = [(target > 0), (target == 1), (target == 2)]
        dice = []
        for p, t in zip(fg_p, fg_t, strict=True):
            t = t.float()
            inter = (p * t).sum()
            dice.append(1.0 - (2.0 * inter + 1.0) / (p.sum() + t.sum() + 1.0))
        return ce + self.dice_weight * torch.stack(dice).mean()


# ---------------------------------------------------------------------- training loop


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    if enabled and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def _to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 in [0, 1] on ``device``."""
    return images.to(device, non_blocking=True).float().div_(255.0)


def _seed_worker(worker_id: int) -> None:
    """DataLoader workers: one thread each (the crops are seeded per sample, not per worker)."""
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def make_loader(
    crops: CropDataset,
    cfg: dict,
    info: dist_utils.DistInfo,
    *,
    workers: int,
    start_epoch: int,
    steps: int,
) -> DataLoader:
    """One DataLoader for the rest of the schedule: ``steps`` batches per epoch, epoch
    after epoch (see :class:`EpochSampler`). Workers are started with "spawn" (a forked
    child of a process that already ran OpenMP code can hang) and kept for all epochs."""
    per_batch = int(cfg["train"]["photos_per_batch"])
    sampler = EpochSampler(
        crops.photos_per_epoch,
        crops.epochs,
        seed=int(cfg["seed"]),
        start_epoch=start_epoch,
        rank=info.rank,
        world_size=info.world_size,
        limit=steps * per_batch,
    )
    return DataLoader(
        crops,
        batch_size=per_batch,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_crops,
        worker_init_fn=_seed_worker,
        drop_last=True,
        pin_memory=info.device.type == "cuda",
        prefetch_factor=2 if workers > 0 else None,
        persistent_workers=workers > 0,
        multiprocessing_context="spawn" if workers > 0 else None,
    )


def build_optimizer(
    model: torch.nn.Module, cfg: dict, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW (no weight decay on norms and biases) and a one-cycle or cosine schedule."""
    t = cfg["train"]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": float(t["weight_decay"])},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=float(t["lr"]))
    if t.get("schedule", "onecycle") == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=float(t["lr"]),
            total_steps=max(total_steps, 1),
            pct_start=float(t.get("warmup_fraction", 0.1)),
            anneal_strategy="cos",
            div_factor=25.0,
            final_div_factor=1e3,
        )
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return optimizer, scheduler


def _batches(
    batches: Iterator[dict[str, torch.Tensor]], steps: int
) -> Iterator[dict[str, torch.Tensor]]:
    for _ in range(steps):
        yield next(batches)


def train_one_epoch(
    model: torch.nn.Module,
    batches: Iterator[dict[str, torch.Tensor]],
    loss_fn: DetectorLoss,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    info: dist_utils.DistInfo,
    *,
    epoch: int,
    steps: int,
    amp: bool,
    grad_clip: float,
) -> dict[str, float]:
    """``steps`` batches from ``batches``; returns the mean training loss over all processes."""
    model.train()
    total, count = 0.0, 0
    bar = tqdm(
        _batches(batches, steps),
        total=steps,
        desc=f"epoch {epoch + 1}",
        disable=not info.is_main,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
        dynamic_ncols=True,
    )
    for batch in bar:
        x = _to_input(batch["image"], info.device)
        y = batch["class_map"].to(info.device, non_blocking=True)
        instances = batch.get("instance_map")
        if instances is not None:
            instances = instances.to(info.device, non_blocking=True)
        with _autocast(info.device, amp):
            logits = model(x)
        loss = loss_fn(logits, y, instances)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        total += float(loss.detach())
        count += 1
        bar.set_postfix(
            loss=f"{total / count:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}", refresh=False
        )
    mean = total / max(count, 1)
    return {"loss": dist_utils.all_reduce_mean(mean, info), "steps": count}


@torch.no_grad()
def validate(
    model: torch.nn.Module, val: ValidationSet, device: torch.device, inference: dict
) -> dict[str, float]:
    """Lesion-level figures and pixel NLL of ``model`` on the fixed validation photos,
    through the product's own tiled inference and post-processing."""
    from core.postprocess import PostprocessConfig, find_lesions
    from core.tiling import tiled_heatmap

    model.eval()
    metric = LesionDetectionMetric(min_diameter_px=MIN_DIAMETER_PX)
    post = PostprocessConfig.from_json(inference.get("postprocess"))
    nll = []
    for photo in val:
        heatmap = tiled_heatmap(
            model,
            photo.image,
            device=device,
            tile_size=int(inference.get("tile", {}).get("size", 768)),
            overlap=int(inference.get("tile", {}).get("overlap", 96)),
        )
        picked = np.take_along_axis(heatmap, photo.class_map[..., None].astype(np.intp), axis=2)
        nll.append(float(-np.log(np.clip(picked, 1e-6, 1.0)).mean()))
        lesions = find_lesions(heatmap, post)
        metric.update(lesions, photo.instance_map, photo.classes)
    out = {f"val_{k}": v for k, v in metric.aggregate().items()}
    out["val_nll"] = float(np.mean(nll)) if nll else float("nan")
    return out


# ------------------------------------------------------------------------ checkpoints


def save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, digest: str) -> dict:
    """This run's own checkpoint (tensors and plain values only: ``weights_only``)."""
    if not path.is_file():
        raise ModelError(path, "no checkpoint to resume from")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("config_digest") != digest:
        raise ModelError(path, "checkpoint was written with a different config; not resuming")
    return state


# -------------------------------------------------------------------------------- run


def build_model(cfg: dict) -> torch.nn.Module:
    """The network of the recipe, initialised from the recipe's seed (global RNG untouched)."""
    from core.models.registry import build_model as registry_build

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg["seed"]))
        return registry_build(cfg["model"]["arch"], **cfg["model"].get("kwargs", {}))


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, int(args.threads)))
    cfg = load_config(args.config)
    if args.epochs is not None:
        cfg["train"]["epochs"] = int(args.epochs)
    if args.workers is not None:
        cfg["train"]["workers"] = int(args.workers)
    digest = config_digest(cfg)
    info = dist_utils.init_distributed(args.device)
    try:
        return _train(args, cfg, digest, info)
    finally:
        dist_utils.cleanup()


def _train(args: argparse.Namespace, cfg: dict, digest: str, info: dist_utils.DistInfo) -> int:
    started = time.time()
    t = cfg["train"]
    epochs = int(t["epochs"])
    photos_per_epoch = int(cfg["data"]["photos_per_epoch"])
    fresh = bool(cfg["data"].get("fresh_photos_per_epoch", False))
    base: Dataset = detection_dataset(
        cfg["data"], length=photos_per_epoch * (epochs if fresh else 1)
    )
    crops = CropDataset(
        base,
        CropRecipe.from_dict(cfg["crops"]),
        photos_per_epoch=photos_per_epoch,
        epochs=epochs,
        seed=int(cfg["seed"]),
        fresh_photos_per_epoch=fresh,
        negatives=hard_negatives(cfg["data"]),
        instances=bool(cfg["loss"].get("small_lesion")),
    )
    per_process = photos_per_epoch // info.world_size
    steps = max(1, per_process // int(t["photos_per_batch"]))
    if args.steps is not None:
        steps = min(steps, int(args.steps))
    model = build_model(cfg)
    init_record = None
    if args.init_from is not None:
        init_record = load_warm_start(
            model, Path(args.init_from), cfg["model"]["arch"], cfg["model"].get("kwargs", {})
        )
    model = dist_utils.wrap_model(model, info)
    loss_fn = DetectorLoss(
        cfg["loss"]["class_weights"],
        cfg["loss"]["dice_weight"],
        small_lesion=cfg["loss"].get("small_lesion"),
    ).to(info.device)
    optimizer, scheduler = build_optimizer(model, cfg, total_steps=epochs * steps)
    ckpt_path = Path(args.work_dir) / "checkpoint_last.pt"
    start_epoch, history = 0, []
    if args.resume:
        state = load_checkpoint(ckpt_path, digest)
        dist_utils.unwrap_model(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"]) + 1
        history = json.loads(state["history"])
        if info.is_main:
            print(f"resuming after epoch {start_epoch} from {ckpt_path}", flush=True)
    val = ValidationSet.from_config(cfg["data"]) if info.is_main else None
    if info.is_main:
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"detector: {cfg['model']['arch']} {n_params / 1e6:.2f} M parameters on "
            f"{info.device} x{info.world_size}; {epochs} epochs x {steps} steps x "
            f"{int(t['photos_per_batch']) * int(cfg['crops']['crops_per_image'])} crops",
            flush=True,
        )
    workers = int(t.get("workers", 1))
    loader = make_loader(crops, cfg, info, workers=workers, start_epoch=start_epoch, steps=steps)
    batches = iter(loader)
    stopped_early = None
    for epoch in range(start_epoch, epochs):
        tic = time.time()
        stats = train_one_epoch(
            model,
            batches,
            loss_fn,
            optimizer,
            scheduler,
            info,
            epoch=epoch,
            steps=steps,
            amp=bool(t.get("amp", True)),
            grad_clip=float(t.get("grad_clip", 0.0)),
        )
        stats["epoch"] = epoch + 1
        stats["train_s"] = round(time.time() - tic, 1)
        if info.is_main:
            assert val is not None
            stats.update(
                validate(dist_utils.unwrap_model(model), val, info.device, cfg.get("inference", {}))
            )
            history.append(stats)
            save_checkpoint(
                ckpt_path,
                {
                    "model": dist_utils.unwrap_model(model).state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                    "config_digest": digest,
                    "history": json.dumps(history),
                },
            )
            print("epoch " + json.dumps(_rounded(stats)), flush=True)
        dist_utils.barrier()
        if args.time_limit_min is not None and epoch + 1 < epochs:
            elapsed = time.time() - started
            over = elapsed + (time.time() - tic) > 60.0 * float(args.time_limit_min)
            if dist_utils.broadcast_object(over, info):
                stopped_early = {"after_epoch": epoch + 1, "of": epochs, "reason": "time limit"}
                if info.is_main:
                    print(f"time limit: stopping after epoch {epoch + 1} of {epochs}", flush=True)
                break
    del batches, loader  # stop the DataLoader workers
    if info.is_main:
        meta = model_meta(cfg, info, history, steps, time.time() - started)
        meta["training"]["stopped_early"] = stopped_early
        meta["training"]["init_from"] = init_record
        sha = _save(args.out, dist_utils.unwrap_model(model), cfg, meta)
        print(f"saved {args.out} (sha256 {sha[:12]}...)", flush=True)
    dist_utils.barrier()
    return 0


def _rounded(d: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def model_meta(
    cfg: dict, info: dist_utils.DistInfo, history: list[dict], steps: int, seconds: float
) -> dict:
    """Everything model.json states besides the weights' hash and architecture."""
    crops_per_step = int(cfg["train"]["photos_per_batch"]) * int(cfg["crops"]["crops_per_image"])
    epochs = int(cfg["train"]["epochs"])
    inference = cfg.get("inference", {})
    return {
        "name": cfg.get("name", "detector"),
        "version": cfg.get("version", "0"),
        "classes": list(CLASSES),
        "output": "logits (B, 3, H, W) over classes; softmax gives the heatmap",
        "tile": dict(inference.get("tile", {"size": 768, "overlap": 96})),
        "postprocess": dict(inference.get("postprocess", {})),
        "training": {
            "command": command_line(),
            "seed": int(cfg["seed"]),
            "config": cfg,
            "device": str(info.device),
            "world_size": info.world_size,
            "epochs": epochs,
            "steps_per_epoch": steps,
            "crops_seen": epochs * steps * crops_per_step * info.world_size,
            "duration_s": round(seconds, 1),
            "torch": torch.__version__,
            "history": [_rounded(h) for h in history],
        },
        "data": data_summary(cfg["data"], epochs=epochs),
        "metrics": {"validation": _rounded(history[-1]) if history else {}},
    }


def _save(out: Path, model: torch.nn.Module, cfg: dict, meta: dict) -> str:
    from core.model_folder import save_model_folder

    model = model.cpu().eval()
    return save_model_folder(
        out,
        model,
        arch=cfg["model"]["arch"],
        arch_kwargs=cfg["model"].get("kwargs", {}),
        meta=meta,
    )

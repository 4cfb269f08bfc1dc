"""What the commands that add a stage to a detector share (``lesion-train verifier``,
``lesion-train malignancy``): mining a recipe's candidates, training a small crop network,
the training record and the new model folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from core.errors import DataError
from core.postprocess import PostprocessConfig
from training.train_detector import command_line
from training.verifier_data import PhotoCandidates, mine

#: (folder, count) -> [(index, load)] of a pool folder's first photos, and (seed, count,
#: data) -> the same of validation photos (see training.train_verifier)
PoolPhotos = Callable[[Path, int], list]
ValPhotos = Callable[[int, int, dict], list]


def mine_recipe(
    data: dict,
    probabilities: Callable,
    candidates: PostprocessConfig,
    work_dir: Path,
    pool_photos: PoolPhotos,
    val_photos: ValPhotos,
    progress: Callable[[Iterable], Iterable] = lambda items: items,
) -> tuple[list[PhotoCandidates], list[PhotoCandidates]]:
    """(pool, validation) candidates of a recipe's ``data`` section: every pool's first
    ``photos`` photos and ``val_photos`` photos of each of ``val_seeds``, mined with
    ``probabilities`` at the ``candidates`` thresholds and cached under ``work_dir``
    (``pool-<folder name>``, ``val<seed>``; see :func:`training.verifier_data.mine`)."""
    pool: list[PhotoCandidates] = []
    for source in data["pools"]:
        folder = Path(source["folder"])
        photos = pool_photos(folder, int(source["photos"]))
        pool += mine(photos, probabilities, candidates, work_dir / f"pool-{folder.name}", progress)
    val: list[PhotoCandidates] = []
    for seed in data["val_seeds"]:
        photos = val_photos(int(seed), int(data["val_photos"]), data)
        val += mine(photos, probabilities, candidates, work_dir / f"val{int(seed)}", progress)
    return pool, val


def training_record(
    cfg: dict, data: dict, mining_s: float, training_s: float, history: list[dict]
) -> dict:
    """The ``training`` entry of a stage's model.json section: command, seed, recipe, the
    data summary ``data``, times and the per-epoch history."""
    return {
        "command": command_line(),
        "seed": int(cfg["seed"]),
        "config": cfg,
        "data": data,
        "mining_s": round(mining_s, 1),
        "training_s": round(training_s, 1),
        "torch": torch.__version__,
        "history": history,
    }


def one_cycle_adamw(
    net: torch.nn.Module, train_cfg: dict, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW at the recipe's ``lr`` and ``weight_decay`` with a one-cycle schedule over
    ``total_steps`` steps."""
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=float(train_cfg["lr"]), weight_decay=float(train_cfg["weight_decay"])
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=float(train_cfg["lr"]), total_steps=total_steps
    )
    return optimiser, schedule


def fit(
    net: torch.nn.Module,
    count: int,
    train_cfg: dict,
    generator: torch.Generator,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    after_epoch: Callable[[], dict],
) -> list[dict]:
    """Train ``net`` for the recipe's ``epochs`` over ``count`` examples in shuffled batches
    of ``batch_size`` (the last partial one dropped): ``batch_loss(indices)`` is a batch's
    loss, AdamW with a one-cycle schedule steps on it. Returns one line per epoch, the mean
    loss and ``after_epoch()``'s figures, each also printed as JSON."""
    batch = int(train_cfg["batch_size"])
    steps = max(1, count // batch)
    epochs = int(train_cfg["epochs"])
    optimiser, schedule = one_cycle_adamw(net, train_cfg, epochs * steps)
    history = []
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(count, generator=generator)
        total = 0.0
        for step in range(steps):
            loss = batch_loss(order[step * batch : (step + 1) * batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach())
        line = {"epoch": epoch + 1, "loss": round(total / steps, 4), **after_epoch()}
        history.append(line)
        print(json.dumps(line), flush=True)
    return history


def folder_with_stage(
    detector: Path,
    out: Path,
    stage: str,
    network: torch.nn.Module,
    model_cfg: dict,
    version: str,
    record: dict,
    tile: dict | None = None,
) -> str:
    """Write the detector of ``detector`` plus the trained ``network`` as its ``stage``
    ("verifier" or "malignancy": the network attribute, the ``arch_kwargs`` entry, the
    tensors' prefix and model.json's section, which gets ``record``) into ``out``; return
    its SHA-256. The detector's other tensors are copied unchanged; ``tile`` (when given)
    updates model.json's tile settings; the detector's held-out ``metrics`` and ONNX export
    are dropped (they were the old folder's)."""
    from core.model_folder import load_model_folder, save_model_folder
    from core.models.registry import build_model

    model, meta = load_model_folder(detector, "cpu")
    if getattr(model, stage, None) is not None:
        raise DataError(detector, f"this detector already has a {stage}; start from one without")
    arch_kwargs = {**meta["arch_kwargs"], stage: dict(model_cfg)}
    combined = build_model(str(meta["architecture"]), **arch_kwargs)
    state = model.state_dict()
    state.update({f"{stage}.{k}": v for k, v in network.state_dict().items()})
    combined.load_state_dict(state, strict=True)
    kept = {
        k: v
        for k, v in meta.items()
        if k not in ("format", "sha256", "weights", "architecture", "arch_kwargs", "onnx")
    }
    kept["version"] = str(version)
    if tile:
        kept["tile"] = {**kept.get("tile", {}), **tile}
    kept[stage] = {**record, "detector_alone": {"version": meta["version"]}}
    kept.pop("metrics", None)  # the detector alone's figures; evaluate-detector adds new ones
    return save_model_folder(
        out, combined.eval(), arch=str(meta["architecture"]), arch_kwargs=arch_kwargs, meta=kept
    )

"""Two CPU processes (Gloo) train the detector together for a few steps, as under torchrun."""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from core.model_folder import load_model_folder
from tests.training.detector_standins import TINY_CONFIG


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _params_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _worker(rank: int, world: int, port: int, folder: str) -> None:
    """One torchrun-like process: environment, toy data, the real `run`."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    import training.train_detector as td
    from tests.training.detector_standins import use_toy_data
    from training.distributed import unwrap_model

    use_toy_data()
    real_epoch = td.train_one_epoch
    root = Path(folder)

    def recording_epoch(model, loader, *a, **k):
        stats = real_epoch(model, loader, *a, **k)
        digest = _params_digest(unwrap_model(model))
        (root / f"rank{rank}_epoch{k['epoch']}.txt").write_text(
            json.dumps({"digest": digest, "batches": stats["steps"]})
        )
        return stats

    td.train_one_epoch = recording_epoch
    parser = argparse.ArgumentParser()
    td.configure(parser)
    args = parser.parse_args(
        [
            "--config", str(root / "detector.json"),
            "--out", str(root / "model"),
            "--work-dir", str(root / "work"),
            "--device", "cpu",
            "--threads", "1",
        ]
    )  # fmt: skip
    assert td.run(args) == 0


def test_two_gloo_processes_train_in_step(tmp_path: Path) -> None:
    config = copy.deepcopy(TINY_CONFIG)
    config["data"]["photos_per_epoch"] = 8  # 4 per process -> 2 steps of 2 photos each
    (tmp_path / "detector.json").write_text(json.dumps(config))
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for epoch in range(2):
        r0 = json.loads((tmp_path / f"rank0_epoch{epoch}.txt").read_text())
        r1 = json.loads((tmp_path / f"rank1_epoch{epoch}.txt").read_text())
        assert r0["batches"] == r1["batches"] == 2
        assert r0["digest"] == r1["digest"]  # DDP kept the replicas identical
    _, meta = load_model_folder(tmp_path / "model")
    assert meta["training"]["world_size"] == 2
    assert meta["training"]["crops_seen"] == 2 * 2 * 2 * 2 * 2  # x2 processes
    assert len(meta["training"]["history"]) == 2  # rank 0 alone validated and saved

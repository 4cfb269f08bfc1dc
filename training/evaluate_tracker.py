"""`lesion-train evaluate-tracker`: the tracker and its baselines on the same pairs.

Two sets of pairs, made in this process:
- held-out synthetic pairs (the config's data source with a seed training never used,
  ``--seed``; synthesis pairs carry their own lesion truth, known-deformation pairs painted
  lesions), and
- pairs from the real total-body-photography tiles (``../shared/data/itobos-tbp-dev``) by
  known deformations (:func:`training.tracking_pairs.make_known_pair`: exact flow, relit,
  lesions painted on, some gone in B, some new in B).
Every method runs end to end at the same working resolution (:func:`core.tracking
.estimate_flow_with`). The tracker as shipped runs its network a second time on B pre-aligned
by its first flow (:mod:`core.prealignment`) and refines the flow at ``--refine-size``
(:mod:`core.flow_refinement`). So that what each part buys is measured, these run too: the
tracker without the second pass ("tracker, one pass"), the network alone once ("tracker,
network only"), DIS alone at the refinement resolution ("DIS (medium) at refine size"), and
the tracker's flow scored again with a part of lesion matching switched off ("tracker, no
lesion consensus", see :mod:`core.lesion_consensus`; "tracker, no near-miss pass", see
:mod:`core.near_miss`). Reported per method and set: PCK(alpha =
p / L, L the diagonal of A) for alpha 0..0.1 (a PNG plot and the numbers at 0.01, 0.02,
0.05, 0.1), mean EPE, lesion matching accuracy (share of A's lesions whose outcome - the
right B lesion, or none - is right, with :func:`core.matching.match_lesions` on true lesion
outlines), new-lesion recall and precision (B lesions called new after
:func:`core.matching.split_by_field_of_view`), and the median seconds per pair.

Lesion truth: a photo shows a lesion when at least ``MIN_VISIBLE_PX`` of its pixels are on it,
the rule the synthetic correspondences use; a lesion of B is new when it appeared where photo
A showed the skin at its centre (synthesis places new lesions only there; known-deformation
pairs paint them anywhere on B and count only those as new). A lesion of B whose partner
photo A shows with too few pixels (a 1-3 px speck that grew) is by that rule neither new nor
matched: a "new" call on it counts neither way in ``new_lesion_precision``, and as false in
``new_lesion_precision_strict``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import DataError
from core.io import SUPPORTED_SUFFIXES, load_photo
from core.matching import field_of_view, inside_outline, match_lesions, split_by_field_of_view
from core.prealignment import prealigned
from core.tracking import (
    REFINE_SIZE,
    WORKING_SIZE,
    FlowFn,
    estimate_flow_with,
    network_flow_fn,
)
from core.types import Lesion
from training.tracking_pairs import KnownPair, lesion_from_mask, make_known_pair

#: A method under evaluation: full-resolution photos A, B -> full-resolution flow A -> B.
Method = Callable[[np.ndarray, np.ndarray], np.ndarray]

ALPHAS = np.linspace(0.0, 0.1, 101)
REAL_TILES = Path("../shared/data/itobos-tbp-dev/images")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=Path("resources/models/tracker"))
    parser.add_argument("--config", type=Path, default=Path("training/configs/tracker.json"))
    parser.add_argument("--out-dir", type=Path, default=Path("runs/tracker-eval"))
    parser.add_argument("--synthetic-pairs", type=int, default=24)
    parser.add_argument("--real-pairs-per-tile", type=int, default=6)
    parser.add_argument("--seed", type=int, default=777001, help="held-out seed (never trained on)")
    parser.add_argument("--real-tiles", type=Path, default=REAL_TILES)
    parser.add_argument("--working-size", type=int, default=None)
    parser.add_argument(
        "--refine-size",
        type=int,
        default=REFINE_SIZE,
        help="long side of the tracker's flow refinement (0: the network alone)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument(
        "--update-model-json",
        action="store_true",
        help="store the figures (no curves) under model.json metrics.evaluation",
    )


@dataclass
class Tally:
    """Accumulates one method's figures over pairs."""

    hits: np.ndarray
    pixels: int = 0
    # the same over A's skin alone, for pairs that know it (None until one does)
    skin_hits: np.ndarray | None = None
    skin_pixels: int = 0
    epe_sum: float = 0.0
    lesions_a: int = 0
    lesions_right: int = 0
    new_true: int = 0
    new_pred: int = 0
    new_hit: int = 0
    # "new" calls on B lesions the truth leaves unlabelled (see KnownPair.faint_in_a)
    new_pred_unlabelled: int = 0
    seconds: list[float] | None = None

    def summary(self) -> dict:
        pck = self.hits / max(self.pixels, 1)
        pick = {
            f"pck@{a:g}": round(float(pck[int(round(a * 1000))]), 4)
            for a in (0.01, 0.02, 0.05, 0.1)
        }
        if self.skin_hits is not None:
            skin = self.skin_hits / max(self.skin_pixels, 1)
            pick.update({f"pck_skin@{a:g}": round(float(skin[int(round(a * 1000))]), 4)
                         for a in (0.02, 0.05)})  # fmt: skip
        labelled_pred = self.new_pred - self.new_pred_unlabelled
        return {
            **pick,
            "epe_px": round(self.epe_sum / max(self.pixels, 1), 2),
            "lesion_matching_accuracy": round(self.lesions_right / max(self.lesions_a, 1), 4),
            "new_lesion_recall": round(self.new_hit / max(self.new_true, 1), 4),
            "new_lesion_precision": round(self.new_hit / max(labelled_pred, 1), 4)
            if labelled_pred
            else None,
            # the same with "new" calls on unlabelled lesions counted as false
            "new_lesion_precision_strict": round(self.new_hit / self.new_pred, 4)
            if self.new_pred
            else None,
            "median_seconds": round(float(np.median(self.seconds)), 3) if self.seconds else None,
            "pck_curve": [round(float(v), 4) for v in pck],
        }


def score_pair(tally: Tally, pair: KnownPair, flow: np.ndarray, **matching: bool) -> None:
    """Add one pair's flow errors and matching outcome to ``tally`` (``matching``: options of
    :func:`core.matching.match_lesions`, such as ``use_consensus=False``)."""
    diag = float(np.hypot(*pair.image_a.shape[:2]))
    error_map = np.linalg.norm(flow - pair.flow, axis=2)
    err = error_map[pair.valid][::3]
    tally.hits += (err[None, :] < ALPHAS[:, None] * diag).sum(1)
    tally.pixels += err.size
    if pair.skin_a is not None:
        # background (wall, sheet) is featureless: no photo can say where it went
        skin_err = error_map[pair.valid & pair.skin_a][::3]
        if tally.skin_hits is None:
            tally.skin_hits = np.zeros(len(ALPHAS), np.int64)
        tally.skin_hits += (skin_err[None, :] < ALPHAS[:, None] * diag).sum(1)
        tally.skin_pixels += skin_err.size
    tally.epe_sum += float(err.sum())
    matches, unmatched_b, unmatched_a = match_lesions(
        pair.lesions_a,
        pair.lesions_b,
        flow,
        pair.image_a,
        pair.image_b,
        **matching,
    )
    # lesions only B shows because the camera moved are not new (the truth agrees)
    new_in_b, *_ = split_by_field_of_view(
        unmatched_b, unmatched_a, pair.lesions_a, pair.lesions_b, flow, pair.image_b.shape
    )
    truth = dict(pair.correspondences)
    predicted = {m.a: m.b for m in matches}
    for lesion in pair.lesions_a:
        tally.lesions_a += 1
        tally.lesions_right += int(predicted.get(lesion.id) == truth.get(lesion.id))
    tally.new_true += len(pair.new_in_b)
    tally.new_pred += len(new_in_b)
    tally.new_hit += len(set(new_in_b) & set(pair.new_in_b))
    tally.new_pred_unlabelled += len(set(new_in_b) & set(pair.faint_in_a))


def lesions_from_instances(
    instance_map: np.ndarray, class_map: np.ndarray, min_px: int = 1
) -> tuple[Lesion, ...]:
    """Lesions of a synthetic label pair: id = instance id, p_malignant 1 on malignant pixels;
    instances of fewer than ``min_px`` pixels are left out."""
    out = []
    ids, counts = np.unique(instance_map, return_counts=True)
    for k in ids[(ids != 0) & (counts >= min_px)]:
        mask = instance_map == k
        lesion = lesion_from_mask(int(k), mask, float((class_map[mask] == 2).mean()))
        if lesion is not None:
            out.append(lesion)
    return tuple(out)


def synthetic_pairs(config: dict, count: int, seed: int) -> Iterator[KnownPair]:
    """Held-out pairs from the config's data source: synthetic pairs (``data.synth_config``)
    for the synthesis sources and ``mix``, else known deformations at twice the training
    size."""
    data = config["data"]
    w, h = 2 * int(data["width"]), 2 * int(data["height"])
    if data.get("source") in ("synth_pairs", "synth_folder", "mix"):
        from training.synthesis.detection import SynthConfig
        from training.synthesis.pairs import MIN_VISIBLE_PX, make_pair_sample

        for i in range(count):
            s = make_pair_sample(i, seed, SynthConfig(**data.get("synth_config", {})))
            # the lesions each photo shows by the same rule as the correspondences: a mole
            # a few pixels wide on one photo neither matches nor counts as new or gone
            lesions_a = lesions_from_instances(s.instance_map_a, s.class_map_a, MIN_VISIBLE_PX)
            lesions_b = lesions_from_instances(s.instance_map_b, s.class_map_b, MIN_VISIBLE_PX)
            shown_a = {le.id for le in lesions_a}
            shown_b = {le.id for le in lesions_b}
            labelled_b = {b for _, b in s.correspondences} | set(s.new_in_b)
            view_of_a = field_of_view(s.flow)
            yield KnownPair(
                s.image_a,
                s.image_b,
                s.flow,
                s.valid,
                lesions_a,
                lesions_b,
                tuple(s.correspondences),
                tuple(i for i in s.new_in_b if i in shown_b),
                tuple(i for i in s.gone_from_a if i in shown_a),
                skin_a=s.skin_a,
                faint_in_a=tuple(
                    le.id
                    for le in lesions_b
                    if le.id not in labelled_b and inside_outline(view_of_a, le.centroid)
                ),
            )
        return
    from training.tracker_data import WarpPairDataset

    base = WarpPairDataset(
        count,
        seed,
        size=(w // 2, h // 2),
        base=data.get("source", "image_folder"),
        folder=data.get("folder"),
        split="holdout" if data.get("split") == "train" else data.get("split", "all"),
    )
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        image = base._base_image(i, rng)
        yield make_known_pair(image, rng, lesions=10, gone=2, new=2)


def real_tile_pairs(folder: Path, per_tile: int, seed: int) -> Iterator[KnownPair]:
    """Known-deformation pairs of each real tile (10 painted lesions, 2 gone, 2 new)."""
    files = sorted(p for p in Path(folder).glob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
    if not files:
        raise DataError(Path(folder), "no real tiles found")
    for t, path in enumerate(files):
        image = load_photo(path)
        for i in range(per_tile):
            yield make_known_pair(
                image, np.random.default_rng([seed, 1000 + t, i]), lesions=10, gone=2, new=2
            )


def end_to_end(fn: FlowFn, working_size: int, refine_size: int = 0) -> Method:
    """A working-resolution flow function run end to end (see :func:`estimate_flow_with`)."""

    def method(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
        return estimate_flow_with(
            fn, image_a, image_b, working_size=working_size, refine_size=refine_size
        )

    return method


#: Rows that score a method's flow again with a part of lesion matching switched off: row
#: name suffix -> options of :func:`core.matching.match_lesions`.
MATCHING_ABLATIONS = {
    ", no lesion consensus": {"use_consensus": False},
    ", no near-miss pass": {"near_miss": False},
}


def evaluate(
    methods: dict[str, Method], pairs: Iterator[KnownPair], matching_ablation: tuple[str, ...] = ()
) -> dict[str, dict]:
    """Every method on every pair; the methods named in ``matching_ablation`` are also scored
    (same flow) with each variant of :data:`MATCHING_ABLATIONS`, under ``name + suffix``."""
    names = list(methods) + [
        name + suffix for name in matching_ablation for suffix in MATCHING_ABLATIONS
    ]
    tallies = {name: Tally(hits=np.zeros(len(ALPHAS), np.int64), seconds=[]) for name in names}
    for pair in pairs:
        for name, method in methods.items():
            t0 = time.perf_counter()
            flow = method(pair.image_a, pair.image_b)
            tallies[name].seconds.append(time.perf_counter() - t0)
            score_pair(tallies[name], pair, flow)
            if name in matching_ablation:
                for suffix, options in MATCHING_ABLATIONS.items():
                    tallies[name + suffix].seconds.append(tallies[name].seconds[-1])
                    score_pair(tallies[name + suffix], pair, flow, **options)
    return {name: tallies[name].summary() for name in names}


def plot_pck(results: dict[str, dict[str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, (set_name, per_method) in zip(axes[0], results.items(), strict=True):
        for name, summary in per_method.items():
            if name.endswith(tuple(MATCHING_ABLATIONS)):  # its method's flow: the same curve
                continue
            ax.plot(ALPHAS, summary["pck_curve"], label=name, lw=2.5 if name == "tracker" else 1.5)
        ax.set(
            title=set_name,
            xlabel="alpha (error / image diagonal)",
            ylabel="PCK",
            xlim=(0, 0.1),
            ylim=(0, 1.01),
        )
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from core.model_folder import load_model_folder

    config = json.loads(Path(args.config).read_text(encoding="utf-8"))
    model, meta = load_model_folder(args.model, "cpu")
    working = int(args.working_size or getattr(model, "working_size", WORKING_SIZE))
    network = network_flow_fn(model, args.device)
    methods: dict[str, Method] = {
        "tracker": end_to_end(prealigned(network), working, args.refine_size),
        "tracker, one pass": end_to_end(network, working, args.refine_size),
    }
    if args.refine_size:
        methods["tracker, network only"] = end_to_end(network, working)
    if not args.no_baselines:
        from training.baselines.flow_baselines import BASELINES

        methods.update({name: end_to_end(fn, working) for name, fn in BASELINES.items()})
        if args.refine_size:
            methods["DIS (medium) at refine size"] = end_to_end(
                BASELINES["DIS (medium)"], args.refine_size
            )
    ablation = ("tracker",)
    results = {
        "held-out synthetic pairs": evaluate(
            methods, synthetic_pairs(config, args.synthetic_pairs, args.seed), ablation
        ),
        "real tiles, known deformations": evaluate(
            methods,
            real_tile_pairs(args.real_tiles, args.real_pairs_per_tile, args.seed),
            ablation,
        ),
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_pck(results, out / "pck.png")
    report = {
        "model": {k: meta.get(k) for k in ("name", "version", "sha256")},
        "working_size": working,
        "refine_size": args.refine_size,
        "seed": args.seed,
        "results": results,
    }
    (out / "tracker_eval.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    for set_name, per_method in results.items():
        print(set_name)
        for name, s in per_method.items():
            print(
                f"  {name:24s} PCK@.02 {s['pck@0.02']:.3f} @.05 {s['pck@0.05']:.3f} "
                f"EPE {s['epe_px']:7.2f} "
                f"match {s['lesion_matching_accuracy']:.3f} new R {s['new_lesion_recall']:.3f} "
                f"P {s['new_lesion_precision']} (strict {s['new_lesion_precision_strict']}) "
                f"{s['median_seconds']}s"
                + (f" | skin PCK@.02 {s['pck_skin@0.02']:.3f} @.05 {s['pck_skin@0.05']:.3f}"
                   if "pck_skin@0.05" in s else "")
            )  # fmt: skip
    print(f"wrote {out / 'pck.png'} and {out / 'tracker_eval.json'}")
    if args.update_model_json:
        from training.evaluate_detector import update_model_json

        sha = update_model_json(args.model, {"evaluation": model_json_summary(report, args)})
        print(f"model.json updated; weights still match sha256 {sha[:12]}...")
    return 0


def model_json_summary(report: dict, args: argparse.Namespace) -> dict:
    """The evaluation report for model.json: every figure except the PCK curves."""
    return {
        "command": "lesion-train evaluate-tracker "
        + " ".join(
            [
                f"--synthetic-pairs {args.synthetic_pairs}",
                f"--real-pairs-per-tile {args.real_pairs_per_tile}",
                f"--seed {args.seed}",
                f"--refine-size {args.refine_size}",
            ]
        ),
        "working_size": report["working_size"],
        "refine_size": report["refine_size"],
        "held_out_seed": report["seed"],
        "synthetic_pairs": args.synthetic_pairs,
        "real_tile_pairs_per_tile": args.real_pairs_per_tile,
        "results": {
            set_name: {
                name: {k: v for k, v in s.items() if k != "pck_curve"}
                for name, s in per_method.items()
            }
            for set_name, per_method in report["results"].items()
        },
    }

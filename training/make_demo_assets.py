"""Make the demo photos the app ships (``resources/demo/``), once: two visits of synthetic
body photos per body site, from the synthesis package's tracking pairs, with procedural
lesions only (no third-party photo ends up in the app).

    python -m training.make_demo_assets [--out resources/demo] [--seed 2024]

Writes ``visit1_<site>.jpg`` and ``visit2_<site>.jpg`` (JPEG, each under 300 KB) and
``demo.json`` (how they were made and which lesions are new, gone or changed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from training.sources.procedural_bodies import generate_body
from training.synthesis.detection import SynthConfig
from training.synthesis.pairs import make_pair_sample
from training.synthesis.sources import SynthSources, default_sources, fit_body

#: (body site shown in the app, procedural body region)
SITES = (("back", "back"), ("left leg", "leg"))
MAX_BYTES = 300_000


def body_factory(region: str):
    def make(rng: np.random.Generator, width: int, height: int):
        return fit_body(
            generate_body(rng, width=width, height=height, region=region), width, height
        )

    return make


def write_jpeg(path: Path, image: np.ndarray, max_bytes: int = MAX_BYTES) -> int:
    """Write RGB ``image`` as the best JPEG quality under ``max_bytes``; returns the quality."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    for quality in range(92, 40, -4):
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(data) < max_bytes:
            path.write_bytes(data.tobytes())
            return quality
    raise RuntimeError(f"{path.name}: cannot fit under {max_bytes} bytes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="resources/demo")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = SynthConfig(
        width=1024,
        height=768,
        lesions_per_image=(4, 6),
        malignant_fraction=0.3,
        lesion_source="procedural",
        body_pool=0,
        augment=0.4,
    )
    lesions = default_sources("procedural", "procedural").lesion
    record = {"command": "python -m training.make_demo_assets", "seed": args.seed, "photos": []}
    for index, (site, region) in enumerate(SITES):
        sources = SynthSources(body=body_factory(region), lesion=lesions)
        pair = make_pair_sample(index, args.seed, config, sources=sources)
        name = site.replace(" ", "_")
        for visit, image in ((1, pair.image_a), (2, pair.image_b)):
            path = out / f"visit{visit}_{name}.jpg"
            quality = write_jpeg(path, image)
            print(f"{path}: {path.stat().st_size / 1000:.0f} KB (q{quality})", file=sys.stderr)
        record["photos"].append(
            {
                "site": site,
                "index": index,
                "lesions_visit1": len(pair.lesions_a),
                "lesions_visit2": len(pair.lesions_b),
                "new_in_visit2": list(pair.new_in_b),
                "gone_from_visit1": list(pair.gone_from_a),
                "changed": list(pair.changed),
            }
        )
    (out / "demo.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

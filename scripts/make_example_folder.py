"""Write the README's own-data example: an image folder with a class table, from the embedded images.

    python -m scripts.make_example_folder /tmp/own [--per-class 120 --held-back 30 --seed 0]

OUT/data is a `data.name: folder` dataset: one folder of 28 x 28 grey PNGs per class (the Animal-MNIST
silhouettes of the embedded set), `classes.csv` (class, description, unseen: text semantics) and
`attributes.csv` (class, the embedded set's 18 attributes, unseen: attribute semantics). bear,
giraffe and sheep are unseen, as in the embedded set. OUT/held-back holds other images of every
class, in class folders, that the pipeline never sees: predict's input. The descriptions were
written for this example from the attribute table's meanings (shape words a silhouette can show),
not tuned on any result.
"""
from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

import numpy as np

from zerodiffpp.data import embedded

DESCRIPTIONS = {
    "bear": "a big heavy round animal like a huge dog, with shaggy fur, short legs, a tiny tail and paws; "
            "it can stand on two legs",
    "bird": "a tiny animal with wings, a beak and two thin legs",
    "cat": "a small slender furry animal with a long tail, pointed ears, a short snout and paws",
    "cow": "a large bulky farm animal with horns, a long snout, hooves and a thin tail",
    "dog": "a medium-sized furry animal with a long snout, big ears, a long tail and paws",
    "elephant": "the largest and heaviest animal, with a long trunk, huge ears, a big head and thick legs",
    "giraffe": "a very tall animal like a horse with an extremely long neck, very long legs, a sloping back, "
               "small horns and hooves",
    "horse": "a large animal with a long neck, long legs, a long snout, a long tail and hooves",
    "sheep": "a medium-sized very round farm animal like a small cow, with a thick woolly fleece, a short tail "
             "and hooves",
    "zebra": "a large animal like a horse with a striped coat, a long neck, long legs, a long snout and hooves",
}


def _write_table(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def make(out: Path, per_class: int = 120, held_back: int = 30, seed: int = 0) -> Path:
    """Write the example under `out` (which must not exist yet or be empty); -> out."""
    from PIL import Image
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"ERROR: {out} exists and is not empty; give a new folder")
    images, labels = embedded.load_images()
    if per_class < 2 or held_back < 0 or per_class + held_back > np.bincount(labels).min():
        raise SystemExit(f"ERROR: --per-class {per_class} + --held-back {held_back} must be >= 2 and at most "
                         f"{np.bincount(labels).min()} images per class")
    tmp = out.with_name(f".{out.name}.tmp")  # written aside, renamed into place: never a half-written example
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for c, name in enumerate(embedded.CLASS_NAMES):
        pick = rng.permutation(np.flatnonzero(labels == c))[:per_class + held_back]
        for part, idx in (("data", pick[:per_class]), ("held-back", pick[per_class:])):
            (tmp / part / name).mkdir(parents=True, exist_ok=True)
            for i in idx:
                Image.fromarray(images[i]).save(tmp / part / name / f"{i:05d}.png")
    unseen = lambda name: int(name in embedded.UNSEEN)  # noqa: E731
    _write_table(tmp / "data" / "classes.csv", ["class", "description", "unseen"],
                 [[n, DESCRIPTIONS[n], unseen(n)] for n in embedded.CLASS_NAMES])
    values, attributes = embedded.load_attributes()
    _write_table(tmp / "data" / "attributes.csv", ["class", *attributes, "unseen"],
                 [[n, *[f"{v:.2f}" for v in values[c]], unseen(n)] for c, n in enumerate(embedded.CLASS_NAMES)])
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scripts.make_example_folder", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder to create (OUT/data: the dataset, OUT/held-back: images for predict)")
    ap.add_argument("--per-class", type=int, default=120, help="images per class in OUT/data (default 120)")
    ap.add_argument("--held-back", type=int, default=30, help="other images per class in OUT/held-back (default 30)")
    ap.add_argument("--seed", type=int, default=0, help="which images are drawn (default 0)")
    args = ap.parse_args(argv)
    out = make(Path(args.out), args.per_class, args.held_back, args.seed).resolve()
    print(f"wrote {out}/data ({args.per_class} images per class, classes.csv, attributes.csv) and {out}/held-back "
          f"({args.held_back} per class)", file=sys.stderr)


if __name__ == "__main__":
    main()

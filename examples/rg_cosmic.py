"""The cosmic web by the RG way: fit hierarchical models to log-density slabs of 2LPT boxes and
judge their fields, side by side with microcanonical synthesis, against held-out slabs.

    python examples/rg_cosmic.py --size 64 --train 256 --held-out 256 --out cosmic64-rg

simulates the training slabs (seed S) and the held-out slabs (seed S + 1, independent boxes)
with rgfield's 2LPT simulator (2 Mpc/h cells), or reads them with ``--train-file`` and
``--held-out-file``. Pathways (``--pathways``): ``rg`` (potential + quadratic families),
``rg-scattering`` (quadratic + scattering-covariance families with the curvature floor, the
default of ``rgfield fit`` for the cosmic web; docs/rg_fields.md) and ``microcanonical``
(scattering-spectra synthesis, about 5 s per 64² field on 2 cores). Writes under OUT the
comparison report (report/: figures with example fields of every ensemble, spectra, pixel
PDFs, Minkowski functionals, peak counts, and the tables), the ensembles (ensembles/) and
pathways.md (costs and, per statistic, each pathway's largest |z| against the held-out slabs).
Each pathway's fields are saved as soon as it is done and each fitted RG model before it
samples (OUT/work/), so a stopped run continues with ``--resume``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rgfield import io
from rgfield.fields import simulate
from rgfield.fields.cosmic import CosmicConfig
from rgfield.pathways import compare_pathways


def slabs(path: Path | None, size: int, n: int, seed: int):
    """The slabs of a file, or ``n`` new ones of ``size``² from independent 2LPT boxes."""
    if path is not None:
        return io.load(path)
    config = CosmicConfig(size=size, box=2.0 * size)
    return simulate(config, n, seed=seed)["log_density"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="slab side in cells (64)")
    parser.add_argument("--train", type=int, default=256, help="training slabs (256)")
    parser.add_argument("--held-out", type=int, default=256, help="held-out slabs (256)")
    parser.add_argument("--train-file", type=Path, help="training slabs from a file instead")
    parser.add_argument("--held-out-file", type=Path, help="held-out slabs from a file instead")
    parser.add_argument("--samples", type=int, default=256, help="fields per pathway (256)")
    parser.add_argument(
        "--pathways",
        nargs="+",
        default=["rg", "rg-scattering", "microcanonical"],
        help="pathways to run (rg rg-scattering microcanonical)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("cosmic-rg"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a stopped run in OUT (fitted models and finished pathways are kept)",
    )
    args = parser.parse_args()
    train = slabs(args.train_file, args.size, args.train, args.seed)
    held_out = slabs(args.held_out_file, args.size, args.held_out, args.seed + 1)
    compare_pathways(
        train,
        held_out,
        args.samples,
        pathways=args.pathways,
        seed=args.seed,
        out=args.out,
        overwrite=args.overwrite,
        resume=args.resume,
    )
    print((args.out / "pathways.md").read_text())


if __name__ == "__main__":
    main()

"""Put the diffusion pathway beside the RG model and microcanonical synthesis on one training
ensemble, judged against a held-out ensemble of the same process that no pathway saw.

    python examples/diffusion_pathways.py --train train.nc --held-out held_out.nc \\
        --width 8 --train-steps 3000 --samples 256 --out decaying64-pathways

(``--pathways rg diffusion`` leaves out microcanonical synthesis, about 5 s per field at 64².)

The ensembles are files written by rgfield (``rgfield simulate``, ``rgfield.io.save``) or any
(sample, y, x) array file ``rgfield compare`` reads. It writes, under OUT, the comparison report
(report/), the ensembles (ensembles/) and pathways.md: each pathway's costs (parameters, fit
time, wall time and network or gradient evaluations per field) and, per compared quantity, its
largest |z| against the held-out fields and the pathway ahead; both tables are printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rgfield import io
from rgfield.pathways import DiffusionPathway, compare_pathways


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="training fields")
    parser.add_argument("--held-out", type=Path, required=True, help="held-out fields")
    parser.add_argument("--samples", type=int, default=256, help="fields per pathway (256)")
    parser.add_argument("--width", type=int, default=16, help="UNet channels (16)")
    parser.add_argument("--levels", type=int, default=4, help="UNet resolutions (4)")
    parser.add_argument("--train-steps", type=int, default=4000, help="training steps (4000)")
    parser.add_argument(
        "--pathways",
        nargs="+",
        default=["rg", "microcanonical", "diffusion"],
        help="pathways to run (rg microcanonical diffusion)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("diffusion-pathways"))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    diffusion = DiffusionPathway(
        {"width": args.width, "levels": args.levels, "steps": args.train_steps}
    )
    compare_pathways(
        io.load(args.train),
        io.load(args.held_out),
        args.samples,
        pathways=[diffusion if name == "diffusion" else name for name in args.pathways],
        seed=args.seed,
        out=args.out,
        overwrite=args.overwrite,
    )
    print((args.out / "pathways.md").read_text())


if __name__ == "__main__":
    main()

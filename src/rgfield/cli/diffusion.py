"""``rgfield diffusion train | sample | memorisation``: the score-diffusion pathway."""

from __future__ import annotations

import argparse

from rgfield.cli import _options

NAME = "diffusion"
HELP = "train, sample and test denoising diffusion models of fields"
SAMPLER_NAMES = ("heun", "euler", "ddim", "euler_maruyama", "pc")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--process", choices=("ve", "vp"), default="ve", help="noise process (ve)")
    parser.add_argument(
        "--schedule", choices=("linear", "cosine"), help="β schedule of --process vp (linear)"
    )
    parser.add_argument(
        "--noise",
        choices=("white", "spectrum"),
        default="white",
        help="white noise, or noise with the data's power spectrum (white)",
    )
    parser.add_argument(
        "--skip",
        choices=("scalar", "wiener"),
        default="scalar",
        help="denoiser skip: EDM's scalar, or the Wiener filter of the data's spectrum (scalar)",
    )
    parser.add_argument(
        "--weighting",
        choices=("edm", "spectral"),
        default="spectral",
        help="training loss: EDM's λ(σ), or per Fourier mode by its Wiener error (spectral)",
    )
    parser.add_argument("--width", type=int, default=16, help="UNet channels (16)")
    parser.add_argument("--levels", type=int, default=4, help="UNet resolutions (4)")
    parser.add_argument("--bias-free", action="store_true", help="bias-free, noise-blind UNet")
    parser.add_argument(
        "--networks",
        type=int,
        default=1,
        help="UNets trained from successive seeds, their outputs averaged (1)",
    )
    parser.add_argument(
        "--no-augmentation",
        action="store_true",
        help="train on the fields as given (default: moved by the data's symmetries)",
    )
    parser.add_argument("--train-steps", type=int, default=4000, help="training steps (4000)")
    parser.add_argument("--batch", type=int, default=32, help="fields per training step (32)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    parser.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default="cosine",
        help="learning rate constant, or decaying to 0 on a cosine (cosine)",
    )


def _model_options(args: argparse.Namespace) -> dict:
    from rgfield.diffusion import Symmetries, make_process

    if args.schedule is not None and args.process != "vp":
        raise ValueError("--schedule applies to --process vp only")
    process = make_process(args.process, **({"schedule": args.schedule} if args.schedule else {}))
    return dict(
        process=process,
        noise=args.noise,
        skip=args.skip,
        weighting=args.weighting,
        width=args.width,
        levels=args.levels,
        bias=not args.bias_free,
        networks=args.networks,
        steps=args.train_steps,
        batch=args.batch,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        symmetries=Symmetries(shifts=False) if args.no_augmentation else None,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="action", required=True)
    train = actions.add_parser("train", help="train a model on an ensemble")
    train.add_argument("data", help="training ensemble (.nc, .npy, .npz, .zarr)")
    _options.add_var(train)
    _add_model_options(train)
    train.add_argument("--checkpoint", help="training-state file: written as it trains, resumed")
    _options.add_seed(train)
    _options.add_device(train)
    _options.add_output(train, "model file to write (netCDF)")
    _options.add_progress(train)

    sample = actions.add_parser("sample", help="draw fields from a trained model")
    sample.add_argument("model", help="model file written by `rgfield diffusion train`")
    sample.add_argument("--samples", type=int, required=True, help="number of fields")
    sample.add_argument("--sampler", choices=SAMPLER_NAMES, default="heun", help="(heun)")
    sample.add_argument("--steps", type=int, default=64, help="noise levels (64)")
    sample.add_argument("--batch", type=int, default=64, help="fields per batch (64)")
    sample.add_argument(
        "--churn",
        type=float,
        help="EDM stochastic churn S_churn (euler, heun, euler_maruyama; 10 for heun and euler, 0"
        " for euler_maruyama; 0 makes heun deterministic)",
    )
    sample.add_argument("--eta", type=float, help="DDIM's η (0: deterministic)")
    _options.add_seed(sample)
    _options.add_device(sample)
    _options.add_output(sample, "netCDF file to write (an ensemble directory: see below)")
    _options.add_progress(sample)
    _options.add_ensemble(sample)

    study = actions.add_parser(
        "memorisation", help="two models on disjoint sets of N fields: copies or new fields?"
    )
    study.add_argument("data", help="ensemble with at least 2 max(--sizes) + --heldout fields")
    _options.add_var(study)
    study.add_argument("--sizes", type=int, nargs="+", required=True, help="training-set sizes N")
    study.add_argument("--samples", type=int, default=16, help="fields per model (16)")
    study.add_argument("--heldout", type=int, default=64, help="held-out fields (64)")
    study.add_argument("--sampler", choices=("heun", "ddim", "euler"), default="heun")
    study.add_argument("--steps", type=int, default=32, help="noise levels (32)")
    _add_model_options(study)
    _options.add_seed(study, default=0)
    _options.add_output(
        study, "directory for memorisation.nc and memorisation.png", kind="directory"
    )
    _options.add_progress(study)


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "sample": _sample, "memorisation": _memorisation}[args.action](args)


def _train(args: argparse.Namespace) -> int:
    from rgfield import io
    from rgfield.diffusion import DiffusionModel

    data = io.load(args.data, args.var)
    model = DiffusionModel(
        **_model_options(args), seed=args.seed, device=args.device, progress=not args.no_progress
    )
    model.fit(data, checkpoint=args.checkpoint)
    model.save(args.out, overwrite=args.overwrite)
    loss = model.history_["loss"].values
    tail = loss[len(loss) // 2 :].mean()
    print(
        f"{model.n_parameters_:,} parameters trained on {len(data)} fields in"
        f" {model.training_seconds_:.0f} s; loss {loss[0]:.3g} → {tail:.3g} (mean of the last"
        f" half); written to {args.out}"
    )
    return 0


def _sample(args: argparse.Namespace) -> int:
    from rgfield import io
    from rgfield.diffusion import DiffusionModel

    model = DiffusionModel.load(args.model, device=args.device)
    options = {k: v for k, v in (("churn", args.churn), ("eta", args.eta)) if v is not None}
    options.update(sampler=args.sampler, steps=args.steps, batch=args.batch)
    if _options.ensemble_mode(args):
        from rgfield.cli._ensemble import write_ensemble
        from rgfield.ensembles import DiffusionSampling

        write_ensemble(args, DiffusionSampling(model, options), args.samples)
        return 0
    ds = model.sample(args.samples, seed=args.seed, progress=not args.no_progress, **options)
    ds.attrs["source"] = str(args.model)
    io.save(ds, args.out, overwrite=args.overwrite)
    print(
        f"{args.samples} fields written to {args.out}: {ds.attrs['network_evaluations']} network"
        f" evaluations and {ds.attrs['seconds_per_sample'] * 1e3:.1f} ms per field"
    )
    return 0


def _memorisation(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rgfield import io
    from rgfield.diffusion.memorisation import crossover, generalisation
    from rgfield.diffusion.plots import plot_generalisation

    data = io.load(args.data, args.var)
    result = generalisation(
        data,
        args.sizes,
        model_options=_model_options(args),
        samples=args.samples,
        heldout=args.heldout,
        sampler=args.sampler,
        sampler_steps=args.steps,
        seed=args.seed,
        progress=not args.no_progress,
    )
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    io.save(result, out / "memorisation.nc", overwrite=True)
    plot_generalisation(result).savefig(out / "memorisation.png", dpi=120)
    median = result.median("sample")
    for n in result["size"].values:
        row = median.sel(size=n)
        print(
            f"N = {n}: agreement {float(row['agreement']):.3f}, nearest-training distance"
            f" {float(row['nearest_a']):.3f} / {float(row['nearest_b']):.3f}"
            f" (held-out {float(result['nearest_heldout'].sel(size=n).median()):.3f})"
        )
    n = crossover(result)
    print(f"generalisation from N = {n}" if n else "no N of --sizes generalises (see the figure)")
    return 0

"""The ``crgan`` command.

``crgan fit|validate|test|predict --config FILE`` is a LightningCLI over the library's modules
(``model.class_path: crgan_lightning.modules.reid.ReIDModule`` ...) and the shared
:class:`~crgan_lightning.data.datamodule.CrossDomainDataModule`; the numbers the data
decides (source identities, target cameras, queries) are linked from the DataModule into the
module. The data and tool commands are plain sub-commands:

* ``crgan synth --out data/``: write the embedded two-domain benchmark (synth_a, synth_b).
* ``crgan summary --dataset market --root data/``: print a dataset's statistics table.
* ``crgan masks --dataset market --root data/``: write person masks with a segmentation model.
* ``crgan render --ckpt C --source market --target duke --out DIR``: export a rendered dataset.
* ``crgan quality --ckpt C --source market --target duke``: LPIPS diversity and FID/KID (Table 1).
* ``crgan demo``: the end-to-end demo on the embedded benchmark.

A user error (bad path, unknown dataset, bad value) ends with one ``crgan: error: ...`` line
and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .errors import CRGANError

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")

# DataModule properties linked into every module's __init__ argument of the same name.
DATA_LINKS = ("num_source_pids", "num_query", "num_target_cameras")


def run_lightning_cli(argv: Sequence[str]):
    """Run the LightningCLI over the library's modules (``argv`` starts with the subcommand)."""
    import pytorch_lightning as pl
    from pytorch_lightning.cli import LightningCLI

    from .data.datamodule import CrossDomainDataModule

    class CRGANLightningCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            for name in DATA_LINKS:
                parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")

    return CRGANLightningCLI(
        model_class=pl.LightningModule,
        subclass_mode_model=True,
        datamodule_class=CrossDomainDataModule,
        args=list(argv),
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
    )


def _cmd_synth(args: argparse.Namespace) -> None:
    from .data import load_reid_dataset
    from .data.synthetic import generate_benchmark

    start = time.perf_counter()
    paths = generate_benchmark(
        args.out, seed=args.seed, num_train_ids=args.ids, num_test_ids=args.test_ids,
        height=args.height, width=args.width, overwrite=args.overwrite, progress=not args.quiet,
    )
    print(f"embedded benchmark under {args.out} ({time.perf_counter() - start:.1f} s)")
    for name in paths:
        print(load_reid_dataset(name, args.out).summary())


def _cmd_summary(args: argparse.Namespace) -> None:
    from .data import load_reid_dataset

    print(load_reid_dataset(args.dataset, args.root).summary())


def _cmd_masks(args: argparse.Namespace) -> None:
    from .data.segmentation import write_masks

    folder, written = write_masks(
        args.dataset, args.root, model=args.model, weights_path=args.weights, batch_size=args.batch_size,
        threshold=None if args.soft else args.threshold, overwrite=args.overwrite, device=args.device,
        progress=not args.quiet,
    )
    print(f"{written} masks written under {folder}")


def _cmd_render(args: argparse.Namespace) -> None:
    from .export import export_rendered

    out = export_rendered(
        args.ckpt, args.source, args.target, args.root, args.out, height=args.height, width=args.width,
        contexts_per_image=args.contexts, batch_size=args.batch_size, seed=args.seed, overwrite=args.overwrite,
        device=args.device, progress=not args.quiet,
    )
    from .data import load_reid_dataset

    print(load_reid_dataset("rendered", out).summary())


def _cmd_quality(args: argparse.Namespace) -> None:
    from .reports import format_quality_table, quality_table

    table = quality_table(
        args.ckpt, args.source, args.target, args.root, num_sources=args.num_sources, num_contexts=args.num_contexts,
        num_fid=args.num_fid, height=args.height, width=args.width, lpips_net=args.lpips_net,
        lpips_path=args.lpips_weights, inception_path=args.inception_weights, seed=args.seed, device=args.device,
        progress=not args.quiet,
    )
    print(format_quality_table(table))


def _cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(root=args.root, out=args.out, seed=args.seed, crgan_epochs=args.crgan_epochs,
             reid_epochs=args.reid_epochs)


def _add_pair_arguments(p: argparse.ArgumentParser) -> None:
    """--source, --target and --root of the commands that work on a source -> target pair."""
    p.add_argument("--source", required=True, help="source dataset name")
    p.add_argument("--target", required=True, help="target dataset name")
    p.add_argument("--root", default="data", help="data root holding both datasets (default: data)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crgan",
        description="CR-GAN context rendering for cross-domain person re-id. "
        f"Training and evaluation: crgan {{{','.join(LIGHTNING_COMMANDS)}}} --config FILE (LightningCLI).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("synth", help="write the embedded two-domain benchmark (synth_a, synth_b)")
    p.add_argument("--out", default="data", help="data root to write synth_a/ and synth_b/ into (default: data)")
    p.add_argument("--seed", type=int, default=0, help="generation seed (default: 0)")
    p.add_argument("--ids", type=int, default=120, help="training identities per domain (default: 120)")
    p.add_argument("--test-ids", type=int, default=100, help="test identities per domain (default: 100)")
    p.add_argument("--height", type=int, default=128, help="image height (default: 128)")
    p.add_argument("--width", type=int, default=64, help="image width (default: 64)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing complete dataset")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("summary", help="print a dataset's statistics (# ids, # images, # cameras)")
    p.add_argument("--dataset", required=True, help="registered name: market, duke, msmt17, cuhk03np, synth_a...")
    p.add_argument("--root", default="data", help="data root or the dataset folder itself (default: data)")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("masks", help="write a masks/ tree for a dataset with a person-segmentation model")
    p.add_argument("--dataset", required=True, help="registered name: market, duke, msmt17, cuhk03np...")
    p.add_argument("--root", default="data", help="data root or the dataset folder itself (default: data)")
    p.add_argument("--model", default="deeplabv3_mobilenet_v3_large",
                   help="torchvision segmentation model (default: deeplabv3_mobilenet_v3_large)")
    p.add_argument("--weights", default=None,
                   help="local weight file of that model (offline); by default torchvision downloads it")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threshold", type=float, default=0.5, help="binarise at this person probability")
    p.add_argument("--soft", action="store_true", help="keep soft probabilities instead of binary masks")
    p.add_argument("--overwrite", action="store_true", help="rewrite existing masks (default: resume)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_masks)

    p = sub.add_parser("render", help="export source images rendered into target contexts (Market-1501 layout)")
    p.add_argument("--ckpt", required=True, help="CR-GAN checkpoint (e.g. runs/.../crgan/checkpoints/last.ckpt)")
    _add_pair_arguments(p)
    p.add_argument("--out", required=True, help="output folder; an interrupted export resumes there")
    p.add_argument("--height", type=int, default=128, help="rendering height (the generator's; default 128)")
    p.add_argument("--width", type=int, default=64, help="rendering width (default 64)")
    p.add_argument("--contexts", type=int, default=1, help="target contexts per source image (default 1)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="seed of the source/context pairing")
    p.add_argument("--overwrite", action="store_true", help="replace a complete export")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("quality", help="Table 1 of the paper: LPIPS diversity and FID/KID of real and rendered images")
    p.add_argument("--ckpt", default=None, help="CR-GAN checkpoint (omit for the real source-vs-target row only)")
    _add_pair_arguments(p)
    p.add_argument("--num-sources", type=int, default=100, help="source images rendered for LPIPS (default 100)")
    p.add_argument("--num-contexts", type=int, default=8, help="target contexts per source image (default 8)")
    p.add_argument("--num-fid", type=int, default=1000, help="images per set for FID/KID (default 1000)")
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--lpips-net", default="alex", choices=["alex", "vgg", "squeeze"])
    p.add_argument("--lpips-weights", default=None,
                   help="local torchvision weights of the LPIPS backbone (offline), e.g. alexnet-owt-7be5be79.pth")
    p.add_argument("--inception-weights", default=None,
                   help="local FID Inception weights (offline): weights-inception-2015-12-05-6726825d.pth")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_quality)

    p = sub.add_parser("demo", help="the end-to-end demo on the embedded benchmark (CR-GAN, then re-id a/b)")
    p.add_argument("--root", default="data", help="data root of the embedded benchmark (default: data)")
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo); a rerun continues there")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crgan-epochs", type=int, default=4)
    p.add_argument("--reid-epochs", type=int, default=12)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in LIGHTNING_COMMANDS:
            run_lightning_cli(argv)
            return 0
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        args.func(args)
    except (CRGANError, FileNotFoundError) as exc:  # user errors: one line, no traceback
        print(f"crgan: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``crgan`` command.

``crgan fit|validate|test|predict --stage S --pair P`` (or ``--config FILE ...``) is the
LightningCLI of :mod:`crgan_lightning.app.lightning` over the library's modules and the shared
:class:`~crgan_lightning.data.datamodule.CrossDomainDataModule`; ``--stage``/``--pair`` stand for
the shipped configs of :mod:`crgan_lightning.app.stages`. The data and tool commands are plain
sub-commands:

* ``crgan configs [--stage S --pair P | --source A --target B]``: the stages, pairs and config
  files (``--stage``: the arguments it stands for).

* ``crgan synth --out data/``: write the embedded two-domain benchmark (synth_a, synth_b).
* ``crgan summary --dataset market --root data/``: print a dataset's statistics table.
* ``crgan masks --dataset market --root data/``: write person masks with a segmentation model.
* ``crgan render --ckpt C --source market --target duke --out DIR``: export a rendered dataset.
* ``crgan quality --ckpt C --source market --target duke``: LPIPS diversity and FID/KID (Table 1).
* ``crgan compare --source market --target duke``: the paper's Tables 1 and 2 for the pair.
* ``crgan demo``: the end-to-end demo on the embedded benchmark.

A user error (bad path, unknown dataset, bad value) ends with one ``crgan: error: ...`` line
and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from collections.abc import Sequence

from .demo import add_run_arguments
from ..errors import ConfigError, CRGANError, arguments_named
from .lightning import LIGHTNING_COMMANDS, LIGHTNING_HELP, one_line, run_lightning_cli

#: The flags of ``crgan quality`` and ``crgan compare`` that carry the Table 1 weight files, by the
#: name of the argument they fill.
QUALITY_FLAGS = {"lpips_path": "--lpips-weights", "inception_path": "--inception-weights", "reid_ckpt": "--reid-ckpt"}


def _cmd_synth(args: argparse.Namespace) -> None:
    from ..data import load_reid_dataset
    from ..data.synthetic import generate_benchmark

    start = time.perf_counter()
    paths = generate_benchmark(
        args.out, seed=args.seed, num_train_ids=args.ids, num_test_ids=args.test_ids,
        height=args.height, width=args.width, overwrite=args.overwrite, progress=not args.quiet,
        mask_quality=args.mask_quality, clothing_shift=args.clothing_shift, oracle=args.oracle,
        truth=args.truth,
    )
    print(f"embedded benchmark under {args.out} ({time.perf_counter() - start:.1f} s)")
    truth = paths.pop("rendering_truth", None)
    if truth is not None:
        print(f"rendering truth: {truth} (true renderings of the evaluation pairs, see its pairs.json)")
    for name in paths:
        dataset = load_reid_dataset(name, args.out)
        print(dataset.summary())
        meta = dataset.extra["meta"]
        if meta.get("mask_iou") is not None:
            print(f"{name}: {meta['mask_quality']} masks, mean IoU {meta['mask_iou']:.3f} to the exact masks")


def _cmd_summary(args: argparse.Namespace) -> None:
    from ..data import load_reid_dataset

    print(load_reid_dataset(args.dataset, args.root).summary())


def _cmd_masks(args: argparse.Namespace) -> None:
    from ..data.segmentation import write_masks

    with arguments_named({"weights_path": "--weights"}):
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
        device=args.device, progress=not args.quiet, masks=args.masks,
    )
    from ..data import load_reid_dataset

    print(load_reid_dataset("rendered", out).summary())


def _cmd_quality(args: argparse.Namespace) -> None:
    from .fidelity import fidelity_available, fidelity_table, format_fidelity_table
    from .reports import format_quality_table, quality_table
    from ..translators import NAMED_TRANSLATORS

    if args.fidelity_pairs < 0:
        raise ConfigError(f"--fidelity-pairs {args.fidelity_pairs}: expected a number of pairs >= 0 (0: no table)")
    if args.fidelity_pairs and fidelity_available(args.source, args.target, args.root):
        renderers = [*(args.ckpt or []), *((named, r) for r in _mask_roots(args.mask_root).values()
                                           for named in NAMED_TRANSLATORS)]
        print(format_fidelity_table(fidelity_table(renderers, args.root, num_pairs=args.fidelity_pairs,
                                                   device=args.device)) + "\n")
    elif args.fidelity_only:
        raise ConfigError(f"--fidelity-only: no rendering truth for {args.source} -> {args.target} under {args.root}; "
                          "it exists for the embedded pair synth_a -> synth_b (crgan synth)")
    if args.fidelity_only:
        return
    if args.height is None or args.width is None:  # the size the translators were trained at (256 x 128 without one)
        from .export import trained_size

        trained = next(filter(None, (trained_size(c) for c in args.ckpt or [])), (256, 128))
        args.height, args.width = args.height or trained[0], args.width or trained[1]
    with arguments_named(QUALITY_FLAGS):
        table = quality_table(
            args.ckpt, args.source, args.target, args.root, num_sources=args.num_sources,
            num_contexts=args.num_contexts, num_fid=args.num_fid, height=args.height, width=args.width,
            lpips_net=args.lpips_net,
            lpips_path=args.lpips_weights, inception_path=args.inception_weights, seed=args.seed,
            device=args.device, progress=not args.quiet, reid_ckpt=args.reid_ckpt,
        )
    print(format_quality_table(table))


def _cmd_configs(args: argparse.Namespace) -> None:
    from .stages import STAGES, config_root, stage_arguments

    if args.stage:
        print(" ".join(stage_arguments(args.stage, args.pair, runs=args.runs, source=args.source, target=args.target)))
        return
    root = config_root()
    print(f"configs: {root}")
    print(f"stages:  {', '.join(STAGES)}")
    print(f"pairs:   {', '.join(sorted(p.stem for p in (root / 'pairs').glob('*.yaml')))}")
    print("         a pair file holds data: (every stage); <pair>/<piece or stage>.yaml beside it: some stages")
    print("train one: crgan fit --stage STAGE --pair PAIR [--data.root=DIR ...]")
    print("           crgan fit --stage STAGE --source DATASET --target DATASET [...]  (a pair without a file)")


def _cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(root=args.root, out=args.out, seed=args.seed, crgan_epochs=args.crgan_epochs,
             reid_epochs=args.reid_epochs)


def _cmd_compare(args: argparse.Namespace) -> None:
    from .compare import run_compare
    from .stages import pair_name

    with arguments_named(QUALITY_FLAGS):
        run_compare(args.source, args.target, root=args.root,
                    out=args.out or f"runs/compare/{pair_name(args.source, args.target)}",
                    seeds=args.seeds, crgan_epochs=args.crgan_epochs, spgan_epochs=args.spgan_epochs,
                    reid_epochs=args.reid_epochs, mask_roots=_mask_roots(args.mask_root), taudl=not args.no_taudl,
                    clustering=not args.no_clustering, methods=args.methods,
                    quality={"skip": True} if args.no_quality else {
                        "lpips_path": args.lpips_weights, "inception_path": args.inception_weights,
                        "num_fid": args.num_fid, "progress": not args.quiet})


def _mask_roots(values: Sequence[str]) -> dict[str, str]:
    """``["segmentation=data_seg"]`` -> ``{"segmentation": "data_seg"}``; a malformed value is refused."""
    roots = {}
    for value in values:
        name, sep, root = value.partition("=")
        if not sep or not name or not root or not os.path.isdir(root):
            raise ConfigError(f"--mask-root {value!r}: expected QUALITY=DIR naming an existing data root "
                              "(e.g. segmentation=data_seg, written by crgan synth --mask-quality segmentation)")
        roots[name] = root
    return roots


def _add_pair_arguments(p: argparse.ArgumentParser) -> None:
    """--source, --target and --root of the commands that work on a source -> target pair."""
    p.add_argument("--source", required=True, help="source dataset name")
    p.add_argument("--target", required=True, help="target dataset name")
    p.add_argument("--root", default="data", help="data root holding both datasets (default: data)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crgan",
        description="CR-GAN context rendering for cross-domain person re-id. "
        f"Training and evaluation: crgan {{{','.join(LIGHTNING_COMMANDS)}}} --stage STAGE --pair PAIR "
        "(or --config FILE; LightningCLI); crgan configs lists the stages and pairs.",
        epilog="crgan COMMAND --help describes a command; crgan fit --help starts with the settings most runs "
        "change.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in LIGHTNING_COMMANDS:  # listed here; main() hands them to LightningCLI
        sub.add_parser(command, help=LIGHTNING_HELP[command], add_help=False)

    from ..data.mask_quality import MASK_QUALITIES
    from ..data.synthetic import HEIGHT, NUM_TEST_IDS, NUM_TRAIN_IDS, WIDTH

    p = sub.add_parser("synth", help="write the embedded two-domain benchmark (synth_a, synth_b)")
    p.add_argument("--out", default="data", help="data root to write synth_a/ and synth_b/ into (default: data)")
    p.add_argument("--seed", type=int, default=0, help="generation seed (default: 0)")
    p.add_argument("--ids", type=int, default=NUM_TRAIN_IDS,
                   help=f"training identities per domain (default: {NUM_TRAIN_IDS})")
    p.add_argument("--test-ids", type=int, default=NUM_TEST_IDS,
                   help=f"test identities per domain (default: {NUM_TEST_IDS})")
    p.add_argument("--height", type=int, default=HEIGHT, help=f"image height (default: {HEIGHT})")
    p.add_argument("--width", type=int, default=WIDTH, help=f"image width (default: {WIDTH})")
    p.add_argument("--mask-quality", default="exact", choices=list(MASK_QUALITIES),
                   help="person masks: exact, or degraded as a segmentation model's (segmentation: IoU 0.776; "
                        "small-pedestrian: 0.59; mean IoU printed; default exact)")
    p.add_argument("--clothing-shift", type=float, default=0.0,
                   help="> 0: synth_b's people dress darker, a clothing shift between the domains (default 0: off)")
    p.add_argument("--oracle", action="store_true",
                   help="also write synth_a_in_b: synth_a's people drawn in synth_b (the oracle rendering)")
    p.add_argument("--truth", action="store_true",
                   help="also write rendering_truth/: true renderings of the evaluation pairs (synth_a's people "
                        "in synth_b's scenes), the reference of the rendering-fidelity table")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing complete dataset written by crgan synth")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("configs", help="the shipped stages, pairs and config files; with --stage, what it expands to")
    p.add_argument("--stage", default=None, help="a stage (reid_direct, crgan, reid_crgan, ...)")
    p.add_argument("--pair", default=None, help="a pair (market2duke, synth_a2synth_b, ...) or a pair file")
    p.add_argument("--source", default=None, help="instead of --pair: the source dataset (market, msmt17, ...)")
    p.add_argument("--target", default=None, help="instead of --pair: the target dataset")
    p.add_argument("--runs", default="runs", help="the folder of the pairs' run folders (default: runs)")
    p.set_defaults(func=_cmd_configs)

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
    p.add_argument("--ckpt", required=True,
                   help="translator: a CR-GAN or SPGAN checkpoint (runs/.../checkpoints/last.ckpt), cut_and_paste "
                        "or cut_and_fill (cut-and-paste onto the target with its own person filled in)")
    p.add_argument("--masks", default="auto", choices=["auto", "folder", "prior"],
                   help="where cut_and_paste / cut_and_fill take the person masks from (default: auto)")
    _add_pair_arguments(p)
    p.add_argument("--out", required=True, help="output folder; an interrupted export resumes there")
    p.add_argument("--height", type=int, default=None,
                   help="rendering height (default: the size the generator was trained at, read from its "
                        "checkpoint; for cut_and_paste and cut_and_fill, the target's image size)")
    p.add_argument("--width", type=int, default=None, help="rendering width (default: as --height)")
    p.add_argument("--contexts", type=int, default=1, help="target contexts per source image (default 1)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="seed of the source/context pairing")
    p.add_argument("--overwrite", action="store_true", help="replace a complete export")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("quality", help="Table 1 of the paper: LPIPS diversity and FID/KID of real and rendered images")
    p.add_argument("--ckpt", nargs="*", default=None,
                   help="translators, one row each: CR-GAN / SPGAN checkpoints and/or cut_and_paste, cut_and_fill "
                   "(omit for the real source-vs-target row only)")
    _add_pair_arguments(p)
    p.add_argument("--num-sources", type=int, default=100, help="source images rendered for LPIPS (default 100)")
    p.add_argument("--num-contexts", type=int, default=8, help="target contexts per source image (default 8)")
    p.add_argument("--num-fid", type=int, default=1000, help="images per set for FID/KID (default 1000)")
    p.add_argument("--height", type=int, default=None,
                   help="image height (default: the size the first translator checkpoint was trained at, else 256)")
    p.add_argument("--width", type=int, default=None,
                   help="image width (default: as the height's checkpoint, else 128)")
    p.add_argument("--lpips-net", default="alex", choices=["alex", "vgg", "squeeze"])
    p.add_argument("--lpips-weights", default=None,
                   help="local torchvision weights of the LPIPS backbone (offline), e.g. alexnet-owt-7be5be79.pth")
    p.add_argument("--inception-weights", default=None,
                   help="local FID Inception weights (offline): weights-inception-2015-12-05-6726825d.pth")
    p.add_argument("--reid-ckpt", default=None,
                   help="a re-id checkpoint trained on the source (direct transfer): adds the offline stand-ins "
                        "re-id FD and re-id diversity, computed in its feature space (no downloads)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--fidelity-pairs", type=int, default=200,
                   help="synth_a -> synth_b: evaluation pairs of the rendering-fidelity table, the renderings against "
                        "the benchmark's true renderings (default 200; 0: no table)")
    p.add_argument("--mask-root", action="append", default=[], metavar="QUALITY=DIR",
                   help="fidelity table: also cut-and-paste with the masks of DIR (the same benchmark written with "
                        "crgan synth --mask-quality QUALITY)")
    p.add_argument("--fidelity-only", action="store_true", help="print the fidelity table only (no LPIPS/FID)")
    p.set_defaults(func=_cmd_quality)

    p = sub.add_parser("compare", help="the paper's Tables 1 and 2: direct transfer, cut-and-paste, cut-and-fill, "
                                       "SPGAN, CR-GAN")
    _add_pair_arguments(p)
    p.add_argument("--out", default=None, help="run folder (default: runs/compare/<source>2<target>); resumes")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one full run per seed (default: 0 1 2)")
    p.add_argument("--crgan-epochs", type=int, default=None, help="CR-GAN epochs (default: the config's)")
    p.add_argument("--spgan-epochs", type=int, default=None, help="SPGAN epochs (default: the config's)")
    p.add_argument("--reid-epochs", type=int, default=None, help="re-id epochs (default: the config's)")
    p.add_argument("--num-fid", type=int, default=1000, help="images per FID/KID set (default 1000)")
    p.add_argument("--lpips-weights", default=None, help="local AlexNet weights for LPIPS (offline)")
    p.add_argument("--inception-weights", default=None, help="local FID Inception weights (offline)")
    p.add_argument("--mask-root", action="append", default=[], metavar="QUALITY=DIR",
                   help="another mask quality, e.g. segmentation=data_seg (the same images with other masks, "
                        "crgan synth --mask-quality segmentation): cut-and-paste, cut-and-fill and CR-GAN are "
                        "trained again on it")
    p.add_argument("--no-taudl", action="store_true", help="skip the TAUDL rows (TAUDL, SPGAN+TAUDL, CR-GAN+TAUDL)")
    p.add_argument("--no-clustering", action="store_true",
                   help="skip the clustering rows (direct -> clustering, CR-GAN -> clustering, joint hybrid)")
    p.add_argument("--methods", nargs="+", default=None, metavar="ROW",
                   help="train only these rows, by name or stage, e.g. --methods cut-and-paste CR-GAN+LMP "
                        "'direct -> clustering' reid_crgan_cluster_joint (default: every row; direct transfer is "
                        "always trained, as CR-GAN's judge, and CR-GAN+LMP when a clustering row starts from it)")
    p.add_argument("--no-quality", action="store_true", help="skip Table 1")
    p.add_argument("--quiet", action="store_true", help="no progress bars in Table 1")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("demo", help="the end-to-end demo on the embedded benchmark (CR-GAN, then re-id a/b)")
    add_run_arguments(p)
    p.set_defaults(func=_cmd_demo)
    parser.set_defaults(verbs=[name for name in sub.choices if name not in LIGHTNING_COMMANDS])  # the tool verbs
    return parser


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    """Every command ``crgan`` takes: the LightningCLI ones, then the tool verbs."""
    return [*LIGHTNING_COMMANDS, *parser.get_default("verbs")]


def _resume_hint(argv: Sequence[str]) -> str:
    """How to continue an interrupted command."""
    if argv and argv[0] == "fit":
        return "resume with the same command and --ckpt_path last (it continues from the last epoch-end checkpoint)"
    return "run the same command again to continue where it stopped"


#: File-system conditions a user fixes by choosing another folder (or freeing space): one line, exit 2.
_USER_OS_ERRORS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.ENOTDIR,
                   errno.EISDIR)


#: ... of which a full disk or quota, or a file-size limit.
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _user_message(exc: BaseException) -> str:
    """The message of a user error as one line. An error raised in a DataLoader worker reaches the
    main process re-raised with the worker's whole traceback in its message ("Caught ImageReadError
    in DataLoader worker process 0 ... Original Traceback ..."): its last line is the message."""
    text = str(exc)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        prefix, _, message = last.partition(": ")
        text = message if message and " " not in prefix else last
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        advice = ("free some space, or choose another folder" if exc.errno in _FULL
                  else "check the path and its permissions, or choose another folder")
        text = f"{exc.strerror}: {exc.filename} ({advice})"
    return " ".join(text.split())


def _is_user_os_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _USER_OS_ERRORS:
        return True
    return isinstance(exc, PermissionError) or (isinstance(exc, OSError) and "Original Traceback" in str(exc)
                                                and "Errno" in str(exc))


def _is_wandb_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("wandb.errors")


def wandb_offline_unless_asked(environ=os.environ) -> None:
    """W&B logs offline (to ``wandb/`` under the run folder; ``wandb sync`` uploads it later) unless
    the user asks otherwise: ``WANDB_MODE=online`` (or ``disabled``), or a sweep agent, which sets
    ``WANDB_SWEEP_ID`` and needs its runs online."""
    if "WANDB_MODE" not in environ and "WANDB_SWEEP_ID" not in environ:
        environ["WANDB_MODE"] = "offline"


def main(argv: Sequence[str] | None = None) -> int:
    """The ``crgan`` command; returns the exit status (0, 2 for a user error, 130 when interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    wandb_offline_unless_asked()
    try:
        if argv and argv[0] in LIGHTNING_COMMANDS:
            try:
                run_lightning_cli(argv)
            except argparse.ArgumentError as exc:
                print(f"crgan: error: {one_line(exc)}", file=sys.stderr)
                return 2
            except SystemExit as exc:
                # Lightning answers Ctrl-C during training with its own shutdown and sys.exit(1)
                if isinstance(exc.__context__, KeyboardInterrupt):
                    raise KeyboardInterrupt from exc
                raise
            return 0
        parser = build_parser()
        if not argv or argv[0] not in _commands(parser) and not argv[0].startswith("-"):
            given = f"unknown command {argv[0]!r}" if argv else "a command is required"
            print(f"crgan: error: {given}; expected one of {', '.join(_commands(parser))} (crgan --help)",
                  file=sys.stderr)
            return 2
        args = parser.parse_args(argv)
        args.func(args)
    except BrokenPipeError:  # the reader of the output went away (crgan configs | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # and at exit, flush into nothing
        return 1
    except (CRGANError, FileNotFoundError) as exc:  # user errors: one line, no traceback
        print(f"crgan: error: {_user_message(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if not _is_user_os_error(exc):
            raise
        print(f"crgan: error: {_user_message(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not _is_wandb_error(exc):
            raise
        print(f"crgan: error: W&B: {_user_message(exc)} (WANDB_MODE={os.environ.get('WANDB_MODE')}; "
              "leave WANDB_MODE unset to log offline and `wandb sync` later)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"crgan: interrupted; {_resume_hint(argv)}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What does streaming CR-GAN renderings into re-id training cost?

Trains the re-id model of the ``reid_crgan`` stage of ``synth_a2synth_b`` (the default embedded
config: ResNet-10t at the benchmark's size, P x K source batches and as many target images) for
``--steps`` steps, alternately without the rendering callback (a plain step: the source batch only) and with it
(``ContextRenderingCallback`` as the config sets it; the same ratio with ``replace_source``
the other way round; and, adding the renderings to the batch, the ``--ratios`` given), in one
process with the same DataModule settings, and prints per variant:

* ``step s``: median seconds of a training step (callback hooks + forward + backward +
  optimiser), over the steps after ``--warmup``;
* ``render s``: the part of it spent in the generator;
* ``re-id img/s``: re-id training images (source + rendered) per second of step time;
* ``batch s``: median wall time from one batch to the next (the step plus waiting for data).

Then the ratios against the plain step: the time of a streaming step over a plain one (the
target at the default config is at most 1.5x) and the cost per re-id image, and what dominates
the extra time: the generator passes or the extra images in the re-id forward/backward pass.

The generator is the one of the ``crgan`` stage of ``synth_a2synth_b`` with fresh weights
(its cost does not depend on training); ``--crgan-ckpt`` uses a trained one instead. Torch uses
its default threads; the figures are CPU-bound and move with the machine's load, so compare
the variants of one run (they are interleaved for that reason).

With ``--invariance`` it measures instead the streaming choices that teach invariance, each added
to the one before: half of each identity's images rendered with one triplet over source and
rendered images (``within_identity`` + ``joint_triplet``), contexts drawn from the whole target
training set (``contexts_from: dataset``), and the pad-and-crop moved after rendering (``pad``).

    python benchmarks/bench_streaming.py [--steps 40] [--warmup 5] [--repeats 2] [--ratios 0.25 1] [--root data]
    python benchmarks/bench_streaming.py --invariance [--crgan-ckpt runs/.../last.ckpt]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from crgan_lightning.callbacks.rendering import ContextRenderingCallback
from crgan_lightning.data.datamodule import CrossDomainDataModule
from crgan_lightning.data.synthetic import generate_benchmark
from crgan_lightning.app.demo import PAIR
from crgan_lightning.app.lightning import resolved_config
from crgan_lightning.modules.crgan import CRGANModule
from crgan_lightning.modules.reid import ReIDModule


class StepTimer(pl.Callback):
    """Times every training step (first hook of the batch to its end) and the batch-to-batch wall time."""

    def __init__(self) -> None:
        self.steps: list[float] = []
        self.batches: list[float] = []
        self.images: list[int] = []
        self._start = self._last = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.batches.append(now - self._last)
        self._start = self._last = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append(time.perf_counter() - self._start)
        self.images.append(len(batch["source"]["image"]) + len(batch.get("synthetic", {}).get("image", [])))


class TimedRendering(ContextRenderingCallback):
    """The rendering callback, with the time of each render call kept."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seconds: list[float] = []

    def render(self, batch, generator):
        start = time.perf_counter()
        out = super().render(batch, generator)
        self.seconds.append(time.perf_counter() - start)
        return out


def fresh_crgan_checkpoint(folder: Path, num_source_pids: int, num_target_cameras: int) -> Path:
    cfg = resolved_config(["--stage", "crgan", "--pair", PAIR])["model"]["init_args"]
    cfg = {k: v for k, v in cfg.items() if k != "judge"}  # fresh weights: no judge to read
    module = CRGANModule(num_source_pids=num_source_pids, num_target_cameras=num_target_cameras, **cfg)
    path = folder / "crgan.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def run(variant: str, ckpt: Path, rendering_args: dict | None, args, data_cfg: dict, model_cfg: dict,
        data_changes: dict | None = None, model_changes: dict | None = None) -> dict:
    pl.seed_everything(0, verbose=False)
    data_cfg, model_cfg = {**data_cfg, **(data_changes or {})}, {**model_cfg, **(model_changes or {})}
    dm = CrossDomainDataModule(**{**data_cfg, "root": args.root})
    dm.setup("fit")
    module = ReIDModule(num_source_pids=dm.num_source_pids, num_query=dm.num_query, **model_cfg)
    timer = StepTimer()
    callbacks: list[pl.Callback] = [timer]
    rendering = None
    if rendering_args is not None:
        rendering = TimedRendering(str(ckpt), **rendering_args)
        callbacks.append(rendering)
    trainer = pl.Trainer(accelerator="cpu", max_steps=args.steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         callbacks=callbacks)
    trainer.fit(module, datamodule=dm)
    w = args.warmup
    step = statistics.median(timer.steps[w:])
    return {"variant": variant, "step": step, "batch": statistics.median(timer.batches[w:]),
            "render": statistics.median(rendering.seconds[w:]) if rendering else 0.0,
            "images": statistics.median(timer.images[w:]),
            "img_per_s": sum(timer.images[w:]) / sum(timer.steps[w:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds over the variants")
    parser.add_argument("--root", default="data")
    parser.add_argument("--crgan-ckpt", default=None, help="a trained CR-GAN checkpoint (default: fresh weights)")
    parser.add_argument("--ratios", type=float, nargs="+", default=[1.0],
                        help="rendering ratios measured besides the config's (default: 1)")
    parser.add_argument("--invariance", action="store_true",
                        help="measure the invariance choices instead (within_identity + joint_triplet, contexts "
                             "from the target set, pad after rendering), each added to the one before")
    args = parser.parse_args()
    cfg = resolved_config(["--stage", "reid_crgan", "--pair", PAIR])
    data_cfg, model_cfg = cfg["data"], cfg["model"]["init_args"]
    config_args = {k: v for k, v in cfg["rendering"]["init_args"].items() if k != "translator"}
    config_ratio, config_replace = config_args["ratio"], config_args.get("replace_source", False)
    generate_benchmark(args.root, seed=0, progress=False)
    backbone = model_cfg["net"]["init_args"]["backbone"]
    print(f"re-id {backbone}, {data_cfg['height']}x{data_cfg['width']}, batch {data_cfg['batch_size']} "
          f"source + {data_cfg['batch_size']} target images, {args.steps} steps ({args.warmup} warm-up), "
          f"torch threads {torch.get_num_threads()}")

    def name(ratio: float, replace: bool) -> str:
        return f"streaming, ratio {ratio:g}, " + ("replacing" if replace else "adding")

    variants = [("plain step", None), (name(config_ratio, config_replace) + " (config)", config_args)]
    if config_ratio < 1:
        variants.append((name(config_ratio, not config_replace), {**config_args, "replace_source": not config_replace}))
    variants += [(name(r, False), {**config_args, "ratio": r, "replace_source": False})
                 for r in sorted(set(args.ratios)) if (r, False) != (config_ratio, config_replace)]
    if args.invariance:  # the streaming choices that teach invariance, added one after the other
        old = {**config_args, "within_identity": False, "contexts_from": "batch", "pad": 0}
        pad = data_cfg.get("pad", 0) or config_args.get("pad", 0)
        variants = [v for v in variants if v[1] is None] + [
            ("whole identities, batch contexts", old, {"pad": pad}, {"joint_triplet": False}),
            ("+ half of each identity, joint triplet", {**old, "within_identity": True}, {"pad": pad},
             {"joint_triplet": True}),
            ("+ contexts from the target set", {**old, "within_identity": True, "contexts_from": "dataset"},
             {"pad": pad}, {"joint_triplet": True}),
            ("+ pad and crop after rendering", {**old, "within_identity": True, "contexts_from": "dataset",
                                                "pad": pad}, {"pad": 0}, {"joint_triplet": True}),
        ]
    with tempfile.TemporaryDirectory() as tmp:
        if args.crgan_ckpt:
            ckpt = Path(args.crgan_ckpt)
        else:
            probe = CrossDomainDataModule(**{**data_cfg, "root": args.root})
            probe.setup("fit")
            ckpt = fresh_crgan_checkpoint(Path(tmp), probe.num_source_pids, probe.num_target_cameras)
        rounds = [[run(variant, ckpt, rendering, args, data_cfg, model_cfg, *changes)
                   for variant, rendering, *changes in variants] for _ in range(args.repeats)]
    best = [min((r[i] for r in rounds), key=lambda x: x["step"]) for i in range(len(variants))]
    plain = best[0]
    print(f"\n{'variant':<44}{'images':>7}{'step s':>9}{'render s':>10}{'re-id img/s':>13}{'batch s':>9}"
          f"{'step ratio':>12}{'per-image ratio':>17}")
    for r in best:
        per_image = (r["step"] / r["images"]) / (plain["step"] / plain["images"])
        print(f"{r['variant']:<44}{r['images']:>7.0f}{r['step']:>9.3f}{r['render']:>10.3f}{r['img_per_s']:>13.1f}"
              f"{r['batch']:>9.3f}{r['step'] / plain['step']:>11.2f}x{per_image:>16.2f}x")
    for r in best[1:]:
        extra = r["step"] - plain["step"]
        if extra > 0:
            print(f"{r['variant']}: +{extra:.3f} s per step, of which the generator {r['render']:.3f} s "
                  f"({100 * r['render'] / extra:.0f}%), the rest ({100 * (extra - r['render']) / extra:.0f}%) "
                  + ("the extra re-id images" if r["images"] > plain["images"] else "bookkeeping and noise"))
    print("(best of the interleaved rounds; medians within a round)")


if __name__ == "__main__":
    main()

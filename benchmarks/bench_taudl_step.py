"""What does a TAUDL training step cost against a plain re-id step?

Trains, in one process and interleaved, the re-id model of two stages of ``synth_a2synth_b`` (the
embedded configs: ResNet-10t at 64x32, batches of 64 images) for ``--steps`` steps each:

* ``plain re-id``: the ``reid_direct`` stage, a P x K batch of 64 labelled source images;
* ``TAUDL alone``: the ``reid_taudl`` stage, a P x K batch of 64 target tracklet images, with CCTA
  counting from the first step (``ccta_start_epoch: 0``, ``ccta_ramp_epochs: 0``);
* ``TAUDL alone, warm-up``: the same with CCTA still switched off (a PCTD-only warm-up step);
* ``source + TAUDL``: the hybrid's shape without rendering (``source_weight: 1``): 64 source and
  64 target images in one forward pass, twice the plain step's images.

Same network, same batch size, same optimiser, same process. Per variant it prints the median
seconds of a training step (first hook of the batch to its end: forward, losses, backward,
optimiser), the median wall time from one batch to the next (the step plus waiting for data),
and their ratios to the plain step. Then, on the same network and a fixed batch, the time of the
TAUDL losses alone (PCTD, CCTA and the memory update) against the network's forward and
backward pass, which tells whether the losses or the data are what a TAUDL step adds.

``--profile`` also runs the TAUDL alone variant under cProfile and prints the functions that take
the most time. Torch uses one thread by default here (``--threads``), so that the figures move
less with the machine's load; compare the variants of one run (they are interleaved for that
reason, best of ``--repeats`` rounds, medians within a round).

    python benchmarks/bench_taudl_step.py [--steps 30] [--warmup 5] [--repeats 2] [--root data] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time

import pytorch_lightning as pl
import torch

from crgan_lightning.app.demo import PAIR
from crgan_lightning.app.lightning import resolved_config
from crgan_lightning.data.datamodule import CrossDomainDataModule
from crgan_lightning.data.synthetic import generate_benchmark
from crgan_lightning.losses import per_camera_tracklet_loss
from crgan_lightning.models.reid import pool_features
from crgan_lightning.modules.reid import ReIDModule
from crgan_lightning.modules.taudl import TAUDLModule


class StepTimer(pl.Callback):
    """Times every training step (first hook of the batch to its end) and the batch-to-batch wall time."""

    def __init__(self) -> None:
        self.steps: list[float] = []
        self.batches: list[float] = []
        self._start = self._last = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.batches.append(now - self._last)
        self._start = self._last = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append(time.perf_counter() - self._start)


def build(stage: str, root: str, changes: dict | None = None) -> tuple[CrossDomainDataModule, pl.LightningModule]:
    """The DataModule and the module of ``stage`` on the embedded pair, with ``changes`` to the module's arguments."""
    cfg = resolved_config(["--stage", stage, "--pair", PAIR])
    dm = CrossDomainDataModule(**{**cfg["data"], "root": root})
    dm.setup("fit")
    args = {**cfg["model"]["init_args"], **(changes or {})}
    args.update(num_source_pids=dm.num_source_pids, num_query=dm.num_query)
    module_class = TAUDLModule if stage == "reid_taudl" else ReIDModule
    return dm, module_class(**args)


def run(variant: str, stage: str, changes: dict | None, args) -> dict:
    pl.seed_everything(0, verbose=False)
    dm, module = build(stage, args.root, changes)
    timer = StepTimer()
    trainer = pl.Trainer(accelerator="cpu", max_steps=args.steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         callbacks=[timer])
    profiler = cProfile.Profile() if args.profile and changes is ON else None
    if profiler is not None:
        profiler.enable()
    trainer.fit(module, datamodule=dm)
    if profiler is not None:
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(f"\n--- cProfile of {variant} ({args.steps} steps), by own time ---")
        print("\n".join(out.getvalue().splitlines()[:45]))
    w = args.warmup
    return {"variant": variant, "step": statistics.median(timer.steps[w:]),
            "batch": statistics.median(timer.batches[w:])}


def time_parts(args) -> None:
    """The TAUDL losses against the network's forward + backward on one fixed target batch."""
    pl.seed_everything(0, verbose=False)
    dm, module = build("reid_taudl", args.root, ON)
    module.build_target_heads(dm.num_target_tracklets_per_camera)
    batch = next(iter(dm.train_dataloader().iterables["target"]))
    images, camids, own, tracklets = batch["image"], batch["camid"], batch["camera_tracklet"], batch["tracklet"]
    net = module.net
    with torch.no_grad():  # a memory as full as after an epoch
        for chunk in torch.arange(module.ccta.memory.num_tracklets).split(256):
            module.ccta.memory.update(torch.randn(len(chunk), net.feat_dim), chunk)

    def network() -> torch.Tensor:
        return net.neck(pool_features(net.feature_map(images), net.pooling, net.lmp_parts))

    def forward_backward() -> None:
        network().sum().backward()

    feats = network().detach().requires_grad_(True)

    def losses() -> None:
        pctd = per_camera_tracklet_loss(feats, camids, own, module.tracklet_classifiers)
        ccta = module.ccta(feats, tracklets, camids, update=False)
        (0.3 * pctd + 0.7 * ccta).backward()
        module.ccta.memory.update(feats, tracklets)

    def median_time(fn, n: int) -> float:
        fn()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    net_s = median_time(forward_backward, max(5, args.steps // 3))
    loss_s = median_time(losses, max(20, args.steps))
    print(f"\none target batch of {len(images)} images, {module.ccta.memory.num_tracklets} tracklets over "
          f"{len(dm.num_target_tracklets_per_camera)} cameras:")
    print(f"  network forward + backward {net_s * 1e3:8.2f} ms")
    print(f"  TAUDL losses (PCTD + CCTA + backward + memory update) {loss_s * 1e3:8.2f} ms "
          f"({loss_s / net_s:.2f}x the network's pass)")


#: CCTA counting from the first step, and CCTA switched off (a warm-up step).
ON = {"ccta_start_epoch": 0.0, "ccta_ramp_epochs": 0.0}
WARMUP = {"ccta_start_epoch": 1000.0, "ccta_ramp_epochs": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds over the variants")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--root", default="data")
    parser.add_argument("--profile", action="store_true", help="cProfile the TAUDL alone variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generate_benchmark(args.root, seed=0, progress=False)
    variants = [("plain re-id (reid_direct)", "reid_direct", None),
                ("TAUDL alone (reid_taudl, CCTA on)", "reid_taudl", ON),
                ("TAUDL alone, warm-up (CCTA off)", "reid_taudl", WARMUP),
                ("source + TAUDL (64 + 64 images)", "reid_taudl", {**ON, "source_weight": 1.0})]
    print(f"synth_a2synth_b, embedded configs, {args.steps} steps ({args.warmup} warm-up), "
          f"torch threads {torch.get_num_threads()}")
    rounds = []
    for i in range(args.repeats):
        rounds.append([run(name, stage, changes, args) for name, stage, changes in variants])
        args.profile = False  # once is enough
    best = [min((r[i] for r in rounds), key=lambda x: x["step"]) for i in range(len(variants))]
    plain = best[0]
    print(f"\n{'variant':<38}{'step s':>9}{'batch s':>9}{'step ratio':>12}{'batch ratio':>13}")
    for r in best:
        print(f"{r['variant']:<38}{r['step']:>9.3f}{r['batch']:>9.3f}{r['step'] / plain['step']:>11.2f}x"
              f"{r['batch'] / plain['batch']:>12.2f}x")
    print("(best of the interleaved rounds; medians within a round)")
    time_parts(args)


if __name__ == "__main__":
    main()

"""Callbacks the tests add through the CLI (importable via PYTHONPATH=tests) and the 2-process run helper."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


class WeightsDigest(pl.Callback):
    """Writes, per rank, a digest of the module's parameters at the start and the end of fit, and
    the number of training batches that rank saw, to ``<out>/rank<r>.json``."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.batches = 0
        self.start = ""

    @staticmethod
    def digest(module) -> str:
        h = hashlib.sha256()
        for name, tensor in sorted(module.named_parameters()):  # buffers (BN statistics) are per rank
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = self.digest(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        self.keys = sorted(batch)

    def on_train_end(self, trainer, pl_module) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        record = {"start": self.start, "end": self.digest(pl_module), "batches": self.batches,
                  "world_size": trainer.world_size, "keys": getattr(self, "keys", [])}
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def run_bounded(cmd: list, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` whose timeout ends the command's whole
    process group and fails the test with the output's end. ``subprocess.run`` kills only its own
    child: the rank processes a DDP launcher (or make) starts would keep the output pipes open and
    the test would wait on them for ever."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # a descendant that left the group still holds the pipes
            proc.kill()
            out, err = "", "(no output: the pipes stayed open after the kill)"
    finally:  # an interrupted test (Ctrl-C, a pytest-timeout) ends the whole run too, and so does a
        _kill_group(proc.pid)  # normal exit that left rank processes behind
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()
        proc.wait()
    if timed_out:
        pytest.fail(f"{' '.join(map(str, cmd))} did not finish within {timeout:g} s; the end of its "
                    f"output:\n{out[-1500:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:  # the group has ended
        pass


def two_process_fit(config: Path, workdir: Path, timeout: int = 600) -> list[dict]:
    """``crgan fit --config config`` as 2 CPU processes (gloo DDP) with a :class:`WeightsDigest`
    per rank; returns the two ranks' records (asserting the run succeeded)."""
    import sys

    digests = workdir / "digests"
    paths = [str(Path(__file__).resolve().parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "crgan_lightning.app.cli", "fit", "--config", str(config), "--trainer.accelerator=cpu",
           "--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.callbacks+=ddp_helpers.WeightsDigest",
           f"--trainer.callbacks.out={digests}"]
    proc = run_bounded(cmd, timeout, env=env, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((digests / f"rank{r}.json").read_text()) for r in (0, 1)]


class FailAtEpoch(pl.Callback):
    """Raises at the start of training epoch ``epoch``: a run that dies part-way."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"simulated crash at epoch {self.epoch}")


def free_port() -> int:
    """A free TCP port on the loopback interface for a process group's rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gloo_group(rank: int, world_size: int, port: int):
    """Inside a spawned worker: one CPU thread and a gloo process group for the block."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


def spawn_two_ranks(worker, out_dir: Path, timeout: float = 120) -> None:
    """Run ``worker(rank, 2, port, str(out_dir))`` in two spawned processes; fail the test when they
    do not finish within ``timeout`` seconds (a worker's exception fails it too)."""
    context = mp.start_processes(worker, args=(2, free_port(), str(out_dir)), nprocs=2, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + timeout
    while not context.join(timeout=2):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the DDP workers did not finish within {timeout:.0f} s")

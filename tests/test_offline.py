"""Nothing connects to the network unless asked: every entry point imports and parses with sockets blocked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BLOCK = """
import socket
def refuse(*args, **kwargs):
    raise SystemExit("network access attempted: " + repr(args[:2]))
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
"""


CODE = """
import contextlib, io
import crgan_lightning.app.cli, crgan_lightning.data.transforms, crgan_lightning.modules.reid
import crgan_lightning.modules.crgan, crgan_lightning.callbacks.rendering, crgan_lightning.metrics.quality
from crgan_lightning.app.cli import main
for argv in (['synth', '--help'], ['fit', '--stage', 'reid_direct', '--pair', 'synth_a2synth_b', '--print_config']):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit as exc:
            assert exc.code == 0, (argv, exc.code)
print("entry points ok")
"""


def test_entry_points_import_and_parse_with_sockets_blocked():
    env = {k: v for k, v in __import__("os").environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    result = subprocess.run([sys.executable, "-c", BLOCK + CODE], capture_output=True, text=True, env=env,
                            timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert "network access attempted" not in result.stdout + result.stderr
    assert result.returncode == 0 and "entry points ok" in result.stdout, result.stderr[-2000:]

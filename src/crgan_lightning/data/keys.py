"""Names of the keys of every batch dict, defined once.

Training batch::

    {SOURCE: {IMAGE, PID, CAMID, MASK}, TARGET: {IMAGE, CAMID, MASK}}
    (+ SYNTHETIC: {IMAGE, PID, CAMID} added by the rendering callback)

Evaluation batch (target query followed by target gallery)::

    {IMAGE, PID, CAMID, INDEX}

Images are float tensors in [-1, 1], RGB, NCHW; masks are float in [0, 1], N1HW, 1 on the person.
"""

from __future__ import annotations

SOURCE = "source"
TARGET = "target"
SYNTHETIC = "synthetic"

IMAGE = "image"
PID = "pid"
CAMID = "camid"
MASK = "mask"
INDEX = "index"

# TAUDL target batches (``CrossDomainDataModule(target_tracklets=True)``) also carry, per image:
TRACKLET = "tracklet"  # global tracklet id 0..T-1 (camera-major, see data/tracklets.py)
CAMERA_TRACKLET = "camera_tracklet"  # tracklet id inside the image's own camera, 0..T_c-1

"""Fail fast offline: whether a weight hub can be reached before a library's download is tried.

timm downloads ImageNet weights through the Hugging Face hub, which retries an unreachable host
for about a minute before it gives up. :func:`reachable` asks once (a TCP connection with a short
timeout, through the HTTPS proxy the environment names, if any); :func:`hub_offline` makes the hub
client use only its local cache for the duration of a call, so weights downloaded earlier still
load and missing ones fail at once with the library's own message.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

#: Where the Hugging Face hub client downloads from (``HF_ENDPOINT`` changes it).
HF_ENDPOINT = "https://huggingface.co"


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or HF_ENDPOINT


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether ``url``'s host (or the HTTPS proxy of the environment) accepts a TCP connection
    within ``timeout`` seconds."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    target = urlparse(proxy if proxy else url)
    host = target.hostname
    port = target.port or (443 if target.scheme == "https" else 80)
    if not host:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def hub_offline(offline: bool = True) -> Iterator[None]:
    """Within the block, the Hugging Face hub client reads its local cache only (no request, no
    retries) when ``offline``."""
    try:
        from huggingface_hub import constants
    except ImportError:  # no hub client: nothing to switch
        yield
        return
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = before or offline
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before

"""Model names to local folders through the Hugging Face hub, failing fast when it cannot be reached.

Whisper backends accept a hub name (``"large-v2"``, ``"mlx-community/whisper-tiny"``) as
well as a local folder. A name is looked up in the local cache first, without any
network; only a cache miss goes to the hub. When the hub is switched off
(``HF_HUB_OFFLINE=1``) or cannot be reached, loading stops within seconds with a
:class:`ModelNotFoundError` that says how to proceed (a local folder, or going online),
instead of waiting for network timeouts or falling back to some other model.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Callable, Optional
from urllib.parse import urlparse

__all__ = ["ModelNotFoundError", "fetch_model", "hub_offline", "hub_reachable"]

PROBE_TIMEOUT_SEC = 3.0
"""How long to wait for a TCP connection to the hub before declaring it unreachable."""

_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


class ModelNotFoundError(FileNotFoundError):
    """A model is neither a local folder nor in the cache, and the hub is off or unreachable."""

    def __str__(self) -> str:  # FileNotFoundError would print the args tuple
        return str(self.args[0]) if self.args else ""


def hub_offline() -> bool:
    """Whether hub access is switched off (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``), read now.

    huggingface_hub reads these variables once, at import; a test or notebook that sets
    them later is honoured here too.
    """
    from huggingface_hub import constants

    now = any(os.environ.get(v, "").strip().upper() in {"1", "ON", "YES", "TRUE"} for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return now or bool(constants.HF_HUB_OFFLINE)


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_reachable(timeout: float = PROBE_TIMEOUT_SEC) -> bool:
    """Whether a TCP connection to the hub endpoint opens within ``timeout`` seconds.

    Name resolution can hang far longer than any socket timeout, so the probe runs in a
    daemon thread that is abandoned when it overruns. Behind a proxy the probe is skipped
    (True): only the proxy knows the way, and the hub client's own timeouts apply.
    """
    if any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return True
    url = urlparse(hub_endpoint())
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    if not host:
        return False
    answer: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, name="asr_lab-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answer and answer[0])


def fetch_model(
    name: str,
    download: Callable[[bool], str],
    *,
    backend: str,
    local_hint: str,
    cache_dir: Optional[str] = None,
) -> str:
    """The local folder of hub model ``name``: from the cache, else downloaded.

    ``download(local_files_only)`` is the engine's own download call (it knows how to
    map short names to repositories and which files it needs). ``local_hint`` tells the
    user what local folder to pass instead (e.g. "model_dir='/path/to/ct2-model'").
    Raises :class:`ModelNotFoundError` at once when the model is not cached and the hub
    is off or unreachable, or when the hub has no such model.
    """
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return download(True)
    except LocalEntryNotFoundError:
        pass
    where = f"the cache {cache_dir!r}" if cache_dir else "the Hugging Face cache"
    if hub_offline():
        raise ModelNotFoundError(
            f"{backend}: model {name!r} is not a local folder and is not in {where}, and hub access is "
            f"switched off (HF_HUB_OFFLINE=1). Pass a local model folder ({local_hint}), or go online: "
            f"unset HF_HUB_OFFLINE and load once to download and cache it."
        )
    if not hub_reachable():
        raise ModelNotFoundError(
            f"{backend}: model {name!r} is not a local folder and is not in {where}, and the hub "
            f"({hub_endpoint()}) cannot be reached from here (no network?). Pass a local model folder "
            f"({local_hint}), or go online and load once to download and cache it."
        )
    try:
        return download(False)
    except (HfHubHTTPError, LocalEntryNotFoundError) as exc:
        raise ModelNotFoundError(
            f"{backend}: could not download model {name!r} from {hub_endpoint()}: {exc}. Check the name "
            f"(and your access to it), or pass a local model folder ({local_hint})."
        ) from exc

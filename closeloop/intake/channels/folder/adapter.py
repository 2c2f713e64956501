from __future__ import annotations

import threading


def service(stop: threading.Event) -> None:
    stop.wait(3600)

"""The demo mail sink: a local SMTP server that keeps what closeloop sends as .eml files.

`closeloop run` starts it when CLOSELOOP_DEMO_MAIL_SINK is on (the default in development),
so the demo's acknowledgements, chasers and replies can be read in
`$CLOSELOOP_DATA_DIR/sent-mail/` instead of going nowhere. Production points EMAIL_HOST at
the organisation's own SMTP relay and leaves this off.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from django.conf import settings

log = logging.getLogger(__name__)


class _Keep:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}.eml"
        (self.folder / name).write_bytes(envelope.original_content or envelope.content)
        return "250 kept"


def serve(stop: threading.Event) -> None:
    folder = Path(settings.DATA_DIR) / "sent-mail"
    controller = Controller(_Keep(folder), hostname=settings.EMAIL_HOST, port=settings.EMAIL_PORT)
    controller.start()
    log.info("demo mail sink on %s:%s keeps sent mail in %s", settings.EMAIL_HOST, settings.EMAIL_PORT, folder)
    try:
        stop.wait()
    finally:
        controller.stop()

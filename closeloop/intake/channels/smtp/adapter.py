"""Built-in SMTP listener (aiosmtpd): an office forwards or routes addresses into closeloop.

Only recipients with an active `SmtpRoute` are accepted (550 for the rest, so we never
become an open relay or a backscatter source); a plus-address (`requests+tag@x`, as in
signed reply addresses) is accepted when its base address is. The raw message is stored and committed
before the server answers 250: once the sender's server hears "OK", nothing is lost.
Processing then runs in a thread pool; if it dies, the worker's `process_due` picks the
row up after its claim expires.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, AnyStr

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from django.conf import settings
from django.db import close_old_connections

from closeloop.cases.documents import human_size
from closeloop.intake import lookups
from closeloop.intake.inbound import Inbound
from closeloop.intake.parse import message_id_of
from closeloop.intake.pipeline import process, receive
from closeloop.intake.reply import without_tag

log = logging.getLogger(__name__)
CHANNEL = "smtp"


@dataclass(frozen=True)
class ListenerConfig:
    host: str
    port: int
    max_bytes: int
    auth_user: str = ""
    auth_password: str = ""
    tls_cert: str = ""
    tls_key: str = ""

    @classmethod
    def from_settings(cls) -> ListenerConfig | None:
        listen = settings.CLOSELOOP_SMTP_LISTEN
        if not listen:
            return None
        host, _, port = listen.rpartition(":")
        return cls(host or "127.0.0.1", int(port), settings.CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES,
                   settings.CLOSELOOP_SMTP_AUTH_USER, settings.CLOSELOOP_SMTP_AUTH_PASSWORD,
                   settings.CLOSELOOP_SMTP_TLS_CERT, settings.CLOSELOOP_SMTP_TLS_KEY)


def _in_thread(func: Any, *args: Any) -> Any:
    try:
        return func(*args)
    finally:
        close_old_connections()


def _route(address: str) -> dict[str, str] | None:
    """The route for a recipient; `requests+anything@x` (a reply address) uses the route of `requests@x`."""
    address = address.strip().lower()
    route = lookups.smtp_route(address) or lookups.smtp_route(without_tag(address))
    if route is None:
        return None
    return {"request_type": route.request_type.slug if route.request_type else "",
            "team": route.team.slug if route.team else ""}


def _receive_and_schedule(inbound: Inbound, pool: ThreadPoolExecutor) -> None:
    row, created = receive(inbound)
    if created:
        pool.submit(_in_thread, process, row)


class Handler:
    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        loop = asyncio.get_running_loop()
        route = await loop.run_in_executor(self.pool, _in_thread, _route, address)
        if route is None:
            return "550 5.1.1 No such recipient here"
        routes = getattr(envelope, "closeloop_routes", [])
        envelope.closeloop_routes = [*routes, route]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        route = (getattr(envelope, "closeloop_routes", None) or [{}])[0]
        meta = {**{k: v for k, v in route.items() if v}, "rcpt_to": list(envelope.rcpt_tos),
                "mail_from": envelope.mail_from or "", "peer": str(session.peer[0]) if session.peer else ""}
        # Keyed by the bytes (a resend after a timeout repeats them), not the Message-ID alone:
        # a different message reusing one must not be taken for a resend and dropped.
        inbound = Inbound(channel=CHANNEL, raw=raw, message_id=message_id_of(raw), meta=meta)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.pool, _in_thread, _receive_and_schedule, inbound, self.pool)
        except Exception:
            log.exception("storing an SMTP message failed; the sender will retry")
            return "451 4.3.0 Temporary failure storing the message; try again later"
        return "250 OK: stored"


class Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and hmac.compare_digest(auth_data.login, self.user) and \
                hmac.compare_digest(auth_data.password, self.password):
            return AuthResult(success=True)
        # handled=False: aiosmtpd answers 535 itself; True with no reply would hang the client.
        return AuthResult(success=False, handled=False)


class _Server(SMTP):
    """aiosmtpd's server, with size refusals that state the limit (its own say only "Too much mail data")."""

    async def push(self, status: AnyStr) -> None:
        # Both of aiosmtpd's 552s (SIZE= declared in MAIL FROM, or counted during DATA) start so.
        if isinstance(status, str) and status.startswith("552 Error:") and self.data_size_limit:
            status = (f"552 5.3.4 The message is too big: the limit here is {human_size(self.data_size_limit)} "
                      "(attachments included); send large files another way or split them")
        await super().push(status)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _Server(self.handler, **self.SMTP_kwargs)


def listener(config: ListenerConfig, pool: ThreadPoolExecutor | None = None) -> Controller:
    """A started-ready controller; call `.start()` and `.stop()`."""
    kwargs: dict[str, Any] = {"data_size_limit": config.max_bytes, "decode_data": False}
    if config.tls_cert and config.tls_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config.tls_cert, config.tls_key)
        kwargs["tls_context"] = context
    if config.auth_user:
        kwargs.update(authenticator=Authenticator(config.auth_user, config.auth_password), auth_required=True,
                      auth_require_tls=bool(config.tls_cert))
    handler = Handler(pool or ThreadPoolExecutor(max_workers=4, thread_name_prefix="smtp-intake"))
    return _Controller(handler, hostname=config.host, port=config.port, **kwargs)


def service(stop: threading.Event) -> None:
    """Worker service: run the listener while the worker runs (when CLOSELOOP_SMTP_LISTEN is set)."""
    config = ListenerConfig.from_settings()
    if config is None:
        stop.wait(3600)
        return
    controller = listener(config)
    controller.start()
    log.info("SMTP intake listening on %s:%s", config.host, config.port)
    try:
        stop.wait()
    finally:
        controller.stop()

"""Real loopback servers for the delivery tests: an HTTP webhook receiver and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from devtools.waiting import free_port


@dataclass
class Webhook:
    """A webhook receiver answering with ``statuses`` in turn (the last one repeats), sleeping ``delays`` seconds
    first and adding ``headers[n]`` to the n-th answer; ``received`` collects the JSON bodies of every request."""

    statuses: list[int]
    delays: list[float] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@contextmanager
def webhook_server(statuses: list[int], delays: list[float] | None = None,
                   headers: list[dict[str, str]] | None = None) -> Iterator[Webhook]:  # fmt: skip
    hook = Webhook(list(statuses), list(delays or []), list(headers or []))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                n = len(hook.received)
                hook.received.append(json.loads(body))
            delay = hook.delays[n] if n < len(hook.delays) else 0.0
            time.sleep(delay)
            status = hook.statuses[min(n, len(hook.statuses) - 1)]
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                for name, value in (hook.headers[n] if n < len(hook.headers) else {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"boom")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/secret-token"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    """Messages received by the SMTP server, as parsed :class:`EmailMessage` objects with their envelope."""

    host: str
    port: int
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """aiosmtpd on a free loopback port (plain SMTP, no authentication)."""
    box = Mailbox("127.0.0.1", free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
            msg = message_from_bytes(envelope.original_content, policy=policy.default)
            box.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
            return "250 OK"

    controller = Controller(Handler(), hostname=box.host, port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()

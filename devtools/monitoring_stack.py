"""Real Prometheus and Alertmanager (Debian packages) on loopback, plus the local sinks pages and reports go to.

Used by the end-to-end alert path test and by ``make demo``. Every server runs in its own temporary directory on a
free loopback port and is stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from .processes import LoggedProcess
from .waiting import free_port


class ServerError(RuntimeError):
    """A server failed to start; the message holds the end of its log."""


def _binary(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise ServerError(f"{name} not found: run `make debs` (Debian packages prometheus, prometheus-alertmanager)")
    return path


def _start(name: str, argv: list[str], workdir: Path, ready_url: str) -> LoggedProcess:
    process = LoggedProcess(name, argv, dict(os.environ), workdir / f"{name}.log")
    try:
        process.wait_until_ready(ready_url)
    except RuntimeError as exc:
        raise ServerError(str(exc)) from None
    return process


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


class Prometheus:
    """A Prometheus server scraping ``targets`` every ``interval`` and evaluating ``rule_groups`` as often.

    Args:
        workdir: folder for config, rules, TSDB and log (created).
        targets: ``{job: ["127.0.0.1:9102", ...]}``.
        rule_groups: Prometheus rule groups (the ``spec.groups`` of PrometheusRules).
        alertmanager: ``host:port`` of the Alertmanager to notify, if any.
        target_labels: labels put on every scraped series, e.g. ``{"namespace": "games"}`` (what a
            ServiceMonitor's target relabelling adds; the AlertRule templates select on ``namespace``).
        job_labels: ``{job: labels}`` put on the series of that job only, after ``target_labels`` (targets of
            several namespaces in one Prometheus).
        retention: ``--storage.tsdb.retention.time`` (a backfilled history older than a day needs more).
    """

    def __init__(self, workdir: Path, targets: dict[str, list[str]], rule_groups: list[dict], *,
                 alertmanager: str | None = None, interval: str = "1s", target_labels: dict[str, str] | None = None,
                 job_labels: dict[str, dict[str, str]] | None = None, retention: str = "1d"):
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules = workdir / "rules.yml"
        rules.write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
        config: dict[str, Any] = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": t, **(
                {"labels": labels} if (labels := {**(target_labels or {}), **(job_labels or {}).get(job, {})}) else {}
            )}]} for job, t in targets.items()],
        }
        if alertmanager:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self._process = _start("prometheus", [
            _binary("prometheus"), f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle", f"--storage.tsdb.retention.time={retention}",
            # resend firing alerts every second: the first send can precede Alertmanager discovery (5 s throttle)
            "--rules.alert.resend-delay=1s",
        ], workdir, f"{self.url}/-/ready")

    @property
    def pid(self) -> int:
        return self._process.pid

    def alerts(self) -> list[dict]:
        """Active alerts (pending and firing) as Prometheus reports them."""
        return _get_json(f"{self.url}/api/v1/alerts")["data"]["alerts"]

    def query(self, expr: str) -> list[dict]:
        from urllib.parse import quote

        return _get_json(f"{self.url}/api/v1/query?query={quote(expr)}")["data"]["result"]

    def stop(self) -> None:
        self._process.stop()


class Alertmanager:
    """An Alertmanager with the given configuration document (``alertmanager.yml`` contents)."""

    def __init__(self, workdir: Path, config: dict):
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self._process = _start("alertmanager", [
            _binary("prometheus-alertmanager"), f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # a single instance: no gossip port
        ], workdir, f"{self.url}/-/ready")

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alerts(self) -> list[dict]:
        return _get_json(f"{self.url}/api/v2/alerts")

    def stop(self) -> None:
        self._process.stop()


@dataclass
class WebhookReceiver:
    """An HTTP endpoint on loopback recording every POSTed JSON body (and appending it to ``log_file``, if set).

    It stands in for PagerDuty / a chat webhook: Alertmanager's webhook receiver and the report worker post here.
    ``host``: the address it listens on (the node IP, for pods to reach it).
    """

    log_file: Path | None = None
    status: int = 200
    received: list[dict] = field(default_factory=list)
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {"raw": body.decode(errors="replace")}
                entry = {"path": self.path, "received_at": time.time(), "body": doc}
                receiver.received.append(entry)
                if receiver.log_file:
                    with receiver.log_file.open("a") as f:
                        f.write(json.dumps(entry) + "\n")
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback (or ``host``) keeping every message it receives."""

    def __init__(self, mailbox_dir: Path | None = None, host: str = "127.0.0.1"):
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        self.mailbox_dir = mailbox_dir
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                message = message_from_bytes(envelope.content)
                sink.messages.append(message)
                if sink.mailbox_dir:
                    sink.mailbox_dir.mkdir(parents=True, exist_ok=True)
                    (sink.mailbox_dir / f"{len(sink.messages):04d}.eml").write_bytes(envelope.content)
                return "250 OK"

        self.host = host
        self.port = free_port(host)
        self._controller = Controller(Handler(), hostname=host, port=self.port)
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

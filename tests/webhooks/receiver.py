"""A real webhook receiver on 127.0.0.1 for the tests: it verifies every request with the
`standardwebhooks` library, answers as told, and remembers what it got (over TLS when
given a server context).

`answers` is a list of statuses given in turn (the last repeats), or a function of the
request; `delay` holds each answer back. `most_at_once` is how many requests it ever
had in hand at the same time (one in flight per endpoint means 1). `keep_alive` speaks
HTTP/1.1 and keeps connections open (`connections` counts them); `hang_up` then closes
each after its answer without saying so, as a receiver's idle timeout does.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    verified: bool
    at: float = field(default_factory=time.monotonic)

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    def __init__(
        self,
        *,
        secret: str | None = None,
        answers: list[int] | Callable[[Received], int] | None = None,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        keep_alive: bool = False,
        hang_up: bool = False,
    ) -> None:
        self.secrets: list[str] = [secret] if secret else []
        self.answers = answers or [200]
        self.delay = delay
        self.extra_headers = headers or {}
        self.received: list[Received] = []
        self.in_hand = 0
        self.most_at_once = 0
        self.connections = 0
        self.keep_alive, self.hang_up = keep_alive, hang_up
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:  # https: the handshake happens on the handler's first read
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return self.url_for("127.0.0.1")

    def url_for(self, host: str) -> str:
        return f"{self.scheme}://{host}:{self.port}/hooks?src=meterline"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True
            except Exception:
                continue
        return False

    def delivered(self) -> list[Received]:
        """What it answered with a 2xx, in order."""
        return [r for r in self.received if 200 <= r.status < 300]

    def wait_for(self, count: int, *, timeout: float = 20.0, delivered: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.delivered() if delivered else self.received
            if len(got) >= count:
                return
            time.sleep(0.02)
        raise AssertionError(f"{len(self.received)} requests after {timeout} s: {self.received}")

    def _answer(self, received: Received) -> int:
        if callable(self.answers):
            return self.answers(received)
        with self._lock:
            index = min(len(self.received), len(self.answers) - 1)
        return self.answers[index]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if receiver.keep_alive else "HTTP/1.0"
            # Its headers and body leave in two writes: without this, the second waits
            # for the client's delayed ACK (40 ms) on a kept-alive connection.
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver.connections += 1

            def do_POST(self) -> None:
                with receiver._lock:
                    receiver.in_hand += 1
                    receiver.most_at_once = max(receiver.most_at_once, receiver.in_hand)
                try:
                    self._handle()
                finally:
                    with receiver._lock:
                        receiver.in_hand -= 1

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                received = Received(
                    webhook_id=headers.get("webhook-id", ""),
                    headers=headers,
                    body=body,
                    status=0,
                    verified=receiver.verify(headers, body),
                )
                received.status = receiver._answer(received)
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.received.append(received)
                self.send_response(received.status)
                for name, value in receiver.extra_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                if receiver.hang_up:
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

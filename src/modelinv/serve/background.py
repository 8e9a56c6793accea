"""Run a served application with uvicorn in a thread on loopback: for tests, benchmarks and notebooks."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from modelinv.errors import ModelinvError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class BackgroundServer:
    """`with BackgroundServer(app) as url:` serves `app` on 127.0.0.1 until the block ends."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None, start_timeout: float = 30.0):
        self.host, self.port, self.start_timeout = host, port or free_port(host), start_timeout
        self.server = uvicorn.Server(uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, name="modelinv-serve", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ModelinvError(f"the server did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

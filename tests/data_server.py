"""A local HTTP server for the data tests: serves bytes by path, counts requests, can stall mid-file."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class DataServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.gets: Counter[str] = Counter()
        self.stall: set[str] = set()  # these paths send half their bytes, then hang (until the test ends)
        self.short: set[str] = set()  # these paths promise all bytes but send half, then close
        self.delay = 0.0  # seconds before each response body (so concurrent clients overlap)
        self.stop = threading.Event()
        self.url = ""


@contextmanager
def data_server() -> Iterator[DataServer]:
    state = DataServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            path = self.path.lstrip("/")
            state.gets[path] += 1
            body = state.files.get(path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            time.sleep(state.delay)
            if path in state.stall or path in state.short:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                if path in state.stall:
                    state.stop.wait(30)
                return
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()

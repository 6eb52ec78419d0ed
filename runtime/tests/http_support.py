"""A real HTTP server on loopback for client tests: a handler class answers as the server
under test does (TF Serving, TorchServe), in a thread of the test process."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mlgen_runtime import process


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet handler with :meth:`answer` (a JSON body and its length) and :meth:`body`."""

    def answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self) -> dict[str, object]:
        return dict(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def loopback_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port until the block ends; yield the base URL."""
    server = ThreadingHTTPServer((process.HOST, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{process.HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

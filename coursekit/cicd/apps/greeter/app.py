"""greeter: the tiny web app that lessons 08 (CI/CD) and 13 (capstone) build, test and deploy.

GET /?name=Ana answers "Hello, Ana! (greeter 1.0)" and, on a second line, which container
served it; GET /health answers "ok". Standard library only, so the course's images need nothing
installed.
"""
import os
import socket
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

VERSION = "1.0"


def greeting(name: str = "") -> str:
    """What the app says to ``name`` (``world`` when no name is given)."""
    name = name.strip() or "world"
    return f"Hello, {name}! (greeter {VERSION})"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/health":
            body = "ok\n"
        else:
            name = parse_qs(url.query).get("name", [""])[0]
            body = f"{greeting(name)}\nserved by {socket.gethostname()}\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # one line per request would flood the container's log
        pass


if __name__ == "__main__":
    HTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Handler).serve_forever()

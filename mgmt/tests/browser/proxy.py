#!/usr/bin/env python3
"""Serve the dashboard (mgmt/ui) and forward /api/* to a management API.

Lets the browser test run the dashboard against any RabbitMQ-compatible management API, e.g. a
real RabbitMQ 3.10 on 127.0.0.1:15672, the same way ringmq's own server will serve it:
/ -> index.html, /app.js, /app.css, and /api/... forwarded with its method, headers (including
Authorization) and body.

    python3 proxy.py --api http://127.0.0.1:15672 --port 0     # prints "PORT <n>" once listening
"""
import argparse
import http.client
import json
import os
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_UI = os.path.normpath(os.path.join(HERE, "..", "..", "ui"))
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length",
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api = None      # urllib.parse.SplitResult of the target
    ui_dir = DEFAULT_UI

    def log_message(self, fmt, *args):  # quiet unless asked
        if os.environ.get("PROXY_VERBOSE"):
            sys.stderr.write("proxy: " + (fmt % args) + "\n")

    def _send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _static(self):
        path = urllib.parse.urlsplit(self.path).path
        if path not in STATIC or self.command not in ("GET", "HEAD"):
            return self._send(404, b'{"error":"Object Not Found","reason":"Not Found"}',
                              [("Content-Type", "application/json")])
        name, ctype = STATIC[path]
        with open(os.path.join(self.ui_dir, name), "rb") as f:  # read each time: edits show at once
            body = f.read()
        self._send(200, body, [("Content-Type", ctype), ("Cache-Control", "no-store")])

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        conn_cls = http.client.HTTPSConnection if self.api.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(self.api.hostname, self.api.port or (443 if self.api.scheme == "https" else 80), timeout=60)
        try:
            conn.request(self.command, self.api.path.rstrip("/") + self.path, body=body, headers=headers)
            res = conn.getresponse()
            data = res.read()
            out = [(k, v) for k, v in res.getheaders() if k.lower() not in HOP_BY_HOP]
            self._send(res.status, data, out)
        except OSError as e:
            self._send(502, json.dumps({"error": "bad_gateway", "reason": str(e)}).encode(),
                       [("Content-Type", "application/json")])
        finally:
            conn.close()

    def _handle(self):
        if self.path.startswith("/api/") or self.path == "/api":
            self._forward()
        else:
            self._static()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api", default="http://127.0.0.1:15672", help="management API base URL")
    ap.add_argument("--port", type=int, default=0, help="port to listen on (0 = a free one)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--ui", default=DEFAULT_UI, help="directory holding index.html, app.js, app.css")
    args = ap.parse_args()
    Handler.api = urllib.parse.urlsplit(args.api)
    Handler.ui_dir = args.ui
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

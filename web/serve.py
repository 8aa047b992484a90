#!/usr/bin/env python3
"""Serves the browser demo on 127.0.0.1 with the headers that threads need.

    python3 web/serve.py [--root build-web/web] [--models models] [--port 8080]

Without cross-origin isolation (Cross-Origin-Opener-Policy: same-origin and
Cross-Origin-Embedder-Policy: require-corp) a page has no SharedArrayBuffer, so no
wasm threads and no shared Stop flag; a plain `python3 -m http.server` does not send
them. /models/NAME is read from the --models folder, so the default model
(models/gemma-3-270m-q4_k_m.gguf, from scripts/fetch-model.sh) is served beside
the page. 127.0.0.1 is a secure context, which OPFS and the Worker need; a LAN
address over plain http is not.
"""
import argparse
import functools
import http.server
import os
import socketserver
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".gguf": "application/octet-stream",
    }

    def __init__(self, *args, models=None, **kwargs):
        self.models = models
        super().__init__(*args, **kwargs)

    def translate_path(self, path):
        clean = path.split("?", 1)[0].split("#", 1)[0]
        if self.models and clean.startswith("/models/"):
            name = os.path.basename(clean[len("/models/"):])
            return os.path.join(self.models, name)
        return super().translate_path(path)

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, fmt, *args):
        if os.environ.get("GEMMA3_SERVE_QUIET") != "1":
            super().log_message(fmt, *args)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(repo, "build-web", "web"), help="the built site")
    ap.add_argument("--models", default=os.path.join(repo, "models"), help="served as /models/")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(args.root, "gemma3_web.js")):
        sys.exit(f"serve: {args.root}/gemma3_web.js not found: run `make web` first")
    handler = functools.partial(Handler, directory=args.root, models=os.path.abspath(args.models))
    with Server((args.host, args.port), handler) as httpd:
        port = httpd.server_address[1]
        print(f"gemma3 web demo: http://{args.host}:{port}/  (Ctrl-C stops)", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

"""Run localstripe's aiohttp app bound to 127.0.0.1, its data file where we say.

localstripe's own CLI listens on every interface and keeps its data in /tmp; we reuse its
app and store but bind to loopback and persist under instance/.

    python -m portal.stripe_sandbox --port 8420 --data instance/stripe-sandbox.pickle
"""
from __future__ import annotations

import argparse
import logging
import pickle


def _point_store_at(path: str | None) -> None:
    from localstripe import resources

    store = resources.store

    def load():
        if path is None:
            return
        try:
            with open(path, "rb") as f:
                old = pickle.load(f)
        except (FileNotFoundError, EOFError, pickle.UnpicklingError):
            return
        store.clear()
        dict.update(store, old)

    def dump():
        if path is None:
            return
        with open(path, "wb") as f:
            pickle.dump(dict(store), f, protocol=pickle.HIGHEST_PROTOCOL)

    store.try_load_from_disk = load
    store.dump_to_disk = dump


def serve(host: str = "127.0.0.1", port: int = 8420, data_file: str | None = None, quiet: bool = False,
          webhook: tuple[str, str] | None = None) -> None:
    _point_store_at(data_file)
    from aiohttp import web
    from localstripe import resources
    from localstripe.server import app
    from localstripe.webhooks import register_webhook

    if webhook is not None:
        register_webhook("portal", webhook[0], webhook[1], None)

    resources.store.try_load_from_disk()
    if not quiet:
        logging.basicConfig(level=logging.INFO)
    web.run_app(app, host=host, port=port, access_log=None if quiet else logging.getLogger("aiohttp.access"),
                print=None if quiet else print)


def main() -> None:
    parser = argparse.ArgumentParser(description="Local Stripe sandbox on 127.0.0.1")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--data", default=None, help="pickle file for the sandbox's data")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    serve(args.host, args.port, args.data, args.quiet)


if __name__ == "__main__":
    main()

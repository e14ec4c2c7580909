"""Run a moto server on loopback for end-to-end tests and `make demo`.

moto 5.2 leaves gaps that pubsys meets (see DESIGN.md section 5). They are filled here, in the
server process, so pubsys itself sends exactly what it would send to AWS:
each `devtools/moto_ext_<service>.py` module holds the extensions for one service and says
what it adds; `install_patches()` installs every one that exists.

Usage: python -m devtools.moto_server --port PORT
"""

from __future__ import annotations

import argparse
import sys

EXTENSIONS = ("ec2", "ebs", "ssm", "kms", "s3", "calls")


def install_patches() -> None:
    """Extend moto where pubsys needs AWS behaviour moto does not model."""
    import importlib
    import importlib.util

    for name in EXTENSIONS:
        module = f"devtools.moto_ext_{name}"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module).install()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args(argv)
    install_patches()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    print(f"moto server on http://{args.host}:{args.port}", flush=True)
    try:
        server._thread.join()  # serve until killed
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

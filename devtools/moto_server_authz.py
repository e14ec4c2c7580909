"""A moto server that enforces IAM with real resources (for the infra least-privilege test).

The shared server (devtools/moto_server.py) with every pubsys extension, plus
devtools/moto_ext_authz.py: KMS, SSM, EC2 and EBS calls are authorized against the ARNs they act
on, and every check made while authorization is on is logged to --authz-log. Authorization
itself is switched on by moto: `INITIAL_NO_AUTH_ACTION_COUNT` in the environment, or a POST of
a count to /moto-api/reset-auth (the test sets up its world, then posts 0).

Usage: python -m devtools.moto_server_authz --port PORT --authz-log FILE
"""

from __future__ import annotations

import argparse
import sys

from devtools import moto_ext_authz, moto_server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--authz-log", required=True, help="append authorization checks here")
    args, rest = ap.parse_known_args(argv)
    moto_ext_authz.install(args.authz_log)
    return moto_server.main(rest)


if __name__ == "__main__":
    sys.exit(main())

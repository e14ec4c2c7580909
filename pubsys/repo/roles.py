"""The top-level TUF roles in the order pubsys lists them: in help, logs and reports.

tuf names them in `tuf.api.metadata.TOP_LEVEL_ROLE_NAMES`, a set; this tuple gives them an
order and keeps `pubsys --help` free of the tuf import (a test checks that both agree).
"""

from __future__ import annotations

TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
# The roles `repo` and `refresh-repo` sign, in the order they are signed; root belongs to the
# holder of the root keys (`pubsys root`).
REPO_ROLES = TOP_ROLES[1:]

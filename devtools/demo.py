"""`make demo`: the whole pipeline on embedded defaults, on one machine.

It runs the real `pubsys` commands (printed as it goes) against local files and a moto server
on loopback, in this order:
1. repo: `setup` creates a local key and root.json, `repo` builds a signed TUF repo from small
   sample images it creates, and python-tuf's client verifies it;
2. AMIs and SSM parameters (see the stages below).
Everything lands in demo-out/ (recreated each run); keys in keys/ are kept.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"
from devtools.demo_repo import ARCH, VARIANT, VERSION  # noqa: E402,F401 (used by stages)


def pubsys(*args: str, env: dict[str, str] | None = None, capture: bool = False) -> str:
    cmd = [sys.executable, "-m", "pubsys.cli", *map(str, args)]
    print("$ pubsys " + " ".join(shlex.quote(str(a)) for a in args), flush=True)
    p = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})},
                       stdout=subprocess.PIPE if capture else None, text=True)
    if p.returncode != 0:
        sys.exit(f"demo: 'pubsys {args[0]}' failed with exit code {p.returncode}")
    return p.stdout or ""


def main() -> int:
    import shutil

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    from devtools import demo_repo

    demo_repo.run(pubsys, OUT)  # its os image: demo_repo.image_path(OUT, 'root')
    aws_stages = [m for m in ("demo_ami", "demo_ssm") if (ROOT / "devtools" / f"{m}.py").exists()]
    if not aws_stages:
        return 0
    from devtools.moto_server_ctl import local_moto_server

    with local_moto_server() as env:  # moto on Infra.toml's endpoint, stopped afterwards
        from devtools import demo_ami

        ami_json = demo_ami.run(pubsys, OUT, env)
        if "demo_ssm" in aws_stages:
            from devtools import demo_ssm

            demo_ssm.run(pubsys, OUT, env, ami_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

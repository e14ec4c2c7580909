"""`make demo`: the whole pipeline on embedded defaults, on one machine.

It runs the real `pubsys` commands (printed as it goes) against local files and a moto server
on loopback, in this order:
1. repo: `setup` creates a local key and root.json, `repo` builds a signed TUF repo from small
   sample images it creates, and python-tuf's client verifies it;
2. ami: the os image becomes an AMI copied to three more regions and shared with one account;
3. ssm: parameters naming it are published, promoted to `latest` and validated.
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


def pubsys(*args: str, env: dict[str, str] | None = None, capture: bool = False) -> str:
    cmd = [sys.executable, "-m", "pubsys.cli", *map(str, args)]
    print("$ pubsys " + " ".join(shlex.quote(str(a)) for a in args), flush=True)
    p = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})},
                       stdout=subprocess.PIPE if capture else None, text=True)
    if p.returncode != 0:
        sys.exit(f"demo: 'pubsys {args[0]}' failed with exit code {p.returncode}")
    return p.stdout or ""


def main() -> int:
    import json
    import shutil

    from devtools import demo_ami, demo_repo, demo_ssm
    from devtools.moto_server_ctl import local_moto_server

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    repo_summary = demo_repo.run(pubsys, OUT)
    with local_moto_server() as env:  # moto on Infra.toml's endpoint, stopped afterwards
        ami_json = demo_ami.run(pubsys, OUT, env)
        ssm_json = demo_ssm.run(pubsys, OUT, env, ami_json)
    amis = json.loads(ami_json.read_text())
    params = json.loads(ssm_json.read_text())
    print("\n== Done ==")
    print(f"repo:  {repo_summary}")
    ami_list = ", ".join(f"{region} {entry['id']}" for region, entry in amis.items())
    print(f"AMIs:  {ami_list} ({ami_json})")
    count = sum(len(names) for names in params.values())
    print(f"SSM:   {count} parameters in {len(params)} regions ({ssm_json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

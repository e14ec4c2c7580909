"""Demo stage 2: the demo's OS image becomes an AMI in four regions, shared with one account.

Runs against the local moto server `devtools/demo.py` starts on Infra.toml's endpoint:
1. `pubsys ami` uploads the sparse root image of stage 1 as an EBS snapshot, registers it in
   the base region (the first of Infra.toml's aws.regions) and copies it to the other three;
2. `pubsys publish-ami --grant` shares the AMIs with one account;
3. `pubsys validate-ami` checks that every region holds what the AMI JSON says;
then prints the AMI id of every region.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from devtools.demo_repo import ARCH, VARIANT, VERSION, image_path

SHARED_WITH = "111122223333"  # a made-up account to grant launch permission to


def run(pubsys: Callable[..., str], out: Path, env: dict) -> Path:
    amis = out / "amis.json"
    name = f"demo-{VARIANT}-{ARCH}-v{VERSION}"
    pubsys("ami", "--os-image", image_path(out, "root"), "--arch", ARCH, "--name", name,
           "--description", f"pubsys demo {VARIANT} {VERSION}", "--ami-output", amis,
           "--deprecate-in", "2 years", "--poll-interval", "1", env=env, capture=True)
    pubsys("publish-ami", "--ami-input", amis, "--grant", "--user-ids", SHARED_WITH, env=env)
    pubsys("validate-ami", "--expected-amis-path", amis, env=env)
    data = json.loads(amis.read_text())
    print("\n== AMIs ==")
    print(f"name:      {name}")
    for region, entry in data.items():
        shared = ", ".join(f"{k} {v}" for p in entry["launch_permissions"] for k, v in p.items())
        print(f"{region:<10} {entry['id']}  (shared with: {shared or 'nobody'})")
    print(f"AMI JSON:  {amis}\n")
    return amis

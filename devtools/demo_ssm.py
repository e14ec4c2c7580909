"""Demo stage 3: SSM parameters that let users find the demo's AMIs by name.

Runs against the local moto server `devtools/demo.py` starts, after the AMI stage:
1. `pubsys ssm` renders policies/ssm/defaults.toml for every region of the AMI JSON and
   publishes `/pubsys-demo/VARIANT/ARCH/VERSION/image_id` and `.../image_version`;
2. the same command again: it finds nothing to change and writes nothing;
3. `pubsys promote-ssm` copies them to `.../latest/...` in the same regions;
4. `pubsys validate-ssm --check-unexpected` checks every region holds exactly that;
then prints the parameters. Pacing is left at its AWS-safe defaults.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from devtools.demo_repo import ARCH, VARIANT, VERSION

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "policies" / "ssm" / "defaults.toml"


def run(pubsys: Callable[..., str], out: Path, env: dict, ami_json: Path) -> Path:
    params = out / "ssm-parameters.json"
    regions = list(json.loads(Path(ami_json).read_text()))
    publish = ("ssm", "--ami-input", ami_json, "--variant", VARIANT, "--arch", ARCH,
               "--version", VERSION, "--template-path", TEMPLATES)
    pubsys(*publish, "--ssm-parameter-output", params, env=env)
    pubsys(*publish, env=env)  # a re-run: "no changes"
    pubsys("promote-ssm", "--variant", VARIANT, "--arch", ARCH, "--source", VERSION,
           "--target", "latest", "--regions", ",".join(regions), "--template-path", TEMPLATES,
           "--ssm-parameter-output", params, env=env)
    pubsys("validate-ssm", "--expected-parameters-path", params, "--check-unexpected",
           env=env)
    data = json.loads(params.read_text())
    print("\n== SSM parameters ==")
    for region, values in data.items():
        for name, value in sorted(values.items()):
            print(f"{region:<10} {name} = {value}")
    print(f"SSM JSON:  {params}\n")
    return params

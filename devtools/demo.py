"""`make demo`: a whole release from one file, on embedded defaults, on one machine.

It runs the real `pubsys` commands (printed as it goes) against local files and a moto server
on loopback (the endpoint of the project's Infra.toml; stopped at the end):
1. set-up (devtools/release_env.py): the repo bucket, an Infra.toml that reads and publishes
   the repo there, a signing key and root.json from `pubsys setup`, and the sample release
   (devtools/sample_release.py): two variants x two arches x three regions, small images;
2. `release plan` shows every step; `release apply` makes them; a second `release plan`
   shows nothing to do;
3. `release validate --outdir` checks everything and writes the AMI JSON of each build and
   the SSM parameters, which `validate-repo`, `validate-ami` and `validate-ssm` then check on
   their own; the repo, the AMI ids per region and the parameters are printed from those
   same files.
Everything lands in demo-out/ (recreated each run).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"
OK = (0,)


def pubsys(*args: object, env: dict[str, str], ok: tuple[int, ...] = OK,
           quiet: bool = False) -> str:
    """Run one pubsys command, showing it; its stdout is shown (unless quiet) and returned."""
    shown = [str(a).replace(str(ROOT) + "/", "") for a in args]
    print("\n$ pubsys " + " ".join(shlex.quote(a) for a in shown), flush=True)
    p = subprocess.run([sys.executable, "-m", "pubsys.cli", *map(str, args)], cwd=ROOT,
                       env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
    if not quiet:
        sys.stdout.write(p.stdout)
    if p.returncode not in ok:
        sys.exit(f"demo: 'pubsys {' '.join(shown)}' failed with exit code {p.returncode}")
    return p.stdout


def main() -> int:
    from devtools import release_env
    from devtools.moto_server_ctl import endpoint_from_infra, local_moto_server
    from devtools.sample_release import ARCHES, REGIONS, VARIANTS, write_sample_release

    started = time.monotonic()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    with local_moto_server() as credentials:  # moto on Infra.toml's endpoint
        endpoint = endpoint_from_infra()
        env = dict(credentials)  # SSM pacing stays at its AWS-safe defaults
        release_env.create_bucket(endpoint, credentials)
        infra = release_env.write_infra(OUT / "Infra.toml", endpoint, REGIONS)
        flag = ("--infra-config-path", infra)
        root, key = release_env.setup_keys(lambda *a: pubsys(*a, env=env), infra,
                                           OUT / "keys")
        release = write_sample_release(OUT / "release", root_role=root, default_key=key)
        print(f"\n== The release: {release.relative_to(ROOT)} ==\n{release.read_text()}")

        pubsys(*flag, "release", "plan", release, "--out", OUT / "plan.json", env=env)
        pubsys(*flag, "release", "apply", release, "--plan", OUT / "plan.json",
               "--poll-interval", "0.5", env=env)
        pubsys(*flag, "release", "plan", release, "--detailed-exitcode", env=env)
        outputs = OUT / "outputs"
        pubsys(*flag, "release", "validate", release, "--outdir", outputs, env=env)
        for variant in VARIANTS:
            for arch in ARCHES:
                pubsys(*flag, "validate-repo", "--variant", variant, "--arch", arch,
                       "--root-role-path", root, "--validate-targets", env=env)
                pubsys(*flag, "validate-ami", "--expected-amis-path",
                       outputs / f"amis-{variant}-{arch}.json", env=env)
        pubsys(*flag, "validate-ssm", "--expected-parameters-path",
               outputs / "ssm-parameters.json", env=env, quiet=True)
        summary(endpoint, outputs)
    print(f"\ndemo: the whole release took {time.monotonic() - started:.0f} s")
    return 0


def summary(endpoint: str, outputs: Path) -> None:
    """The repo, the AMIs and the parameters, read from the files the validators checked."""
    from devtools.release_env import repo_base
    from devtools.sample_release import ARCHES, VARIANTS

    print("\n== Done: everything above validated ==")
    print(f"repo:  {repo_base(endpoint)}/VARIANT/ARCH/ (targets in {repo_base(endpoint)}"
          "/targets/)")
    for variant in VARIANTS:
        for arch in ARCHES:
            amis = json.loads((outputs / f"amis-{variant}-{arch}.json").read_text())
            ids = ", ".join(f"{region} {entry['id']}" for region, entry in amis.items())
            print(f"AMIs:  {variant}/{arch}: {ids}")
    params = json.loads((outputs / "ssm-parameters.json").read_text())
    for region, values in params.items():
        for name, value in sorted(values.items()):
            print(f"SSM:   {region:<10} {name} = {value}")


if __name__ == "__main__":
    sys.exit(main())

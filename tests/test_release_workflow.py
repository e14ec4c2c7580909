"""The reference release workflow: actionlint and zizmor are clean on it, and its shape holds.

actionlint is installed by devtools/install-actionlint.sh (a no-op once installed), the same
script the Makefile calls; zizmor comes with the dev extras. Neither is ever skipped: a
missing tool fails these tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pubsys.release.plan import EXIT_CHANGES_PENDING

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
INSTALLER = ROOT / "devtools" / "install-actionlint.sh"
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40}\s+#\s+v\d+(\.\d+)*\s*$")


def tool_dir(tmp_path_factory) -> Path:
    """The venv running the tests (as `make test` has it), else a scratch one."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix)
    return tmp_path_factory.mktemp("tools")


@pytest.fixture(scope="session")
def actionlint(tmp_path_factory) -> Path:
    venv = tool_dir(tmp_path_factory)
    p = subprocess.run(["sh", str(INSTALLER), str(venv)], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, f"install-actionlint.sh failed:\n{p.stdout}\n{p.stderr}"
    return venv / "bin" / "actionlint"


@pytest.fixture(scope="session")
def zizmor() -> str:
    found = shutil.which("zizmor", path=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    assert found, "zizmor is not installed (pip install -e '.[dev]')"
    return found


def run(*cmd: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


def mutated(tmp_path: Path, old: str, new: str) -> Path:
    text = WORKFLOW.read_text()
    assert old in text
    path = tmp_path / ".github" / "workflows" / "release.yml"
    path.parent.mkdir(parents=True)
    path.write_text(text.replace(old, new, 1))
    return path


def test_actionlint_is_clean(actionlint):
    p = run(actionlint, WORKFLOW)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert run(actionlint, "-version").stdout.startswith("1.7.7 (rhysd/actionlint h1:")


def test_actionlint_finds_what_it_should(actionlint, tmp_path):
    bad = mutated(tmp_path, "needs: [plan, apply]", "needs: [plan, aply]")
    p = run(actionlint, bad)
    assert p.returncode == 1
    assert re.search(r"release\.yml:\d+:\d+: job \"validate\" needs job \"aply\" which does "
                     r"not exist", p.stdout), p.stdout


def test_zizmor_is_clean(zizmor):
    p = run(zizmor, "--offline", "--persona", "pedantic", WORKFLOW)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "No findings to report" in p.stdout


def test_zizmor_finds_template_injection(zizmor, tmp_path):
    bad = mutated(tmp_path, 'run: pubsys release validate "$RELEASE_FILE"',
                  'run: pubsys release validate "${{ inputs.release-file }}"')
    p = run(zizmor, "--offline", bad)
    assert p.returncode != 0 and "template-injection" in p.stdout


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_least_permissions(workflow):
    assert workflow["permissions"] == {}
    allowed = {"contents": "read", "actions": "read", "id-token": "write"}
    for name, job in workflow["jobs"].items():
        assert job["permissions"].items() <= allowed.items(), name


def test_every_action_is_pinned_by_commit(workflow):
    lines = [ln for ln in WORKFLOW.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", ln)]
    assert lines and all(PINNED.match(ln) for ln in lines), [
        ln for ln in lines if not PINNED.match(ln)]
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_no_expression_is_expanded_inside_a_script(workflow):
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), f"{name}: {step.get('name')}"


def test_plan_then_approved_apply_then_validate(workflow):
    jobs = workflow["jobs"]
    plan, apply, validate = jobs["plan"], jobs["apply"], jobs["validate"]
    assert apply["needs"] == "plan" and apply["environment"] == "release"
    assert apply["if"] == "needs.plan.outputs.changes == 'true'"
    assert "environment" not in plan and "environment" not in validate
    assert validate["needs"] == ["plan", "apply"]
    assert "needs.apply.result == 'skipped'" in validate["if"]
    script = next(s["run"] for s in plan["steps"] if s.get("id") == "plan")
    assert "--out plan.json --detailed-exitcode" in script
    assert '>> "$GITHUB_STEP_SUMMARY"' in script
    assert f"{EXIT_CHANGES_PENDING}) echo \"changes=true\"" in script
    upload = next(s for s in plan["steps"] if s.get("uses", "").startswith(
        "actions/upload-artifact@"))
    assert upload["with"]["name"] == "release-plan" and "plan.json" in upload["with"]["path"]
    applied = next(s["run"] for s in apply["steps"] if s.get("name") == "Apply")
    assert "--plan approved/plan.json" in applied
    checks = [s["run"] for s in validate["steps"] if "run" in s]
    assert any("release plan" in c and "--detailed-exitcode" in c for c in checks)
    assert any("release validate" in c for c in checks)


def test_aws_access_is_the_oidc_role_from_the_infra_outputs(workflow):
    for job in workflow["jobs"].values():
        creds = [s for s in job["steps"] if s.get("uses", "").startswith(
            "aws-actions/configure-aws-credentials@")]
        assert len(creds) == 1
        assert creds[0]["with"]["role-to-assume"] == "${{ vars.RELEASE_ROLE_ARN }}"
        assert "aws-access-key-id" not in creds[0]["with"]

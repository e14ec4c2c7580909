"""The planner: (release, observed state) -> steps that would change something, in order."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from devtools.sample_release import REGIONS, SHARED_WITH, write_sample_release
from pubsys.release.plan import EXIT_CHANGES_PENDING, PREREQUISITES, Stage, before
from pubsys.release.planfile import (
    PlanFileError,
    StalePlan,
    check_plan_current,
    format_plan,
    plan_from_json,
    plan_to_json,
)
from pubsys.release.planner import compute_plan
from pubsys.release.releasefile import load_release
from pubsys.release.spec import BuildKey, LaunchPermission, ReleaseSpec
from pubsys.release.state import (
    BuildState,
    LocalFile,
    ObservedImage,
    ObservedState,
    RegionState,
    RepoState,
    TargetInfo,
)
from pubsys.release.wanted import release_renderer, ssm_renderer
from pubsys.release.yamlnodes import ReleaseFileError
from pubsys.ssm.templates import load_ssm_templates
from pubsys.timespec import format_rfc3339

PREFIX = "/pubsys-demo"
DEV = BuildKey("aws-dev", "x86_64")
K8S_ARM = BuildKey("aws-k8s-1.31", "aarch64")
BASE, COPIES = REGIONS[0], REGIONS[1:]
GRANT = LaunchPermission("userid", SHARED_WITH)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> ReleaseSpec:
    out = tmp_path_factory.mktemp("release")
    (out / "root.json").write_text("{}")
    (out / "key.pem").write_text("key")
    path = write_sample_release(out, root_role=out / "root.json", default_key=out / "key.pem",
                                start_time="2026-12-01T10:00:00Z")
    return load_release(path)


def renderer(spec: ReleaseSpec):
    return ssm_renderer(spec, load_ssm_templates(spec.ssm.templates), PREFIX)


@functools.cache
def local(path: Path) -> LocalFile:
    data = path.read_bytes()
    return LocalFile(len(data), hashlib.sha256(data).hexdigest())


def empty_state(spec: ReleaseSpec) -> ObservedState:
    """A fresh account: only the local inputs are known."""
    return ObservedState({b.key: BuildState(
        b.key, {r: RegionState() for r in REGIONS}, RepoState(),
        {role: local(p) for role, p in b.inputs().items()}, f"digest-{b.key}")
        for b in spec.builds})


def converged_state(spec: ReleaseSpec) -> ObservedState:
    """What a finished apply leaves: every image, permission, parameter and the update."""
    render = renderer(spec)
    builds = {}
    for n, build in enumerate(spec.builds):
        base = empty_state(spec).build(build.key)
        regions = {}
        for i, region in enumerate(REGIONS):
            image = ObservedImage(f"ami-{n:08x}{i:09x}", "available", (f"snap-{n}{i}",),
                                  frozenset({GRANT}), f"digest-{build.key}")
            wanted = render(build.key, region, image)
            regions[region] = RegionState((image,), (), {**wanted.versioned, **wanted.promoted})
        names = {role: f"{build.key.variant}-{build.key.arch}-{role}.img"
                 for role in ("boot", "root", "hash")}
        waves = spec.repo.waves.schedule(spec.repo.start_time)
        repo = RepoState(1700000000 + n, "ab" * 32, names,
                         {seed: format_rfc3339(t) for seed, t in waves.items()},
                         {names[r]: TargetInfo(base.inputs[r].length, base.inputs[r].sha256)
                          for r in names})
        builds[build.key] = replace(base, regions=regions, repo=repo)
    return ObservedState(builds)


def set_region(state: ObservedState, key: BuildKey, region: str, **changes) -> ObservedState:
    build = state.build(key)
    regions = {**build.regions, region: replace(build.region(region), **changes)}
    return replace(state, builds={**state.builds, key: replace(build, regions=regions)})


def stages(plan, key=DEV, region=None) -> list[tuple[str, str | None, str]]:
    return [(s.stage.value, s.region, s.action) for s in plan.steps if s.build == key
            and (region is None or s.region == region)]


# --- the stages ------------------------------------------------------------------------------


def test_stages_are_declared_after_everything_they_depend_on():
    for stage, needs in PREREQUISITES.items():
        assert all(n.order < stage.order for n in needs)
    assert before(Stage.PROMOTE) >= {Stage.VALIDATE_AMI, Stage.VALIDATE_SSM,
                                     Stage.VALIDATE_REPO, Stage.UPLOAD, Stage.REPO}
    assert Stage.PROMOTE not in before(Stage.VALIDATE_REPO)
    assert EXIT_CHANGES_PENDING not in (0, 1, 2, 3, 130)


def test_empty_account_plans_every_step(spec):
    plan = compute_plan(spec, empty_state(spec), renderer(spec))
    assert not plan.problems and plan.has_changes
    expected = ([("upload", BASE, "create")] + [("copy", r, "create") for r in COPIES]
                + [("grant", r, "update") for r in REGIONS]
                + [("validate-ami", r, "check") for r in REGIONS]
                + [("ssm", r, "update") for r in REGIONS]
                + [("validate-ssm", r, "check") for r in REGIONS]
                + [("repo", None, "create"), ("publish-repo", None, "create"),
                   ("validate-repo", None, "check")]
                + [("promote", r, "update") for r in REGIONS]
                + [("validate-promote", r, "check") for r in REGIONS])
    for build in spec.builds:
        assert stages(plan, build.key) == expected
    ssm = next(s for s in plan.steps if s.build == DEV and s.stage is Stage.SSM)
    assert f"+ {PREFIX}/aws-dev/x86_64/1.0.0/image_id = (known once the AMI exists)" \
        in ssm.details
    assert f"+ {PREFIX}/aws-dev/x86_64/1.0.0/image_version = 1.0.0" in ssm.details
    promote = next(s for s in plan.steps if s.build == DEV and s.stage is Stage.PROMOTE)
    assert f"+ {PREFIX}/aws-dev/x86_64/latest/image_id = (known once the AMI exists)" \
        in promote.details
    upload = next(s for s in plan.steps if s.stage is Stage.UPLOAD)
    assert "os_image (16.0 MiB) and data_image (8.0 MiB)" in upload.summary
    assert "'aws-dev-x86_64-v1.0.0'" in upload.summary


def test_after_apply_the_plan_is_empty(spec):
    plan = compute_plan(spec, converged_state(spec), renderer(spec))
    assert plan.steps == () and plan.problems == () and not plan.has_changes
    assert "no changes" in format_plan(plan)


def test_killed_after_registration_before_copies(spec):
    state = converged_state(spec)
    for region in COPIES:
        state = set_region(state, DEV, region, images=(), ssm={})
    base = state.build(DEV).region(BASE)
    bare = replace(base.images[0], launch_permissions=frozenset())
    state = set_region(state, DEV, BASE, images=(bare,), ssm={})
    plan = compute_plan(spec, state, renderer(spec))
    assert not plan.problems
    got = stages(plan)
    assert ("upload", BASE, "create") not in got
    assert [g for g in got if g[0] in ("copy", "grant")] == (
        [("copy", r, "create") for r in COPIES] + [("grant", r, "update") for r in REGIONS])
    copy = next(s for s in plan.steps if s.stage is Stage.COPY)
    assert bare.image_id in copy.summary
    assert ("promote", BASE, "update") in got and ("validate-repo", None, "check") in got
    assert all(s.build == DEV for s in plan.steps)  # the other builds are done


def test_killed_mid_upload_deletes_the_orphan_snapshots_and_uploads_again(spec):
    state = empty_state(spec)
    state = set_region(state, DEV, BASE, orphan_snapshots=("snap-b", "snap-a"))
    plan = compute_plan(spec, state, renderer(spec))
    first = [s for s in plan.steps if s.build == DEV][:2]
    assert [(s.stage, s.action) for s in first] == [(Stage.UPLOAD, "delete"),
                                                    (Stage.UPLOAD, "create")]
    assert first[0].details == ("snap-a", "snap-b")


def test_copies_in_progress_or_failed(spec):
    state = converged_state(spec)
    east, europe = COPIES
    img = state.build(DEV).region(east).images[0]
    state = set_region(state, DEV, east, images=(replace(img, state="pending"),))
    img = state.build(DEV).region(europe).images[0]
    state = set_region(state, DEV, europe, images=(replace(img, state="failed"),))
    got = stages(compute_plan(spec, state, renderer(spec)))
    assert ("copy", east, "wait") in got and ("copy", europe, "replace") in got
    # the failed copy's parameters name an image that will be replaced: values unknown
    assert ("ssm", europe, "update") in got


def test_killed_midway_through_ssm_writes(spec):
    state = converged_state(spec)
    params = dict(state.build(DEV).region(BASE).ssm)
    missing = f"{PREFIX}/aws-dev/x86_64/1.0.0/image_version"
    latest = f"{PREFIX}/aws-dev/x86_64/latest/image_id"
    params[missing] = None
    params[latest] = "ami-0123456789abcdef0"  # still the previous release's
    state = set_region(state, DEV, BASE, ssm=params)
    plan = compute_plan(spec, state, renderer(spec))
    assert not plan.problems
    assert stages(plan) == (
        [("validate-ami", r, "check") for r in REGIONS] + [("ssm", BASE, "update")]
        + [("validate-ssm", r, "check") for r in REGIONS]
        + [("validate-repo", None, "check"), ("promote", BASE, "update")]
        + [("validate-promote", r, "check") for r in REGIONS])
    ssm = next(s for s in plan.steps if s.stage is Stage.SSM)
    assert ssm.details == (f"+ {missing} = 1.0.0",)


def test_killed_midway_through_the_repo_publish(spec):
    state = converged_state(spec)
    build = state.build(K8S_ARM)
    state = replace(state, builds={**state.builds, K8S_ARM: replace(
        build, repo=RepoState(1699999999, "cd" * 32))})  # timestamp.json not yet replaced
    plan = compute_plan(spec, state, renderer(spec))
    assert stages(plan, K8S_ARM) == [("repo", None, "create"), ("publish-repo", None, "create"),
                                     ("validate-repo", None, "check")]
    assert stages(plan, DEV) == []


def test_waves_that_differ_are_republished(spec):
    state = converged_state(spec)
    build = state.build(DEV)
    state = replace(state, builds={**state.builds, DEV: replace(
        build, repo=replace(build.repo, update_waves={0: "2020-01-01T00:00:00Z"}))})
    assert stages(compute_plan(spec, state, renderer(spec))) == [
        ("repo", None, "update"), ("publish-repo", None, "update"),
        ("validate-repo", None, "check")]


def test_launch_permissions_converge_to_exactly_the_releases(spec):
    state = converged_state(spec)
    img = state.build(DEV).region(BASE).images[0]
    public = LaunchPermission("group", "all")
    state = set_region(state, DEV, BASE, images=(
        replace(img, launch_permissions=frozenset({public})),))
    plan = compute_plan(spec, state, renderer(spec))
    grant = next(s for s in plan.steps if s.stage is Stage.GRANT)
    assert grant.region == BASE and grant.details == (f"+ {GRANT}", "- group all")
    assert [s.stage for s in plan.changes] == [Stage.GRANT]


# --- problems --------------------------------------------------------------------------------


def test_problems_block_their_region_and_say_what_to_do(spec):
    state = converged_state(spec)
    east, europe = COPIES
    img = state.build(DEV).region(east).images[0]
    state = set_region(state, DEV, east, images=(img, replace(img, image_id="ami-0ffff")))
    state = set_region(state, DEV, europe, error="AccessDenied: not authorized")
    other = replace(state.build(DEV).region(BASE).images[0], source_digest="someone-else")
    state = set_region(state, K8S_ARM, BASE, images=(other,))
    plan = compute_plan(spec, state, renderer(spec))
    messages = {(p.build, p.region): p.message for p in plan.problems}
    assert "2 AMIs are named 'aws-dev-x86_64-v1.0.0'" in messages[(DEV, east)]
    assert "deregister the extra ones" in messages[(DEV, east)]
    assert "cannot observe eu-west-1: AccessDenied" in messages[(DEV, europe)]
    assert "made from other images" in messages[(K8S_ARM, BASE)]
    assert not any(s.region in (east, europe) and s.build == DEV and not s.is_check
                   for s in plan.steps)
    text = format_plan(plan)
    assert "3 problem(s), marked '!': apply refuses until they are fixed." in text
    block = text[text.index("aws-dev/x86_64\n"):text.index("aws-k8s-1.31/aarch64\n")]
    assert f"  ! {europe}: cannot observe {europe}: AccessDenied" in block
    assert f"  ! {BASE}: AMI" in text[text.index("aws-k8s-1.31/aarch64\n"):]


def test_failed_base_image_and_changed_published_bytes_are_problems(spec):
    state = converged_state(spec)
    img = state.build(DEV).region(BASE).images[0]
    state = set_region(state, DEV, BASE, images=(replace(img, state="failed"),))
    build = state.build(K8S_ARM)
    repo = build.repo
    name = repo.update_images["root"]
    state = replace(state, builds={**state.builds, K8S_ARM: replace(build, repo=replace(
        repo, targets={**repo.targets, name: TargetInfo(1, "00" * 32)}))})
    problems = compute_plan(spec, state, renderer(spec)).problems
    assert any(p.build == DEV and "is failed; deregister it (aws ec2 deregister-image --region "
               f"{BASE} --image-id {img.image_id})" in p.message for p in problems)
    assert any(p.build == K8S_ARM and "has another root image" in p.message
               and "release a new version" in p.message for p in problems)


def test_a_versions_parameter_with_another_value_needs_allow_clobber(spec):
    state = converged_state(spec)
    params = dict(state.build(DEV).region(BASE).ssm)
    name = f"{PREFIX}/aws-dev/x86_64/1.0.0/image_id"
    params[name] = "ami-0aaaaaaaaaaaaaaaa"
    state = set_region(state, DEV, BASE, ssm=params)
    plan = compute_plan(spec, state, renderer(spec))
    assert any(name in p.message and "ssm.allow_clobber" in p.message for p in plan.problems)
    lenient = replace(spec, ssm=replace(spec.ssm, allow_clobber=True))
    plan = compute_plan(lenient, state, renderer(lenient))
    assert not plan.problems and ("ssm", BASE, "update") in stages(plan)


def test_templates_that_cannot_be_promoted_fail_the_plan_naming_the_field(spec, tmp_path):
    bad = tmp_path / "ssm.toml"
    bad.write_text('[[parameter]]\nname = "{variant}/{image_id}"\nvalue = "{image_id}"\n')
    broken = replace(spec, ssm=replace(spec.ssm, templates=bad))
    with pytest.raises(ReleaseFileError) as err:
        release_renderer(broken, PREFIX)
    assert str(err.value).startswith(f"{spec.source}:{spec.lines['ssm.templates']}: "
                                     "'ssm.templates': ")
    assert "names must be renderable" in str(err.value)
    assert release_renderer(spec, PREFIX)(DEV, BASE, None).promoted  # the sample's are fine


# --- order and scope ---------------------------------------------------------------------------


def test_steps_come_after_everything_they_depend_on(spec):
    plan = compute_plan(spec, empty_state(spec), renderer(spec))
    deps = plan.dependencies()
    position = {s.id: i for i, s in enumerate(plan.steps)}
    for s in plan.steps:
        assert all(position[d] < position[s.id] for d in deps[s.id])
    promote = next(s for s in plan.steps if s.build == DEV and s.stage is Stage.PROMOTE)
    needed = {f"{DEV}:validate-ami:{r}" for r in REGIONS} | {
        f"{DEV}:validate-ssm:{r}" for r in REGIONS} | {f"{DEV}:validate-repo:-"}
    assert needed <= deps[promote.id]
    assert all(d.startswith(f"{DEV}:") for d in deps[promote.id])
    repo = next(s for s in plan.steps if s.build == DEV and s.stage is Stage.REPO)
    assert deps[repo.id] == frozenset()  # the repo does not wait for the AMIs


def test_until_keeps_a_stage_and_what_it_needs(spec):
    plan = compute_plan(spec, empty_state(spec), renderer(spec)).until(Stage.VALIDATE_AMI)
    assert {s.stage for s in plan.steps} == {Stage.UPLOAD, Stage.COPY, Stage.GRANT,
                                             Stage.VALIDATE_AMI}


# --- plan files ------------------------------------------------------------------------------


def test_plan_json_round_trips(spec):
    plan = compute_plan(spec, empty_state(spec), renderer(spec), created="2026-11-30T10:00:00Z")
    text = plan_to_json(plan)
    again = plan_from_json(text, "plan.json")
    assert again == plan and again.observed == plan.observed
    assert plan_to_json(again) == text


@pytest.mark.parametrize(("text", "words"), [
    ("{not json", "not JSON (line 1"),
    ('{"format": "other"}', "not a release plan"),
    ('{"format": "pubsys-release-plan", "format_version": 99}', "plan format 99"),
    ('{"format": "pubsys-release-plan", "format_version": 1, "steps": [{}]}', "damaged plan"),
])
def test_bad_plan_files_are_refused(text, words):
    with pytest.raises(PlanFileError, match="plan.json: " + words.replace("(", r"\(")):
        plan_from_json(text, "plan.json")


def test_saved_plan_is_refused_after_the_world_changed(spec):
    state = converged_state(spec)
    img = state.build(DEV).region(COPIES[0]).images[0]
    pending = set_region(state, DEV, COPIES[0], images=(replace(img, state="pending"),))
    plan = plan_from_json(plan_to_json(compute_plan(spec, pending, renderer(spec))), "p.json")
    check_plan_current(plan, spec, pending, "p.json")
    check_plan_current(plan, spec, state, "p.json")  # pending -> available is progress
    changed = set_region(state, DEV, COPIES[1], images=(), ssm={})
    with pytest.raises(StalePlan, match="the world changed") as err:
        check_plan_current(plan, spec, changed, "p.json")
    assert f"builds[{DEV}].regions.{COPIES[1]}.images" in str(err.value)
    other = replace(spec, amis=replace(spec.amis, copy_regions=COPIES[:1]))
    with pytest.raises(StalePlan, match="another release"):
        check_plan_current(plan, other, pending, "p.json")


def test_state_round_trips_with_its_fingerprint(spec):
    state = converged_state(spec)
    again = ObservedState.from_dict(state.to_dict())
    assert again.fingerprint() == state.fingerprint() and again.to_dict() == state.to_dict()


# --- text ------------------------------------------------------------------------------------


def test_text_plan_groups_by_variant_arch_then_region(spec):
    state = converged_state(spec)
    state = set_region(state, DEV, COPIES[1], images=(), ssm={})
    text = format_plan(compute_plan(spec, state, renderer(spec)))
    lines = text.splitlines()
    assert lines[0].startswith("Release 1.0.0: 4 change(s) and 10 check(s) in 1 ")
    assert lines[2] == "aws-dev/x86_64"
    groups = [ln.strip() for ln in lines if ln.startswith("  ") and not ln.startswith("    ")]
    assert groups == [f"{BASE} (base)", *COPIES, "repo"]
    assert any(ln.strip().startswith("+ copy") and "as 'aws-dev-x86_64-v1.0.0'" in ln
               for ln in lines)
    assert any(ln.strip() == f"+ userid {SHARED_WITH}" for ln in lines)
    assert any(ln.strip().startswith("? validate-repo") for ln in lines)

"""SSM parameter templates: loading, filters, rendering, prefix joining (pure, no AWS)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, shared_fixture

from pubsys.errors import PolicyError
from pubsys.ssm.templates import (
    SsmImage,
    join_ssm_name,
    load_ssm_templates,
    parse_ssm_templates,
    render_ssm_names,
    render_ssm_parameters,
    ssm_prefix_path,
)

DEFAULTS = ROOT / "policies" / "ssm" / "defaults.toml"
IMAGES = {"us-west-2": SsmImage("ami-0123456789abcdef0", "br-1.0.0"),
          "eu-west-1": SsmImage("ami-0fedcba9876543210", "br-1.0.0")}


def render(data: dict, prefix: str = "/p", variant: str = "aws-k8s-1.31", arch: str = "x86_64",
           version: str = "1.0.0", images: dict | None = None) -> dict[tuple[str, str], str]:
    templates = parse_ssm_templates(data, "t.toml").for_build(variant, arch)
    return {(p.region, p.name): p.value for p in render_ssm_parameters(
        templates, prefix=prefix, variant=variant, arch=arch, image_version=version,
        images=images or IMAGES)}


def test_default_templates_render_image_id_and_version_per_region():
    templates = load_ssm_templates(DEFAULTS).for_build("aws-k8s-1.31", "amd64")
    got = {(p.region, p.name): p.value for p in render_ssm_parameters(
        templates, prefix="/pubsys", variant="aws-k8s-1.31", arch="amd64",
        image_version="1.2.3", images=IMAGES)}
    assert got == {
        ("us-west-2", "/pubsys/aws-k8s-1.31/x86_64/1.2.3/image_id"): "ami-0123456789abcdef0",
        ("us-west-2", "/pubsys/aws-k8s-1.31/x86_64/1.2.3/image_version"): "1.2.3",
        ("eu-west-1", "/pubsys/aws-k8s-1.31/x86_64/1.2.3/image_id"): "ami-0fedcba9876543210",
        ("eu-west-1", "/pubsys/aws-k8s-1.31/x86_64/1.2.3/image_version"): "1.2.3",
    }


def test_shipped_defaults_match_the_real_world_template_file():
    real = load_ssm_templates(shared_fixture("policies", "ssm-defaults.toml"))
    ours = load_ssm_templates(DEFAULTS)
    assert [(t.name, t.value, t.variants, t.arches) for t in real.templates] == \
        [(t.name, t.value, t.variants, t.arches) for t in ours.templates]


def test_arch_renders_as_the_ec2_name():
    got = render({"parameter": [{"name": "{arch}/id", "value": "{image_id}"}]},
                 arch="aarch64", images={"us-west-2": IMAGES["us-west-2"]})
    assert list(got) == [("us-west-2", "/p/arm64/id")]


def test_every_variable_renders():
    got = render({"parameter": [{
        "name": "{variant}/{arch}/{image_version}/{region}/x",
        "value": "{image_id} {image_name} {image_version} {region} {variant} {arch}"}]},
        images={"eu-west-1": IMAGES["eu-west-1"]})
    assert got == {("eu-west-1", "/p/aws-k8s-1.31/x86_64/1.0.0/eu-west-1/x"):
                   "ami-0fedcba9876543210 br-1.0.0 1.0.0 eu-west-1 aws-k8s-1.31 x86_64"}


def test_variant_and_arch_filters_keep_only_matching_templates():
    data = {"parameter": [
        {"name": "all", "value": "a"},
        {"name": "k8s", "value": "k", "variant": ["aws-k8s-1.31"]},
        {"name": "ecs", "value": "e", "variant": ["aws-ecs-2"]},
        {"name": "arm", "value": "r", "arch": ["aarch64"]},  # operator's name, EC2's arm64
        {"name": "x86", "value": "x", "arch": ["x86_64"], "variant": ["aws-k8s-1.31"]},
    ]}
    names = {n for _, n in render(data, arch="arm64")}
    assert names == {"/p/all", "/p/k8s", "/p/arm"}
    names = {n for _, n in render(data, variant="aws-ecs-2", arch="amd64")}
    assert names == {"/p/all", "/p/ecs"}


@pytest.mark.parametrize("prefix,name,expected", [
    ("/pubsys", "a/b", "/pubsys/a/b"),
    ("/pubsys/", "a/b", "/pubsys/a/b"),
    ("/pubsys/", "/a/b", "/pubsys/a/b"),
    ("/pubsys", "/a/b", "/pubsys/a/b"),
    ("", "a/b", "/a/b"),
    ("", "/a/b", "/a/b"),
    ("/", "a", "/a"),
    ("/aws/service/bottlerocket", "x", "/aws/service/bottlerocket/x"),
])
def test_prefix_is_joined_with_exactly_one_slash(prefix, name, expected):
    assert join_ssm_name(prefix, name) == expected


def test_prefix_without_leading_slash_is_an_error_naming_the_setting():
    with pytest.raises(PolicyError, match="aws.ssm_prefix 'pubsys' must start with '/'"):
        ssm_prefix_path("pubsys")


def test_unknown_variable_is_an_error_naming_file_entry_and_variable():
    with pytest.raises(PolicyError) as e:
        parse_ssm_templates({"parameter": [{"name": "ok", "value": "v"},
                                           {"name": "{varient}/x", "value": "v"}]}, "t.toml")
    assert "t.toml" in str(e.value) and "parameter[1].name" in str(e.value)
    assert "{varient}" in str(e.value) and "{variant}" in str(e.value)


@pytest.mark.parametrize("text", ["{image_id:>20}", "{image_id!r}", "{image_id.x}", "{0}", "{}"])
def test_format_tricks_are_not_variables(text):
    with pytest.raises(PolicyError, match="unknown variable"):
        parse_ssm_templates({"parameter": [{"name": "n", "value": text}]}, "t.toml")


def test_malformed_braces_are_an_error():
    with pytest.raises(PolicyError, match="malformed template"):
        parse_ssm_templates({"parameter": [{"name": "{variant", "value": "v"}]}, "t.toml")


@pytest.mark.parametrize("entry,message", [
    ({"value": "v"}, "'parameter[0].name' is required"),
    ({"name": "", "value": "v"}, "'parameter[0].name' is required"),
    ({"name": "n", "value": "  "}, "'parameter[0].value' is required"),
    ({"name": "n", "value": "v", "variant": "aws-k8s-1.31"},
     "'parameter[0].variant' must be an array"),
    ({"name": "n", "value": "v", "arch": ["sparc"]}, "'parameter[0].arch': unknown arch 'sparc'"),
    ({"name": "n", "value": "v", "type": "String"}, "unknown key 'parameter[0].type'"),
])
def test_bad_entries_are_errors_naming_the_key(entry, message):
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_ssm_templates({"parameter": [entry]}, "t.toml")


def test_file_without_parameters_is_an_error(tmp_path: Path):
    path = tmp_path / "empty.toml"
    path.write_text("# nothing\n")
    with pytest.raises(PolicyError, match=r"empty.toml: expected at least one \[\[parameter\]\]"):
        load_ssm_templates(path)


def test_name_rendering_to_nothing_is_an_error():
    with pytest.raises(PolicyError, match="renders to an empty name"):
        render({"parameter": [{"name": "/{image_name}/", "value": "v"}]},
               images={"us-west-2": SsmImage("ami-0123456789abcdef0", "")})


def test_name_with_characters_ssm_rejects_is_an_error():
    with pytest.raises(PolicyError, match="may only hold letters"):
        render({"parameter": [{"name": "{image_name}", "value": "v"}]},
               images={"us-west-2": SsmImage("ami-0123456789abcdef0", "my image (1)")})


def test_value_rendering_to_nothing_is_an_error():
    with pytest.raises(PolicyError, match="parameter\\[0\\].value.*empty value in us-west-2"):
        render({"parameter": [{"name": "n", "value": "{image_name}"}]},
               images={"us-west-2": SsmImage("ami-0123456789abcdef0", "")})


def test_two_templates_rendering_the_same_name_is_an_error_naming_both():
    data = {"parameter": [{"name": "{variant}/id", "value": "{image_id}"},
                          {"name": "aws-k8s-1.31/id", "value": "{image_name}"}]}
    with pytest.raises(PolicyError) as e:
        render(data)
    assert "'parameter[0]' and 'parameter[1]' both render '/p/aws-k8s-1.31/id'" in str(e.value)


def test_same_name_in_different_regions_is_fine():
    got = render({"parameter": [{"name": "id", "value": "{image_id}"}]})
    assert set(got) == {("us-west-2", "/p/id"), ("eu-west-1", "/p/id")}


def test_promotion_names_render_without_an_image():
    templates = load_ssm_templates(DEFAULTS).for_build("v", "arm64")
    names = render_ssm_names(templates, prefix="/p", variant="v", arch="arm64",
                             image_version="latest", regions=["us-west-2", "eu-west-1"])
    assert names == {r: {0: "/p/v/arm64/latest/image_id", 1: "/p/v/arm64/latest/image_version"}
                     for r in ("us-west-2", "eu-west-1")}


def test_promotion_refuses_names_that_need_the_image():
    templates = parse_ssm_templates(
        {"parameter": [{"name": "by-id/{image_id}", "value": "{image_version}"}]}, "t.toml")
    with pytest.raises(PolicyError, match=r"uses \{image_id\}"):
        render_ssm_names(templates, prefix="/p", variant="v", arch="x86_64",
                         image_version="latest", regions=["us-west-2"])

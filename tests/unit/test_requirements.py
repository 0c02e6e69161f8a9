"""The lock files: production pins no test tool, and the dev lock runs the tests on production's versions."""
import re

import pytest

from shared.config import REPO_ROOT

TEST_TOOLS = ("pytest", "schemathesis", "hypothesis", "aiosmtpd", "openapi-spec-validator", "jsonschema", "playwright",
              "kubernetes-validate")


def pins(name):
    lines = (REPO_ROOT / name).read_text().splitlines()
    pinned = [re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line) for line in lines if line and not line.startswith("#")]
    assert all(pinned), f"{name}: every line is name==version"
    return {match[1].lower().replace("_", "-"): match[2] for match in pinned}


def test_production_pins_no_test_tool():
    production = pins("requirements.lock")
    assert not [tool for tool in TEST_TOOLS if tool in production]


def test_the_dev_lock_holds_every_production_pin_at_the_same_version():
    production, development = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: development.get(name) for name in production} == production
    assert all(tool in development for tool in TEST_TOOLS)


@pytest.mark.parametrize("listed", ["requirements.in", "requirements-dev.in"])
def test_every_direct_dependency_is_pinned_in_its_lock(listed):
    lock = pins(listed.replace(".in", ".lock"))
    for line in (REPO_ROOT / listed).read_text().splitlines():
        if line.startswith(("#", "-r")) or not line.strip():
            continue
        name = re.match(r"[A-Za-z0-9_.-]+", line)[0].lower().replace("_", "-")
        assert name in lock, f"{listed}: {name} is not in its lock file"


def test_the_container_image_installs_production_only():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock /tmp/requirements.lock" in dockerfile
    assert "pip install --no-compile -r /tmp/requirements.lock" in dockerfile
    assert "requirements-dev" not in dockerfile

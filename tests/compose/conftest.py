"""The compose test's stacks: docker-compose.yml started with podman on images built from Debian
packages (scripts/build-debian-images), once per storage backend, removed at the end."""
import os
import shutil
import uuid

import pytest

from tests.compose.stack import REPO_ROOT, ComposeStack, podman_compose_installed, run
from tests.support.processes import free_port

# Not started, and why: said by the test that would have checked them (tests/compose/test_compose_stack.py).
NOT_STARTED = {
    "jaeger": ("no registry is reachable to pull jaegertracing/all-in-one and Debian has no Jaeger package; "
               "the tests' OTLP receiver stands in under its name (tests/compose/offline.yml) and the "
               "traces it receives are checked, Jaeger's UI is not"),
    "elk (elasticsearch, logstash, kibana, filebeat)":
        "no registry is reachable to pull the Elastic images and Debian packages none of them",
}
# Infrastructure started (and healthy) before the services, as Compose's `service_healthy` would.
INFRASTRUCTURE = ["rabbitmq", "postgres", "redis", "mailpit", "prometheus"]


def _missing_requirement(config):
    asked = os.environ.get("IMAGEPROC_COMPOSE_TEST") == "1" or any(
        str(arg).replace(os.sep, "/").startswith("tests/compose") for arg in config.args
    ) or (config.option.markexpr or "").strip() == "compose"
    if not asked:
        return ("the compose test builds its images from nothing and runs two stacks (~5 min): it runs "
                "alongside the others in a whole `scripts/test` as root, or alone with `scripts/test tests/compose`")
    if os.geteuid() != 0:
        return ("the compose test builds images and runs containers with podman as root: run it as root "
                "(scripts/test installs podman, runc and debootstrap then; CI does)")
    for tool in ("podman", "runc", "debootstrap"):
        if not shutil.which(tool):
            return f"{tool} is missing (scripts/test installs podman, runc and debootstrap when run as root)"
    if not podman_compose_installed():
        return "podman-compose is missing (requirements-dev.lock has it: scripts/bootstrap)"
    return None


def _is_compose_test(item):
    return "tests/compose/" in str(item.fspath).replace(os.sep, "/")


def pytest_collection_modifyitems(config, items):
    """The compose tests run last, after everything quicker."""
    compose_tests = [item for item in items if _is_compose_test(item)]
    items[:] = [item for item in items if not _is_compose_test(item)] + compose_tests
    reason = _missing_requirement(config)
    if reason:
        for item in compose_tests:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def debian_images(tmp_path_factory):
    """{variable: image} of the infrastructure images and BASE_IMAGE, built (or found in podman's
    cache) by the same script an operator without a registry runs."""
    env_file = tmp_path_factory.mktemp("compose") / "debian-images.env"
    run([str(REPO_ROOT / "scripts/build-debian-images"), str(env_file)], timeout=1800)
    values = {}
    for line in env_file.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def start_stack(tmp_path_factory, debian_images, storage):
    """A stack of its own project name and free ports; `storage` "file" or "s3"."""
    project = f"imageproc-test-{storage}-{uuid.uuid4().hex[:6]}"
    ports = {name: free_port() for name in
             ("GATEWAY_PORT", "MAILPIT_PORT", "PROMETHEUS_PORT", "RABBITMQ_MANAGEMENT_PORT", "JAEGER_UI_PORT")}
    settings = {**debian_images, **ports, "POSTGRES_PASSWORD": uuid.uuid4().hex}
    profiles = []
    start_first = list(INFRASTRUCTURE)
    if storage == "s3":
        settings["STORAGE_URL"] = "s3://imageproc"
        profiles.append("s3")
        start_first.append("seaweedfs")
    env_file = tmp_path_factory.mktemp(project) / "compose.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    stack = ComposeStack(project, env_file,
                         files=[REPO_ROOT / "docker-compose.yml", REPO_ROOT / "tests/compose/offline.yml"],
                         profiles=profiles)
    stack.ports = ports
    stack.storage = storage
    stack.base_url = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
    stack.mailpit_url = f"http://127.0.0.1:{ports['MAILPIT_PORT']}"
    try:
        stack.build()
        stack.up(start_first)
    except BaseException:
        print(stack.logs())
        stack.remove()
        raise
    return stack


@pytest.fixture(scope="module", params=["file", "s3"])
def stack(request, tmp_path_factory, debian_images):
    started = start_stack(tmp_path_factory, debian_images, request.param)
    try:
        yield started
    finally:
        if request.session.testsfailed:
            print(started.logs())
        started.remove()

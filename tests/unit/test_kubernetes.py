"""deploy/kubernetes/ is valid Kubernetes and agrees with the settings table, Compose and the code.

No cluster is needed: every resource the kustomization lists is validated against the Kubernetes
API schemas that `kubernetes-validate` ships (strict: an unknown field is an error), loaded here
file by file since it does not expand kustomize. What a schema cannot see is checked by hand: the
services run as Compose runs them, probes and grace periods fit what the services do, every
variable a pod gets is a real setting, and every setting a service reads (found from its code) is
set in the cluster or has a default that works there.
"""
import ast
import os
import re
import shlex
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from shared.config import REPO_ROOT
from shared.settings import SETTINGS
from test_compose import NAMEKO_SERVICES, ROUTE_CASES, _PlainLoader, environment_of, plain_yaml

KUBERNETES_DIR = REPO_ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = KUBERNETES_DIR / "kustomization.yaml"
SECRET_NAME = "imageproc-secrets"
APP_IMAGE = "imageproc-app"
# The oldest Kubernetes the manifests are meant for, and the newest the validator knows.
OLDEST_KUBERNETES = "1.29"
KUBERNETES_VERSIONS = (OLDEST_KUBERNETES, all_versions()[-1])

# Deployment name -> the Nameko service it runs (test_compose.NAMEKO_SERVICES: module:Class, port).
DEPLOYMENTS = {name.replace("_", "-"): name for name in NAMEKO_SERVICES}

# Variables a pod may get that are not in shared/settings.py: those the AWS SDK and OpenTelemetry
# read themselves (README, "Image storage" and "Running it in production").
SDK_VARIABLES = {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
SDK_PREFIXES = ("OTEL_",)

# Settings whose empty default is the wrong choice in a cluster: the object store is the storage
# backend (no shared disk), mail goes out over SMTP (no outbox folder to read), the gateway
# verifies media URLs with the key upload_service signs them with (it has no JWT private key), and
# links in emails must not point at the local gateway (http://127.0.0.1:GATEWAY_PORT).
REQUIRED_IN_A_CLUSTER = {"STORAGE_URL", "SMTP_URL", "MEDIA_SIGNING_KEY", "PUBLIC_BASE_URL"}
# Settings a service reads only when another is empty, which the cluster sets.
FALLBACK_OF = {"STORAGE_DIR": "STORAGE_URL", "MAIL_OUTBOX_DIR": "SMTP_URL",
               "JWT_PRIVATE_KEY_FILE@upload_service": "MEDIA_SIGNING_KEY"}


def load_documents(path):
    return [document for document in yaml.load_all(path.read_text(), Loader=_PlainLoader) if document]


@pytest.fixture(scope="module")
def kustomization():
    return plain_yaml(KUSTOMIZATION.read_text())


def listed_resources():
    return [(path, document) for path in (KUBERNETES_DIR / name for name in plain_yaml(KUSTOMIZATION.read_text())["resources"])
            for document in load_documents(path)]


RESOURCES = listed_resources()


@pytest.fixture(scope="module")
def resources():
    return {(document["kind"], document["metadata"]["name"]): document for _, document in RESOURCES}


@pytest.fixture(scope="module")
def deployments(resources):
    return {name: document for (kind, name), document in resources.items() if kind == "Deployment"}


def read_env_file(path):
    """NAME=value lines as kustomize's configMapGenerator `envs:` reads them."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


@pytest.fixture(scope="module")
def config_maps(kustomization):
    return {generator["name"]: {name: value for env in generator["envs"] for name, value in
                                read_env_file(KUBERNETES_DIR / env).items()}
            for generator in kustomization["configMapGenerator"]}


def containers_of(deployment, init=True):
    spec = deployment["spec"]["template"]["spec"]
    return spec["containers"] + (spec.get("initContainers", []) if init else [])


def environment(container, config_maps):
    """{name: value} of a container: its ConfigMaps, then its own env; a Secret's value is
    `secret:<key>`."""
    values = {}
    for source in container.get("envFrom", []):
        values.update(config_maps[source["configMapRef"]["name"]])
    for variable in container.get("env", []):
        if "value" in variable:
            values[variable["name"]] = variable["value"]
        else:
            reference = variable["valueFrom"]["secretKeyRef"]
            assert reference["name"] == SECRET_NAME, variable
            values[variable["name"]] = f"secret:{reference['key']}"
    return values


def main_container(deployment):
    return deployment["spec"]["template"]["spec"]["containers"][0]


# ---- The kustomization and the schemas -----------------------------------------------------------

def test_the_kustomization_lists_every_manifest_and_env_file(kustomization):
    manifests = {path.name for path in KUBERNETES_DIR.glob("*.yaml")} - {KUSTOMIZATION.name}
    assert set(kustomization["resources"]) == manifests
    env_files = {env for generator in kustomization["configMapGenerator"] for env in generator["envs"]}
    assert env_files == {path.name for path in KUBERNETES_DIR.glob("*.env")}
    assert sorted(path.name for path in KUBERNETES_DIR.iterdir()) == sorted(manifests | env_files | {KUSTOMIZATION.name})


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path, resource", RESOURCES,
                         ids=[f"{path.name}:{doc['kind']}/{doc['metadata']['name']}" for path, doc in RESOURCES])
def test_every_resource_matches_the_kubernetes_api_schema(path, resource, version):
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{path.name}: {'.'.join(map(str, error.path))}: {error.message}")


def test_the_app_image_is_one_kustomize_images_entry(kustomization, deployments):
    images = {entry["name"]: entry for entry in kustomization["images"]}
    assert images[APP_IMAGE].get("newTag") and images[APP_IMAGE].get("newName")
    used = {container["image"] for deployment in deployments.values() for container in containers_of(deployment)}
    assert used == set(images), "every image is set in one place, by the kustomization"
    for name in DEPLOYMENTS:
        assert {container["image"] for container in containers_of(deployments[name])} == {APP_IMAGE}, name


def test_the_configmaps_hold_no_secret(config_maps):
    for name, values in config_maps.items():
        for variable, value in values.items():
            assert not re.search(r"KEY|SECRET|PASSWORD|TOKEN", variable), f"{name}: {variable} belongs in the Secret"
            assert not re.search(r"://[^/@\s]*@", value), f"{name}: {variable} carries credentials"
    for variable in ("AMQP_URI", "DATABASE_URL", "REDIS_URL", "SMTP_URL"):  # they may carry a password
        assert not any(variable in values for values in config_maps.values()), variable


# ---- The services, as Compose runs them ----------------------------------------------------------

@pytest.fixture(scope="module")
def compose_services():
    return plain_yaml((REPO_ROOT / "docker-compose.yml").read_text())["services"]


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_each_deployment_runs_its_service_as_compose_does(name, deployments, compose_services, config_maps):
    service = DEPLOYMENTS[name]
    module_class, port = NAMEKO_SERVICES[service]
    container = main_container(deployments[name])
    assert container["command"] == compose_services[service]["command"]
    assert container["command"][-1] == module_class
    assert [p["containerPort"] for p in container["ports"]] == [port]
    ours, theirs = environment(container, config_maps), environment_of(compose_services[service])
    for variable in ("WEB_SERVER_ADDRESS", "OTEL_SERVICE_NAME", "MAX_WORKERS"):
        assert ours.get(variable) == theirs.get(variable), f"{name}: {variable}"


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_migrations_run_before_the_services_that_own_tables(name, deployments):
    from shared.migrate import MIGRATED_SERVICES

    service = DEPLOYMENTS[name]
    init = deployments[name]["spec"]["template"]["spec"].get("initContainers", [])
    if service in MIGRATED_SERVICES:
        assert [container["command"] for container in init] == [["python", "-m", "shared.migrate", service]]
        # What the compose `migrate` one-shot runs, one service at a time.
        assert compose_command("migrate") == ["python", "-m", "shared.migrate"]
    else:
        assert not init, name


def compose_command(name):
    return plain_yaml((REPO_ROOT / "docker-compose.yml").read_text())["services"][name]["command"]


def test_each_deployment_has_a_service_on_its_port(resources, deployments):
    for name, deployment in deployments.items():
        service = resources[("Service", name)]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert service["spec"]["selector"].items() <= labels.items(), name
        port_names = {port["name"] for port in main_container(deployment)["ports"]}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names, name


def test_the_gateway_reaches_each_service_by_its_kubernetes_name(resources, deployments, config_maps):
    gateway = config_maps["imageproc-gateway"]
    assert [port["containerPort"] for port in main_container(deployments["gateway"])["ports"]] == [int(gateway["GATEWAY_PORT"])]
    assert gateway["GATEWAY_BIND"] == "0.0.0.0"
    for name, service in DEPLOYMENTS.items():
        host, port = gateway[f"{service.split('_')[0].upper()}_SERVICE_ADDR"].split(":")
        assert host == name and int(port) == resources[("Service", name)]["spec"]["ports"][0]["port"]


# ---- Probes, termination, resources, security ------------------------------------------------------

@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_ready_is_the_services_healthz_and_alive_does_not_depend_on_others(name, deployments):
    container = main_container(deployments[name])
    readiness = container["readinessProbe"]["httpGet"]
    assert readiness["path"] == "/healthz" and readiness["port"] == "http"
    # /healthz is 503 while a dependency is down (shared/health.py): restarting every replica for a
    # database outage would not help, so liveness only asks whether the process takes connections.
    assert container["livenessProbe"] == {**container["livenessProbe"], "tcpSocket": {"port": "http"}}
    assert "httpGet" not in container["livenessProbe"]
    assert "startupProbe" in container


def test_the_gateways_probes_are_nginx_alone(deployments):
    nginx = main_container(deployments["gateway"])
    assert nginx["readinessProbe"]["httpGet"]["path"] == nginx["livenessProbe"]["httpGet"]["path"] == "/healthz/gateway"
    assert "location = /healthz/gateway" in (REPO_ROOT / "nginx.conf").read_text()


def grace_after_pre_stop(deployment):
    container = main_container(deployment)
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_stop = int(command[1]) if command[:1] == ["sleep"] else 0
    return deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] - pre_stop


def effective_setting(name, values):
    return SETTINGS[name].parse(values.get(name))


def test_process_service_outlives_its_longest_pipeline(deployments, config_maps):
    values = environment(main_container(deployments["process-service"]), config_maps)
    longest = effective_setting("PROCESSING_TIMEOUT_SECONDS", values)
    # The pipeline's deadline, then its image marked failed and its message acknowledged.
    assert grace_after_pre_stop(deployments["process-service"]) >= longest + 30


def test_long_polls_end_before_their_pods_are_killed(deployments, config_maps):
    for name in ("upload-service", "gateway"):
        values = environment(main_container(deployments[name]), config_maps)
        longest = effective_setting("LONG_POLL_MAX_SECONDS", values)
        assert grace_after_pre_stop(deployments[name]) > longest + 15, name


def test_process_service_scales_on_cpu(resources, deployments):
    autoscaler = resources[("HorizontalPodAutoscaler", "process-service")]
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "process-service"}
    assert [metric["resource"]["name"] for metric in autoscaler["spec"]["metrics"]] == ["cpu"]
    assert 1 < autoscaler["spec"]["minReplicas"] < autoscaler["spec"]["maxReplicas"]
    # The autoscaler owns the count: a `replicas:` here would reset it on every apply.
    assert "replicas" not in deployments["process-service"]["spec"]
    assert main_container(deployments["process-service"])["resources"]["requests"]["cpu"]
    autoscaled = {resource["spec"]["scaleTargetRef"]["name"] for (kind, _), resource in resources.items()
                  if kind == "HorizontalPodAutoscaler"}
    assert autoscaled == {"process-service"}


def test_every_container_has_requests_and_a_memory_limit(deployments):
    for name, deployment in deployments.items():
        for container in containers_of(deployment):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), f"{name}/{container['name']}"
            assert "memory" in resources["limits"], f"{name}/{container['name']}"


def test_every_pod_runs_unprivileged_on_a_read_only_root(deployments):
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        writable = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
        for container in containers_of(deployment):
            context = container["securityContext"]
            assert context == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                               "capabilities": {"drop": ["ALL"]}}, f"{name}/{container['name']}"
            tmp = [mount for mount in container.get("volumeMounts", []) if mount["mountPath"] == "/tmp"]
            if container in pod["containers"]:
                assert tmp and tmp[0]["name"] in writable, f"{name}/{container['name']}: no writable /tmp"


# ---- Settings: every variable is a real one, every one a service needs is there ------------------

def config_yaml_variables():
    """Every `${NAME:...}` config.yaml reads (shared/settings.py's table, plus LOG_LEVEL)."""
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):", (REPO_ROOT / "config.yaml").read_text()))


def render_nginx_conf_variables():
    """The variables scripts/render-nginx-conf and nginx.conf take from the environment (`${NAME}`
    when rendered; `env NAME;` keeps one for the njs scripts)."""
    script = (REPO_ROOT / "scripts" / "render-nginx-conf").read_text()
    template = (REPO_ROOT / "nginx.conf").read_text()
    return (set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)[:}]", script)) | set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", template))
            | set(re.findall(r"^env ([A-Z][A-Z0-9_]*);", template, re.MULTILINE)))


def test_config_yaml_variables_are_the_settings_table():
    assert {name for name, declared in SETTINGS.items() if not declared.fixed} <= config_yaml_variables()


def test_every_variable_a_pod_gets_is_read_by_it(deployments, config_maps):
    app_names = config_yaml_variables() | SDK_VARIABLES
    gateway_names = render_nginx_conf_variables()
    for name, deployment in deployments.items():
        for container in containers_of(deployment):
            known = gateway_names if container["image"] == "nginx" else app_names
            for variable in environment(container, config_maps):
                if variable.startswith(SDK_PREFIXES) or (variable in SDK_VARIABLES):
                    continue
                # The gateway gets the settings every service shares; only those it reads count.
                if container["image"] == "nginx" and variable in config_maps["imageproc-settings"]:
                    continue
                assert variable in known, f"{name}/{container['name']}: {variable} is read by nothing"
    for variable in config_maps["imageproc-gateway"]:
        assert variable in gateway_names, f"gateway.env: {variable} is read by nothing"


def module_file(module):
    path = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def settings_read_by(package):
    """The settings named in a service's code and in every module of the suite it imports,
    transitively: what it may read. Migrations run in their own container, not in the service."""
    pending = [path for path in (REPO_ROOT / package).rglob("*.py") if "migrations" not in path.parts]
    seen, names = set(), set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in SETTINGS:
                names.add(node.value)
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for module in modules:
                # shared/settings.py declares them all; what a module reads is what it names.
                if module.split(".")[0] in ("shared", "imaging") and module != "shared.settings":
                    if (found := module_file(module)) is not None:
                        pending.append(found)
    if any(name.endswith("_DATABASE_URL") for name in names):
        names.add("DATABASE_URL")  # shared.settings.database_url: a service's own, else the shared one
    names |= {"AMQP_URI", "WEB_SERVER_ADDRESS", "MAX_WORKERS"}  # nameko's own, in every service
    return names


def default_works_in_a_cluster(name):
    """Whether a setting's default is usable in a pod: not a local address, not a path under the
    repository (the image's root filesystem is read-only), not one the cluster must set."""
    default = SETTINGS[name].default
    if name in REQUIRED_IN_A_CLUSTER:
        return False
    if isinstance(default, str) and ("127.0.0.1" in default or "localhost" in default or default.startswith("var/")):
        return False
    return True


def test_the_code_walk_finds_what_each_service_is_known_to_read():
    assert {"JWT_PRIVATE_KEY_FILE", "BCRYPT_ROUNDS", "REDIS_URL", "DATABASE_URL"} <= settings_read_by("user_service")
    assert {"STORAGE_URL", "MEDIA_SIGNING_KEY", "LONG_POLL_MAX_SECONDS"} <= settings_read_by("upload_service")
    assert {"STORAGE_URL", "PROCESSING_TIMEOUT_SECONDS"} <= settings_read_by("process_service")
    assert "DATABASE_URL" not in settings_read_by("process_service")
    assert {"SMTP_URL", "PUBLIC_BASE_URL"} <= settings_read_by("notification_service")


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_every_setting_a_service_reads_is_set_or_defaulted(name, deployments, config_maps):
    service = DEPLOYMENTS[name]
    values = environment(main_container(deployments[name]), config_maps)
    missing = []
    for setting_name in sorted(settings_read_by(service)):
        if values.get(setting_name) or default_works_in_a_cluster(setting_name):
            continue
        fallback_of = FALLBACK_OF.get(f"{setting_name}@{service}") or FALLBACK_OF.get(setting_name)
        if fallback_of and values.get(fallback_of):
            continue
        missing.append(setting_name)
    assert not missing, f"{name} reads {missing}, which have no default usable in a cluster"
    if "STORAGE_URL" in values:
        assert values["STORAGE_URL"].startswith("s3://"), "the object store is the storage backend"


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_key_files_are_mounted_where_the_settings_point(name, deployments, config_maps):
    container = main_container(deployments[name])
    values = environment(container, config_maps)
    pod = deployments[name]["spec"]["template"]["spec"]
    secret_files = {}
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            assert volume["secret"]["secretName"] == SECRET_NAME
            for item in volume["secret"]["items"]:
                secret_files[(volume["name"], item["path"])] = item["key"]
    mounted = {}
    for mount in container.get("volumeMounts", []):
        for (volume, path), key in secret_files.items():
            if volume == mount["name"]:
                mounted[f"{mount['mountPath']}/{path}"] = key
    for setting_name in ("JWT_PRIVATE_KEY_FILE", "JWT_PUBLIC_KEY_FILE"):
        if setting_name in values:
            for path in values[setting_name].split(","):
                assert path in mounted, f"{name}: {setting_name} {path} is not mounted"
    # Only user_service mints tokens: no other pod holds the private key.
    holds_private_key = any(key == "jwt-ed25519.pem" for key in mounted.values())
    assert holds_private_key == (name == "user-service"), name


def test_each_pod_gets_only_the_s3_key_it_uses(deployments, config_maps):
    services_key, gateway_key = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, {"GATEWAY_S3_ACCESS_KEY_ID", "GATEWAY_S3_SECRET_ACCESS_KEY"}
    for name, deployment in deployments.items():
        variables = {variable for container in containers_of(deployment)
                     for variable in environment(container, config_maps)}
        uses_store = name in ("upload-service", "process-service")
        assert (services_key & variables) == (services_key if uses_store else set()), name
        assert (gateway_key & variables) == (gateway_key if name == "gateway" else set()), name


# ---- The gateway: the repository's nginx.conf, rendered in the pod -------------------------------

# What the gateway's init container copies from the app image (the repository as the image has it).
GATEWAY_FILES = ("nginx.conf", "openapi.yaml", "scripts/render-nginx-conf", "gateway/*.js")


def test_the_gateway_renders_the_images_own_nginx_conf(deployments):
    pod = deployments["gateway"]["spec"]["template"]["spec"]
    (copier,) = pod["initContainers"]
    nginx = main_container(deployments["gateway"])
    script = copier["command"][-1]
    ignored = {line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for copied in GATEWAY_FILES:
        assert copied in script
        assert list(REPO_ROOT.glob(copied)), f"the init container copies {copied}, which is not in the repository"
        assert copied.split("/")[0] not in ignored, f"{copied} is kept out of the image (.dockerignore)"
    assert "python -m shared.storage.gateway > /opt/gateway/route.env" in script
    env = {variable["name"]: variable.get("value") for variable in nginx["env"]}
    command = nginx["command"][-1]
    assert command.index(". /opt/gateway/route.env") < command.index("render-nginx-conf") < command.index("exec nginx")
    assert env["NGINX_TEMPLATE"] == "/opt/gateway/nginx.conf" and "cp nginx.conf" in script
    assert env["GATEWAY_SCRIPTS_DIR"] == "/opt/gateway/scripts" and "gateway/*.js /opt/gateway/scripts/" in script
    assert env["OPENAPI_FILE"] == "/opt/gateway/openapi.yaml" and "openapi.yaml" in script
    assert f"-p {env['NGINX_RUNTIME_DIR']}/" in command and "daemon off;" in command
    # Run as the compose `nginx` service runs it, after the route is set.
    compose_nginx = plain_yaml((REPO_ROOT / "docker-compose.yml").read_text())["services"]["nginx"]["command"][-1]
    assert compose_nginx.split("&& ", 1)[1] == command.split("&& ", 3)[3]


@pytest.mark.parametrize("environment_values", ROUTE_CASES + [{}],
                         ids=lambda values: " ".join(values.values()) or "folder store")
def test_the_gateway_route_is_what_render_nginx_conf_computes_with_a_venv(environment_values, tmp_path):
    """`python -m shared.storage.gateway` (the init container) prints what render-nginx-conf's venv
    branch reads, and the no-venv branch (the nginx container) keeps those values."""
    clean = {name: value for name, value in os.environ.items()
             if not name.startswith(("AWS_", "STORAGE_", "S3_", "MEDIA_"))}
    printed = subprocess.run([sys.executable, "-m", "shared.storage.gateway"], cwd=REPO_ROOT, capture_output=True,
                             text=True, env={**clean, **environment_values}, timeout=60)
    assert printed.returncode == 0, printed.stderr
    expected = subprocess.run(
        [sys.executable, "-c", "from shared.config import load_config\n"
         "from shared.storage.gateway import media_location, object_store_route\n"
         "config = load_config(); print(*object_store_route(config)); print(media_location(config))"],
        cwd=REPO_ROOT, capture_output=True, text=True, env={**clean, **environment_values}, timeout=60)
    assert expected.returncode == 0, expected.stderr
    route_file = tmp_path / "route.env"
    route_file.write_text(printed.stdout)
    # Sourced as the nginx container does; render-nginx-conf's fallbacks must not replace them.
    render = (REPO_ROOT / "scripts" / "render-nginx-conf").read_text()
    for name in ("S3_SCHEME", "S3_UPSTREAM", "S3_HOST", "S3_PATH_PREFIX", "MEDIA_LOCATION"):
        assert re.search(rf"\b{name}=\$\{{{name}:-", render), name
    shown = subprocess.run(["bash", "-c", f"set -a && . {shlex.quote(str(route_file))} && set +a && "
                            'echo "$S3_SCHEME $S3_UPSTREAM $S3_HOST $S3_PATH_PREFIX" && echo "$MEDIA_LOCATION"'],
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == expected.stdout


# ---- README ------------------------------------------------------------------------------------------

def readme_section():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "\n### Kubernetes\n" in readme, "README has no Kubernetes section"
    return readme.split("\n### Kubernetes\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def test_the_readme_says_how_to_deploy_and_what_the_secret_holds(deployments):
    section = readme_section()
    assert "kubectl apply -k deploy/kubernetes" in section
    assert f"kubectl create secret generic {SECRET_NAME}" in section
    keys = set()
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]["spec"]
        for container in containers_of(deployment):
            for variable in container.get("env", []):
                if "valueFrom" in variable:
                    keys.add(variable["valueFrom"]["secretKeyRef"]["key"])
        for volume in pod.get("volumes", []):
            keys |= {item["key"] for item in volume.get("secret", {}).get("items", [])}
    for key in sorted(keys):
        assert key in section, f"README's Kubernetes section does not say how to give {key}"

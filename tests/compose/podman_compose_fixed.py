"""podman-compose 1.6.0 with two bugs fixed, for Debian bookworm's podman 4.3; nothing else changed.

1. A `depends_on` entry on a service that is not in the project (its profile is off;
   docker-compose.yml marks those `required: false`) is skipped, as the Compose Specification says
   and Docker Compose does, instead of failing with KeyError (check_dep_conditions looks up every
   dependency's containers).
2. A dependency on a one-shot (`condition: service_completed_successfully`: migrate, keys,
   create-bucket) is not passed to `podman create --requires`: --requires means "must be running",
   so podman 4.3 refuses to start the service once the one-shot has exited ("depends on container
   ... not found in input list"), and a newer podman would run the one-shot again on every start.
   The order is still kept: podman-compose waits for the one-shot to have exited before starting.

    python -m tests.compose.podman_compose_fixed <podman-compose arguments>
"""
import sys

import podman_compose
from podman_compose import ServiceDependencyCondition

_check_dep_conditions = podman_compose.check_dep_conditions
_container_to_args = podman_compose.container_to_args


async def check_dep_conditions(compose, deps):
    present = {dep for dep in deps if dep.name in compose.container_names_by_service}
    return await _check_dep_conditions(compose, present)


async def container_to_args(compose, cnt, *args, **kwargs):
    running_deps = {dep for dep in cnt.get("_deps", set())
                    if dep.condition != ServiceDependencyCondition.STOPPED}
    return await _container_to_args(compose, {**cnt, "_deps": running_deps}, *args, **kwargs)


podman_compose.check_dep_conditions = check_dep_conditions
podman_compose.container_to_args = container_to_args

if __name__ == "__main__":
    sys.exit(podman_compose.main())

"""Code every service uses, kept once: configuration, logging, errors, HTTP, auth, tracing, database."""
from shared import broker_faults

# Before any container starts: a broker restart must not kill a service (see broker_faults).
broker_faults.install()

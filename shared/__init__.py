"""Code every service uses, kept once: configuration, logging, errors, HTTP, auth, tracing, database.

The suite's patches to nameko are applied by its container class (shared/container.py), not on import."""

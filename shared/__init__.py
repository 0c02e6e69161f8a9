"""Code every service uses, kept once: configuration, logging, errors, HTTP, auth, tracing, database."""

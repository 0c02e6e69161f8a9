"""Runs each service's Alembic migrations: `python -m shared.migrate [service ...]`.

Every service owns its tables and its own version table, so services can share one database
(`DATABASE_URL`) or each have their own (`USER_DATABASE_URL`, `UPLOAD_DATABASE_URL`).
"""
import sys

from alembic import command, context
from alembic.config import Config
from sqlalchemy import pool

from shared.config import REPO_ROOT, load_config
from shared.settings import database_url

# service folder -> the configuration key of its own database URL
MIGRATED_SERVICES = {
    "user_service": "USER_DATABASE_URL",
    "upload_service": "UPLOAD_DATABASE_URL",
}


def alembic_config(service, url):
    config = Config()
    config.set_main_option("script_location", str(REPO_ROOT / service / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["version_table"] = f"alembic_version_{service}"
    return config


def upgrade(service, config=None):
    config = config or load_config()
    url = database_url(config, MIGRATED_SERVICES[service])
    command.upgrade(alembic_config(service, url), "head")


def run_migrations_online():
    """The body of every service's migrations/env.py."""
    from sqlalchemy import create_engine

    config = context.config
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, version_table=config.attributes["version_table"])
        with context.begin_transaction():
            context.run_migrations()


def main(argv):
    config = load_config()
    for service in argv or list(MIGRATED_SERVICES):
        upgrade(service, config)
        print(f"{service}: migrated to head")


if __name__ == "__main__":
    main(sys.argv[1:])

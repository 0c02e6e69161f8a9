from shared.migrate import run_migrations_online

run_migrations_online()

"""Reads `config.yaml` exactly as `nameko run --config` does, for the tools that run outside nameko
(migrations, key generation, health probes, tests), so there is one source of configuration."""
import os
from pathlib import Path

import yaml
from nameko.cli.main import setup_yaml_parser

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = REPO_ROOT / "config.yaml"

_parser_ready = False


def load_config(path=None):
    global _parser_ready
    if not _parser_ready:
        setup_yaml_parser()  # registers the ${VAR:default} constructors on yaml.SafeLoader
        _parser_ready = True
    path = Path(path or os.environ.get("CONFIG_FILE") or DEFAULT_CONFIG_PATH)
    with path.open() as config_file:
        return yaml.safe_load(config_file)


def resolve_path(value):
    """Relative paths in the configuration are relative to the repository root, not the cwd."""
    path = Path(value)
    return path if path.is_absolute() else REPO_ROOT / path

"""One table of settings (shared/settings.py): config.yaml and the README's table agree with it, and
code reads every setting through it."""
import re
from pathlib import Path

import pytest

from shared import settings
from shared.config import REPO_ROOT, load_config
from shared.settings import SETTINGS, setting

CODE_FOLDERS = ("shared", "user_service", "upload_service", "process_service", "notification_service")


def test_config_yaml_is_written_from_the_table():
    assert (REPO_ROOT / "config.yaml").read_text() == settings.render_config(), \
        "config.yaml is out of date: run `python -m shared.settings`"


def test_config_yaml_reads_back_the_defaults(monkeypatch):
    for declared in SETTINGS.values():
        monkeypatch.delenv(declared.name, raising=False)
    config = load_config()
    for name, declared in SETTINGS.items():
        assert setting(config, name) == declared.parse(None), name


def test_the_environment_overrides_a_setting(monkeypatch):
    monkeypatch.setenv("PROCESSING_TIMEOUT_SECONDS", "42.5")
    monkeypatch.setenv("MAX_WORKERS", "7")
    config = load_config()
    assert setting(config, "PROCESSING_TIMEOUT_SECONDS") == 42.5
    assert setting(config, "MAX_WORKERS") == 7 and config["max_workers"] == 7


def test_values_have_the_declared_type_and_empty_means_the_default():
    config = {"MAX_UPLOAD_BYTES": "1024", "LONG_POLL_MAX_SECONDS": 5, "SMTP_URL": "", "RPC_TIMEOUT_SECONDS": None}
    assert setting(config, "MAX_UPLOAD_BYTES") == 1024
    assert isinstance(setting(config, "LONG_POLL_MAX_SECONDS"), float)
    assert setting(config, "SMTP_URL") is None
    assert setting(config, "RPC_TIMEOUT_SECONDS") == SETTINGS["RPC_TIMEOUT_SECONDS"].default
    with pytest.raises(KeyError):
        setting(config, "NOT_A_SETTING")


def readme_rows():
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
                rows[name] = cells[1]
    return rows


@pytest.mark.parametrize("name", [name for name, declared in SETTINGS.items() if not declared.fixed])
def test_the_readme_documents_each_setting_with_its_default(name):
    rows = readme_rows()
    assert name in rows, f"README's configuration table has no row for {name}"
    default = SETTINGS[name].default
    if default is None:
        return
    shown = int(default) if isinstance(default, float) and default.is_integer() else default
    assert str(shown) in rows[name].replace("`", ""), f"README says {rows[name]!r} for {name}, the table {default!r}"


def test_code_reads_settings_only_through_the_table():
    """No `config["X"]` or `config.get("X")` of a setting outside shared/settings.py."""
    pattern = re.compile(r"config(?:\[|\.get\()\s*[\"'](" + "|".join(SETTINGS) + r")[\"']")
    offenders = []
    for folder in CODE_FOLDERS:
        for path in Path(REPO_ROOT, folder).rglob("*.py"):
            if path.name == "settings.py" and path.parent.name == "shared":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)

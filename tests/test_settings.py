import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_check(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CITEWISE_", "TEAMS_"))}
    env.update(env_overrides, DJANGO_SETTINGS_MODULE="console.settings.production")
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_production_settings_refuse_to_start_without_secrets():
    result = run_check({})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr and "CITEWISE_ENCRYPTION_KEY" in result.stderr


def test_production_settings_refuse_a_weak_secret_key():
    result = run_check({"DJANGO_SECRET_KEY": "insecure-short", "DATABASE_URL": "sqlite:////tmp/x.sqlite3",
                        "CITEWISE_ENCRYPTION_KEY": "k" * 44, "DJANGO_ALLOWED_HOSTS": "citewise.example"})
    assert result.returncode != 0 and "at least 32 characters" in result.stderr


def _secrets(tmp_path) -> dict[str, str]:
    return {"DJANGO_SECRET_KEY": "s" * 50, "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
            "CITEWISE_ENCRYPTION_KEY": "k" * 44, "DJANGO_ALLOWED_HOSTS": "citewise.example"}


def test_production_settings_start_with_their_secrets(tmp_path):
    result = run_check({**_secrets(tmp_path), "TEAMS_ENABLED": "false"})
    assert result.returncode == 0, result.stderr


def test_production_settings_refuse_an_empty_teams_app_id(tmp_path):
    # An empty app id would switch Bot Framework authentication off.
    result = run_check(_secrets(tmp_path))
    assert result.returncode != 0 and "TEAMS_APP_ID is empty" in result.stderr
    result = run_check({**_secrets(tmp_path), "TEAMS_APP_ID": "", "TEAMS_APP_PASSWORD": "pw"})
    assert result.returncode != 0 and "TEAMS_APP_ID is empty" in result.stderr
    result = run_check({**_secrets(tmp_path), "TEAMS_APP_ID": "8d1c5c1e-6d6a-4f0e-9a4c-2f2d3c8b9e11"})
    assert result.returncode != 0 and "TEAMS_APP_PASSWORD is empty" in result.stderr


def test_production_settings_start_with_a_teams_app(tmp_path):
    result = run_check({**_secrets(tmp_path), "TEAMS_APP_ID": "8d1c5c1e-6d6a-4f0e-9a4c-2f2d3c8b9e11",
                        "TEAMS_APP_PASSWORD": "a-client-secret"})
    assert result.returncode == 0, result.stderr


def test_production_settings_refuse_emulator_tokens(tmp_path):
    teams_app = {"TEAMS_APP_ID": "8d1c5c1e-6d6a-4f0e-9a4c-2f2d3c8b9e11", "TEAMS_APP_PASSWORD": "a-client-secret"}
    result = run_check({**_secrets(tmp_path), **teams_app, "TEAMS_ALLOW_EMULATOR": "true"})
    assert result.returncode != 0 and "TEAMS_ALLOW_EMULATOR" in result.stderr
    result = run_check({**_secrets(tmp_path), **teams_app, "TEAMS_ALLOW_EMULATOR": "false"})
    assert result.returncode == 0, result.stderr

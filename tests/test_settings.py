import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


# -- local settings: DEBUG only when asked for ---------------------------------------------------------

# Ask the local settings for a page that does not exist, as a server started with them would answer it.
_NOT_FOUND_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
response = Client().get("/no-such-page", HTTP_HOST="localhost")
print(json.dumps({"debug": settings.DEBUG, "status": response.status_code, "body": response.content.decode()}))
"""


def run_local(tmp_path, env_overrides: dict[str, str]) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CITEWISE_", "TEAMS_"))}
    env.update(env_overrides, DJANGO_SETTINGS_MODULE="console.settings.local", CITEWISE_VAR_DIR=str(tmp_path / "var"))
    result = subprocess.run([sys.executable, "-c", _NOT_FOUND_PROBE], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_local_settings_keep_debug_off_unless_asked_and_a_404_lists_no_urls(tmp_path):
    """Reproduces issue 10 item 17: console.settings.local (the default of console.wsgi) turns DEBUG on, so a server
    started with it by anything but `make demo` shows Django's technical 404 page listing every URL pattern."""
    seen, stderr = run_local(tmp_path, {})
    assert seen["debug"] is False
    assert seen["status"] == 404
    assert "URLconf" not in seen["body"] and "console.urls" not in seen["body"] and "admin/" not in seen["body"]
    assert "DEBUG is on" not in stderr


def test_debug_on_is_announced_at_startup_with_the_variable_that_turns_it_off(tmp_path):
    """Reproduces issue 10 item 17: with DEBUG on nothing says so when the server starts."""
    seen, stderr = run_local(tmp_path, {"DJANGO_DEBUG": "1"})
    assert seen["debug"] is True
    assert "DEBUG is on" in stderr and "DJANGO_DEBUG" in stderr


def test_a_rate_limit_that_is_not_a_rate_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CITEWISE_", "TEAMS_"))}
    env.update(DJANGO_SETTINGS_MODULE="console.settings.local", CITEWISE_VAR_DIR=str(tmp_path / "var"))
    probe = [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
                                   "print(repr(settings.CITEWISE.ask_rate_per_user), "
                                   "repr(settings.CITEWISE.ask_rate_per_channel))"]
    for value in ("lots", "20 per minute", "20/w"):
        result = subprocess.run(probe, cwd=ROOT, env={**env, "CITEWISE_ASK_RATE_PER_USER": value},
                                capture_output=True, text=True, timeout=120)
        assert result.returncode != 0 and "CITEWISE_ASK_RATE_PER_USER" in result.stderr, value
    result = subprocess.run(probe, cwd=ROOT, env={**env, "CITEWISE_ASK_RATE_PER_USER": "5/10m",
                                                  "CITEWISE_ASK_RATE_PER_CHANNEL": "0"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.split() == ["'5/10m'", "''"], result.stderr


def test_production_settings_refuse_emulator_tokens(tmp_path):
    teams_app = {"TEAMS_APP_ID": "8d1c5c1e-6d6a-4f0e-9a4c-2f2d3c8b9e11", "TEAMS_APP_PASSWORD": "a-client-secret"}
    result = run_check({**_secrets(tmp_path), **teams_app, "TEAMS_ALLOW_EMULATOR": "true"})
    assert result.returncode != 0 and "TEAMS_ALLOW_EMULATOR" in result.stderr
    result = run_check({**_secrets(tmp_path), **teams_app, "TEAMS_ALLOW_EMULATOR": "false"})
    assert result.returncode == 0, result.stderr


# -- production: HTTPS only --------------------------------------------------------------------------------

_HTTPS_PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client()
plain = client.get("/api/v1/ask", HTTP_HOST="citewise.example")
health = client.get("/healthz", HTTP_HOST="citewise.example")
secure = client.get("/healthz", HTTP_HOST="citewise.example", secure=True)
print(json.dumps({"plain": [plain.status_code, plain.headers.get("Location", "")],
                  "health": [health.status_code, health.headers.get("Location", "")],
                  "hsts": secure.headers.get("Strict-Transport-Security", "")}))
"""


def test_production_settings_serve_https_only_and_leave_the_probes_on_plain_http(tmp_path):
    """Issue 11 item 5: production settings get HSTS and an SSL redirect; `check --deploy` warns about neither."""
    secrets = {**_secrets(tmp_path), "TEAMS_ENABLED": "false"}
    result = run_check(secrets)
    assert result.returncode == 0, result.stderr
    assert "security.W004" not in result.stderr and "security.W008" not in result.stderr, result.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CITEWISE_", "TEAMS_"))}
    env.update(secrets, DJANGO_SETTINGS_MODULE="console.settings.production")
    probe = subprocess.run([sys.executable, "-c", _HTTPS_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120)
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert seen["plain"] == [301, "https://citewise.example/api/v1/ask"]
    # Load balancers and Kubernetes probe the pod over plain HTTP: answered, not redirected (503 here: no database).
    assert seen["health"][0] in (200, 503) and seen["health"][1] == ""
    assert "max-age=31536000" in seen["hsts"] and "includeSubDomains" in seen["hsts"]


def test_json_logs_are_one_object_per_line_with_the_record_s_fields(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CITEWISE_", "TEAMS_"))}
    env.update(DJANGO_SETTINGS_MODULE="console.settings.local", CITEWISE_VAR_DIR=str(tmp_path / "var"),
               CITEWISE_LOG_FORMAT="json")
    script = ("import django, logging; django.setup(); log = logging.getLogger('citewise.sync')\n"
              "log.warning('source %s failed', 'wiki', extra={'source_id': 7})\n"
              "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('sync crashed')\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stderr.strip().splitlines()[-2:])
    assert first["event"] == "source wiki failed" and first["level"] == "warning" and first["source_id"] == 7
    assert first["logger"] == "citewise.sync" and first["timestamp"].endswith("Z")
    assert second["level"] == "error" and "ZeroDivisionError" in second["exception"]
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT,
                            env={**env, "CITEWISE_LOG_FORMAT": "xml"}, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "CITEWISE_LOG_FORMAT" in result.stderr


# -- typed settings (issue 11 item 5) ---------------------------------------------------------------------

_SETTINGS_PROBE = """
import json, django
django.setup()
from django.conf import settings
c = settings.CITEWISE
print(json.dumps({"type": type(c).__module__ + "." + type(c).__name__, "candidates": c.rerank_candidates,
                  "threshold": c.answer_threshold, "backend": c.search_backend, "index_dir": str(c.embedded_index_dir),
                  "beat": sorted(settings.CELERY_BEAT_SCHEDULE)}))
"""


def _settings_probe(tmp_path, overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CITEWISE_", "TEAMS_",
                                                                     "ELASTICSEARCH_", "COHERE_", "OPENAI_"))}
    env.update(overrides, DJANGO_SETTINGS_MODULE="console.settings.local", CITEWISE_VAR_DIR=str(tmp_path / "var"))
    return subprocess.run([sys.executable, "-c", _SETTINGS_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_citewise_settings_are_one_typed_object_parsed_from_the_environment(tmp_path):
    result = _settings_probe(tmp_path, {"CITEWISE_RERANK_CANDIDATES": "7", "CITEWISE_ANSWER_THRESHOLD": "0.5",
                                        "CITEWISE_CONTENT_SYNC_INTERVAL_S": "0",
                                        "CITEWISE_SEARCH_BACKEND": ""})  # exported but empty: the default
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["type"] == "core.config.CitewiseSettings"
    assert (seen["candidates"], seen["threshold"], seen["backend"]) == (7, 0.5, "embedded")
    assert seen["index_dir"] == str(tmp_path / "var" / "index")
    assert seen["beat"] == ["check-freshness", "dispatch-due-syncs"]  # an interval of 0 turns that schedule off


def test_a_setting_that_does_not_parse_stops_start_up_naming_the_variable(tmp_path):
    for variable, value in (("CITEWISE_RERANK_CANDIDATES", "many"), ("CITEWISE_SEARCH_BACKEND", "solr"),
                            ("CITEWISE_ANSWER_PASSAGES", "0"), ("ELASTICSEARCH_TIMEOUT_S", "-1")):
        result = _settings_probe(tmp_path, {variable: value})
        assert result.returncode != 0, variable
        assert "ImproperlyConfigured" in result.stderr and f"{variable}={value!r}" in result.stderr, result.stderr


def test_the_settings_object_cannot_be_changed_in_place(settings):
    import pydantic

    with pytest.raises(pydantic.ValidationError):
        settings.CITEWISE.rerank_candidates = 3
    changed = settings.CITEWISE.replace(rerank_candidates=3)
    assert changed.rerank_candidates == 3 and settings.CITEWISE.rerank_candidates != 3
    with pytest.raises(pydantic.ValidationError):
        settings.CITEWISE.replace(rerank_candidates=0)


def test_no_module_reads_the_citewise_settings_by_string_key():
    """Every read goes through the typed object's attributes (core.config.current())."""
    offenders = subprocess.run(
        ["git", "grep", "-n", "-E", r"CITEWISE(\[|\.get\()|\*\*settings\.CITEWISE", "--", "*.py"],
        cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert offenders == ""


def test_the_clocks_the_settings_name_are_the_system_clock():
    """BOT_CLOCK and LLM_CLOCK name an importable clock; unset, they mean the system's."""
    from core.clock import SYSTEM_CLOCK, configured

    assert configured("BOT_CLOCK") is SYSTEM_CLOCK and configured("LLM_CLOCK") is SYSTEM_CLOCK
    assert configured("NO_SUCH_CLOCK_SETTING") is SYSTEM_CLOCK

"""The Teams app package: `manage.py teams_app_package` and the manifest template and icons it zips."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

APP_ID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
HOST = "citewise.example.com"
PACKAGE_FILES = {"manifest.json", "color.png", "outline.png"}


def build(tmp_path: Path, **options) -> zipfile.ZipFile:
    """Run the command with the usual arguments (overridable) and open the zip it wrote."""
    options = {"app_id": APP_ID, "host": HOST, "output": str(tmp_path / "citewise-teams.zip"), **options}
    call_command("teams_app_package", stdout=io.StringIO(), **options)
    return zipfile.ZipFile(options["output"])


def manifest_of(package: zipfile.ZipFile) -> dict:
    return json.loads(package.read("manifest.json"))


def test_zip_holds_exactly_the_manifest_and_icons_at_the_root(tmp_path):
    with build(tmp_path) as package:
        assert set(package.namelist()) == PACKAGE_FILES
        assert package.testzip() is None


def test_manifest_is_filled_in(tmp_path):
    with build(tmp_path, version="2.3.4") as package:
        raw = package.read("manifest.json").decode("utf-8")
    assert "{{" not in raw and "}}" not in raw
    manifest = json.loads(raw)
    assert manifest["manifestVersion"] == "1.17"
    assert manifest["$schema"].endswith("/teams/v1.17/MicrosoftTeams.schema.json")
    assert manifest["version"] == "2.3.4"
    assert manifest["id"] == APP_ID
    [bot] = manifest["bots"]
    assert bot["botId"] == APP_ID
    assert set(bot["scopes"]) == {"personal", "team", "groupChat"}
    assert bot["supportsFiles"] is False and bot["isNotificationOnly"] is False
    assert HOST in manifest["validDomains"]
    for key in ("websiteUrl", "privacyUrl", "termsOfUseUrl"):
        assert manifest["developer"][key].startswith(f"https://{HOST}/")
    assert set(manifest["permissions"]) == {"identity", "messageTeamMembers"}
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", manifest["accentColor"])


def test_manifest_respects_teams_length_limits(tmp_path):
    with build(tmp_path) as package:
        manifest = manifest_of(package)
    assert 0 < len(manifest["name"]["short"]) <= 30
    assert 0 < len(manifest["name"]["full"]) <= 100
    assert 0 < len(manifest["description"]["short"]) <= 80
    assert 0 < len(manifest["description"]["full"]) <= 4000
    assert len(manifest["developer"]["name"]) <= 32
    [bot] = manifest["bots"]
    assert len(bot["commandLists"]) <= 3
    # One command list per scope, as the schema asks.
    listed_scopes = [scope for command_list in bot["commandLists"] for scope in command_list["scopes"]]
    assert sorted(listed_scopes) == sorted(set(listed_scopes))
    assert set(listed_scopes) <= set(bot["scopes"])
    for command_list in bot["commandLists"]:
        assert 0 < len(command_list["commands"]) <= 10
        for command in command_list["commands"]:
            assert 0 < len(command["title"]) <= 32, command["title"]
            assert 0 < len(command["description"]) <= 128, command["description"]


def test_icons_have_the_sizes_and_colours_teams_requires(tmp_path):
    with build(tmp_path) as package:
        color = Image.open(io.BytesIO(package.read("color.png")))
        outline = Image.open(io.BytesIO(package.read("outline.png")))
    assert color.format == "PNG" and color.size == (192, 192)
    if color.mode == "RGBA":
        assert color.getchannel("A").getextrema() == (255, 255), "the colour icon should be opaque"
    else:
        assert color.mode == "RGB"

    assert outline.format == "PNG" and outline.size == (32, 32) and outline.mode == "RGBA"
    pixels = outline.tobytes()
    rgba = [tuple(pixels[i:i + 4]) for i in range(0, len(pixels), 4)]
    assert all(a == 0 or (r, g, b) == (255, 255, 255) for r, g, b, a in rgba), "outline must be white on clear"
    assert {outline.getpixel(corner)[3] for corner in [(0, 0), (31, 0), (0, 31), (31, 31)]} == {0}
    assert any(a == 255 for *_, a in rgba), "the outline icon should draw something"


def test_app_id_defaults_to_the_setting_and_is_normalised(tmp_path, settings):
    settings.TEAMS_APP_ID = APP_ID.upper()
    output = tmp_path / "from-settings.zip"
    call_command("teams_app_package", host=HOST, output=str(output), stdout=io.StringIO())
    manifest = manifest_of(zipfile.ZipFile(output))
    assert manifest["id"] == manifest["bots"][0]["botId"] == APP_ID


def test_host_is_lower_cased(tmp_path):
    with build(tmp_path, host="Citewise.Example.COM") as package:
        assert manifest_of(package)["validDomains"] == [HOST]


def test_same_arguments_give_the_same_bytes(tmp_path):
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    build(tmp_path, output=str(first)).close()
    build(tmp_path, output=str(second)).close()
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("app_id", [
    "", "not-a-guid", "3f2504e0-4f89-11d3-9a0c-0305e82c330", "3f2504e04f8911d39a0c0305e82c3301",
    "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}", "3f2504e0-4f89-11d3-9a0c-0305e82c330g",
])
def test_bad_app_id_is_refused(tmp_path, settings, app_id):
    settings.TEAMS_APP_ID = ""
    with pytest.raises(CommandError, match=r"app id|--app-id"):
        build(tmp_path, app_id=app_id)
    assert not (tmp_path / "citewise-teams.zip").exists()


@pytest.mark.parametrize("host", [
    "https://citewise.example.com", "citewise.example.com/api/teams/messages", "citewise.example.com:8443",
    "localhost", "192.168.1.10", "-bad.example.com", "under_score.example.com", "spa ce.example.com", "",
    "a." * 130 + "com",
])
def test_bad_host_is_refused(tmp_path, host):
    with pytest.raises(CommandError, match="--host"):
        build(tmp_path, host=host)
    assert not (tmp_path / "citewise-teams.zip").exists()


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "1.0.0-beta", "01.0.0", ""])
def test_bad_version_is_refused(tmp_path, version):
    with pytest.raises(CommandError, match="--version"):
        build(tmp_path, version=version)


def test_missing_output_directory_is_refused(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        build(tmp_path, output=str(tmp_path / "nowhere" / "citewise-teams.zip"))

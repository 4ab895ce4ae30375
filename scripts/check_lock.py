"""Fail when requirements.lock no longer satisfies pyproject.toml.

Every machine installs from the lock (scripts/ensure-venv.sh), so a dependency added to pyproject.toml without
`make lock` works on the machine that added it and breaks every fresh one.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def pinned_versions(lock_text: str) -> dict[str, Version]:
    pins = {}
    for line in lock_text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonicalize_name(name.split("[", 1)[0])] = Version(version.strip())
    return pins


def unmet_requirements(pyproject: dict, pins: dict[str, Version]) -> list[str]:
    project = pyproject["project"]
    wanted = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        wanted.extend(extra)
    problems = []
    for spec in wanted:
        requirement = Requirement(spec)
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name}: not in requirements.lock")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement.name}: locked {pinned}, pyproject.toml wants {requirement.specifier}")
    return problems


def main() -> int:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    problems = unmet_requirements(pyproject, pinned_versions((ROOT / "requirements.lock").read_text()))
    for problem in problems:
        print(f"requirements.lock is stale: {problem} (run `make lock`)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

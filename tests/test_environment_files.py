"""pyproject.toml, environment.yml and constraints.txt describe the same environment."""

from __future__ import annotations

import re
import tomllib

from conftest import REPO

CONDA_NAMES = {"pytorch": "torch"}  # conda-forge package name -> PyPI name
NOT_PACKAGES = {"python", "pip", "-e ."}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_packages() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {_name(r) for r in requirements}


def environment_packages() -> set[str]:
    names = set()
    text = (REPO / "environment.yml").read_text()
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        match = re.match(r"^\s+- (.+)$", line)
        if match and not match.group(1).startswith("pip:") and match.group(1) not in NOT_PACKAGES:
            name = _name(match.group(1))
            names.add(CONDA_NAMES.get(name, name))
    return names - NOT_PACKAGES


def test_environment_yml_names_the_same_packages_as_pyproject():
    assert environment_packages() == pyproject_packages()


def test_constraints_pin_every_declared_package_exactly():
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt line is not an exact pin: {line!r}"
            pins[_name(name)] = version
    missing = pyproject_packages() - set(pins)
    assert not missing, f"constraints.txt does not pin {sorted(missing)}"
    assert "+" not in pins["torch"], "pin torch without a local build label so each machine takes its own build"

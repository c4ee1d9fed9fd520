"""pyproject.toml, environment.yml and constraints.txt describe the same environment."""

from __future__ import annotations

import re
import tomllib

import pytest
from conftest import REPO
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

CONDA_NAMES = {"pytorch": "torch"}  # conda-forge package name -> PyPI name
NOT_PACKAGES = {"python", "pip"}


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def pyproject_requirements(project: dict) -> dict[str, SpecifierSet]:
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {canonicalize_name(r.name): r.specifier for r in map(Requirement, requirements)}


def environment_entries(text: str) -> tuple[dict[str, SpecifierSet], str]:
    """environment.yml's packages (conda and pip sections, PyPI names) and its python version."""
    specs, python = {}, ""
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        match = re.match(r"^\s+- (.+)$", line)
        if not match or match.group(1).startswith(("pip:", "-e ")):
            continue
        entry = match.group(1).strip()
        if entry.startswith("python="):
            python = entry.partition("=")[2]
            continue
        if entry in NOT_PACKAGES:
            continue
        requirement = Requirement(entry)
        name = canonicalize_name(CONDA_NAMES.get(requirement.name, requirement.name))
        specs[name] = requirement.specifier
    return specs, python


def constraint_pins(text: str) -> dict[str, Version]:
    pins = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt line is not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def environment_problems(project: dict, environment: str, constraints: str) -> list[str]:
    """Every disagreement between the three files, as readable lines (empty when they agree)."""
    declared = pyproject_requirements(project)
    conda, python = environment_entries(environment)
    pins = constraint_pins(constraints)
    problems = [f"environment.yml: {name}{conda.get(name, ' missing')} but pyproject.toml says "
                f"{name}{spec}" for name, spec in declared.items() if conda.get(name) != spec]
    problems += [f"environment.yml lists {name}, pyproject.toml does not"
                 for name in set(conda) - set(declared)]
    requires_python = SpecifierSet(project["requires-python"])
    if not python or Version(python) not in requires_python:
        problems.append(f"environment.yml: python={python} does not satisfy "
                        f"requires-python {requires_python}")
    elif Version(f"3.{Version(python).minor - 1}") in requires_python:  # constraints.txt is locked on it
        problems.append(f"requires-python {requires_python} admits a Python older than environment.yml's "
                        f"python={python}, the one constraints.txt is locked on")
    for name, spec in declared.items():
        if name not in pins:
            problems.append(f"constraints.txt does not pin {name}")
        elif not spec.contains(pins[name], prereleases=True):
            problems.append(f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's {spec}")
    if pins.get("torch") and pins["torch"].local:
        problems.append("pin torch without a local build label so each machine takes its own build")
    return problems


def test_pyproject_environment_yml_and_constraints_agree():
    problems = environment_problems(pyproject(), (REPO / "environment.yml").read_text(),
                                    (REPO / "constraints.txt").read_text())
    assert not problems, "\n".join(problems)


ENVIRONMENT = "name: x\ndependencies:\n  - python=3.11\n  - numpy>=1.26,<3\n  - pytorch>=2.3,<2.14\n  - pip\n"
PROJECT = {"requires-python": ">=3.11", "dependencies": ["numpy>=1.26,<3", "torch>=2.3,<2.14"],
           "optional-dependencies": {"dev": []}}
CONSTRAINTS = "numpy==2.4.6\ntorch==2.13.0\n"


@pytest.mark.parametrize("project, environment, constraints, problem", [
    (PROJECT, ENVIRONMENT, "numpy==2.4.6\ntorch==2.14.0\n", "torch==2.14.0, outside"),
    (PROJECT, ENVIRONMENT, "numpy==2.4.6\n", "does not pin torch"),
    (PROJECT, ENVIRONMENT, "numpy==2.4.6\ntorch==2.13.0+cpu\n", "local build label"),
    (PROJECT, ENVIRONMENT.replace("numpy>=1.26,<3", "numpy>=1.0,<2"), CONSTRAINTS, "yml: numpy"),
    (PROJECT, ENVIRONMENT.replace("  - numpy>=1.26,<3\n", ""), CONSTRAINTS, "numpy missing"),
    (PROJECT, ENVIRONMENT + "  - scipy\n", CONSTRAINTS, "lists scipy"),
    (dict(PROJECT, **{"requires-python": ">=3.12"}), ENVIRONMENT, CONSTRAINTS, "does not satisfy"),
    (dict(PROJECT, **{"requires-python": ">=3.10"}), ENVIRONMENT, CONSTRAINTS, "admits a Python older"),
], ids=["pin-outside-range", "pin-missing", "torch-local-label", "conda-range", "conda-missing",
        "conda-extra", "python-too-new", "python-too-old"])
def test_each_kind_of_disagreement_is_reported(project, environment, constraints, problem):
    assert environment_problems(PROJECT, ENVIRONMENT, CONSTRAINTS) == []
    assert any(problem in line for line in environment_problems(project, environment, constraints))

"""pyproject.toml's lower bounds and constraints/minimum.txt say the same thing.

CI runs the suite a second time with every dependency pinned to constraints/minimum.txt, to show
that each declared floor works. That only holds while the file pins exactly the floors: a floor
raised (or a dependency added) in pyproject.toml without the file, or the other way round,
fails here.
"""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ..conftest import REPO

# the one dependency not pinned to its floor: only the CPU build in constraints/cpu.txt is tested
UNTESTED_FLOOR = {"torch"}


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(line) for line in project["dependencies"]]
    return {canonicalize_name(r.name): r for r in reqs}


def pins(name: str) -> dict[str, str]:
    """``name==version`` lines of a constraints file, by canonical name; anything else fails."""
    out: dict[str, str] = {}
    for number, raw in enumerate((REPO / "constraints" / name).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)\s*==\s*([0-9][A-Za-z0-9.+!-]*)", line)
        assert match, f"constraints/{name}:{number}: not a name==version pin: {raw!r}"
        key = canonicalize_name(match.group(1))
        assert key not in out, f"constraints/{name}:{number}: {match.group(1)} pinned twice"
        out[key] = match.group(2)
    return out


def floor(req: Requirement) -> Version | None:
    """The version a ``>=`` (or ``==``, ``~=``) specifier starts the range at."""
    lows = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
    return max(lows) if lows else None


def test_every_dependency_declares_a_floor() -> None:
    missing = [str(r) for r in declared().values() if floor(r) is None]
    assert not missing, f"pyproject.toml: dependencies without a lower bound: {missing}"


def test_minimum_constraints_pin_exactly_the_floors() -> None:
    deps, minimum = declared(), pins("minimum.txt")
    problems = []
    for name, req in sorted(deps.items()):
        if name in UNTESTED_FLOOR:
            continue
        low = floor(req)
        if name not in minimum:
            problems.append(f"{req.name}: declared {req.specifier} but not in minimum.txt")
        elif low is not None and Version(minimum[name]) != low:
            problems.append(
                f"{req.name}: pyproject.toml's floor is {low}, minimum.txt pins {minimum[name]}"
            )
        elif not req.specifier.contains(minimum[name], prereleases=True):
            problems.append(f"{req.name}: minimum.txt's {minimum[name]} is outside {req.specifier}")
    extra = sorted(set(minimum) - set(deps))
    problems += [f"{name}: pinned in minimum.txt but not a dependency" for name in extra]
    problems += [
        f"{name}: minimum.txt must leave it to cpu.txt" for name in UNTESTED_FLOOR & set(minimum)
    ]
    assert not problems, (
        "constraints/minimum.txt and pyproject.toml's lower bounds drifted apart (change both "
        "together, and run the suite at the new floor):\n" + "\n".join(problems)
    )


def test_the_tested_torch_is_inside_the_declared_range() -> None:
    pinned = pins("cpu.txt")
    for name in UNTESTED_FLOOR:
        assert name in pinned, f"constraints/cpu.txt must pin {name}"
        assert declared()[name].specifier.contains(pinned[name]), (name, pinned[name])


def test_ci_runs_the_suite_at_the_floors() -> None:
    run = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    install = (REPO / "scripts" / "install.sh").read_text(encoding="utf-8")
    assert "scripts/install.sh dev minimum" in run and ".venv-min/bin/python -m pytest" in run
    assert "-c constraints/minimum.txt" in install

from __future__ import annotations

from nlptune.config import reference_markdown

from ..conftest import REPO


def test_readme_config_reference_matches_code() -> None:
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- config-reference:start -->\n")[1].split(
        "<!-- config-reference:end -->"
    )[0]
    assert block == reference_markdown(), "regenerate the README table from nlptune.config"


def test_ci_runs_the_readme_test_command() -> None:
    command = "scripts/install.sh dev && .venv/bin/python -m pytest -q"
    assert command in (REPO / "README.md").read_text()
    assert command in (REPO / ".ci" / "run").read_text()

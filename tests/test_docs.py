"""The documentation keeps up with the code: every command is documented, every doc link works."""

from __future__ import annotations

import re
from pathlib import Path

import click

from kubetrail.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _commands(group: click.Group, prefix: str = "kubetrail") -> list[str]:
    names = []
    for name, command in group.commands.items():
        names.append(f"{prefix} {name}")
        if isinstance(command, click.Group):
            names.extend(_commands(command, f"{prefix} {name}"))
    return names


def test_every_command_is_documented():
    text = "\n".join(path.read_text() for path in DOCS)
    missing = [name for name in _commands(main) if name not in text]
    assert missing == []


def test_readme_starts_with_the_two_set_up_commands():
    head = (ROOT / "README.md").read_text().split("\n## ")[0]
    assert "make run" in head and "make test" in head
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_links_between_docs_resolve():
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#]+\.md)\)", path.read_text()):
            assert (path.parent / target).exists(), f"{path.name} links to missing {target}"

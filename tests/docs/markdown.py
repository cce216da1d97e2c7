"""The fenced blocks of a markdown page, with what their info string asks of the test suite.

An info string is the block's language, then words the renderer ignores and the suite reads
(docs/docs-are-tested.md):

    ```python                      run as a script, in the page's project directory
    ```python file=pkg/models.py   written to that file (any language: json, ini, ...)
    ```sh run                      each command run in the project, must exit 0 (or exit=N)
    ```text output                 what the last `run` block printed, line for line
    ```text output=tail            ... its last lines
    ```sh / ```text / ```sql ...   shown, not run
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
KNOWN_OPTIONS = frozenset({"file", "run", "exit", "output"})


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    body: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.page.name}:{self.line}"

    @property
    def file(self) -> str | None:
        return self.options.get("file")


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        language, *words = match["info"].split() or [""]
        options = dict(word.partition("=")[::2] for word in words)
        unknown = set(options) - KNOWN_OPTIONS
        line = text.count("\n", 0, match.start()) + 1
        if unknown:
            raise ValueError(f"{page.name}:{line}: unknown block options {sorted(unknown)}")
        body = textwrap.dedent(match["body"]) if match["indent"] else match["body"]
        found.append(Block(page, line, language, body, options))
    return found

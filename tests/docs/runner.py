"""Follow a page literally in a project directory of its own: write its files, run its Python
blocks and its `sh run` commands in order, and hold each `text output` block to what the last
command printed (timestamps, ids and durations aside)."""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import os
import re
import subprocess
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

from tests.docs.markdown import Block

COMMAND_TIMEOUT_S = 120
SHELL_LANGUAGES = frozenset({"sh", "bash", "console"})
# What changes from run to run; each becomes a placeholder on both sides of a comparison.
VOLATILE = (
    (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?"), "<time>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
    (re.compile(r"Worker \S+ starting"), "Worker <worker> starting"),
    (re.compile(r"\b\d+\.\d+(s\b)?"), "<n>"),
    (re.compile(r"[ \t]+"), " "),
)


def normalized(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        for pattern, placeholder in VOLATILE:
            line = pattern.sub(placeholder, line)
        if line.strip():
            lines.append(line.strip())
    return lines


@dataclass(frozen=True)
class Output:
    command: str
    code: int
    text: str


@dataclass
class PageRun:
    """One page followed from an empty directory, as a reader would."""

    project: Path
    environment: dict[str, str]
    # Printed text -> what the page shows instead (another database's URL -> the default one).
    aliases: dict[str, str] = field(default_factory=dict)
    ran: list[Block] = field(default_factory=list)
    last: Output | None = None

    def follow(self, blocks: list[Block]) -> None:
        for block in blocks:
            if block.file is not None:
                self.write(block)
            elif block.language == "python":
                self.run_python(block)
            elif block.language in SHELL_LANGUAGES and "run" in block.options:
                self.run_commands(block)
            elif "output" in block.options:
                self.compare_output(block)
            else:
                continue
            self.ran.append(block)

    def write(self, block: Block) -> None:
        assert block.file is not None
        path = self.project / block.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.body)
        if path.suffix == ".py":
            compile(block.body, block.where, "exec")  # a file is run by what imports it

    def run_python(self, block: Block) -> None:
        """In this process (fast), with a fresh namespace: a block imports what it uses."""
        importlib.invalidate_caches()
        code = compile(block.body, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        script = types.ModuleType("__main__")
        script.__file__ = block.where
        # `__main__` is the script while it runs: SQLAlchemy resolves its annotations there.
        pytests_main = sys.modules["__main__"]
        sys.modules["__main__"] = script
        try:
            result = eval(code, script.__dict__)  # the page's own code, as a reader runs it
            if inspect.iscoroutine(result):
                asyncio.run(result)
        finally:
            sys.modules["__main__"] = pytests_main

    def run_commands(self, block: Block) -> None:
        expected = int(block.options.get("exit") or 0)
        commands = [c for c in block.body.splitlines() if c.strip() and not c.startswith("#")]
        for index, command in enumerate(commands):
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=self.project,
                env=self.environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
            self.last = Output(command, done.returncode, done.stdout)
            wanted = expected if index == len(commands) - 1 else 0
            assert done.returncode == wanted, f"{block.where}: `{command}`\n{done.stdout}"

    def compare_output(self, block: Block) -> None:
        assert self.last is not None, f"{block.where}: an output block with no command before it"
        text = self.last.text
        for printed_as, shown_as in self.aliases.items():
            text = text.replace(printed_as, shown_as)
        shown, printed = normalized(block.body), normalized(text)
        if block.options["output"] == "tail":
            printed = printed[-len(shown) :]
        assert printed == shown, f"{block.where}: `{self.last.command}` printed\n{self.last.text}"


def reader_environment(project: Path, **settings: str) -> dict[str, str]:
    """A shell like a reader's: this Python first on PATH, the project importable, no settings
    or pytest state of ours leaking in."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if "__" not in key and not key.startswith(("MYAPP_", "PYTEST_", "PYTHONPATH"))
    }
    path = os.pathsep.join([str(Path(sys.executable).parent), inherited.get("PATH", "")])
    return {
        **inherited,
        "PATH": path,
        "PYTHONPATH": str(project),
        "PYTHONUNBUFFERED": "1",  # logs (stderr) and the report (stdout) in the order printed
        **settings,
    }

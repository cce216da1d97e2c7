"""A handler's failure as its author needs it: the exception and the handler's own frames.

The engine logs this at Error and the whole traceback at Debug. Left out are the frames nobody
writing a handler can act on: the framework's (`myapp.processing`: the engine, scopes, the
claim protocol), the standard library's (asyncio, runpy, concurrent.futures, contextlib) and
installed libraries' (site-packages: typer, sqlalchemy, httpx), unless the installed package
is the handler's own. No local variable is ever shown (they may hold secrets).
"""

from __future__ import annotations

import linecache
import sys
import traceback
from pathlib import Path
from types import FrameType

FRAMEWORK_PACKAGE = "myapp.processing"
# The innermost frames kept per exception: enough to follow a handler into its collaborators,
# few enough for one log entry.
MAX_FRAMES = 6
# Causes and contexts followed (`raise ... from error`), as Python chains them.
MAX_CHAINED = 3
INSTALLED_DIRECTORIES = frozenset({"site-packages", "dist-packages"})


def describe_failure(error: BaseException) -> str:
    """`ExcType: message`, the handler's frames below it (outermost first, one line each), then
    the same for what caused it: `caused by ...` or `while handling ...`."""
    lines = [_exception_line(error), *handler_frames(error)]
    for label, chained in _chain(error):
        lines += [f"{label} {_exception_line(chained)}", *handler_frames(chained)]
    return "\n".join(lines)


def handler_frames(error: BaseException) -> list[str]:
    """One line per frame of the handler's code in `error`'s traceback:
    `  path/to/module.py:12 in process: the source line`."""
    frames = list(traceback.walk_tb(error.__traceback__))
    own = _handler_package(frames)
    kept = [(frame, line) for frame, line in frames if _is_handlers(frame, own)]
    return [_frame_line(frame, line) for frame, line in kept[-MAX_FRAMES:]]


def _chain(error: BaseException) -> list[tuple[str, BaseException]]:
    chain: list[tuple[str, BaseException]] = []
    seen = {id(error)}
    current = error
    while len(chain) < MAX_CHAINED:
        if current.__cause__ is not None:
            label, current = "caused by", current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            label, current = "while handling", current.__context__
        else:
            break
        if id(current) in seen:  # a cycle of contexts
            break
        seen.add(id(current))
        chain.append((label, current))
    return chain


def _exception_line(error: BaseException) -> str:
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _handler_package(frames: list[tuple[FrameType, int]]) -> str | None:
    """The top-level package of the first frame the framework called: the handler's own."""
    for frame, _ in frames:
        module = _module(frame)
        if not _is_framework(module) and not _is_standard_library(module):
            return module.partition(".")[0]
    return None


def _is_handlers(frame: FrameType, own_package: str | None) -> bool:
    module = _module(frame)
    if _is_framework(module) or _is_standard_library(module):
        return False
    if frame.f_code.co_filename.startswith("<"):  # <frozen runpy>, <string>
        return False
    installed = not INSTALLED_DIRECTORIES.isdisjoint(Path(frame.f_code.co_filename).parts)
    return not installed or module.partition(".")[0] == own_package


def _module(frame: FrameType) -> str:
    return str(frame.f_globals.get("__name__", ""))


def _is_framework(module: str) -> bool:
    return module == FRAMEWORK_PACKAGE or module.startswith(FRAMEWORK_PACKAGE + ".")


def _is_standard_library(module: str) -> bool:
    return module.partition(".")[0] in sys.stdlib_module_names


def _frame_line(frame: FrameType, line_number: int) -> str:
    code = frame.f_code
    source = _source_line(code.co_filename, line_number, frame.f_globals)
    where = f"  {_shown_path(code.co_filename)}:{line_number} in {code.co_name}"
    return f"{where}: {source}" if source else where


def _source_line(filename: str, line_number: int, module_globals: dict[str, object]) -> str:
    return linecache.getline(filename, line_number, module_globals).strip()


def _shown_path(filename: str) -> str:
    """Relative to the working directory when under it: short, and still opens in an editor."""
    path = Path(filename)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return filename

"""The shape of the code that the README's architecture section promises, checked on the source.

- One door to the database: nothing outside `app/store/` imports the driver.
- Engine names (and what each engine does) live behind the door: outside the store, only
  configuration and start-up wiring name an engine.
- The domain knows no web framework: nothing under the domain, the store, the storage or the
  model imports FastAPI, Starlette or Strawberry.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"
DRIVERS = {"pymongo", "motor"}
WEB_FRAMEWORKS = {"fastapi", "starlette", "strawberry"}
# Where an engine may be named outside the store: the settings that point at one, and the
# start-up wiring that hands those settings to the store.
WIRING = {"config.py", "services.py"}
ENGINE_NAMES = re.compile(r"ferret|sqlite", re.IGNORECASE)
# fsck keeps its own scratch index of files in a throwaway SQLite file: a library of its own,
# not the database engine.
OWN_SQLITE = {"domain/writes/inventory.py", "domain/writes/repair.py"}
OWN_SQLITE_WORDS = re.compile(r"\bsqlite3?\b|\.sqlite3\b", re.IGNORECASE)
FRAMEWORK_FREE = ("domain/", "store/", "storage/", "models.py")


def modules() -> list[Path]:
    return sorted(APP.rglob("*.py"))


def name_of(path: Path) -> str:
    return path.relative_to(APP).as_posix()


def imported(path: Path) -> set[str]:
    """The top-level packages a module imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_the_modules_are_found() -> None:
    names = {name_of(path) for path in modules()}
    assert {"store/images.py", "store/engines/ferretdb.py", "domain/images/uploads.py", "rest/images.py"} <= names


@pytest.mark.parametrize("path", [path for path in modules() if not name_of(path).startswith("store/")], ids=name_of)
def test_only_the_store_imports_the_driver(path: Path) -> None:
    assert not imported(path) & DRIVERS, f"{name_of(path)} imports the database driver; ask app/store/ instead"


@pytest.mark.parametrize("path", [path for path in modules() if name_of(path).startswith(FRAMEWORK_FREE)], ids=name_of)
def test_the_domain_store_and_storage_know_no_web_framework(path: Path) -> None:
    assert not imported(path) & WEB_FRAMEWORKS, f"{name_of(path)} imports a web framework"


@pytest.mark.parametrize(
    "path",
    [path for path in modules() if not name_of(path).startswith("store/") and name_of(path) not in WIRING],
    ids=name_of,
)
def test_engines_are_named_only_behind_the_store(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if name_of(path) in OWN_SQLITE:
        text = OWN_SQLITE_WORDS.sub("", text)
    lines = [
        f"{number}: {line.strip()}" for number, line in enumerate(text.splitlines(), 1) if ENGINE_NAMES.search(line)
    ]
    assert not lines, f"{name_of(path)} names a database engine; say what the store guarantees instead:\n" + "\n".join(
        lines
    )


def test_the_checks_see_a_violation(tmp_path: Path) -> None:
    """The checks above can fail: a module that imports the driver and names an engine."""
    bad = tmp_path / "bad.py"
    bad.write_text("from pymongo import ASCENDING  # FerretDB sorts differently\nimport fastapi\n")
    assert imported(bad) & DRIVERS and imported(bad) & WEB_FRAMEWORKS
    assert ENGINE_NAMES.search(bad.read_text())


# The rooms stay small enough to read: "about 300" and "about 500" lines (issue 23).
MAX_CLASS_LINES = 310
MAX_MODULE_LINES = 520


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_no_module_or_class_outgrows_its_room(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{name_of(path)} has grown past {MAX_MODULE_LINES} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
            lines = node.end_lineno - node.lineno + 1
            assert lines <= MAX_CLASS_LINES, f"{name_of(path)}: class {node.name} has {lines} lines"


CLIENT = APP.parent / "imagestore"


def client_modules() -> list[Path]:
    return sorted(CLIENT.rglob("*.py"))


@pytest.mark.parametrize("path", client_modules(), ids=lambda path: path.relative_to(CLIENT).as_posix())
def test_the_client_imports_nothing_of_the_service(path: Path) -> None:
    """The client ships beside the service but speaks only its REST API: installable and usable
    without the service's code, and never reaching past the API into it."""
    assert not imported(path) & {"app", "scripts", "tests"}, f"{path.name} imports the service's own code"
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_MODULE_LINES


def test_the_client_modules_are_found() -> None:
    assert {path.name for path in client_modules()} >= {"client.py", "cli.py", "push.py", "pull.py"}

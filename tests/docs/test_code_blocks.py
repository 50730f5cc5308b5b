"""Every Python and shell code block of README.md and docs/ runs, against real components.

The files are read when the tests are collected, so a block someone adds is run (or must be
marked, see ``tests/docs/_blocks.py``) the next time the suite runs. How each language runs:

* ``python``: executed in this process. Names a block uses without defining are given to it:
  ``telemetry``; ``client`` (a real client on a SQLite file in a temporary dir, sending to a
  real collector process on 127.0.0.1; the first-run notice not answered yet); ``tmp_path``;
  ``t0`` (a ``time.monotonic()`` value); ``Path`` and ``__file__`` (an app's main module in a
  temporary folder); and for the Qt examples ``layout`` and
  ``settings_page`` (layouts of a real offscreen widget) and ``on_drive`` (a slot). Any other
  undefined name fails the block. ``127.0.0.1:8555`` (the collector's default port) is replaced
  by that collector's address. Clients, Qt adapters and widgets the block leaves are closed.
* ``sh``/``bash``/``shell``: run by ``bash -eo pipefail``, every command must succeed; from the
  repository root when the block uses ``uv`` (as from a fresh clone), else from a working dir
  of its own per document (where ``<!-- file: NAME -->`` blocks are written first; Python
  blocks run there too). The dev
  environment's ``python`` and ``telemetry`` come first on PATH.
* ``console``: each ``$ command`` runs like a shell line and its output must be the lines shown
  under it. The examples run against an app named ``my-app`` that tracked ``Started`` three
  times (plus its own ``$identify``).
* ``<!-- run: server -->`` shell blocks: each command starts a server on the port it names,
  or the default 8555 (either way a free port is given instead); a ``postgresql://`` URL is
  replaced by a fresh database of a real PostgreSQL server. The test waits for
  ``GET /healthz``, stops the server with SIGTERM and expects exit code 0.

Every run has its own ``XDG_DATA_HOME`` and ``XDG_CONFIG_HOME`` (so the default data dirs are
temporary), no display, no ``DO_NOT_TRACK``, and an HTTP(S) proxy that refuses every
connection for anything but 127.0.0.1: a block can reach only loopback.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.collector_process import CollectorProcess
from tests.docs._blocks import REPO, RUN_LANGUAGES, Block, documents, read_blocks
from tests.docs.conftest import BLOCK_COUNTS

ALL_BLOCKS = [block for path in documents() for block in read_blocks(path)]
RUNNABLE = [block for block in ALL_BLOCKS if block.language in RUN_LANGUAGES]

_DEFAULT_PORT = "8555"
_SHELL_TIMEOUT = 600.0
_SERVER_READY_TIMEOUT = 60.0
_POLL = 0.05


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def docs_collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    """The collector the examples send to: a real child process on 127.0.0.1."""
    with CollectorProcess(tmp_path_factory.mktemp("docs-collector") / "collector.db") as proc:
        yield proc


@pytest.fixture(scope="module")
def docs_postgres() -> Iterator[Callable[[], contextlib.AbstractContextManager[str]]]:
    """A real PostgreSQL server; calling the result gives a fresh database's DSN."""
    from tests.collector._postgres_server import fresh_database, postgres_server

    with postgres_server() as admin_dsn:
        yield lambda: fresh_database(admin_dsn)


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """The working dir of each document, with its ``<!-- file: NAME -->`` blocks written."""
    made: dict[Path, Path] = {}

    def workdir(document: Path) -> Path:
        if document not in made:
            folder = made[document] = tmp_path_factory.mktemp(f"docs-{document.stem}")
            for block in read_blocks(document):
                if "file" in block.markers:
                    (folder / block.markers["file"]).write_text(block.text, encoding="utf-8")
        return made[document]

    return workdir


@pytest.fixture
def docs_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A private, loopback-only, display-less environment; returned for child processes."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "TELEMETRY_DATA_DIR", "TELEMETRY_LOG_EVENTS"):
        monkeypatch.delenv(name, raising=False)
    refusing_proxy = f"http://127.0.0.1:{_free_port()}"  # nothing listens: refused at once
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, refusing_proxy)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("no_proxy", raising=False)
    env = dict(os.environ)
    # tests/conftest.py sets QT_QPA_PLATFORM=offscreen for this process; a command run from a
    # document sees what a reader's shell without a display has (the demo then self-tests).
    env.pop("QT_QPA_PLATFORM", None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_MKDOCS_2_WARNING"] = "1"  # Material's notice about MkDocs 2, on every build
    return env


def test_the_documents_have_blocks_to_run() -> None:
    """The reader found the README and the docs, and their blocks (a broken reader fails)."""
    where = {block.path.name for block in RUNNABLE}
    assert "README.md" in where
    assert any(block.path.parent.name == "docs" for block in RUNNABLE)
    assert sum(block.runs for block in RUNNABLE) >= 10


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda block: block.where)
def test_code_block(
    block: Block,
    request: pytest.FixtureRequest,
    docs_env: dict[str, str],
    tmp_path: Path,
    workdirs: Callable[[Path], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if "not-run" in block.markers:
        assert block.markers["not-run"], f"{block.where}: <!-- not-run: REASON --> needs a reason"
        BLOCK_COUNTS["not-run"].append(block.where)
        return
    if block.language in ("python", "py"):
        monkeypatch.chdir(workdirs(block.path))
        _run_python(block, request, tmp_path)
    elif block.language == "console":
        _run_console(block, request, docs_env, workdirs(block.path))
    elif block.markers.get("run") == "server":
        _run_servers(block, request, docs_env, workdirs(block.path))
    else:
        _run_shell(block, request, docs_env, workdirs(block.path))
    BLOCK_COUNTS["run"].append(block.where)


# -- python --------------------------------------------------------------------------------------


def _free_names(tree: ast.Module) -> set[str]:
    """Names the code reads but binds nowhere (a block's inputs)."""
    loaded: set[str] = set()
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
    return loaded - bound - set(dir(builtins))


def _substitute_collector(text: str, request: pytest.FixtureRequest) -> str:
    if f"127.0.0.1:{_DEFAULT_PORT}" not in text and f"localhost:{_DEFAULT_PORT}" not in text:
        return text
    collector: CollectorProcess = request.getfixturevalue("docs_collector")
    return re.sub(
        rf"(127\.0\.0\.1|localhost):{_DEFAULT_PORT}\b", f"127.0.0.1:{collector.port}", text
    )


def _run_python(block: Block, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    import telemetry

    source = _substitute_collector(block.text, request)
    tree = ast.parse(source, filename=block.where)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    provided: list[Any] = []
    for name in sorted(_free_names(tree)):
        namespace[name] = _provide(name, request, tmp_path, provided)
    try:
        exec(compile(tree, block.where, "exec"), namespace)
    finally:
        _close_all([*namespace.values(), *reversed(provided)])
        del telemetry


def _provide(name: str, request: pytest.FixtureRequest, tmp_path: Path, keep: list[Any]) -> Any:
    import telemetry

    if name == "telemetry":
        return telemetry
    if name == "tmp_path":
        return tmp_path
    if name == "t0":
        return time.monotonic()
    if name == "Path":
        return Path
    if name == "__file__":  # the app's main module, in a folder of its own
        main = tmp_path / "app_code" / "main.py"
        main.parent.mkdir(exist_ok=True)
        main.touch()
        return str(main)
    if name == "client":
        collector: CollectorProcess = request.getfixturevalue("docs_collector")
        client = telemetry.create_client(
            "docs-project", "docs-app", "1.0.0", endpoint=collector.url, data_dir=tmp_path / "app"
        )
        keep.append(client)
        return client
    if name in ("layout", "settings_page"):
        request.getfixturevalue("qapp")
        from PySide6.QtWidgets import QVBoxLayout, QWidget

        widget = QWidget()
        keep.append(widget)
        return QVBoxLayout(widget)
    if name == "on_drive":
        seen: list[object] = []
        return seen.append
    raise AssertionError(f"the block uses {name!r} without defining it (and no test gives it)")


def _close_all(objects: list[Any]) -> None:
    """Stop what a block started: clients, Qt adapters (``stop``), then top-level widgets."""
    import telemetry

    qt_types: Any = ()  # the classes, once Qt is loaded
    widget_type: Any = None
    if "PySide6.QtWidgets" in sys.modules:
        from PySide6.QtWidgets import QWidget

        from telemetry.qt import QtConnectivity, QtDriveWatcher

        qt_types, widget_type = (QtConnectivity, QtDriveWatcher), QWidget
    for obj in objects:
        if isinstance(obj, qt_types):
            obj.stop()
    for obj in objects:
        if isinstance(obj, telemetry.Client | telemetry.NoopClient):
            obj.close()
    if widget_type is not None:
        for obj in objects:
            if isinstance(obj, widget_type):
                obj.close()
                obj.deleteLater()


# -- shell ---------------------------------------------------------------------------------------


def _shell_cwd(text: str, workdir: Path) -> Path:
    return REPO if re.search(r"(^|[\s;&|(])uv\s", text) else workdir


def _run_shell(
    block: Block, request: pytest.FixtureRequest, env: dict[str, str], workdir: Path
) -> None:
    script = _substitute_collector(block.text, request)
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script],
        cwd=_shell_cwd(script, workdir),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=_SHELL_TIMEOUT,
    )
    assert done.returncode == 0, (
        f"{block.where}: exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n"
        f"{done.stderr}"
    )


def _commands(text: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and blanks dropped."""
    commands: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += re.sub(r"\s+#\s.*$", "", line)  # a trailing comment
        commands.append(current.strip())
        current = ""
    return commands


def _run_console(
    block: Block, request: pytest.FixtureRequest, env: dict[str, str], workdir: Path
) -> None:
    _make_my_app()
    steps: list[tuple[str, list[str]]] = []
    for line in _substitute_collector(block.text, request).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"{block.where}: a console block starts with a '$ ' command"
            steps[-1][1].append(line.rstrip())
    for command, expected in steps:
        done = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", command],
            cwd=_shell_cwd(command, workdir),
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_SHELL_TIMEOUT,
        )
        assert done.returncode == 0, f"{block.where}: $ {command}\n{done.stdout}{done.stderr}"
        shown = [line.rstrip() for line in done.stdout.splitlines()]
        while expected and not expected[-1]:
            expected.pop()
        while shown and not shown[-1]:
            shown.pop()
        if expected:
            assert shown == expected, f"{block.where}: $ {command}"


def _make_my_app() -> None:
    """The app the console examples query: ``my-app``, which tracked ``Started`` three times."""
    import telemetry

    if telemetry.default_data_dir("my-app").exists():
        return
    with telemetry.create_client("docs-project", "my-app", "1.0.0", upload=False) as client:
        for _ in range(3):
            client.track("Started")


def _run_servers(
    block: Block, request: pytest.FixtureRequest, env: dict[str, str], workdir: Path
) -> None:
    commands = _commands(block.text)
    assert commands, f"{block.where}: a server block without a command"
    for command in commands:
        port = _free_port()
        if _DEFAULT_PORT in command:
            command = command.replace(_DEFAULT_PORT, str(port))
        else:  # it listens on the default port, 8555: on a free one here
            command += f" --port {port}"
        with contextlib.ExitStack() as stack:
            if "postgresql://" in command:
                database = stack.enter_context(request.getfixturevalue("docs_postgres")())
                command = re.sub(r"postgresql://\S+", database, command)
            _serve_once(block, command, port, env, _shell_cwd(command, workdir))


def _serve_once(block: Block, command: str, port: int, env: dict[str, str], cwd: Path) -> None:
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + _SERVER_READY_TIMEOUT
        healthy = False
        while not healthy and proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    healthy = r.status == 200
            except OSError:
                time.sleep(_POLL)
        assert healthy, f"{block.where}: {command!r} never answered /healthz (exit {proc.poll()})"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
    assert proc.returncode == 0, f"{block.where}: {command!r} exited {proc.returncode}\n{output}"

"""The demo's composition root: command line, embedded collector, client, window, self-test.

``python -m demo_app`` starts a collector on 127.0.0.1 in a child process, points the telemetry
client at it and opens the flasher; the child stops with the demo, however the demo ends (see
``demo_app.collector_child``). ``--endpoint URL`` sends to another collector, ``--no-collector``
sends nowhere (events wait on disk). The collector child is the demo itself run as
``--collector-child ...`` (``python -m demo_app``, or the executable when frozen by PyInstaller).
SIGTERM and SIGINT end the demo as closing its window does.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import lzma
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

import platformdirs

from demo_app import _qt_platform, collector_child

if TYPE_CHECKING:
    import telemetry
    from demo_app.ui.main_window import MainWindow
    from telemetry.qt import QtDriveWatcher

__all__ = ["CATALOGUE_PATH", "EmbeddedCollector", "build_window", "main", "make_client"]

PROJECT: Final = "etcher-demo"
#: The app's one name: its telemetry component, its data dir, its executable and WM_CLASS.
COMPONENT: Final = "demo-app"
#: The data dir's name before it was the component's (moved to the new name on first use).
LEGACY_DIR_NAME: Final = "etcher-demo"
CATALOGUE_PATH: Final = Path(__file__).resolve().parent / "catalogue.toml"
COLLECTOR_CHILD_FLAG: Final = "--collector-child"
#: The freedesktop application id (packaging/linux/<id>.desktop and metainfo); also the
#: window's WM_CLASS, so X11 desktops match the window to the desktop file and its icon.
DESKTOP_FILE_ID: Final = "io.github.desktop_telemetry.DemoFlasher"
#: The exit code when Qt's platform plugin cannot load (see ``demo_app._qt_platform``).
EXIT_NO_QT_PLATFORM: Final = 3


def version() -> str:
    """The installed package version (``0.0.0`` when run from an uninstalled tree)."""
    try:
        return metadata.version("desktop-telemetry")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def default_root() -> Path:
    """Where the demo keeps its data: ``<user data dir>/demo-app``, named after the component,
    so ``telemetry --app demo-app`` finds its telemetry in ``telemetry/`` there."""
    return platformdirs.user_data_path(COMPONENT, appauthor=False)


def adopt_legacy_root(root: Path) -> Path:
    """Move the data an older demo kept in ``<user data dir>/etcher-demo`` to ``root`` (the
    same layout), if ``root`` does not exist yet; returns the dir to use (the old one, if it
    cannot be moved)."""
    legacy = root.parent / LEGACY_DIR_NAME
    if root.exists() or not legacy.is_dir():
        return root
    try:
        os.rename(legacy, root)
    except OSError as exc:
        print(f"demo: keeping the data in {legacy} (could not move it to {root}: {exc})")
        return legacy
    print(f"demo: moved the demo's data from {legacy} to {root}")
    return root


def data_dirs(data_dir: Path | None) -> tuple[Path, Path]:
    """(the demo's dir, the telemetry data dir) for ``--data-dir``.

    ``--data-dir DIR`` is the telemetry data dir, as for ``telemetry --data-dir DIR``; the
    demo keeps its ``settings.json`` and ``collector/`` in it too. Without it: the default
    root, whose ``telemetry/`` is ``telemetry.default_data_dir("demo-app")``.
    """
    if data_dir is not None:
        return data_dir, data_dir
    root = adopt_legacy_root(default_root())
    return root, root / "telemetry"


# ---------------------------------------------------------------------------- collector child


def collector_command(args: Sequence[str]) -> list[str]:
    """The command line starting the collector child: the demo itself (the bundle when frozen)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, COLLECTOR_CHILD_FLAG, *args]
    return [sys.executable, "-m", "demo_app", COLLECTOR_CHILD_FLAG, *args]


class EmbeddedCollector:
    """The local collector as a child process on 127.0.0.1 (a free port).

    The child stops when this process is gone, even after SIGKILL: its stdin is a pipe from
    this process, and on Linux it also gets SIGTERM when the starting thread ends. That death
    signal is only asked for when :meth:`start` runs on the main thread, since a worker thread
    may end long before the demo does.
    """

    def __init__(self, database: Path, *, log_file: Path | None = None) -> None:
        self.database = database
        self.log_file = log_file or database.with_suffix(".log")
        self.url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> str:
        """Start the child and wait (bounded) until it listens; returns its base URL."""
        self.database.parent.mkdir(parents=True, exist_ok=True)
        ready = Path(tempfile.mkdtemp(prefix="demo-collector-")) / "ready"
        tie = [collector_child.PARENT_FLAG, str(os.getpid())]
        if threading.current_thread() is threading.main_thread():
            tie.append(collector_child.DEATH_SIGNAL_FLAG)
        # One process (the default would fork one worker per core): a loopback collector for
        # one desktop app needs no more, and the demo's ties (stdin pipe, death signal) then
        # reach the process that serves.
        args = ["--host", "127.0.0.1", "--port", "0", "--database", str(self.database),
                "--workers", "1", "--ready-file", str(ready)]  # fmt: skip
        with open(self.log_file, "ab") as log:
            # stdin: the pipe whose write end only this process holds (never written to).
            self._proc = subprocess.Popen(
                collector_command([*tie, *args]),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if ready.exists() and (text := ready.read_text(encoding="utf-8").strip()):
                    self.url = text
                    return text
                if self._proc.poll() is not None:
                    break
                time.sleep(0.05)
        except BaseException:
            # Interrupted (SIGTERM, Ctrl+C) while waiting: the child stops too.
            self.stop()
            raise
        finally:
            with contextlib.suppress(OSError):
                ready.unlink()
                ready.parent.rmdir()
        self.stop()
        tail = self.log_file.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"the local collector did not start:\n{tail}")

    @property
    def running(self) -> bool:
        """Whether the child is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The child's process id."""
        return None if self._proc is None else self._proc.pid

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the child (SIGTERM, then SIGKILL after ``timeout``)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc.stdin is not None:
            proc.stdin.close()

    def rows(self) -> list[dict[str, Any]]:
        """Every event the collector stored, oldest first (read-only)."""
        from telemetry.collector import stored_events

        return stored_events(self.database)


# ---------------------------------------------------------------------------- client and window


def make_client(
    data_dir: Path, endpoint: str | None, *, upload: bool = True, **options: Any
) -> telemetry.Client:
    """The telemetry client, with the demo's event catalogue.

    ``options`` go to ``telemetry.create_client`` (``upload_policy``, ``consent_policy``...).
    """
    import telemetry

    return telemetry.create_client(
        PROJECT,
        COMPONENT,
        version(),
        endpoint=endpoint,
        data_dir=data_dir,
        upload=upload and endpoint is not None,
        catalogue=CATALOGUE_PATH,
        **options,
    )


def build_window(
    client: telemetry.TelemetryClient,
    root: Path,
    *,
    watcher: QtDriveWatcher | None = None,
    connectivity: bool = True,
) -> MainWindow:
    """The main window with its drive watcher, connectivity and settings (needs a QApplication)."""
    from demo_app.analytics import FlashAnalytics
    from demo_app.settings import DemoSettings
    from demo_app.ui.main_window import MainWindow
    from telemetry.qt import QtConnectivity, QtDriveWatcher

    if watcher is None:
        watcher = QtDriveWatcher(all_drives=True)
        watcher.start()
    conn = None
    if connectivity:
        conn = QtConnectivity(client)
        conn.start()
    settings = DemoSettings.load(root / "settings.json")
    window = MainWindow(
        client,
        watcher=watcher,
        settings=settings,
        analytics=FlashAnalytics(client, version=version()),
        connectivity=conn,
        version=version(),
    )
    if conn is not None:
        conn.setParent(window)
    if watcher.parent() is None:
        watcher.setParent(window)

    def stop_helpers() -> None:
        watcher.stop()
        if conn is not None:
            conn.stop()

    window.stop_helpers = stop_helpers
    return window


def _qapp(offscreen: bool, theme: str | None = None) -> Any:
    """The QApplication (created once), with the app's names, icon and ``theme`` (``dark``,
    ``light`` or ``system``; ``None``: dark for a new application, else the look it has)."""
    if offscreen:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    elif not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and (
        sys.platform.startswith("linux")
    ):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import qInstallMessageHandler
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        previous = qInstallMessageHandler(None)

        def quiet(mode: Any, context: Any, message: str) -> None:
            # The offscreen platform warns about window hints it cannot honour: noise here.
            if "This plugin does not support" in message:
                return
            if previous is not None:
                previous(mode, context, message)
            else:
                sys.stderr.write(message + "\n")

        qInstallMessageHandler(quiet)
    app = QApplication.instance()
    created = app is None
    if app is None:
        # Before the application exists: X11's WM_CLASS is made of the program name (argv[0])
        # and the application name, and both are the desktop file id, so the desktop shows
        # the window with the desktop file's name and icon. Wayland uses desktopFileName.
        QApplication.setApplicationName(DESKTOP_FILE_ID)
        QGuiApplication.setDesktopFileName(DESKTOP_FILE_ID)
        app = QApplication([DESKTOP_FILE_ID])
    from demo_app.ui import theme as themes
    from demo_app.ui.icons import app_icon
    from demo_app.ui.main_window import APP_NAME

    # Qt appends the display name to window titles that do not already end with it.
    QApplication.setApplicationDisplayName(APP_NAME)
    QGuiApplication.setDesktopFileName(DESKTOP_FILE_ID)
    QApplication.setWindowIcon(app_icon())
    if isinstance(app, QApplication) and (theme is not None or created):
        themes.apply(app, theme)
    return app


def save_screenshot(widget: Any, path: Path) -> bool:
    """Grab ``widget`` to a PNG file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return bool(widget.grab().save(str(path), "PNG"))


# ---------------------------------------------------------------------------- running


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="demo-app",
        description="An Etcher-like image flasher that shows the telemetry module end to end.",
    )
    parser.add_argument("--endpoint", metavar="URL", help="send telemetry to this collector")
    parser.add_argument(
        "--no-collector",
        action="store_true",
        help="start no collector and send nothing: events wait on disk",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="the telemetry data dir (as for 'telemetry --data-dir DIR'); settings and the local"
        " collector's database are kept in it too (default: <user data dir>/demo-app, whose"
        " telemetry is in telemetry/, what 'telemetry --app demo-app' reads)",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="offscreen: flash a generated image to a temp file, validate, check the collector",
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="FILE",
        help="save the window as PNG and exit; on a throwaway data dir (or --data-dir), with no"
        " collector and no upload",
    )
    parser.add_argument(
        "--theme",
        choices=("dark", "light", "system"),
        default="dark",
        help="the look: dark (default, Etcher's), light, or the desktop's colour scheme",
    )
    parser.add_argument(
        "--telemetry-catalogue", action="store_true", help="print the events this app may send"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m demo_app`` and the ``demo-app`` script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == [COLLECTOR_CHILD_FLAG]:
        return collector_child.run(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.telemetry_catalogue:
        sys.stdout.write(CATALOGUE_PATH.read_text(encoding="utf-8"))
        return 0
    if args.endpoint and args.no_collector:
        _parser().error("--endpoint and --no-collector cannot be combined")
    if args.self_test:
        return self_test(args)
    if args.screenshot is None and not _display_available():
        print(
            "demo: no display found (DISPLAY/WAYLAND_DISPLAY unset); running --self-test "
            "instead, which flashes offscreen and checks delivery"
        )
        return self_test(args)
    # Qt aborts the process when its platform plugin cannot load: find out first, and start
    # Qt before the collector child, so nothing is ever left running behind a failed start.
    plugin_problem = _qt_platform.problem()
    if plugin_problem is not None:
        print(plugin_problem.message(), file=sys.stderr, flush=True)
        return EXIT_NO_QT_PLATFORM
    _qapp(offscreen=False, theme=args.theme)
    return _run(args)


def _display_available() -> bool:
    """False on a Linux machine without X11/Wayland and without an explicit Qt platform."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _start_collector(root: Path) -> EmbeddedCollector:
    collector = EmbeddedCollector(root / "collector" / "collector.db")
    collector.start()
    return collector


class _QuitOnSignals:
    """SIGTERM and SIGINT end the demo as closing its window does, so the clean-up runs (the
    client is closed, the collector child stopped gracefully); the exit code is 128 + signal.

    Outside the Qt event loop, the signal raises ``SystemExit`` where Python code is
    running. While it runs, Qt's C++ loop gives Python no chance to run a signal handler, so
    the signal also wakes a socket that Qt watches (``signal.set_wakeup_fd``) and the handler
    then ends the loop.
    """

    SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.code: int | None = None
        self._app: Any = None
        self._looping = False
        self._previous: dict[int, Any] = {}
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self._previous_wakeup = -1
        self._notifier: Any = None

    def __enter__(self) -> _QuitOnSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._wakeup is not None:
            signal.set_wakeup_fd(self._previous_wakeup)
            for sock in self._wakeup:
                sock.close()

    def exec(self, app: Any) -> int:
        """Run ``app``'s event loop; its exit code, or 128 + signal if a signal ended it."""
        from PySide6.QtCore import QSocketNotifier, QTimer

        if self._previous and self._wakeup is None:
            reader, writer = socket.socketpair()
            reader.setblocking(False)
            writer.setblocking(False)
            self._wakeup = (reader, writer)
            self._previous_wakeup = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
            self._notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, app)
            self._notifier.activated.connect(self._drain)
        self._app = app
        QTimer.singleShot(0, self._started)
        try:
            code = int(app.exec())
        finally:
            self._looping = False
        return code if self.code is None else self.code

    def _started(self) -> None:
        self._looping = True
        if self.code is not None:  # a signal came while Qt code ran, before the loop
            self._app.exit(self.code)
            return
        print("demo: window open; close it or press Ctrl+C to quit", flush=True)

    def _drain(self) -> None:
        # Running this slot lets Python call the signal handler; the bytes only woke Qt.
        if self._wakeup is not None:
            with contextlib.suppress(OSError):
                while self._wakeup[0].recv(512):
                    pass

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.code = 128 + signum
        if self._looping:
            self._app.exit(self.code)
        else:
            raise SystemExit(self.code)


def _screenshot(args: argparse.Namespace) -> int:
    """The window as a first run shows it, saved to ``args.screenshot``: on a throwaway data
    dir unless ``--data-dir`` is given, with no collector and nothing sent."""
    with contextlib.ExitStack() as stack:
        if args.data_dir is None:
            root = telemetry_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="demo-screenshot-"))
            )
        else:
            root, telemetry_dir = data_dirs(args.data_dir)
        client = make_client(telemetry_dir, None, upload=False)
        stack.callback(client.close)
        app = _qapp(offscreen=False)
        window = build_window(client, root, connectivity=False)
        stack.callback(window.stop_helpers)
        window.show()
        _settle(app, 0.8)
        ok = save_screenshot(window, args.screenshot)
        window.shutdown()
        window.deleteLater()
        return 0 if ok else 1


def _run(args: argparse.Namespace) -> int:
    if args.screenshot is not None:
        return _screenshot(args)
    root, telemetry_dir = data_dirs(args.data_dir)
    with contextlib.ExitStack() as stack:
        quit_on_signals = stack.enter_context(_QuitOnSignals())
        endpoint = args.endpoint
        if endpoint is None and not args.no_collector:
            collector = _start_collector(root)
            stack.callback(collector.stop)
            endpoint = collector.url
            print(
                f"demo: local collector on {endpoint} "
                f"(pid {collector.pid}, database {collector.database})",
                flush=True,
            )
        elif args.no_collector:
            print("demo: no collector; events wait on disk (see 'Telemetry data')")
        client = make_client(telemetry_dir, endpoint)
        stack.callback(client.close)
        # Crashes, uncaught exceptions (Qt slots too) and logged errors become error reports,
        # under the same switch as the usage events.
        client.capture_errors(app_root=Path(__file__).resolve().parent)
        app = _qapp(offscreen=False)
        window = build_window(client, root)
        stack.callback(window.stop_helpers)
        window.show()
        code = quit_on_signals.exec(app)
        window.shutdown()
        return code


def _settle(app: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)


def wait_for(app: Any, predicate: Callable[[], bool], timeout: float) -> bool:
    """Run the event loop until ``predicate()`` or ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if predicate():
            return True
        time.sleep(0.02)
    app.processEvents()
    return predicate()


def make_test_image(folder: Path, *, size: int = 8 << 20) -> tuple[Path, bytes]:
    """An xz-compressed image with random and zero regions; returns its path and raw bytes."""
    raw = os.urandom(size // 2) + bytes(size // 4) + os.urandom(size - size // 2 - size // 4)
    path = folder / "self-test.img.xz"
    path.write_bytes(lzma.compress(raw, preset=1))
    return path, raw


SELF_TEST_EVENTS: Final = (
    "[Etcher] Application start",
    "[Etcher] Select image",
    "[Etcher] Toggle drive",
    "[Etcher] Flash",
    "[Etcher] Done",
)


def self_test(args: argparse.Namespace) -> int:
    """Flash a generated compressed image to a temporary file, validate, check delivery."""
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="demo-self-test-")))
        root, telemetry_dir = data_dirs(args.data_dir) if args.data_dir else (tmp / "data",) * 2
        failures: list[str] = []

        def fail(reason: str) -> int:
            print(f"self-test: FAILED: {reason}", file=sys.stderr)
            return 1

        collector: EmbeddedCollector | None = None
        endpoint = args.endpoint
        if endpoint is None and not args.no_collector:
            collector = _start_collector(root)
            stack.callback(collector.stop)
            endpoint = collector.url
        client = make_client(telemetry_dir, endpoint)
        stack.callback(client.close)
        app = _qapp(offscreen=True)
        window = build_window(client, root, connectivity=False)
        stack.callback(window.stop_helpers)
        window.show()
        if window.notice is not None:
            # The user reads the first-run notice and clicks OK: only then may uploads start.
            window.notice.ok_button.click()
        image, raw = make_test_image(tmp)
        target = tmp / "target.img"
        from demo_app.flasher import Target

        if not window.load_image(image):
            return fail(f"the image was refused: {window.image_error.text()}")
        window.select_target(Target.file(target))
        window.settings.validate_after_flash = True
        if not window.start_flash():
            return fail("the flash did not start")
        if not wait_for(app, lambda: window.state != "flashing", 120):
            return fail("the flash did not end within 120 s")
        if window.state != "done":
            return fail(f"the flash ended as {window.state}: {window.flash_status.text()}")
        result = window.last_result
        if result is None or result.validation != "passed":
            return fail("the flash was not validated")
        if target.read_bytes() != raw:
            failures.append("the target differs from the decompressed image")
        print(
            f"self-test: flashed {result.bytes_written} bytes in {result.duration:.2f} s "
            f"({result.mb_per_s:.1f} MB/s), validation {result.validation}"
        )
        if endpoint is not None:
            # Deliver now, off the GUI thread (the uploader would anyway, a little later).
            flusher = threading.Thread(target=client.flush, args=(20.0,), daemon=True)
            flusher.start()
            if collector is None:
                flusher.join(25.0)
        if collector is not None:

            def delivered() -> bool:
                names = {r["event_type"] for r in collector.rows()}
                return all(n in names for n in SELF_TEST_EVENTS)

            if not wait_for(app, delivered, 30):
                names = sorted({r["event_type"] for r in collector.rows()})
                failures.append(f"events missing at the collector (it has {names})")
            rows = collector.rows()
            print(f"self-test: the collector stored {len(rows)} events")
            failures += _privacy_problems(rows, [str(image), str(tmp), str(Path.home())])
        window.shutdown()
        if failures:
            return fail("; ".join(failures))
        print("self-test: OK")
        return 0


def _privacy_problems(rows: list[dict[str, Any]], paths: list[str]) -> list[str]:
    problems = []
    user = getpass.getuser()
    needles = [p for p in paths if p and p != "/"]
    for row in rows:
        text = row["event"] if isinstance(row.get("event"), str) else json.dumps(row)
        event = json.loads(text)
        blob = json.dumps(event.get("event_properties", {}))
        for needle in needles:
            if needle in text:
                problems.append(f"{row['event_type']} contains the path {needle!r}")
        if len(user) >= 3 and user in blob:
            problems.append(f"{row['event_type']} contains the user name")
    return problems

"""The collector's ASGI application: which route answers which path, the middleware, and what
runs for the application's lifetime (the forwarder, closing the storage it opened)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from telemetry.collector._client_address import ForgetClientAddress
from telemetry.collector._config import CollectorConfig
from telemetry.collector._deletion_route import DELETION_PATHS, DeletionRoute
from telemetry.collector._envelope_route import ENVELOPE_PATHS, EnvelopeRoute
from telemetry.collector._ingest_route import INGEST_PATHS, IngestRoute
from telemetry.collector._open_storage import open_storage
from telemetry.collector._service_routes import ServiceRoutes
from telemetry.collector._shared_memory import WorkerShare
from telemetry.collector._shutdown_answer import AnswerCutRequests
from telemetry.collector._state import CollectorState
from telemetry.collector._storage import Storage

__all__ = ["build_app", "create_app"]

#: Starts one background task for the application's lifetime.
_BackgroundTask = Callable[[], contextlib.AbstractAsyncContextManager[object]]
_Lifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]


def create_app(
    database: str | Path | Storage,
    *,
    config: CollectorConfig | None = None,
    environment: str = "production",
    forward_interval: float = 1.0,
    forward_backoff: float = 5.0,
    background: bool = True,
) -> Starlette:
    """Build the collector's ASGI app.

    ``database`` is a SQLite path or a ``postgresql://`` URL (the app opens it now, migrating the
    schema, and closes it at lifespan shutdown) or an already open :class:`Storage` (the caller
    keeps ownership). ``config`` maps projects to destination tokens (default: any project,
    no forwarding); ``environment`` picks the tokens (``staging`` or ``production``). When a
    project has a token for it, a background task forwards its events every ``forward_interval``
    seconds, backing off from ``forward_backoff`` seconds after failures. With ``[retention]``
    (or a project's ``retention_days``) configured, a background task deletes expired rows.
    ``background=False``: neither runs (another worker process of the same collector runs them).

    Routes: ``POST /2/httpapi`` and ``POST /amplitude/2/httpapi`` (Amplitude HTTP V2 batches),
    ``POST /api/<project>/envelope/`` (Sentry envelopes: error reports), ``POST /deletion``
    and ``POST /amplitude/deletion``, ``GET /healthz``, ``GET /metrics``, and
    with ``[links]`` configured ``GET /r/collect``; ``GET /robots.txt`` always; with
    ``[dashboard]`` configured ``/dashboard`` (see ``_dashboard``).
    """
    return build_app(
        database,
        config=config,
        environment=environment,
        forward_interval=forward_interval,
        forward_backoff=forward_backoff,
        background=background,
    )


def build_app(
    database: str | Path | Storage,
    *,
    config: CollectorConfig | None = None,
    environment: str = "production",
    forward_interval: float = 1.0,
    forward_backoff: float = 5.0,
    background: bool = True,
    share: WorkerShare | None = None,
) -> Starlette:
    """:func:`create_app`, in one of the collector's worker processes when ``share`` is given
    (rate limits and metrics shared with the other workers)."""
    owned = not isinstance(database, Storage)
    store = open_storage(database)
    state = CollectorState(
        store, config if config is not None else CollectorConfig(), environment, share=share
    )
    tasks = _background_tasks(state, forward_interval, forward_backoff) if background else []
    ingest = IngestRoute(state)
    routes = _routes(state, ingest)
    dashboard = None
    if state.config.dashboard is not None:
        from telemetry.collector._dashboard import Dashboard

        dashboard = Dashboard(state, state.config.dashboard)
        routes += dashboard.routes()
        tasks.append(dashboard.run_refresh if background else dashboard.closing)
    app = Starlette(
        routes=routes,
        # AnswerCutRequests wraps everything below it, to see a request's task cancelled by the
        # server's shutdown wherever it waits.
        middleware=[Middleware(AnswerCutRequests), Middleware(ForgetClientAddress)],
        lifespan=_lifespan(store, owned=owned, background=tasks),
    )
    app.state.store = store
    app.state.collector = state
    app.state.ingest = ingest
    app.state.dashboard = dashboard
    return app


def _routes(state: CollectorState, ingest: IngestRoute) -> list[BaseRoute]:
    """Every route of the app, the link tracker's only with ``[links]`` configured."""
    deletion = DeletionRoute(state)
    service = ServiceRoutes(state)
    routes: list[BaseRoute] = [
        Route(path, ingest.handle, methods=["POST"]) for path in INGEST_PATHS
    ]
    routes += [Route(path, deletion.handle, methods=["POST"]) for path in DELETION_PATHS]
    envelopes = EnvelopeRoute(state)
    routes += [Route(path, envelopes.handle, methods=["POST"]) for path in ENVELOPE_PATHS]
    routes.append(Route("/healthz", service.healthz, methods=["GET"]))
    routes.append(Route("/metrics", service.metrics, methods=["GET"]))
    routes.append(Route("/robots.txt", service.robots, methods=["GET"]))
    if state.config.links is not None:
        from telemetry.collector._links import link_routes

        routes += link_routes(state, state.config.links)
    return routes


def _background_tasks(
    state: CollectorState, forward_interval: float, forward_backoff: float
) -> list[_BackgroundTask]:
    """The forwarder, when a project has a destination token for the environment; the report
    forwarder, when a project has a ``sentry_dsn``; retention, when an age is configured."""
    tasks: list[_BackgroundTask] = []
    if state.config.forwarding(state.environment):
        from telemetry.collector._forwarder import run_forwarder

        tasks.append(
            lambda: run_forwarder(state, interval=forward_interval, backoff_base=forward_backoff)
        )
    if state.config.forwarding_reports():
        from telemetry.collector._report_forwarder import run_report_forwarder

        tasks.append(
            lambda: run_report_forwarder(
                state, interval=forward_interval, backoff_base=forward_backoff
            )
        )
    if state.config.retention_rules():
        from telemetry.collector._retention import run_retention

        tasks.append(lambda: run_retention(state))
    return tasks


def _nothing() -> None:
    """What the lifespan runs in a worker thread to load the thread pool."""


def _lifespan(store: Storage, *, owned: bool, background: list[_BackgroundTask]) -> _Lifespan:
    """Run ``background`` while the app serves; then close ``store`` if the app opened it."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            # The worker threads' machinery (anyio's asyncio back end) loads on first use: do it
            # before serving, not during the first batch (up to half a second where Python
            # compiles its sources, with no bytecode cache).
            await run_in_threadpool(_nothing)
            async with contextlib.AsyncExitStack() as stack:
                for start in background:
                    await stack.enter_async_context(start())
                yield
        finally:
            if owned:
                store.close()

    return lifespan

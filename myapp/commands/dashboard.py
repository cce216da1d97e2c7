"""`myapp dashboard [--host H] [--port P]`: serve the web dashboard until stopped."""

from __future__ import annotations

from typing import Annotated

import typer

from myapp.cli_context import Context, run_async


def dashboard(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default Dashboard:Host, 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Port (default Dashboard:Port, 8000; 0: any free)."),
    ] = None,
) -> None:
    """Serve the web dashboard: every handler's state, its items, the workers; requeue, run now.

    Any address but loopback requires Dashboard:Token. It never migrates the database.
    """
    context: Context = ctx.obj
    settings = context.settings
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    options = settings.dashboard.model_copy(update=overrides)

    from myapp.dashboard.binding import check_bind

    check_bind(options)  # before anything else: a refused bind is one line, exit 2

    async def serve() -> None:
        from myapp.dashboard.service import build_dashboard_service
        from myapp.processing.hosting import Host

        await Host([build_dashboard_service(context.container, settings, options)]).run()

    run_async(context, serve)

"""A database that cannot be reached is an answer, not a crash: 503 with one line naming the
database (password masked), never the driver's text (it may quote a statement's values)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from myapp.processing.transient import is_database_unavailable

UNAVAILABLE = 503
RETRY_AFTER_S = "5"


async def database_unavailable(request: Request, error: Exception) -> Response:
    if not is_database_unavailable(error):
        raise error
    database = request.app.state.dashboard.database
    message = f"Database {database} cannot be reached now ({type(error).__name__}); retry shortly"
    headers = {"Retry-After": RETRY_AFTER_S}
    if request.url.path.startswith("/api"):
        return JSONResponse({"detail": message}, status_code=UNAVAILABLE, headers=headers)
    return PlainTextResponse(message, status_code=UNAVAILABLE, headers=headers)

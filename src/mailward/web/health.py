"""``/healthz`` and ``/readyz`` on the web port, for load balancers in front of web nodes
(the metrics listener of ``mailward.server.observe`` answers the same for every node)."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import MediaType, Request, Response, get
from sqlalchemy import text

from mailward.obs.health import check_spool, reason
from mailward.web.context import context_of

CHECK_SECONDS = 5.0


@get("/healthz", include_in_schema=False, sync_to_thread=False)
def healthz() -> Response[str]:
    """The process is up."""
    return Response("ok\n", media_type=MediaType.TEXT)


@get("/readyz", include_in_schema=False)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """503 naming what failed unless the database answers and the spool is writable."""
    web = context_of(request)
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(CHECK_SECONDS), web.services.db.session() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure is an answer, not an error page
        checks["database"] = reason(exc)
    try:
        await asyncio.to_thread(check_spool, web.settings.data_dir / "queue")
        checks["spool"] = "ok"
    except Exception as exc:
        checks["spool"] = reason(exc)
    failed = [name for name, state in checks.items() if state != "ok"]
    return Response({"status": "fail" if failed else "ok", "failed": failed,
                     "checks": checks}, status_code=503 if failed else 200)

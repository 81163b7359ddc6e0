"""Every error leaves as ``application/problem+json``; oversized bodies are refused unread."""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from warnpub.api.context import services
from warnpub.clock import new_id
from warnpub.problems import Problem, bad_request

log = logging.getLogger("warnpub.api")
PROBLEM_TYPE = "application/problem+json"


def problem_response(problem: Problem) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="warnpub"'} if problem.status == 401 else None
    return web.Response(
        status=problem.status,
        headers=headers,
        content_type=PROBLEM_TYPE,
        text=json.dumps(problem.as_dict(), ensure_ascii=False),
    )


@web.middleware
async def problems(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    # Handlers refuse bodies over their own limit before reading them (api.bodies.read_body).
    limit = services(request).settings.server.max_body_bytes
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(problem)
    except web.HTTPRequestEntityTooLarge:
        return problem_response(
            Problem(
                413,
                "Body too large",
                f"the request body is over the limit of {limit} bytes",
                "body-too-large",
            )
        )
    except HttpProcessingError as exc:
        # A body aiohttp cannot read while the handler reads it (say, a multipart form with a
        # malformed part header): the client's fault, said in the parser's words.
        return problem_response(
            bad_request(f"the request body could not be read: {exc.message}; send it again")
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return problem_response(Problem(exc.status, exc.reason, detail or exc.reason))
    except Exception:
        ref = new_id()
        log.exception(
            "unhandled error", extra={"ref": ref, "path": request.path, "method": request.method}
        )
        return problem_response(
            Problem(
                500,
                "Internal error",
                f"something failed on our side; quote reference {ref}",
                "internal",
            )
        )

"""A route table that also writes the OpenAPI description, so no route goes undocumented."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

HandlerFn = Callable[[web.Request], Awaitable[web.StreamResponse]]

PROBLEM = {"$ref": "#/components/schemas/Problem"}


@dataclass(slots=True)
class Route:
    method: str
    path: str
    handler: HandlerFn
    summary: str
    auth: str  # "none" | "agency" | "operator" | "agency or operator" | roles...
    request: dict[str, Any] | None = None
    response: dict[str, Any] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    params: tuple[dict[str, Any], ...] = ()


class RouteTable:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        auth: str,
        request: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        errors: tuple[int, ...] = (),
        params: tuple[dict[str, Any], ...] = (),
    ) -> Callable[[HandlerFn], HandlerFn]:
        def register(fn: HandlerFn) -> HandlerFn:
            self.routes.append(
                Route(method, path, fn, summary, auth, request, response or {}, errors, params)
            )
            return fn

        return register

    def add_to(self, app: web.Application) -> None:
        for r in self.routes:
            app.router.add_route(r.method, r.path, r.handler)

    def openapi(self, components: dict[str, Any], version: str) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        for r in self.routes:
            op: dict[str, Any] = {
                "summary": r.summary,
                "operationId": f"{r.method.lower()}_{r.handler.__name__}",
                "x-warnpub-auth": r.auth,
                "responses": {},
            }
            if r.auth != "none" and not r.auth.startswith("gateway"):
                op["security"] = [{"bearer": []}]
            params = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _path_params(r.path)
            ] + list(r.params)
            if params:
                op["parameters"] = params
            if r.request:
                # Either the content map alone (a required body) or a whole Request Body Object
                # ({"required": False, "content": {...}}) for a body that may be left out.
                body = r.request if "content" in r.request else {"content": r.request}
                op["requestBody"] = {"required": True, **body}
            ok = r.response or {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            }
            op["responses"].update(ok)
            errors = set(r.errors) | ({401, 403} if r.auth != "none" else set())
            error_content: dict[str, Any] = {"application/problem+json": {"schema": PROBLEM}}
            if _is_page(ok) or r.path.startswith("/console/"):
                # A page answers its refusals with an HTML page a person can read; the problem
                # middleware still answers what happens before the handler (413, 5xx) as JSON.
                error_content = {"text/html": {"schema": {"type": "string"}}, **error_content}
            if r.path.startswith("/console/"):
                # Every console page: the sign-in redirect (303), and the refusals its page
                # wrapper renders as HTML (warnpub.console.pages.page) or the middleware answers.
                errors |= _CONSOLE_ERRORS
                if r.auth != "none":
                    op["responses"].setdefault("303", _SIGN_IN)
            for status in sorted(errors):
                op["responses"][str(status)] = {
                    "description": _REASONS.get(status, "Error"),
                    "content": error_content,
                }
            paths.setdefault(r.path, {})[r.method.lower()] = op
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "warnpub API",
                "version": version,
                "description": "Agencies submit CAP 1.2 or JSON warnings; operators review them.",
            },
            "paths": paths,
            "components": {
                **components,
                "securitySchemes": {
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An agency API key (wpk_…) or an operator token (wpt_…)",
                    }
                },
            },
        }


def _is_page(responses: dict[str, Any]) -> bool:
    return any("text/html" in answer.get("content", {}) for answer in responses.values())


_CONSOLE_ERRORS = {400, 403, 404, 409, 410, 413, 422}
_SIGN_IN = {
    "description": "Not signed in: see /console/login (the Location header)",
    "headers": {"Location": {"schema": {"type": "string"}}},
}


def _path_params(path: str) -> list[str]:
    return re.findall(r"\{([_a-zA-Z]\w*)", path)


_REASONS = {
    400: "Malformed request",
    401: "Missing or bad credential",
    403: "Outside the caller's role or scope",
    404: "Not found",
    409: "Conflict with the current state",
    410: "Gone",
    413: "Body too large",
    415: "Unsupported content type",
    422: "Breaks a rule",
    429: "Too many attempts; locked for a while",
}

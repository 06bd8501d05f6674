"""The web application: Starlette routes, Jinja2 pages, JSON for the page's script.

Safety: requests must name this server in ``Host`` (no DNS rebinding); every request that changes
something must come from this server's own page (``Origin``) and carry its CSRF token; pages are
rendered with autoescaping, the script writes user text only as text, and a Content-Security-Policy
allows no script but the vendored one.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote, unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .. import __version__
from ..errors import ReportgenError
from .workspace import Busy, Conflict, NotFound, Refused, Workspace, all_region_choices

HERE = Path(__file__).resolve().parent
MAX_BODY = 8_000_000
SAFE_METHODS = ("GET", "HEAD")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class Guard(BaseHTTPMiddleware):
    """Host, Origin and CSRF checks, and the security headers of every response."""

    def __init__(self, app, hosts: set[str], token: str) -> None:
        super().__init__(app)
        self.hosts, self.token = hosts, token

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        host = request.headers.get("host", "")
        if host.lower() not in self.hosts:
            return PlainTextResponse("拒绝：Host 不是本服务的地址", status_code=400)
        if request.method not in SAFE_METHODS:
            origin = request.headers.get("origin")
            if origin is not None and origin.lower() != f"http://{host.lower()}":
                return _refused("拒绝：请求来自其他网站")
            if not secrets.compare_digest(request.headers.get("x-csrf-token", ""), self.token):
                return _refused("拒绝：缺少或错误的 CSRF 令牌，请刷新页面")
            if int(request.headers.get("content-length") or 0) > MAX_BODY:
                return _refused("请求过大", 413)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response


def _refused(message: str, status: int = 403) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _error(exc: Exception) -> JSONResponse:
    status = {Refused: 403, NotFound: 404, Conflict: 409, Busy: 409}.get(type(exc), 400)
    body: dict = {"error": str(exc)}
    if isinstance(exc, Conflict):
        body["conflict"] = True
    return JSONResponse(body, status_code=status)


def create_app(workspace: Workspace, hosts: set[str], token: str | None = None) -> Starlette:
    """The application for one data folder; ``hosts`` are the Host headers it answers to."""
    token = token or secrets.token_urlsafe(32)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(version=__version__, csrf=token)
    templates.env.filters["url"] = lambda path: quote(path, safe="/")

    def page(request: Request, name: str, context: dict, status: int = 200) -> Response:
        return templates.TemplateResponse(request, name, {"workspace": workspace, **context}, status_code=status)

    def problem_page(request: Request, exc: Exception) -> Response:
        status = 403 if isinstance(exc, Refused) else 404
        return page(request, "error.html", {"message": str(exc)}, status)

    async def overview(request: Request) -> Response:
        view = await run_in_threadpool(workspace.overview)
        folders = await run_in_threadpool(workspace.unit_folders)
        return page(request, "overview.html", {"view": view, "folders": folders, "regions": all_region_choices()})

    async def project(request: Request) -> Response:
        relative = request.path_params["path"]
        try:
            parsed, version, note = await run_in_threadpool(workspace.open, relative)
        except (Refused, NotFound) as exc:
            return problem_page(request, exc)
        state = None
        if parsed.snapshot is not None and parsed.layout is not None:
            state = {"path": relative, "version": version, "base": parsed.text,
                     "snapshot": parsed.snapshot.to_json(), "layout": parsed.layout.to_json()}
        parts = relative.split("/")
        return page(request, "project.html", {
            "relative": relative, "parts": parts, "parsed": parsed, "layout": parsed.layout, "note": note,
            "state": state, "keeps_layout": parsed.layout is None or _keeps_layout(parsed.text),
        })

    async def body(request: Request) -> dict:
        try:
            data = json.loads(await request.body())
        except ValueError as exc:
            raise Refused("请求不是有效的 JSON") from exc
        if not isinstance(data, dict):
            raise Refused("请求不是有效的 JSON")
        return data

    def text(data: dict, name: str) -> str:
        value = data.get(name)
        if not isinstance(value, str):
            raise Refused(f"缺少 {name}")
        return value

    def state_of(data: dict) -> dict:
        state = data.get("state")
        if not isinstance(state, dict):
            raise Refused("缺少 state")
        return state

    def api(handler: Callable[[dict], object]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                data = await body(request)
                result = await run_in_threadpool(handler, data)
            except (Refused, NotFound, Conflict, Busy, ReportgenError) as exc:
                return _error(exc)
            return JSONResponse(result)

        return endpoint

    def check(data: dict) -> object:
        return workspace.assess(text(data, "path"), text(data, "base"), state_of(data))

    def save(data: dict) -> object:
        return workspace.save(text(data, "path"), text(data, "version"), text(data, "base"), state_of(data))

    def rebase(data: dict) -> object:
        return workspace.rebase(text(data, "path"), text(data, "base"), state_of(data))

    def preview(data: dict) -> object:
        return workspace.preview(text(data, "path"), text(data, "base"), state_of(data))

    def new(data: dict) -> object:
        relative = workspace.new_project(text(data, "folder"), text(data, "name"), text(data, "region"))
        return {"path": relative, "url": "/project/" + quote(relative, safe="/")}

    def build(data: dict) -> object:
        return workspace.start_build(text(data, "unit")).to_json()

    async def import_word(request: Request) -> Response:
        """The Word file is the request's body (no form encoding), its name in X-File-Name."""
        try:
            name = unquote(request.headers.get("x-file-name", ""))
            result = await run_in_threadpool(workspace.import_word, name, await request.body())
        except (Refused, NotFound, ReportgenError) as exc:
            return _error(exc)
        return JSONResponse(result)

    async def build_status(request: Request) -> Response:
        job = workspace.jobs.get(request.path_params["job"])
        if job is None:
            return _refused("找不到该生成任务", 404)
        return JSONResponse(job.to_json())

    async def download(request: Request) -> Response:
        try:
            path = workspace.download_path(request.path_params["path"])
        except (Refused, NotFound) as exc:
            return problem_page(request, exc)
        inline = path.suffix == ".pdf"
        return FileResponse(path, filename=path.name, content_disposition_type="inline" if inline else "attachment")

    async def preview_file(request: Request) -> Response:
        try:
            path = workspace.preview_file(request.path_params["token"], request.path_params["name"])
        except NotFound as exc:
            return problem_page(request, exc)
        return FileResponse(path)

    async def root_redirect(request: Request) -> Response:
        return RedirectResponse("/")

    routes = [
        Route("/", overview),
        Route("/project/{path:path}", project),
        Route("/project", root_redirect),
        Route("/api/check", api(check), methods=["POST"]),
        Route("/api/save", api(save), methods=["POST"]),
        Route("/api/rebase", api(rebase), methods=["POST"]),
        Route("/api/preview", api(preview), methods=["POST"]),
        Route("/api/new", api(new), methods=["POST"]),
        Route("/api/build", api(build), methods=["POST"]),
        Route("/api/import", import_word, methods=["POST"]),
        Route("/api/build/{job}", build_status),
        Route("/download/{path:path}", download),
        Route("/preview/{token}/{name}", preview_file),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Guard, hosts=hosts, token=token)])


def _keeps_layout(text: str) -> bool:
    from .form import keeps_layout

    return keeps_layout(text)

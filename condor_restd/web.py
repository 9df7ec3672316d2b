"""The CherryPy tree: URLs and query strings become typed arguments for queries."""

from __future__ import annotations

import re
from typing import Any

import cherrypy

from . import __version__, acting, dashboard, openapi, pages, render, webwrite
from .actions import Actions, Run
from .auth import Authenticator, RedactTokens
from .condor import Condor
from .demo import DemoPool
from .errors import NotFound, RestdError
from .metrics import Metrics
from .overview import Overview
from .queries import Queries, attribute_names
from .render import HTML, JSON, YAML
from .settings import Settings
from .webargs import number, path_of, query_params, schedd_of

MAX_URL_LENGTH = 16384  # path and query string together; longer gets a 414
MAX_SEGMENT_LENGTH = 1024  # one path segment (a schedd, slot or attribute name); longer gets a 414
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
CONTROL_BUT_SPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

if not hasattr(cherrypy.tools, "restd_render"):
    cherrypy.tools.restd_render = render.RenderTool()


class Jobs:
    """/v1/jobs and /v1/history: {schedd}[/{clusterid}[/{procid}[/{attribute}]]]."""

    def __init__(self, queries: Queries, source: str) -> None:
        self.queries = queries
        self.source = source

    @cherrypy.expose
    @render.offers(*render.LIST_TYPES)
    def default(self, *segments: str, **params: Any) -> Any:
        path = path_of(segments, 4)
        if not path:
            raise NotFound(f"/v1/{self.source} needs a schedd name, or DEFAULT")
        schedd = schedd_of(path[0])
        cluster = number(path[1], "clusterid") if len(path) > 1 else None
        if len(path) == 4:
            query_params(params, ())
            return self.queries.job_attribute(self.source, schedd, cluster or 0,
                                              number(path[2], "procid"), path[3], who=render.identity())
        if len(path) == 3:
            args = query_params(params, ("projection",))
            return self.queries.job(self.source, schedd, cluster or 0, number(path[2], "procid"),
                                    attribute_names(args.get("projection")), who=render.identity())
        paging = ("limit", "cursor", "since") if self.source == "history" else ("limit", "cursor")
        args = query_params(params, ("projection", "constraint", *paging))
        limit = args.get("limit")
        return self.queries.jobs(self.source, schedd, cluster,
                                 attribute_names(args.get("projection")), args.get("constraint"),
                                 who=render.identity(),
                                 limit=number(limit, "limit") if limit is not None else None,
                                 cursor=args.get("cursor"), since=args.get("since"))


class Queue(Jobs):
    """/v1/jobs: read as Jobs reads; with RESTD_ACTIONS, POST acts on jobs or submits them, and
    PATCH edits them (webwrite)."""

    def __init__(self, queries: Queries, writes: webwrite.Writes) -> None:
        super().__init__(queries, "jobs")
        self.writes = writes

    @cherrypy.expose
    @render.offers(*render.LIST_TYPES)
    @render.writes
    def default(self, *segments: str, **params: Any) -> Any:
        if cherrypy.serving.request.method in webwrite.WRITES:
            return self.writes(path_of(segments, 4), params)
        return super().default(*segments, **params)


class GroupedJobs:
    """/v1/grouped_jobs and /v1/grouped_history: {schedd}/{groupby}[/{clusterid}]."""

    def __init__(self, queries: Queries, source: str) -> None:
        self.queries = queries
        self.source = source

    @cherrypy.expose
    def default(self, *segments: str, **params: Any) -> Any:
        path = path_of(segments, 3)
        if len(path) < 2:
            raise NotFound(f"/v1/grouped_{self.source} needs a schedd name and a groupby attribute")
        args = query_params(params, ("projection", "constraint"))
        cluster = number(path[2], "clusterid") if len(path) > 2 else None
        return self.queries.grouped_jobs(self.source, schedd_of(path[0]), path[1], cluster,
                                         attribute_names(args.get("projection")),
                                         args.get("constraint"), who=render.identity())


class Status:
    """/v1/status[/{name}]."""

    def __init__(self, queries: Queries) -> None:
        self.queries = queries

    @cherrypy.expose
    @render.offers(*render.LIST_TYPES)
    def default(self, *segments: str, **params: Any) -> Any:
        path = path_of(segments, 1)
        args = query_params(params, ("projection", "constraint", "query"))
        return self.queries.status(path[0] if path else None,
                                   attribute_names(args.get("projection")),
                                   args.get("constraint"), args.get("query", "any"),
                                   who=render.identity())


class GroupedStatus:
    """/v1/grouped_status/{groupby}[/{name}]."""

    def __init__(self, queries: Queries) -> None:
        self.queries = queries

    @cherrypy.expose
    def default(self, *segments: str, **params: Any) -> Any:
        path = path_of(segments, 2)
        if not path:
            raise NotFound("/v1/grouped_status needs a groupby attribute")
        args = query_params(params, ("projection", "constraint", "query"))
        return self.queries.grouped_status(path[0], path[1] if len(path) > 1 else None,
                                           attribute_names(args.get("projection")),
                                           args.get("constraint"), args.get("query", "any"),
                                           who=render.identity())


class Config:
    """/v1/config[/{attribute}]."""

    def __init__(self, queries: Queries) -> None:
        self.queries = queries

    @cherrypy.expose
    def default(self, *segments: str, **params: Any) -> Any:
        path = path_of(segments, 1)
        args = query_params(params, ("daemon",))
        return self.queries.config(path[0] if path else None, args.get("daemon"),
                                   who=render.identity())


ENDPOINTS = {
    "jobs": ("/v1/jobs/{schedd}{/clusterid}{/procid}{/attribute}"
             "{?projection,constraint,limit,cursor}"),
    "history": ("/v1/history/{schedd}{/clusterid}{/procid}{/attribute}"
                "{?projection,constraint,limit,cursor,since}"),
    "grouped_jobs": "/v1/grouped_jobs/{schedd}/{groupby}{/clusterid}{?projection,constraint}",
    "grouped_history": "/v1/grouped_history/{schedd}/{groupby}{/clusterid}{?projection,constraint}",
    "status": "/v1/status{/name}{?projection,constraint,query}",
    "grouped_status": "/v1/grouped_status/{groupby}{/name}{?projection,constraint,query}",
    "config": "/v1/config{/attribute}{?daemon}",
    "summary": "/v1/summary",
}


def _described(writes: bool) -> dict[str, Any]:
    """The OpenAPI document; under a prefix (a proxy's, or the WSGI mount point) its one server
    is that path, so that clients built from it reach the API where it is served."""
    document = openapi.document(__version__, writes)
    prefix = render.base_path()
    if prefix:
        document["servers"] = [{"url": prefix, "description": "where this API is served"}]
    return document


class V1:
    """/v1: one exposed object per endpoint family, and the API's own description."""

    def __init__(self, queries: Queries, overview: Overview, writes: webwrite.Writes) -> None:
        self._overview = overview
        self._writes = queries.settings.actions  # the document describes what this daemon does
        self.jobs = Queue(queries, writes)
        self.history = Jobs(queries, "history")
        self.grouped_jobs = GroupedJobs(queries, "jobs")
        self.grouped_history = GroupedJobs(queries, "history")
        self.status = Status(queries)
        self.grouped_status = GroupedStatus(queries)
        self.config = Config(queries)

    @cherrypy.expose
    def summary(self, **params: Any) -> Any:
        """/v1/summary: counts from the collector's ads, for dashboards."""
        query_params(params, ())
        return self._overview.summary(render.identity())

    @cherrypy.expose
    def index(self, **params: Any) -> Any:
        query_params(params, ())
        return {"version": __version__, "endpoints": ENDPOINTS,
                "openapi": "/v1/openapi.json", "docs": "/v1/docs"}

    @cherrypy.expose
    def openapi_json(self, **params: Any) -> Any:  # /v1/openapi.json (CherryPy maps "." to "_")
        query_params(params, ())
        return _described(self._writes)

    @cherrypy.expose
    @render.offers(YAML)
    def openapi_yaml(self, **params: Any) -> Any:
        query_params(params, ())
        return _described(self._writes)

    @cherrypy.expose
    @render.offers(HTML)
    def docs(self, **params: Any) -> Any:
        query_params(params, ())
        return render.Page(pages.api_docs(openapi.document(__version__, self._writes)),
                           "text/html; charset=utf-8")

    @cherrypy.expose
    def default(self, *segments: str, **params: Any) -> Any:
        raise NotFound("no such URL; see /v1 for the endpoints")


class Root:
    """/: a page for browsers (JSON for everyone else), health probes, metrics, and /v1."""

    def __init__(self, queries: Queries, metrics: Metrics, overview: Overview,
                 writes: webwrite.Writes, demo: bool = False) -> None:
        self._queries = queries
        self._metrics = metrics
        self._overview = overview
        self._demo = demo
        self.v1 = V1(queries, overview, writes)

    @cherrypy.expose
    @render.offers(JSON, YAML, HTML)
    def index(self, **params: Any) -> Any:
        query_params(params, ())
        if render.negotiated() != HTML:
            return {"name": "condor_restd", "version": __version__, "api": "/v1",
                    "openapi": "/v1/openapi.json", "health": "/healthz", "ready": "/readyz",
                    "metrics": "/metrics"}
        summary, problem = None, None
        try:  # the browser sends no token here: with tokens on, the script asks for one
            summary = self._overview.summary(render.identity())
        except RestdError as exc:
            problem = exc.message
        page = dashboard.front_page(__version__, ENDPOINTS, summary, problem, demo=self._demo,
                                    authentication=self._queries.settings.authentication)
        return render.Page(page, "text/html; charset=utf-8")

    @staticmethod
    def _asset(name: str, params: dict[str, Any]) -> Any:
        query_params(params, ())
        cherrypy.serving.response.headers["Cache-Control"] = "public, max-age=300"
        return render.Page(dashboard.asset(name), dashboard.ASSETS[name])

    @cherrypy.expose
    def healthz(self, **params: Any) -> Any:
        """The process is serving; the pool is not touched."""
        query_params(params, ())
        cherrypy.serving.response.headers["Cache-Control"] = "no-store"
        return {"status": "ok"}

    @cherrypy.expose
    def readyz(self, **params: Any) -> Any:
        query_params(params, ())
        cherrypy.serving.response.headers["Cache-Control"] = "no-store"
        return self._queries.readiness()

    @cherrypy.expose
    @render.offers("text/plain")
    def metrics(self, **params: Any) -> Any:
        query_params(params, ())
        body, content_type = self._metrics.exposition()
        return render.Page(body, content_type)

    @cherrypy.expose
    @render.offers(pages.FAVICON_TYPE)
    def favicon_ico(self, **params: Any) -> Any:  # browsers ask for it; a 404 is a console error
        query_params(params, ())
        cherrypy.serving.response.headers["Cache-Control"] = "public, max-age=86400"
        return render.Page(pages.FAVICON, pages.FAVICON_TYPE)

    @cherrypy.expose
    def default(self, *segments: str, **params: Any) -> Any:
        raise NotFound("no such URL; see /v1 for the endpoints")


def _asset_handler(name: str) -> Any:
    """The handler of one of the dashboard's files, /<name> (CherryPy maps "." to "_")."""
    @cherrypy.expose
    @render.offers(dashboard.ASSETS[name].split(";")[0])
    def handler(self: Root, **params: Any) -> Any:
        return self._asset(name, params)
    return handler


for _name in dashboard.ASSETS:
    setattr(Root, _name.replace(".", "_"), _asset_handler(_name))


class Request(cherrypy._cprequest.Request):
    """Our error handling from the first byte, and the limits every request must keep."""

    show_tracebacks = False
    show_mismatched_params = False
    methods_with_bodies = ()  # CherryPy reads no body: webwrite does, for POST and PATCH only
    error_page = {"default": render.cherrypy_error_page}
    error_response = staticmethod(render.unexpected_error)

    def process_query_string(self) -> None:
        """Called before dispatch: refuse what no handler should see."""
        webwrite.read_body(self)  # POST and PATCH only, whole and bounded; others take none
        environ = getattr(self, "wsgi_environ", None) or {}
        raw_path = str(environ.get("PATH_INFO", self.path_info))
        try:  # WSGI hands the path over as latin-1 text of the raw bytes
            raw_path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raise cherrypy.HTTPError(400, "the URL path is not valid UTF-8") from None
        if len(raw_path) + len(self.query_string) > MAX_URL_LENGTH:
            raise cherrypy.HTTPError(414, f"the URL is longer than {MAX_URL_LENGTH} characters")
        if any(len(segment) > MAX_SEGMENT_LENGTH for segment in self.path_info.split("/")):
            raise cherrypy.HTTPError(414, f"a URL path segment is longer than {MAX_SEGMENT_LENGTH} "
                                          "characters")
        if CONTROL.search(self.path_info):
            raise cherrypy.HTTPError(400, "the URL path contains control characters")
        try:
            super().process_query_string()
        except cherrypy.HTTPError:
            raise cherrypy.HTTPError(400, "the query string is not valid UTF-8") from None
        for name, value in self.params.items():
            for text in (value if isinstance(value, list) else [value]):
                if CONTROL.search(name) or CONTROL_BUT_SPACE.search(text):
                    raise cherrypy.HTTPError(400, f"query parameter {name!r} contains control "
                                                  "characters")


# Served without a token when RESTD_AUTHENTICATION = TOKEN: probes, metrics, the API's description.
# Every other path needs one (and queries checks again that pool data goes to a known user).
OPEN_PATHS = ("/", "/healthz", "/readyz", "/metrics", "/favicon.ico", "/v1", "/v1/openapi.json",
              "/v1/openapi.yaml", "/v1/docs", "/dashboard.js", "/views.js",
              "/jobs.js", "/dashboard.css")


class Application(cherrypy.Application):
    """Mounted where each request's SCRIPT_NAME says: a WSGI server that mounts the API under a
    path sets it; the daemon's own server leaves it empty."""

    @property
    def script_name(self) -> str:
        environ = getattr(cherrypy.serving.request, "wsgi_environ", None) or {}
        return str(environ.get("SCRIPT_NAME", "")).rstrip("/")

    @script_name.setter
    def script_name(self, value: str) -> None:
        pass  # never fixed: see above


def _cache_control(settings: Settings) -> str:
    """Tell clients and proxies how long an answer stays fresh: as long as our own cache keeps it."""
    private = "private, " if settings.authentication != "NONE" else ""
    ttl = int(settings.cache_ttl)
    return f"{private}max-age={ttl}" if ttl > 0 else f"{private}no-cache"


def make_app(settings: Settings, backend: Condor, isolate: bool = True,
             act: Run | None = None) -> cherrypy.Application:
    """The WSGI application serving `backend` under `settings`; no server, no sockets. Pool
    calls run in worker processes (`isolate`: False runs them in the request's thread).
    Actions run in a fresh process each, through `act` (acting.run unless a test gives one)."""
    metrics = Metrics()
    queries = Queries(settings, backend, metrics, isolate)
    overview = Overview(queries)
    # /metrics needs no token: with tokens on, it names no owner
    metrics.watch_pool(overview.figures,
                       0 if settings.authentication == "TOKEN" else settings.metrics_max_owners)
    can_act = callable(getattr(type(backend), "acting_argv", None))  # the pools that can act
    actions = Actions(settings, queries, backend.acting_argv() if can_act else None,  # type: ignore[attr-defined]
                      act if act is not None else acting.run)
    htcondor = actions.users.user if settings.actions or settings.htcondor_tokens else None
    authenticator = Authenticator(settings, OPEN_PATHS, htcondor=htcondor) \
        if settings.authentication == "TOKEN" else None
    config = {
        "/": {
            "tools.restd_render.on": True,
            "tools.restd_render.cors_origins": settings.cors_origins,
            "tools.restd_render.metrics": metrics,
            "tools.restd_render.auth": authenticator,
            "tools.restd_render.cache_control": _cache_control(settings),
            "tools.restd_render.writable": settings.actions,
            "tools.trailing_slash.on": False,
            "tools.encode.on": False,
            "log.screen": False,
        }
    }
    app = Application(Root(queries, metrics, overview, webwrite.Writes(actions),
                           isinstance(backend, DemoPool)), "", config)
    app.request_class = Request
    app.log.screen = False
    app.queries = queries
    app.metrics = metrics
    app.auth = authenticator
    app.actions = actions
    for logger in (app.log.access_log, app.log.error_log):
        logger.addFilter(RedactTokens())
    return app

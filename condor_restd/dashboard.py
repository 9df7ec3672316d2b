"""The pool dashboard at /: its summary rendered on the server (for any browser), its script and style."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

CSS_TYPE = "text/css; charset=utf-8"
JS_TYPE = "text/javascript; charset=utf-8"
ASSETS = {"dashboard.js": JS_TYPE, "views.js": JS_TYPE, "jobs.js": JS_TYPE, "dashboard.css": CSS_TYPE}
# What a job list linked from this page asks for: a few attributes, a page at a time.
JOB_PROJECTION = ("ClusterId,ProcId,Owner,User,JobStatus,QDate,RequestCpus,RequestMemory,RemoteHost,"
                  "HoldReason,JobBatchName")
JOB_PAGE = 100
MACHINE_ROWS = 200  # machines listed on the page itself; /v1/summary has them all
NONE = "&#8211;"  # an en dash: no figure here
STATUS_CODES = {"idle": 1, "running": 2, "removed": 3, "completed": 4, "held": 5}
COUNTS = ("idle", "running", "held", "removed", "total")
EXAMPLES: dict[str, list[str]] = {
    "jobs": [f"/v1/jobs/DEFAULT?projection=Owner,JobStatus,Cmd&limit={JOB_PAGE}"],
    "history": [f"/v1/history/DEFAULT?projection=Owner,ExitCode,CompletionDate&limit={JOB_PAGE}"],
    "grouped_jobs": ["/v1/grouped_jobs/DEFAULT/Owner?projection=JobStatus"],
    "grouped_history": ["/v1/grouped_history/DEFAULT/Owner?projection=ExitCode"],
    "status": ["/v1/status?query=startd&projection=State,Cpus,Memory",
               "/v1/status?query=schedd&projection=TotalIdleJobs,TotalRunningJobs,TotalHeldJobs"],
    "grouped_status": ["/v1/grouped_status/State?query=startd&projection=Name"],
    "config": ["/v1/config", "/v1/config/CONDOR_HOST"],
    "summary": ["/v1/summary", "/v1/summary?format=yaml"],
}
SERVICE = [("/v1", "the v1 endpoints"), ("/v1/docs", "API documentation"),
           ("/v1/openapi.json", "OpenAPI document (JSON)"), ("/v1/openapi.yaml", "OpenAPI document (YAML)"),
           ("/healthz", "liveness probe"), ("/readyz", "readiness probe"),
           ("/metrics", "Prometheus metrics")]


def asset(name: str) -> bytes:
    """A file the page loads (script, style), shipped in the package."""
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _url(path: str, params: Mapping[str, str] | None = None) -> str:
    url = quote(path, safe="/@:")
    return url + ("?" + urlencode(params, quote_via=quote) if params else "")


def _a(url: str, text: Any, **data: str) -> str:
    extra = "".join(f' data-{k}="{_e(v)}"' for k, v in data.items())
    return f'<a href="{_e(url)}"{extra}>{_e(text)}</a>'


def jobs_url(schedd: str, constraint: str | None = None, status: str | None = None) -> str:
    """The API URL of a filtered job list: projected, and paged."""
    clauses = [c for c in (f"({constraint})" if constraint else None,
                           f"JobStatus == {STATUS_CODES[status]}" if status in STATUS_CODES else None) if c]
    params = {"projection": JOB_PROJECTION, "limit": str(JOB_PAGE)}
    if clauses:
        params["constraint"] = " && ".join(clauses)
    return _url(f"/v1/jobs/{schedd}", params)


def _opt(status: str, cls: str) -> str:
    return f"{cls} opt" if status == "removed" else cls  # a column a phone leaves out


def _count(value: Any, schedd: str, constraint: str | None, status: str) -> str:
    if value is None:
        return f'<td class="{_opt(status, "n muted")}">{NONE}</td>'
    link = _a(jobs_url(schedd, constraint, status if status != "total" else None), value)
    return f'<td class="{_opt(status, "n")}" data-status="{_e(status)}">{link}</td>'


def _jobs_table(jobs: Mapping[str, Any]) -> list[str]:
    schedds: Sequence[Mapping[str, Any]] = jobs.get("schedds", [])
    if not schedds:
        return ['<p class="muted">The collector knows no schedd.</p>']
    out = ['<div class="scroll"><table id="counts"><caption>Jobs by schedd and owner '
           '(from the collector\'s Scheduler and Submitter ads)</caption><thead><tr>'
           '<th scope="col">schedd / owner</th>'
           + "".join(f'<th scope="col" class="{_opt(c, "n")}">{c}</th>' for c in COUNTS) + "</tr></thead>"]
    for row in schedds:
        name = str(row["name"])
        out.append(f'<tbody data-schedd="{_e(name)}"><tr class="schedd" data-schedd="{_e(name)}">'
                   f'<th scope="row">{_e(name)}</th>'
                   + "".join(_count(row.get(c), name, None, c) for c in COUNTS) + "</tr>")
        for owner in row.get("owners", []):
            cells = "".join(_count(owner.get(c), name, owner["constraint"], c) for c in COUNTS[:3])
            total = sum(owner[c] for c in COUNTS[:3])
            out.append(f'<tr class="owner" data-schedd="{_e(name)}" data-owner="{_e(owner["owner"])}">'
                       f'<th scope="row">{_e(owner["owner"])}</th>{cells}'
                       f'<td class="n muted opt">{NONE}</td>'
                       f'{_count(total, name, owner["constraint"], "total")}</tr>')
        out.append("</tbody>")
    totals = jobs.get("totals", {})
    out.append('<tfoot><tr><th scope="row">pool</th>' + "".join(
        f'<td class="{_opt(c, "n")}">{_e(totals[c]) if totals.get(c) is not None else NONE}</td>'
        for c in COUNTS)
        + "</tr></tfoot></table></div>")
    return out


def _resources(summary: Mapping[str, Any]) -> list[str]:
    res = summary.get("resources", {})
    slots = summary.get("slots", {})
    units = {"cpus": "cores", "memory": "memory (MB)", "gpus": "GPUs"}
    out = ['<div class="scroll"><table id="resources"><caption>Resources (from the startds\' slot ads)'
           '</caption><thead><tr><th scope="col">resource</th><th scope="col" class="n">in use</th>'
           '<th scope="col" class="n">total</th><th scope="col" class="n">left in partitionable slots'
           "</th></tr></thead><tbody>"]
    for key, label in units.items():
        r = res.get(key, {})
        out.append(f'<tr data-resource="{key}"><th scope="row">{label}</th>'
                   + "".join(f'<td class="n" data-kind="{k}">{_e(r.get(k, 0))}</td>'
                             for k in ("used", "total", "partitionable_free")) + "</tr>")
    out.append("</tbody></table></div>")
    states = slots.get("by_state", {})
    out.append('<div class="scroll"><table id="slots"><caption>Slots by state, as condor_status '
               '-total counts them</caption><thead><tr>'
               + "".join(f'<th scope="col">{_e(s)}</th>' for s in states)
               + '<th scope="col">total</th></tr></thead><tbody><tr>'
               + "".join(f'<td class="n" data-state="{_e(s)}">{_e(n)}</td>' for s, n in states.items())
               + f'<td class="n">{_e(slots.get("total", 0))}</td></tr></tbody></table></div>')
    if slots.get("partitionable"):
        out.append(f'<p class="note">{_e(slots["partitionable"])} of these are partitionable slots: '
                   "each counts as one slot, in state Unclaimed while it has resources left to "
                   "hand out; the resources table says what they have left.</p>")
    return out


def _machines(machines: Sequence[Mapping[str, Any]]) -> list[str]:
    if not machines:
        return ['<p class="muted">The collector knows no slot.</p>']
    out = ['<div class="scroll"><table id="machines"><caption>Machines</caption><thead><tr>'
           '<th scope="col">machine</th><th scope="col" class="n">slots</th>'
           '<th scope="col" class="n">cores used / total</th><th scope="col" class="n">memory MB used / total'
           '</th><th scope="col" class="n">GPUs used / total</th><th scope="col" class="n">'
           "left in partitionable slots</th></tr></thead><tbody>"]
    for m in machines[:MACHINE_ROWS]:
        cpus, mem, gpus = m["cpus"], m["memory"], m["gpus"]
        left = (f'{cpus["partitionable_free"]} cores, {mem["partitionable_free"]} MB, '
                f'{gpus["partitionable_free"]} GPUs' if m.get("partitionable") else None)
        out.append(f'<tr data-machine="{_e(m["machine"])}"><th scope="row">{_e(m["machine"])}</th>'
                   f'<td class="n">{_e(m["slots"])}</td>'
                   f'<td class="n">{_e(cpus["used"])} / {_e(cpus["total"])}</td>'
                   f'<td class="n">{_e(mem["used"])} / {_e(mem["total"])}</td>'
                   f'<td class="n">{_e(gpus["used"])} / {_e(gpus["total"])}</td>'
                   f'<td class="n">{_e(left) if left else NONE}</td></tr>')
    out.append("</tbody></table></div>")
    if len(machines) > MACHINE_ROWS:
        out.append(f'<p class="note">The first {MACHINE_ROWS} of {len(machines)} machines; '
                   f'{_a("/v1/summary", "/v1/summary")} lists them all.</p>')
    return out


def _summary(summary: Mapping[str, Any]) -> list[str]:
    out = ['<section id="summary" aria-labelledby="summary-title">',
           '<h2 id="summary-title">Jobs</h2>']
    out.extend(_jobs_table(summary.get("jobs", {})))
    out.append('<h2>Machines</h2>')
    out.extend(_resources(summary))
    out.extend(_machines(summary.get("machines", [])))
    out.append('<p class="note">Counts come from the ads schedds and startds send the collector, '
               "every few minutes: they can be that old. Each count links to the job list behind it."
               "</p></section>")
    return out


def _endpoints(endpoints: Mapping[str, str]) -> list[str]:
    out = ['<details id="endpoints"><summary>The API behind this page</summary>',
           '<p>A read-only REST API over this pool. Every link answers JSON; add '
           "<code>?format=yaml</code> for YAML. See the " + _a("/v1/docs", "API documentation") + ".</p>",
           '<div class="scroll"><table><thead><tr><th scope="col">family</th>'
           '<th scope="col">URI template</th><th scope="col">try</th></tr></thead><tbody>']
    for family, template in endpoints.items():
        links = ", ".join(_a(p, p) for p in EXAMPLES.get(family, []))
        out.append(f'<tr><th scope="row">{_e(family)}</th><td><code>{_e(template)}</code></td>'
                   f"<td>{links}</td></tr>")
    out.append("</tbody></table></div><h3>The daemon</h3><ul>")
    out.extend(f"<li>{_a(path, path)}: {_e(text)}</li>" for path, text in SERVICE)
    out.append("</ul></details>")
    return out


def front_page(version: str, endpoints: Mapping[str, str], summary: Mapping[str, Any] | None,
               problem: str | None, *, demo: bool = False, authentication: str = "NONE",
               now: datetime.datetime | None = None) -> str:
    """The page a browser gets at /: the summary, rendered here; the script adds the live views."""
    pool = (summary or {}).get("pool", {})
    name = pool.get("name") or "HTCondor pool"
    fetched = (now or datetime.datetime.now(datetime.timezone.utc)).replace(microsecond=0)
    badge = ' <span class="badge" id="demo">DEMO</span>' if demo else ""
    stamp = "" if summary is None else (f' · fetched <time datetime="{_e(fetched.isoformat())}">'
                                        f'{_e(fetched.strftime("%Y-%m-%d %H:%M:%S UTC"))}</time>')
    body = [
        '<a class="skip" href="#main">Skip to the content</a>',
        '<header class="top"><div class="title">'
        f'<h1><span id="pool-name">{_e(name)}</span>{badge}</h1>',
        f'<p class="meta"><span id="htcondor"{"" if pool.get("version") else " hidden"}>HTCondor '
        f'<span id="htcondor-version">{_e(pool.get("version") or "")}</span> · </span>'
        f'condor_restd {_e(version)}<span id="fetched">{stamp}</span></p></div>'
        '<div id="controls" class="controls" hidden></div></header>',
        '<nav id="views" aria-label="Views" hidden></nav>',
        '<main id="main" tabindex="-1">',
        '<div id="auth" hidden></div>',
        '<div id="problem" class="problem" role="alert" hidden></div>',
    ]
    if summary is not None:
        body.extend(_summary(summary))
    else:
        body.append('<section id="summary"><h2>Pool summary</h2><p class="problem">The pool summary '
                    f"is not available: {_e(problem or 'unknown error')}</p></section>")
    body.append('<section id="view" hidden></section>')
    body.extend(_endpoints(endpoints))
    body.append("</main>")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="/favicon.ico" type="image/svg+xml">',
        '<link rel="stylesheet" href="/dashboard.css">',
        f"<title>{_e(name)} · condor_restd</title>",
        "</head>",
        f'<body data-auth="{_e(authentication)}" data-demo="{str(demo).lower()}" '
        f'data-version="{_e(version)}">',
        *body,
        '<script src="/dashboard.js"></script>', '<script src="/views.js"></script>',
        '<script src="/jobs.js"></script>',
        "</body>", "</html>", ""])

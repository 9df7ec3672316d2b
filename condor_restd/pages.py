"""HTML for browsers: the API docs rendered from the OpenAPI document (the front page is dashboard.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any
from urllib.parse import quote

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 62rem; padding: 1rem 1.5rem;
       color: #1d232a; background: #fff; }
h1 { font-size: 1.6rem; margin: .4rem 0 .2rem; }
h2 { font-size: 1.25rem; margin-top: 1.8rem; border-bottom: 1px solid #d8dee4; padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin-bottom: .3rem; }
code, pre { font: 13px/1.4 ui-monospace, monospace; background: #f3f5f7; border-radius: 3px; }
code { padding: 0 .25em; } pre { padding: .6rem; overflow-x: auto; }
table { border-collapse: collapse; margin: .4rem 0 1rem; }
th, td { border: 1px solid #d8dee4; padding: .2rem .6rem; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f5f7; } a { color: #0b57a4; } .muted { color: #5b6570; }
.problem { background: #fff4e5; border: 1px solid #f0b45b; padding: .5rem .8rem; }
.op { border-left: 3px solid #0b57a4; padding-left: .8rem; margin: 1.2rem 0; }
.method { font-weight: bold; color: #0b57a4; margin-right: .4em; }
"""

HTTP_METHODS = ("get", "head", "options")
FAVICON_TYPE = "image/svg+xml"
FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
           b'<rect width="16" height="16" rx="3" fill="#0b57a4"/>'
           b'<path d="M11.5 5A4 4 0 1 0 11.5 11" fill="none" stroke="#fff" stroke-width="2.2"/></svg>\n')


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _href(path: str) -> str:
    return _e(quote(path, safe="/?=&,@:"))


def _link(path: str, text: str | None = None) -> str:
    return f'<a href="{_href(path)}">{_e(text if text is not None else path)}</a>'


def _page(title: str, body: Iterable[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<link rel="icon" href="/favicon.ico" type="{FAVICON_TYPE}">',
        f"<title>{_e(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        *body,
        "</body>",
        "</html>",
        "",
    ])


# -------------------------------------------------------------------------- API docs


def _inline(text: Any) -> str:
    """Plain text with `code` spans; everything escaped."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(" ".join(str(text).split())))


def _prose(text: str) -> str:
    """Paragraphs of plain text, with `code` spans; everything escaped."""
    return "\n".join(f"<p>{_inline(p)}</p>" for p in text.split("\n\n") if p.strip())


def _resolve(document: Mapping[str, Any], item: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = item.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return item
    node: Any = document
    for part in ref[2:].split("/"):
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    return node if isinstance(node, Mapping) else {}


def _schema_text(schema: Mapping[str, Any]) -> str:
    """A short description of a schema: a link to a named one, or its type and constraints."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    if "enum" in schema:
        return "one of " + ", ".join(f"<code>{_e(v)}</code>" for v in schema["enum"])
    kind = schema.get("type", "any")
    text = _e(" or ".join(kind) if isinstance(kind, list) else kind)
    if "pattern" in schema:
        text += f" matching <code>{_e(schema['pattern'])}</code>"
    if "minimum" in schema:
        text += f", at least {_e(schema['minimum'])}"
    return text


def _parameters(document: Mapping[str, Any], operation: Mapping[str, Any]) -> list[str]:
    params = [_resolve(document, p) for p in operation.get("parameters", [])]
    if not params:
        return []
    out = ["<table><tr><th>parameter</th><th>in</th><th>value</th><th>meaning</th></tr>"]
    for p in params:
        required = " (required)" if p.get("required") else ""
        example = f"<br>example: <code>{_e(p['example'])}</code>" if "example" in p else ""
        out.append(f"<tr><td><code>{_e(p.get('name'))}</code></td><td>{_e(p.get('in'))}{required}</td>"
                   f"<td>{_schema_text(p.get('schema', {}))}{example}</td>"
                   f"<td>{_inline(p.get('description', ''))}</td></tr>")
    out.append("</table>")
    return out


def _responses(document: Mapping[str, Any], operation: Mapping[str, Any]) -> list[str]:
    out = ["<table><tr><th>status</th><th>meaning</th><th>body</th></tr>"]
    for code, response in operation.get("responses", {}).items():
        response = _resolve(document, response)
        by_schema: dict[str, list[str]] = {}
        for media, content in response.get("content", {}).items():
            by_schema.setdefault(_schema_text(content.get("schema", {})), []).append(_e(media))
        bodies = [f"{', '.join(media)}: {schema}" for schema, media in by_schema.items()]
        headers = ", ".join(f"<code>{_e(h)}</code>" for h in response.get("headers", {}))
        if headers:
            bodies.append("headers: " + headers)
        out.append(f"<tr><td>{_e(code)}</td><td>{_inline(response.get('description', ''))}</td>"
                   f"<td>{'<br>'.join(bodies)}</td></tr>")
    out.append("</table>")
    return out


def _example_link(path: str, operation: Mapping[str, Any], document: Mapping[str, Any]) -> str:
    """The path with each parameter's example filled in, when every one has an example."""
    for param in operation.get("parameters", []):
        param = _resolve(document, param)
        if param.get("in") == "path":
            if "example" not in param:
                return ""
            path = path.replace("{" + str(param["name"]) + "}", str(param["example"]))
    return " " + _link(path, "try it")


def _operations(paths: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(path, method, operation) for every GET, POST and PATCH, in the document's order."""
    return [(path, method, item[method]) for path, item in paths.items()
            for method in ("get", "post", "patch") if method in item]


def api_docs(document: Mapping[str, Any]) -> str:
    """The OpenAPI document as one readable page."""
    info = document.get("info", {})
    title = f"{info.get('title', 'API')} {info.get('version', '')}".strip()
    body = [f"<h1>{_e(title)} API</h1>",
            f'<p class="muted">{_link("/", "home")} · {_link("/v1/openapi.json", "OpenAPI (JSON)")} · '
            f'{_link("/v1/openapi.yaml", "OpenAPI (YAML)")}</p>',
            _prose(str(info.get("description", "")))]
    paths: Mapping[str, Any] = document.get("paths", {})
    tags = [t for t in document.get("tags", []) if t.get("name") != "cors"]
    body.append('<nav><h2>Contents</h2><ul>')
    for tag in tags:
        name = str(tag.get("name"))
        body.append(f'<li><a href="#tag-{_e(name)}">{_e(name)}</a>: {_e(tag.get("description", ""))}<ul>')
        for path, method, operation in _operations(paths):
            if name in operation.get("tags", []):
                verb = "" if method == "get" else f"{method.upper()} "
                body.append(f'<li><a href="#{_e(operation.get("operationId", path))}">'
                             f"{_e(verb)}<code>{_e(path)}</code></a></li>")
        body.append("</ul></li>")
    body.append('<li><a href="#schemas">schemas</a></li></ul></nav>')
    for tag in tags:
        name = str(tag.get("name"))
        body.append(f'<h2 id="tag-{_e(name)}">{_e(name)}</h2>')
        for path, method, operation in _operations(paths):
            if name not in operation.get("tags", []):
                continue
            item = paths[path]
            methods = (" ".join(m.upper() for m in HTTP_METHODS if m in item or m == "head")
                       if method == "get" else method.upper())
            body.append(f'<div class="op" id="{_e(operation.get("operationId", path))}">')
            link = _example_link(path, operation, document) if method == "get" else ""
            body.append(f'<h3><span class="method">{_e(methods)}</span><code>{_e(path)}</code>'
                        f"{link}</h3>")
            body.append(f"<p><b>{_e(operation.get('summary', ''))}</b>. "
                        f"{_inline(operation.get('description', ''))}</p>")
            body.extend(_parameters(document, operation))
            request = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if request:
                body.append(f"<p>Body (application/json): {_schema_text(request.get('schema', {}))}</p>")
            body.extend(_responses(document, operation))
            body.append("</div>")
    body.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        body.append(f'<h3 id="schema-{_e(name)}">{_e(name)}</h3>')
        if "description" in schema:
            body.append(f"<p>{_inline(schema['description'])}</p>")
        shown = {k: v for k, v in schema.items() if k != "description"}
        body.append(f"<pre>{_e(json.dumps(shown, indent=2))}</pre>")
    return _page(title + " API", body)

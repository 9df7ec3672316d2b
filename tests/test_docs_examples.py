"""Every curl example in docs/api.md, run in-process against the demo pool: status, headers and body.

A console block's `$ curl ...` lines are requests; what follows each, up to the next `$`, is the
answer as the page shows it (`-i`: the status line and headers first). Lines that are `...`, and
`...` inside a line, stand for text left out. A pipeline after curl (`| jq ...`, `| wc -l`) runs
in a real shell on the body. An HTML comment just before a block sets the scene:

    <!-- example: settings max_jobs=3 -->                      Settings for that block
    <!-- example: tokens -->                                   RESTD_AUTHENTICATION = TOKEN
    <!-- example: schedd down -->                              the demo schedd cannot be reached
    <!-- example: before GET /v1/jobs/DEFAULT, DELETE /v1/x --> requests made first
    <!-- example: actions -->                                  RESTD_ACTIONS = true (edits: JobPrio)

Every example runs on a fresh demo pool. In an `actions` block, $ALICES_TOKEN and
$BOBS_DEMO_TOKEN are the demo pool's tokens of those users (what `condor_restd --demo-token
alice` prints).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from condor_restd import demoacts
from condor_restd.demo import DemoPool
from condor_restd.errors import Unavailable
from condor_restd.settings import Settings
from condor_restd.web import make_app

from .conftest import Client, Response
from .test_openapi import AUDIENCE, ISSUER, IssuerKeys, bearer

API = Path(__file__).resolve().parent.parent / "docs" / "api.md"
BLOCK = re.compile(r"(?:<!-- example: (?P<scene>[^>]*?) -->\n)?```console\n(?P<body>.*?)```", re.S)
ORIGIN = "https://dash.example.org"
# Headers an example shows that the in-process client cannot (the server adds them) or that vary.
UNCHECKED_HEADERS = {"content-length", "date", "server"}


@dataclass
class Example:
    section: str
    scene: str
    command: str
    output: list[str]
    script: dict[str, str] = field(default_factory=dict)  # files `cat` showed earlier in the block

    @property
    def name(self) -> str:
        return f"{self.section}: {self.command[:90]}"


def examples() -> list[Example]:
    text = API.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        section = re.findall(r"^#+ (.*)$", text[:match.start()], re.M)[-1]
        files: dict[str, str] = {}
        command, output = "", []
        lines = match["body"].rstrip("\n").split("\n")
        for line in [*lines, "$ "]:
            if line.startswith("$ "):
                if command.startswith("cat "):
                    files[command[4:].strip()] = "\n".join(output)
                elif command:
                    found.append(Example(section, match["scene"] or "", command, output, dict(files)))
                command, output = line[2:], []
            else:
                output.append(line)
    return found


EXAMPLES = examples()


# ------------------------------------------------------------------------------------ the scene

class SchedulerDown(DemoPool):
    def jobs(self, *args: Any, **kwargs: Any) -> Any:
        raise Unavailable("cannot reach the schedd vm at <127.0.0.1:9618>")


def scene(example: Example) -> tuple[Client, IssuerKeys | None]:
    words = example.scene.split(" ", 1)
    kind, rest = words[0], words[1] if len(words) > 1 else ""
    settings = Settings()
    backend: DemoPool = DemoPool()
    keys = None
    if kind == "settings":
        values = dict(item.split("=", 1) for item in rest.split())
        settings = settings.replace(**{k: type(getattr(settings, k))(v) for k, v in values.items()})
    elif kind == "tokens":  # as test_openapi's token_client: alice is an admin, bob is not
        settings = settings.replace(authentication="TOKEN", token_issuers=(ISSUER,),
                                    token_audience=(AUDIENCE,), uid_domain="localhost",
                                    cors_origins=(ORIGIN,), admin_users=frozenset({"alice@localhost"}))
    elif kind == "schedd":
        backend = SchedulerDown()
    elif kind == "actions":
        settings = settings.replace(actions=True, edit_attributes=frozenset({"jobprio"}))
    elif kind not in ("", "before"):
        raise AssertionError(f"unknown example scene {example.scene!r}")
    app: Any = make_app(settings, backend)
    client = Client(app)
    if kind == "tokens":
        keys = IssuerKeys()
        app.auth.issuers = keys
    if kind == "before":
        for request in rest.split(","):
            method, path = request.split()
            client.request(method, path)
    return client, keys


# ----------------------------------------------------------------------------- curl, in-process

def split_pipeline(command: str) -> tuple[str, str]:
    """`curl ...` and the rest of the pipeline (`| jq ...`, `> file`), split where the shell would."""
    quote = ""
    for index, char in enumerate(command):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "|>":
            return command[:index].strip(), command[index:].strip()
    return command.strip(), ""


def curl(client: Client, keys: IssuerKeys | None, command: str) -> tuple[Response, bool]:
    """Run a curl command line against the app; the answer, and whether -i showed its headers."""
    words = shlex.split(command)
    assert words[0] == "curl", command
    method, headers, url, show, body = "", {}, "", False, b""
    args = iter(words[1:])
    for word in args:
        if word == "-i":
            show = True
        elif word in ("-d", "--data"):
            body = next(args).encode()
        elif word == "-s":
            continue
        elif word == "-X":
            method = next(args)
        elif word == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif word.startswith("http://127.0.0.1:9680"):
            url = word
        else:
            raise AssertionError(f"an example uses a curl option the test does not know: {word}")
    method = method or ("POST" if body else "GET")  # as curl: -d posts
    for name, value in headers.items():  # the tokens the page names by variable
        if "$ALICES_TOKEN" in value or "$BOBS_DEMO_TOKEN" in value:
            headers[name] = value.replace("$ALICES_TOKEN", demoacts.token("alice")).replace(
                "$BOBS_DEMO_TOKEN", demoacts.token("bob"))
        if "$BOBS_TOKEN" in value:
            headers[name] = bearer("bob")["Authorization"]
        elif "$TOKEN_OF_AN_ISSUER_THAT_IS_DOWN" in value:
            headers[name] = bearer("bob")["Authorization"]
            assert keys is not None
            keys.down = True
    parts = urlsplit(url)
    try:
        return client.request(method, unquote(parts.path), headers=headers, query=parts.query,
                              body=body), show
    finally:
        if keys is not None:
            keys.down = False


# ------------------------------------------------------------------------------------ comparing

def same_lines(shown: list[str], real: list[str]) -> str | None:
    """Why `real` is not what the page shows (None if it is): line for line, where a line `...`
    stands for any lines and `...` in a line for any text."""
    shown = [line.rstrip() for line in shown]
    real = [line.rstrip() for line in real]
    while shown and not shown[-1]:
        shown.pop()
    while real and not real[-1]:
        real.pop()
    at, gap = 0, False
    for line in shown:
        if line.strip() == "...":
            gap = True
            continue
        pattern = re.compile(".*?".join(re.escape(part) for part in line.split("...")) + "$")
        candidates = range(at, len(real)) if gap else range(at, min(at + 1, len(real)))
        hit = next((i for i in candidates if pattern.match(real[i])), None)
        if hit is None:
            near = real[at] if at < len(real) else "<end of answer>"
            return f"the page shows {line[:300]!r}; the answer has {near[:300]!r} there"
        at, gap = hit + 1, False
    if not gap and at != len(real):
        return f"the answer goes on after what the page shows: {real[at][:300]!r}"
    return None


def without_values(lines: list[str]) -> list[str]:
    """Prometheus lines without their sample values, which differ from run to run."""
    return [re.sub(r"^([a-z_]+(\{.*\})?) [-+0-9.e]+$", r"\1 <value>", line) for line in lines]


def inferred_status(body: str) -> int:
    """Without -i the page shows the body only: an error body, and an action's, says its status."""
    try:
        value = json.loads(body)
    except ValueError:
        return 200
    if isinstance(value, dict) and isinstance(value.get("status"), int) and (
            "message" in value or "action" in value):
        return int(value["status"])
    return 200


def shell(pipeline: str, body: bytes, cwd: Path) -> list[str]:
    if "jq" in pipeline.split() and shutil.which("jq") is None:
        pytest.skip("jq is not installed (bash tests/ci-browser-deps.sh installs it)")
    done = subprocess.run(["sh", "-c", f"cat {pipeline}"], input=body, capture_output=True,
                          cwd=cwd, timeout=60, check=True)
    return done.stdout.decode("utf-8").split("\n")


def walk(client: Client, script: str) -> list[str]:
    """What walk.sh prints: each page's job ids, following Link to the last page."""
    url = re.search(r"url='http://127\.0\.0\.1:9680([^']*)'", script)
    assert url, script
    path, _, query = url.group(1).partition("?")
    printed = []
    while path:
        r = client.get(path, query=query)
        assert r.status == 200, r
        printed.append(json.dumps([job["jobid"] for job in r.json()], separators=(",", ":")))
        link = re.match(r"<([^>]*)>; rel=\"next\"", r.headers.get("link", ""))
        path, _, query = link.group(1).partition("?") if link else ("", "", "")
    return printed


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_the_api_reference_example_is_what_the_daemon_answers(example: Example, tmp_path: Path) -> None:
    client, keys = scene(example)
    if example.command == "sh walk.sh":
        problem = same_lines(example.output, walk(client, example.script["walk.sh"]))
        assert problem is None, problem
        return
    command, pipeline = split_pipeline(example.command)
    r, show = curl(client, keys, command)
    if pipeline:
        assert r.status == 200, r
        problem = same_lines(example.output, shell(pipeline, r.body, tmp_path))
        assert problem is None, problem
        return
    shown = example.output
    if show:
        status_line, *rest = shown
        blank = rest.index("") if "" in rest else len(rest)
        head, shown = rest[:blank], rest[blank + 1:]
        assert int(status_line.split()[1]) == r.status, (status_line, r)
        for line in head:
            name, _, value = line.partition(": ")
            if name.lower() in UNCHECKED_HEADERS:
                continue
            assert r.headers.get(name.lower()) == value, (name, value, r.headers.get(name.lower()))
    else:
        assert inferred_status("\n".join(shown)) == r.status, r
    real = r.text.split("\n")
    if r.headers.get("content-type", "").startswith("text/plain"):
        shown, real = without_values(shown), without_values(real)
    problem = same_lines(shown, real)
    assert problem is None, problem


def test_every_console_example_of_the_reference_is_run() -> None:
    """A typo in a scene, or a block the parser misses, would silently test less."""
    commands = [e.command for e in EXAMPLES]
    blocks = API.read_text(encoding="utf-8").count("```console")
    assert blocks >= 20 and len(commands) >= 60
    assert all(c.startswith("curl ") or c == "sh walk.sh" for c in commands), commands

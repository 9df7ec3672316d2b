"""A stand-in acting child for the tests: reports the environment it was started with, or misbehaves as asked."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time


def _token_dir() -> str:
    if "BEARER_TOKEN_FILE" in os.environ:
        return os.path.dirname(os.environ["BEARER_TOKEN_FILE"])
    return os.environ["_CONDOR_SEC_TOKEN_DIRECTORY"]


def main() -> int:
    request = json.loads(sys.stdin.read())
    directory = _token_dir()
    token = open(os.path.join(directory, "token"), encoding="ascii").read().strip()
    how = request.get("kind")
    if request.get("report"):
        grandchild = subprocess.Popen(["sleep", "60"]) if how == "sleep" else None
        with open(request["report"], "w", encoding="utf-8") as handle:
            json.dump({"pid": os.getpid(), "dir": directory,
                       "grandchild": grandchild.pid if grandchild else None}, handle)
    if how == "sleep":
        time.sleep(60)
    if how == "crash":
        print(f"Traceback: something failed with {token}", file=sys.stderr)
        return 3
    if how == "garbage":
        print(f"not JSON {token}")
        return 0
    if how == "leak":
        print(json.dumps({"error": "unavailable", "message": f"the schedd said {token}"}))
        return 0
    if how == "bad_kind":
        print(json.dumps({"error": "no such kind", "message": "x"}))
        return 0
    print(json.dumps({
        "pid": os.getpid(), "env": dict(os.environ), "dir": directory,
        "dir_mode": stat.S_IMODE(os.stat(directory).st_mode),
        "files": sorted(os.listdir(directory)),
        "file_mode": stat.S_IMODE(os.stat(os.path.join(directory, "token")).st_mode),
        "token_sha256": hashlib.sha256(token.encode()).hexdigest(), "request": request, "argv": sys.argv[1:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

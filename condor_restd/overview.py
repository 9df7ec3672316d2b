"""Pool counts for dashboards and metrics, from the collector's own ads (no job list is read)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .auth import Identity
from .errors import RestdError

if TYPE_CHECKING:  # queries imports this module lazily (summary()), so no import cycle at run time
    from .queries import Queries

# JobStatus codes and the words condor_q uses for them.
JOB_STATUS = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held",
              6: "transferring_output", 7: "suspended"}
# What a Submitter ad counts (per user and schedd), and what a Scheduler ad counts (per schedd).
SUBMITTER_COUNTS = {"idle": "IdleJobs", "running": "RunningJobs", "held": "HeldJobs"}
SCHEDD_COUNTS = {**{k: "Total" + v for k, v in SUBMITTER_COUNTS.items()},
                 "removed": "TotalRemovedJobs", "total": "TotalJobAds"}
BUSY_STATES = ("Claimed", "Preempting")  # a slot in these states has its resources in use
RESOURCES = {"cpus": ("Cpus", "TotalSlotCpus"), "memory": ("Memory", "TotalSlotMemory"),
             "gpus": ("GPUs", "TotalSlotGPUs")}

PROJECTIONS = {
    "collector": ["Name", "CondorVersion"],
    "schedd": ["Name", "LastHeardFrom", *SCHEDD_COUNTS.values()],
    "submitter": ["Name", "ScheddName", "LastHeardFrom", *SUBMITTER_COUNTS.values()],
    "startd": ["Name", "Machine", "State", "SlotType", *(a for pair in RESOURCES.values() for a in pair)],
}
VERSION = re.compile(r"\$CondorVersion:\s*(\S+)")
OTHER = "other"
FIGURES_TTL = 15.0  # seconds the /metrics pool figures are reused: collector ads change every few minutes
SUMMARY_TTL = 10.0  # seconds a summary is reused (unless RESTD_CACHE_TTL is 0, or longer), for polling pages
SUMMARIES = 256  # summaries kept at most (one for everyone, one per user limited to their own jobs)
# Who the metrics' pool queries run as: pool figures are totals, shown to no user in particular.
POOL = Identity("condor_restd@metrics", admin=True)


def decode(records: Iterable[Any]) -> list[dict[str, Any]]:
    """Status records ({"name", "type", "classad"}) as plain dicts, whatever text type they come in."""
    out = []
    for record in records:
        value = record if isinstance(record, Mapping) else json.loads(
            record if isinstance(record, (bytes, bytearray)) else str(record))
        out.append({"name": value.get("name"), "type": value.get("type"),
                    "classad": value.get("classad") or {}})
    return out


def _number(ad: Mapping[str, Any], name: str) -> int | float:
    value = ad.get(name.lower())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return int(value) if float(value).is_integer() else value


def owner_constraint(submitter: str) -> str:
    """The job constraint for a Submitter ad's jobs: its User, or its accounting group when the
    submitter is one (group.user@domain)."""
    local = submitter.rpartition("@")[0] or submitter
    if "." in local:
        return f"AccountingGroup =?= {json.dumps(local)}"
    return f"User =?= {json.dumps(submitter)}"


def _own(submitter: str, user: str) -> bool:
    """Whether a Submitter ad counts this user's jobs (directly, or in an accounting group)."""
    local, _, domain = user.rpartition("@")
    return submitter == user or (submitter.endswith(f".{local}@{domain}") and bool(local))


def pool_info(collectors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The pool's name and HTCondor version, from the collector's own ad."""
    ad = collectors[0]["classad"] if collectors else {}
    match = VERSION.search(str(ad.get("condorversion") or ""))
    return {"name": ad.get("name") or (collectors[0]["name"] if collectors else None),
            "version": match.group(1) if match else None}


def job_counts(schedds: Sequence[Mapping[str, Any]], submitters: Sequence[Mapping[str, Any]],
               user: str | None = None) -> list[dict[str, Any]]:
    """condor_q -totals for each schedd, with a row per submitter. `user`: only that user's rows,
    and schedd totals that are their sums (what a user limited to their own jobs may see)."""
    rows: dict[str, dict[str, Any]] = {}
    for record in schedds:
        ad = record["classad"]
        name = str(record["name"] or ad.get("name") or "")
        totals = {k: _number(ad, v) if v.lower() in ad else None for k, v in SCHEDD_COUNTS.items()}
        rows[name] = {"name": name, "updated": ad.get("lastheardfrom"), **totals, "owners": []}
    for record in submitters:
        ad = record["classad"]
        owner = str(record["name"] or ad.get("name") or "")
        if user is not None and not _own(owner, user):
            continue
        schedd = str(ad.get("scheddname") or "")
        row = rows.setdefault(schedd, {"name": schedd, "updated": None, "owners": [],
                                       **dict.fromkeys(SCHEDD_COUNTS)})
        counts = {k: _number(ad, v) for k, v in SUBMITTER_COUNTS.items()}
        row["owners"].append({"owner": owner, **counts, "constraint": owner_constraint(owner)})
    for row in rows.values():
        row["owners"].sort(key=lambda o: o["owner"])
        if user is not None:  # the user's own sums; what the schedd holds besides is not theirs
            row.update({k: sum(o[k] for o in row["owners"]) for k in SUBMITTER_COUNTS})
            row.update(removed=None, total=None)
    return [rows[name] for name in sorted(rows)]


def _machine_of(ad: Mapping[str, Any], name: str) -> str:
    return str(ad.get("machine") or name.rpartition("@")[2] or name)


@dataclass
class _Tally:
    slots: int = 0
    states: dict[str, int] = field(default_factory=dict)
    total: dict[str, float] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    used: dict[str, float] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    left: dict[str, float] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    partitionable: int = 0

    def add(self, ad: Mapping[str, Any]) -> None:
        state = str(ad.get("state") or "Unknown")
        kind = str(ad.get("slottype") or "Static")
        self.slots += 1
        self.states[state] = self.states.get(state, 0) + 1
        for key, (now, whole) in RESOURCES.items():
            if kind == "Partitionable":  # its own figure is what is left; the whole is TotalSlot*
                self.total[key] += _number(ad, whole) if whole.lower() in ad else _number(ad, now)
                self.left[key] += _number(ad, now)
            elif kind == "Dynamic":  # carved out of a partitionable slot, counted in its whole
                self.used[key] += _number(ad, now) if state in BUSY_STATES else 0
            else:
                self.total[key] += _number(ad, now)
                self.used[key] += _number(ad, now) if state in BUSY_STATES else 0
        self.partitionable += kind == "Partitionable"

    def resources(self) -> dict[str, dict[str, float]]:
        return {k: {"used": _int(self.used[k]), "total": _int(self.total[k]),
                    "partitionable_free": _int(self.left[k])} for k in RESOURCES}


def _int(value: float) -> float:
    return int(value) if float(value).is_integer() else round(value, 2)


def slot_figures(startds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """condor_status -total: slots by state and type, and per machine the cores, memory (MB) and
    GPUs in use against the total, with what partitionable slots still have free."""
    pool = _Tally()
    machines: dict[str, _Tally] = {}
    by_type: dict[str, int] = {}
    cores: dict[str, float] = {}
    for record in startds:
        if record["type"] not in ("Machine", None):
            continue
        ad = record["classad"]
        name = str(record["name"] or "")
        pool.add(ad)
        machines.setdefault(_machine_of(ad, name), _Tally()).add(ad)
        kind = str(ad.get("slottype") or "Static")
        by_type[kind] = by_type.get(kind, 0) + 1
        state = str(ad.get("state") or "Unknown")
        cores[state] = _int(cores.get(state, 0) + _number(ad, "Cpus"))
    return {
        "slots": {"total": pool.slots, "by_state": dict(sorted(pool.states.items())),
                  "by_type": dict(sorted(by_type.items())), "partitionable": pool.partitionable},
        "cores_by_state": dict(sorted(cores.items())),
        "resources": pool.resources(),
        "machines": [{"machine": name, "slots": t.slots, "states": dict(sorted(t.states.items())),
                      "partitionable": t.partitionable, **t.resources()}
                     for name, t in sorted(machines.items())],
    }


def cap_owners(rows: Sequence[Mapping[str, Any]], most: int) -> list[tuple[str, str, str, float]]:
    """(schedd, owner, status, count) for the `most` owners with the most jobs in the pool; the
    others summed as owner "other", so that a metric's owner label has at most most + 1 values."""
    sizes: dict[str, float] = {}
    for row in rows:
        for owner in row["owners"]:
            sizes[owner["owner"]] = sizes.get(owner["owner"], 0) + sum(
                owner[k] for k in SUBMITTER_COUNTS)
    kept = set(sorted(sizes, key=lambda o: (-sizes[o], o))[:most])
    out: dict[tuple[str, str, str], float] = {}
    for row in rows:
        for owner in row["owners"]:
            name = owner["owner"] if owner["owner"] in kept else OTHER
            for status in SUBMITTER_COUNTS:
                key = (row["name"], name, status)
                out[key] = out.get(key, 0) + owner[status]
    return [(*key, value) for key, value in sorted(out.items())]


@dataclass
class Figures:
    """What /metrics exports about the pool; `collector` is None when it could not be asked."""

    collector: str | None
    schedds: list[dict[str, Any]] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    reachable: dict[str, str] = field(default_factory=dict)  # schedd -> "ok" or why not


class Overview:
    """The summary (/v1/summary, the front page) and the pool figures (/metrics), asked of the
    collector through Queries, so caching, time limits and access rules are those of /v1/status."""

    def __init__(self, queries: Queries) -> None:
        self.queries = queries
        self._figures: tuple[float, Figures] | None = None
        self._lock = threading.Lock()
        self._summaries: dict[tuple[bool, str], tuple[float, dict[str, Any]]] = {}
        self._summaries_lock = threading.Lock()

    def _ads(self, query: str, who: Identity | None) -> list[dict[str, Any]]:
        return decode(self.queries.status(None, PROJECTIONS[query], None, query, who=who))

    def summary(self, who: Identity | None = None) -> dict[str, Any]:
        """Jobs by schedd and owner, slots and resources, from four collector queries. A user
        whom RESTD_USER_JOB_SCOPE = OWN limits to their own jobs gets their own counts only.
        Reused for SUMMARY_TTL seconds: many pages polling cost the collector no more."""
        settings = self.queries.settings
        own = (who is not None and not who.admin and settings.user_job_scope == "OWN"
               and settings.authentication == "TOKEN")
        # nobody (who is None) never shares an answer with a user: with tokens on, nobody gets a 401
        key = (who is None, who.user if own and who is not None else "")
        ttl = 0.0 if settings.cache_ttl == 0 else max(settings.cache_ttl, SUMMARY_TTL)
        with self._summaries_lock:
            kept = self._summaries.get(key)
            if kept is not None and time.monotonic() - kept[0] < ttl:
                return kept[1]
        summary = self._summary(who, own)
        if ttl:
            with self._summaries_lock:
                self._summaries[key] = (time.monotonic(), summary)
                while len(self._summaries) > SUMMARIES:
                    del self._summaries[next(iter(self._summaries))]
        return summary

    def _summary(self, who: Identity | None, own: bool) -> dict[str, Any]:
        pool = pool_info(self._ads("collector", who))
        schedds = job_counts(self._ads("schedd", who), self._ads("submitter", who),
                             who.user if own and who is not None else None)
        totals = {k: sum(r[k] or 0 for r in schedds) if all(r[k] is not None for r in schedds) else None
                  for k in SCHEDD_COUNTS}
        return {"pool": pool, "scope": "own" if own else "all", "source": "collector",
                "job_statuses": [{"code": c, "name": n} for c, n in JOB_STATUS.items()],
                "jobs": {"totals": totals, "schedds": schedds},
                **slot_figures(self._ads("startd", who))}

    def figures(self) -> Figures:
        """The pool figures, reused for FIGURES_TTL seconds; one refresh at a time."""
        with self._lock:
            now = time.monotonic()
            if self._figures is None or now - self._figures[0] > FIGURES_TTL:
                self._figures = (now, self._refresh())
            return self._figures[1]

    def _refresh(self) -> Figures:
        who = POOL if self.queries.settings.authentication == "TOKEN" else None
        try:
            schedds = job_counts(self._ads("schedd", who), self._ads("submitter", who))
            slots = slot_figures(self._ads("startd", who))
        except RestdError as exc:
            return Figures(collector=exc.message)
        reachable = {}
        for row in schedds:  # one small query each: a schedd in the collector may still be down
            if row["total"] is None and row["updated"] is None:
                continue  # known from Submitter ads only (flocking): not this pool's schedd
            try:
                self.queries.jobs("jobs", row["name"], None, ["ClusterId"], "false", who=who, limit=1)
                reachable[row["name"]] = "ok"
            except RestdError as exc:
                reachable[row["name"]] = exc.message
        return Figures("ok", schedds, slots, reachable)

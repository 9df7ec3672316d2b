/* condor_restd pool dashboard: the overview, held jobs and machines views, and the helpers the
 * job views (jobs.js) share. Each view is a function (path parts, query parameters, element) ->
 * {title, load(first)}; load() asks the API and draws only when an answer changed (a 304 leaves
 * the page as it is).
 * Copyright the condor_restd authors. Licensed under the Apache License, Version 2.0
 * (SPDX-License-Identifier: Apache-2.0), as the rest of condor_restd: see LICENSE. */
"use strict";

(function () {
  const R = window.CondorRestd = window.CondorRestd || {};
  const V = R.views = R.views || {};
  const h = (...args) => R.h(...args);
  const STATUS = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held",
                  6: "transferring output", 7: "suspended"};
  const CODES = {idle: 1, running: 2, removed: 3, completed: 4, held: 5, transferring_output: 6, suspended: 7};
  const COUNTS = ["idle", "running", "held", "removed", "total"];

  /** The job constraint for an owner: user@domain is a User (or an accounting group), else an Owner. */
  function ownerClause(owner) {
    if (!owner) return null;
    const at = owner.lastIndexOf("@");
    if (at < 0) return "Owner =?= " + JSON.stringify(owner);
    const local = owner.slice(0, at);
    return local.includes(".") ? "AccountingGroup =?= " + JSON.stringify(local) : "User =?= " + JSON.stringify(owner);
  }

  function jobsHash(params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) if (value) query.set(key, value);
    return "#/jobs?" + query.toString();
  }

  function table(caption, columns, rows, foot) {
    return h("div", {class: "scroll"}, h("table", {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {scope: "col", class: c.n ? "n" : null}, c.label || c)))),
      h("tbody", {}, rows), foot ? h("tfoot", {}, foot) : null));
  }

  function statusCell(code) {
    const word = STATUS[code] || "unknown (" + code + ")";
    return h("td", {class: "status-" + word.split(" ")[0]}, word);
  }

  function jobLink(schedd, jobid, source) {
    return h("a", {href: "#/job/" + R.enc(schedd) + "/" + jobid + (source === "history" ? "?source=history" : "")}, jobid);
  }

  function schedds() {
    return ((R.state.summary || {}).jobs || {}).schedds || [];
  }

  function scheddSelect(id, current, onchange) {
    const names = schedds().map((s) => s.name);
    return h("label", {for: id}, "Schedd", h("select", {id, name: "schedd", onchange},
      names.map((n) => h("option", {value: n, selected: n === current}, n))));
  }

  // what jobs.js uses too
  Object.assign(R, {STATUS, CODES, ownerClause, jobsHash, table, statusCell, jobLink, schedds, scheddSelect});

  // ------------------------------------------------------------------------------ overview

  function bar(used, total) {
    const share = total > 0 ? Math.min(100, Math.round(100 * used / total)) : 0;
    return h("span", {class: "bar", role: "img", "aria-label": share + "% in use"}, h("span", {style: "width:" + share + "%"}));
  }

  const OPTIONAL = new Set(["removed"]);  // columns a phone leaves out
  const opt = (c, cls) => [cls, OPTIONAL.has(c) ? "opt" : null].filter(Boolean).join(" ");

  function countCell(value, params, status) {
    if (value === null || value === undefined) return h("td", {class: opt(status, "n muted")}, "–");
    const query = Object.assign({}, params, {status: status === "total" ? "" : status});
    return h("td", {class: opt(status, "n"), "data-status": status}, h("a", {href: jobsHash(query)}, value));
  }

  const TOP_OWNERS = 10;  // owner rows shown per schedd before "show more"
  const expanded = new Set();  // schedds whose every owner is shown (kept across redraws)

  /** Megabytes as a person reads them. */
  function mb(value) {
    if (typeof value !== "number") return "–";
    if (value < 10240) return value + " MB";
    const gb = value / 1024;
    return gb < 1024 ? (gb < 100 ? gb.toFixed(1) : Math.round(gb)) + " GB" : (gb / 1024).toFixed(1) + " TB";
  }
  R.mb = mb;

  function countsTable(jobs, scope) {
    const body = [];
    for (const s of jobs.schedds) {
      const updated = s.updated ? "updated " + R.ago(R.now() - s.updated) + " ago" : "";
      const rows = [h("tr", {class: "schedd", "data-schedd": s.name},
        h("th", {scope: "row"}, s.name, updated ? h("span", {class: "updated"}, updated) : null),
        COUNTS.map((c) => countCell(s[c], {schedd: s.name}, c)))];
      const owners = s.owners.slice().sort((a, b) => (b.idle + b.running + b.held) - (a.idle + a.running + a.held)
                                                     || a.owner.localeCompare(b.owner));
      const shown = expanded.has(s.name) ? owners : owners.slice(0, TOP_OWNERS);
      for (const o of shown) {
        const total = o.idle + o.running + o.held;
        rows.push(h("tr", {class: "owner", "data-schedd": s.name, "data-owner": o.owner},
          h("th", {scope: "row"}, h("a", {href: "#/batches?" + new URLSearchParams({schedd: s.name, owner: o.owner}),
                                          title: "this owner's batches"}, o.owner)),
          ["idle", "running", "held"].map((c) => countCell(o[c], {schedd: s.name, owner: o.owner}, c)),
          h("td", {class: "n muted opt"}, "–"), countCell(total, {schedd: s.name, owner: o.owner}, "total")));
      }
      if (owners.length > TOP_OWNERS) {
        const more = !expanded.has(s.name);
        rows.push(h("tr", {class: "owner"}, h("td", {colspan: COUNTS.length + 1}, h("button", {
          type: "button", class: "more", "aria-expanded": String(!more), onclick: () => {
            if (more) expanded.add(s.name); else expanded.delete(s.name);
            const table = countsTable(jobs, scope);
            document.getElementById("counts").closest(".scroll").replaceWith(table);
            table.querySelector('tbody[data-schedd="' + CSS.escape(s.name) + '"] button.more').focus();
          }}, more ? "Show the other " + (owners.length - TOP_OWNERS) + " owners of " + s.name
                   : "Show the " + TOP_OWNERS + " owners with most jobs only"))));
      }
      body.push(h("tbody", {"data-schedd": s.name}, rows));
    }
    const t = jobs.totals || {};
    const caption = scope === "own" ? "Your jobs by schedd" : "Jobs by schedd and owner";
    return h("div", {class: "scroll"}, h("table", {id: "counts"}, h("caption", {}, caption),
      h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "schedd / owner"),
        COUNTS.map((c) => h("th", {scope: "col", class: opt(c, "n")}, c)))), body,
      h("tfoot", {}, h("tr", {}, h("th", {scope: "row"}, "pool"),
        COUNTS.map((c) => h("td", {class: opt(c, "n")}, t[c] === null || t[c] === undefined ? "–" : t[c]))))));
  }

  function resources(summary) {
    const res = summary.resources || {};
    const names = {cpus: "cores", memory: "memory", gpus: "GPUs"};
    const rows = Object.entries(names).map(([key, label]) => {
      const r = res[key] || {used: 0, total: 0, partitionable_free: 0};
      const show = key === "memory" ? mb : (n) => n;
      return h("tr", {"data-resource": key}, h("th", {scope: "row"}, label),
        h("td", {class: "n", "data-kind": "used"}, show(r.used), bar(r.used, r.total)),
        h("td", {class: "n", "data-kind": "total"}, show(r.total)),
        h("td", {class: "n", "data-kind": "partitionable_free"}, show(r.partitionable_free)));
    });
    const slots = summary.slots || {by_state: {}, total: 0};
    const states = Object.keys(slots.by_state);
    return [
      h("div", {class: "scroll"}, h("table", {id: "resources"},
        h("caption", {}, "Resources (from the startds' slot ads)"),
        h("thead", {}, h("tr", {}, ["resource", "in use", "total", "left in partitionable slots"].map(
          (c, i) => h("th", {scope: "col", class: i ? "n" : null}, c)))), h("tbody", {}, rows))),
      h("div", {class: "scroll"}, h("table", {id: "slots"},
        h("caption", {}, "Slots by state, as condor_status -total counts them"),
        h("thead", {}, h("tr", {}, states.map((s) => h("th", {scope: "col"}, s)), h("th", {scope: "col"}, "total"))),
        h("tbody", {}, h("tr", {}, states.map((s) => h("td", {class: "n", "data-state": s}, slots.by_state[s])),
          h("td", {class: "n"}, slots.total))))),
      slots.partitionable ? h("p", {class: "note"}, slots.partitionable + " of these are partitionable slots: each " +
        "counts as one slot, Unclaimed while it has resources left to hand out; the resources table says what they have left.")
        : null];
  }

  V[""] = function overview(parts, params, el) {
    return {title: "Overview", async load() {
      const answer = await R.summary();
      if (!answer.fresh && el.dataset.drawn) return;
      const s = answer.data;
      el.dataset.drawn = "true";
      R.fill(el, h("h2", {id: "summary-title"}, s.scope === "own" ? "Your jobs" : "Jobs"),
        countsTable(s.jobs, s.scope),
        h("h2", {}, "Machines"), resources(s),
        h("p", {}, h("a", {href: "#/machines"}, "Every machine (" + (s.machines || []).length + ")")),
        h("p", {class: "note"}, "Counts come from the ads schedds and startds send the collector every few " +
          "minutes, so they can be that old; each count links to the job list behind it."),
        R.raw(["", "/v1/summary"]));
    }};
  };

  // ------------------------------------------------------------------------------ held jobs

  V.held = function held(parts, params, el) {
    return {title: "Held jobs", async load(initial) {
      await R.summary();
      const names = schedds().filter((s) => s.held).map((s) => s.name);
      const urls = names.map((n) => "/v1/grouped_jobs/" + R.enc(n) + "/HoldReason?" + new URLSearchParams(
        {constraint: "JobStatus == 5", projection: "Owner,HoldReasonCode"}).toString());
      const answers = await Promise.all(urls.map((u) => R.api(u)));
      if (!initial && !answers.some((a) => a.fresh) && el.dataset.drawn === names.join(",")) return;
      el.dataset.drawn = names.join(",");
      const groups = [];
      answers.forEach((answer, i) => {
        for (const [reason, jobs] of Object.entries(answer.data)) groups.push({schedd: names[i], reason, jobs});
      });
      groups.sort((a, b) => b.jobs.length - a.jobs.length || a.reason.localeCompare(b.reason));
      const rows = groups.map((g) => {
        const owners = [...new Set(g.jobs.map((j) => j.classad.owner))].sort();
        const link = jobsHash({schedd: g.schedd, status: "held", constraint: "HoldReason =?= " + JSON.stringify(g.reason)});
        return h("tr", {}, h("th", {scope: "row", class: "wrap"}, g.reason), h("td", {}, g.schedd),
          h("td", {class: "n"}, h("a", {href: link}, g.jobs.length)), h("td", {}, owners.join(", ")),
          h("td", {class: "wrap"}, g.jobs.slice(0, 5).map((j, k) => [k ? ", " : "", jobLink(g.schedd, j.jobid)]),
            g.jobs.length > 5 ? ", …" : ""));
      });
      const cut = names.filter((n, i) => answers[i].truncated);
      R.fill(el, h("h2", {}, "Held jobs by hold reason"),
        cut.length ? h("p", {class: "problem"}, "Only the first held jobs of " + cut.join(", ") +
          " are grouped here (RESTD_MAX_JOBS); the counts on the overview are complete.") : null,
        rows.length ? table("Held jobs, grouped by their HoldReason",
          ["hold reason", "schedd", {label: "jobs", n: true}, "owners", "jobs held"], rows)
          : h("p", {class: "muted", id: "no-held"}, "No job is held."),
        R.raw(...urls.map((u, i) => [names[i], u])));
    }};
  };

  // ------------------------------------------------------------------------------- machines

  const MACHINE_SORTS = {
    name: ["name", (a, b) => a.machine.localeCompare(b.machine)],
    free: ["most cores free", (a, b) => (b.cpus.total - b.cpus.used) - (a.cpus.total - a.cpus.used)],
    used: ["most cores in use", (a, b) => b.cpus.used - a.cpus.used],
    memory: ["most memory free", (a, b) => (b.memory.total - b.memory.used) - (a.memory.total - a.memory.used)],
  };

  V.machines = function machines(parts, params, el) {
    const v = {filter: params.get("filter") || "", sort: MACHINE_SORTS[params.get("sort")] ? params.get("sort") : "name",
               summary: null};
    const box = h("div", {id: "machine-results"});
    const free = (m) => m.partitionable ? m.cpus.partitionable_free + " cores, " + mb(m.memory.partitionable_free) +
      ", " + m.gpus.partitionable_free + " GPUs" : "–";

    function draw() {
      const s = v.summary;
      const wanted = v.filter.trim().toLowerCase();
      const list = (s.machines || []).filter((m) => !wanted || m.machine.toLowerCase().includes(wanted))
        .sort((a, b) => MACHINE_SORTS[v.sort][1](a, b) || a.machine.localeCompare(b.machine));
      const rows = list.map((m) => h("tr", {"data-machine": m.machine},
        h("th", {scope: "row"}, m.machine), h("td", {class: "n"}, m.slots),
        h("td", {class: "n"}, m.cpus.used + " / " + m.cpus.total, bar(m.cpus.used, m.cpus.total)),
        h("td", {class: "n"}, mb(m.memory.used) + " / " + mb(m.memory.total), bar(m.memory.used, m.memory.total)),
        h("td", {class: "n"}, m.gpus.used + " / " + m.gpus.total), h("td", {class: "n"}, free(m)),
        h("td", {}, Object.entries(m.states).map(([k, n]) => k + " " + n).join(", "))));
      const r = s.resources;
      const foot = h("tr", {}, h("th", {scope: "row"}, "pool"), h("td", {class: "n"}, s.slots.total),
        h("td", {class: "n"}, r.cpus.used + " / " + r.cpus.total), h("td", {class: "n"}, mb(r.memory.used) + " / " + mb(r.memory.total)),
        h("td", {class: "n"}, r.gpus.used + " / " + r.gpus.total), h("td", {class: "n"}, free(Object.assign({partitionable: s.slots.partitionable}, r))),
        h("td", {}, ""));
      R.fill(box, h("div", {class: "scroll"}, h("table", {id: "machines-table"},
          h("caption", {}, list.length === (s.machines || []).length ? "Cores, memory and GPUs used against the total"
            : list.length + " of " + s.machines.length + " machines"),
          h("thead", {}, h("tr", {}, ["machine", "slots", "cores used / total", "memory used / total", "GPUs used / total",
            "left in partitionable slots", "slots by state"].map((c, i) => h("th", {scope: "col", class: i && i < 6 ? "n" : null}, c)))),
          h("tbody", {}, rows), h("tfoot", {}, foot))));
    }

    function controls() {
      const remember = () => history.replaceState(null, "", "#/machines?" + new URLSearchParams(
        {filter: v.filter, sort: v.sort}).toString());
      const filter = h("input", {id: "machine-filter", type: "search", value: v.filter, size: 16, oninput: () => {
        v.filter = filter.value; remember(); draw(); }});
      const sort = h("select", {id: "machine-sort", onchange: () => { v.sort = sort.value; remember(); draw(); }},
        Object.entries(MACHINE_SORTS).map(([key, [label]]) => h("option", {value: key, selected: key === v.sort}, label)));
      return h("form", {class: "filters", onsubmit: (e) => e.preventDefault()},
        h("label", {for: "machine-filter"}, "Machine name contains", filter),
        h("label", {for: "machine-sort"}, "Sort by", sort));
    }

    return {title: "Machines", async load(initial) {
      const answer = await R.summary();
      if (!answer.fresh && !initial) return;
      v.summary = answer.data;
      if (initial) {
        R.fill(el, h("h2", {}, "Machines"), controls(), box,
          h("p", {class: "note"}, "Used: resources of claimed slots. A partitionable slot hands out its resources " +
            "to dynamic slots; what it still has is in the last but one column."),
          R.raw(["summary", "/v1/summary"], ["slots", "/v1/status?query=startd&projection=Machine,State,SlotType," +
            "Cpus,Memory,GPUs,TotalSlotCpus,TotalSlotMemory,TotalSlotGPUs"]));
      }
      draw();
    }};
  };

}());

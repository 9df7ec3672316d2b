/* condor_restd pool dashboard: the job views (the job table, recent completions, one job). Each
 * view is a function (path parts, query parameters, element) -> {title, load(first)}, as in views.js,
 * whose helpers it uses.
 * Copyright the condor_restd authors. Licensed under the Apache License, Version 2.0
 * (SPDX-License-Identifier: Apache-2.0), as the rest of condor_restd: see LICENSE. */
"use strict";

(function () {
  const R = window.CondorRestd;
  const V = R.views;
  const h = (...args) => R.h(...args);
  const {STATUS, CODES, ownerClause, jobsHash, table, statusCell, jobLink, schedds, scheddSelect} = R;
  const JOB_ATTRS = "ClusterId,ProcId,Owner,User,JobStatus,QDate,RequestCpus,RequestMemory,RemoteHost," +
                    "HoldReason,JobBatchName";
  const DONE_ATTRS = "ClusterId,ProcId,Owner,JobStatus,ExitCode,ExitBySignal,ExitSignal,CompletionDate," +
                     "EnteredCurrentStatus,RemoteWallClockTime";

  // ---------------------------------------------------------------------------------- jobs

  const JOB_COLUMNS = [
    {key: "id", label: "job id", get: (j) => j.jobid, sort: (j) => j.jobid.split(".").map(Number)},
    {key: "owner", label: "owner", get: (j) => j.classad.owner},
    {key: "status", label: "status", get: (j) => j.classad.jobstatus},
    {key: "age", label: "age", n: true, get: (j) => j.classad.qdate, sort: (j) => -(j.classad.qdate || 0)},
    {key: "cpus", label: "CPUs", n: true, get: (j) => j.classad.requestcpus, opt: true},
    {key: "memory", label: "memory", n: true, get: (j) => j.classad.requestmemory, opt: true},
    {key: "host", label: "remote host", get: (j) => j.classad.remotehost},
    {key: "hold", label: "hold reason", get: (j) => j.classad.holdreason},
    {key: "batch", label: "batch", get: (j) => j.classad.jobbatchname, opt: true},
  ];

  function compare(a, b) {
    if (Array.isArray(a)) {
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
      return 0;
    }
    if (a === undefined || a === null) return 1;
    if (b === undefined || b === null) return -1;
    return typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b));
  }

  function jobRow(schedd, job) {
    const c = job.classad;
    const number = (v, show) => h("td", {class: "n opt"}, typeof v === "number" ? show(v) : "–");
    return h("tr", {"data-jobid": job.jobid}, h("th", {scope: "row"}, jobLink(schedd, job.jobid)),
      h("td", {}, c.owner || "–"), statusCell(c.jobstatus),
      h("td", {class: "n"}, c.qdate ? R.ago(R.now() - c.qdate) : "–"), number(c.requestcpus, String),
      number(c.requestmemory, R.mb), h("td", {}, c.remotehost || ""), h("td", {class: "wrap"}, c.holdreason || ""),
      h("td", {class: "opt"}, c.jobbatchname || ""));
  }

  V.jobs = function jobs(parts, params, el) {
    const v = {schedd: params.get("schedd") || "", owner: params.get("owner") || "",
               status: params.get("status") || "", constraint: params.get("constraint") || "",
               limit: Math.min(1000, Math.max(1, Number(params.get("limit")) || 50)), pages: [], sort: null, descending: false,
               rows: null, answer: null, names: null};
    const filters = h("div", {});
    const result = h("div", {id: "job-results"});
    R.fill(el, h("h2", {}, "Jobs"), filters, result);

    function first() {
      const clauses = [ownerClause(v.owner), CODES[v.status] ? "JobStatus == " + CODES[v.status] : null,
                       v.constraint.trim() ? "(" + v.constraint.trim() + ")" : null].filter(Boolean);
      const query = new URLSearchParams({projection: JOB_ATTRS, limit: String(v.limit)});
      if (clauses.length) query.set("constraint", clauses.join(" && "));
      return "/v1/jobs/" + R.enc(v.schedd) + "?" + query.toString();
    }

    function form() {
      const error = h("p", {id: "constraint-error", class: "error", role: "alert", hidden: true});
      const constraint = h("input", {id: "constraint", name: "constraint", value: v.constraint, size: 40,
                                     "aria-describedby": "constraint-hint constraint-error",
                                     placeholder: 'RequestMemory > 4096'});
      const f = h("form", {class: "filters", id: "job-filters", onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(f);
        const next = {schedd: data.get("schedd"), owner: data.get("owner").trim(), status: data.get("status"),
                      constraint: data.get("constraint").trim(), limit: data.get("limit")};
        history.replaceState(null, "", jobsHash(next));
        Object.assign(v, next, {limit: Number(next.limit), pages: []});
        R.refresh(true);
      }},
      scheddSelect("schedd", v.schedd),
      h("label", {for: "owner"}, "Owner", h("input", {id: "owner", name: "owner", value: v.owner, size: 16,
                                                      placeholder: "alice or alice@domain"})),
      h("label", {for: "status"}, "Status", h("select", {id: "status", name: "status"},
        h("option", {value: ""}, "any"), Object.keys(CODES).map((s) => h("option", {value: s, selected: s === v.status},
          s.replace("_", " "))))),
      h("label", {for: "constraint", class: "wide"}, "Constraint ",
        h("span", {class: "hint", id: "constraint-hint"}, "(a ClassAd expression)"), constraint),
      h("label", {for: "limit"}, "Per page", h("select", {id: "limit", name: "limit"},
        [...new Set([25, 50, 100, 200, v.limit])].sort((a, b) => a - b).map(
          (n) => h("option", {value: n, selected: n === v.limit}, n)))),
      h("button", {type: "submit"}, "Show"));
      R.fill(filters, f, error);
    }

    function draw() {
      const answer = v.answer;
      let rows = answer.data.slice();
      const column = JOB_COLUMNS.find((c) => c.key === v.sort);
      if (column) {
        const key = column.sort || column.get;
        rows.sort((a, b) => compare(key(a), key(b)) * (v.descending ? -1 : 1));
      }
      const head = h("tr", {}, JOB_COLUMNS.map((c) => h("th", {scope: "col",
        class: [c.n ? "n" : null, c.opt ? "opt" : null].filter(Boolean).join(" ") || null,
        "aria-sort": c.key === v.sort ? (v.descending ? "descending" : "ascending") : null},
        h("button", {type: "button", class: "sort", onclick: () => {
          v.descending = v.sort === c.key ? !v.descending : false;
          v.sort = c.key;
          draw();
          R.$('#jobs-table th[aria-sort] button').focus();
        }}, c.label))));
      const page = v.pages.length + 1;
      const pager = h("div", {class: "pager"},
        h("button", {type: "button", id: "first-page", disabled: !v.pages.length, onclick: () => {
          v.pages = []; R.refresh(true); }}, "First page"),
        h("button", {type: "button", id: "previous-page", disabled: !v.pages.length, onclick: () => {
          v.pages.pop(); R.refresh(true); }}, "Previous page"),
        h("button", {type: "button", id: "next-page", disabled: !answer.next, onclick: () => {
          v.pages.push(answer.next); R.refresh(true); }}, "Next page"),
        h("span", {id: "page-status"}, "page " + page + ", " + rows.length + " job" + (rows.length === 1 ? "" : "s") +
          (answer.next ? ", more follow" : "")));
      R.fill(result, pager,
        h("div", {class: "scroll"}, h("table", {id: "jobs-table"},
          h("caption", {}, "Jobs in " + v.schedd + " (sorting orders this page)"),
          h("thead", {}, head), h("tbody", {}, rows.map((j) => jobRow(v.schedd, j))))),
        rows.length ? null : h("p", {class: "muted", id: "no-jobs"}, "No job matches."),
        R.raw(["", v.pages.length ? v.pages[v.pages.length - 1] : first()]));
    }

    return {title: "Jobs", async load(initial) {
      await R.summary();
      if (!v.schedd) v.schedd = (schedds()[0] || {}).name || "DEFAULT";
      const names = schedds().map((s) => s.name).join("\n");
      if (!R.$("#job-filters") || names !== v.names) form();  // kept while the user types
      v.names = names;
      const answer = await R.api(v.pages.length ? v.pages[v.pages.length - 1] : first());
      if (!answer.fresh && !initial && v.answer) return;
      v.answer = answer;
      R.$("#constraint-error").hidden = true;
      R.$("#constraint").removeAttribute("aria-invalid");
      draw();
    }, failed(error) {
      if (error.status !== 400) return false;
      const box = R.$("#constraint-error");
      box.textContent = error.message;
      box.hidden = false;
      R.$("#constraint").setAttribute("aria-invalid", "true");
      R.fill(result);
      return true;
    }};
  };

  // ------------------------------------------------------------------------------- batches

  const BATCH_ATTRS = "ClusterId,ProcId,Owner,JobBatchName,JobStatus,QDate,TotalSubmitProcs";

  /** condor_q's default view: jobs grouped by owner and batch (JobBatchName, else the cluster). */
  function batchesOf(jobs) {
    const batches = new Map();
    const perCluster = new Map();
    for (const job of jobs) {
      const c = job.classad;
      const name = c.jobbatchname || "ID: " + c.clusterid;
      const key = c.owner + "\u0000" + name;
      if (!batches.has(key)) {
        batches.set(key, {owner: c.owner, name, named: Boolean(c.jobbatchname), submitted: c.qdate,
                          clusters: new Set(), first: job.jobid, last: job.jobid, run: 0, idle: 0, hold: 0, other: 0});
      }
      const b = batches.get(key);
      b.clusters.add(c.clusterid);
      b.submitted = Math.min(b.submitted || c.qdate, c.qdate || b.submitted);
      b.last = job.jobid;
      if (c.jobstatus === 2) b.run++; else if (c.jobstatus === 1) b.idle++; else if (c.jobstatus === 5) b.hold++; else b.other++;
      const seen = perCluster.get(c.clusterid) || {present: 0, submitted: c.totalsubmitprocs || 0};
      seen.present++;
      perCluster.set(c.clusterid, seen);
    }
    for (const b of batches.values()) {  // jobs of its clusters that left the queue: done
      b.done = [...b.clusters].reduce((n, id) => n + Math.max(0, perCluster.get(id).submitted - perCluster.get(id).present), 0);
    }
    return [...batches.values()];
  }

  V.batches = function batches(parts, params, el) {
    const v = {schedd: params.get("schedd") || "", owner: params.get("owner") || ""};
    const box = h("div", {id: "batch-results"});
    const url = () => "/v1/jobs/" + R.enc(v.schedd) + "?" + new URLSearchParams(
      Object.assign({projection: BATCH_ATTRS}, v.owner ? {constraint: ownerClause(v.owner)} : {})).toString();

    function form() {
      const f = h("form", {class: "filters", id: "batch-filters", onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(f);
        Object.assign(v, {schedd: data.get("schedd"), owner: data.get("owner").trim()});
        history.replaceState(null, "", "#/batches?" + new URLSearchParams(v).toString());
        R.refresh(true);
      }}, scheddSelect("batch-schedd", v.schedd),
      h("label", {for: "batch-owner"}, "Owner", h("input", {id: "batch-owner", name: "owner", value: v.owner, size: 16,
                                                            placeholder: "alice or alice@domain"})),
      h("button", {type: "submit"}, "Show"));
      return f;
    }

    return {title: "Batches", async load(initial) {
      await R.summary();
      if (!v.schedd) v.schedd = (schedds()[0] || {}).name || "DEFAULT";
      if (!R.$("#batch-filters")) {
        R.fill(el, h("h2", {}, "Batches"), form(), h("p", {class: "note"}, "Jobs by owner and batch, as condor_q shows " +
          "them: the batch is the job's JobBatchName, or its cluster. Done: jobs of its clusters that have left the queue."), box);
      }
      const answer = await R.api(url());
      if (!answer.fresh && !initial) return;
      const rows = batchesOf(answer.data).map((b) => {
        const constraint = b.named ? "JobBatchName =?= " + JSON.stringify(b.name) : "ClusterId == " + b.name.slice(4);
        return h("tr", {"data-batch": b.name}, h("th", {scope: "row"}, b.owner),
          h("td", {}, h("a", {href: jobsHash({schedd: v.schedd, owner: b.owner, constraint})}, b.name)),
          h("td", {class: "n"}, b.submitted ? R.ago(R.now() - b.submitted) + " ago" : "–"),
          ["done", "run", "idle", "hold"].map((k) => h("td", {class: "n", "data-count": k}, b[k] || "–")),
          h("td", {class: "n"}, b.done + b.run + b.idle + b.hold + b.other),
          h("td", {}, b.first === b.last ? b.first : b.first + " … " + b.last));
      });
      R.fill(box, answer.truncated ? h("p", {class: "problem"}, "Only the first jobs are counted (RESTD_MAX_JOBS): " +
          "choose an owner.") : null,
        rows.length ? table("Batches in " + v.schedd, ["owner", "batch name", {label: "submitted", n: true},
          {label: "done", n: true}, {label: "run", n: true}, {label: "idle", n: true}, {label: "hold", n: true},
          {label: "total", n: true}, "job ids"], rows) : h("p", {class: "muted"}, "No job in this queue."),
        R.raw(["", url()]));
    }};
  };

  // ----------------------------------------------------------------------------- completions

  V.history = function completions(parts, params, el) {
    const v = {schedd: params.get("schedd") || "", rows: [], newest: null};
    const MAX_ROWS = 200;
    const box = h("div", {id: "history-results"});
    const url = (since) => "/v1/history/" + R.enc(v.schedd) + "?" + new URLSearchParams(
      since ? {projection: DONE_ATTRS, since, limit: "50"} : {projection: DONE_ATTRS, limit: "50"}).toString();

    function draw() {
      const rows = v.rows.map((j) => {
        const c = j.classad;
        const exit = c.exitbysignal ? "signal " + c.exitsignal : c.exitcode === undefined || c.exitcode === null ? "–" : c.exitcode;
        const when = c.completiondate || c.enteredcurrentstatus;
        return h("tr", {"data-jobid": j.jobid}, h("th", {scope: "row"}, jobLink(v.schedd, j.jobid, "history")),
          h("td", {}, c.owner || "–"), statusCell(c.jobstatus),
          h("td", {class: "n" + (exit !== 0 && exit !== "–" ? " error" : "")}, exit),
          h("td", {class: "n"}, when ? R.ago(R.now() - when) + " ago" : "–"),
          h("td", {class: "n"}, R.ago(c.remotewallclocktime)));
      });
      R.fill(box, rows.length ? table("Jobs that left " + v.schedd + "'s queue, newest first",
        ["job id", "owner", "status", {label: "exit code", n: true}, {label: "finished", n: true},
         {label: "wall time", n: true}], rows) : h("p", {class: "muted"}, "No job has left this queue."),
        R.raw(["", url(null)]));
    }

    return {title: "Completions", async load(initial) {
      await R.summary();
      if (!v.schedd) v.schedd = (schedds()[0] || {}).name || "DEFAULT";
      if (initial) {
        R.fill(el, h("h2", {}, "Recent completions"), h("form", {class: "filters", onsubmit: (e) => e.preventDefault()},
          scheddSelect("history-schedd", v.schedd, (event) => R.go("#/history?schedd=" + R.enc(event.target.value)))),
          h("p", {class: "note"}, "Polling asks only for the jobs newer than the newest shown (since=)."), box);
      }
      const answer = await R.api(url(initial ? null : v.newest));
      if (!answer.fresh && !initial) return;
      if (initial) v.rows = answer.data; else if (answer.data.length) v.rows = answer.data.concat(v.rows).slice(0, MAX_ROWS);
      else return;
      v.newest = v.rows.length ? v.rows[0].jobid : null;
      draw();
    }};
  };

  // ---------------------------------------------------------------------------------- a job

  V.job = function job(parts, params, el) {
    const schedd = parts[0] || "DEFAULT";
    const id = /^[0-9]+\.[0-9]+$/.test(parts[1] || "") ? parts[1] : "0.0";
    let source = params.get("source") === "history" ? "history" : "jobs";
    const url = () => "/v1/" + source + "/" + R.enc(schedd) + "/" + id.replace(".", "/");
    return {title: "Job " + id, async load(initial) {
      let answer;
      try {
        answer = await R.api(url());
      } catch (error) {
        if (error.status !== 404 || source === "history") throw error;
        source = "history";  // it left the queue
        answer = await R.api(url());
      }
      if (!answer.fresh && !initial) return;
      const ad = answer.data.classad;
      const rows = Object.keys(ad).sort().map((k) => h("tr", {}, h("th", {scope: "row"}, k),
        h("td", {class: "value"}, typeof ad[k] === "string" ? ad[k] : JSON.stringify(ad[k]))));
      const status = STATUS[ad.jobstatus] || "";
      R.fill(el, h("h2", {}, "Job " + id + " on " + schedd + (status ? " (" + status + ")" : "")),
        h("p", {}, source === "history" ? "From the schedd's history. " : "In the queue. ",
          h("a", {href: jobsHash({schedd})}, "Back to the jobs of " + schedd)),
        R.raw(["", url()]), table("Every attribute of job " + id, ["attribute", "value"], rows));
    }};
  };
}());

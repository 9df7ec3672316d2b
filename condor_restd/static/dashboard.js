/* condor_restd pool dashboard: the core. Fetches the daemon's own /v1 API (same origin only), keeps
 * an ETag per URL so that an unchanged answer costs a 304, polls while the tab is visible, asks for
 * a bearer token when the daemon wants one, and routes #/view URLs to the views in views.js.
 * Plain JavaScript, no libraries, no build step.
 * Copyright the condor_restd authors. Licensed under the Apache License, Version 2.0
 * (SPDX-License-Identifier: Apache-2.0), as the rest of condor_restd: see LICENSE. */
"use strict";

(function () {
  const doc = document;
  const TOKEN_KEY = "condor_restd.token";
  const INTERVALS = [10, 30, 60, 300];
  const MAX_CACHE = 64;
  const R = window.CondorRestd = window.CondorRestd || {};
  const state = {interval: 30, paused: false, timer: null, cache: new Map(), generation: 0,
                 view: null, checked: null, summary: null};
  R.state = state;
  R.tokenMode = doc.body.dataset.auth === "TOKEN";

  // ------------------------------------------------------------------------ small helpers

  R.$ = (selector) => doc.querySelector(selector);

  /** An element: h("a", {href: "#"}, "text", child, ...); attributes starting "on" are listeners. */
  R.h = function h(tag, attrs, ...children) {
    const el = doc.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  };
  const h = R.h;

  /** Replace an element's children (arrays flattened; null, undefined and false left out). */
  R.fill = (el, ...kids) => el.replaceChildren(
    ...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));

  R.ago = function ago(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    seconds = Math.max(0, Math.round(seconds));
    const units = [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]];
    const parts = [];
    for (const [size, name] of units) {
      if (seconds >= size || (name === "s" && !parts.length)) {
        parts.push(Math.floor(seconds / size) + name);
        seconds %= size;
      }
      if (parts.length === 2) break;
    }
    return parts.join(" ");
  };
  R.now = () => Date.now() / 1000;
  R.clock = (date) => date.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"});
  R.enc = encodeURIComponent;

  /** A link to the raw JSON and YAML behind a view. */
  R.raw = function raw(...urls) {
    const links = urls.map(([label, url], i) => [i ? "; " : "", label ? label + ": " : "",
      h("a", {href: url}, "JSON"), " · ",
      h("a", {href: url + (url.includes("?") ? "&" : "?") + "format=yaml"}, "YAML")]);
    return h("p", {class: "raw"}, "Data behind this view: ", links,
             R.tokenMode ? " (a link sends no token)" : "");
  };

  // --------------------------------------------------------------------------- the API

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  R.ApiError = ApiError;

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function remember(url, value) {
    state.cache.delete(url);
    state.cache.set(url, value);
    while (state.cache.size > MAX_CACHE) state.cache.delete(state.cache.keys().next().value);
  }

  /** GET a /v1 URL as JSON. Sends the ETag of the last answer to the same URL: a 304 gives that
   *  answer back with fresh = false. Errors carry the API's own message and status. */
  R.api = async function api(url) {
    const headers = {Accept: "application/json"};
    const cached = state.cache.get(url);
    if (cached) headers["If-None-Match"] = cached.etag;
    const bearer = token();
    if (bearer) headers.Authorization = "Bearer " + bearer;
    let response;
    try {
      response = await fetch(url, {headers, cache: "no-store", credentials: "same-origin"});
    } catch (error) {
      throw new ApiError(0, "the daemon cannot be reached (" + error.message + ")");
    }
    if (response.status === 304 && cached) {
      remember(url, cached);
      return Object.assign({}, cached, {fresh: false});
    }
    let data = null;
    try { data = JSON.parse(await response.text()); } catch (e) { data = null; }
    if (!response.ok) {
      const message = data && data.message ? data.message : response.status + " " + response.statusText;
      if (response.status === 401 && R.tokenMode) askForToken(message);
      throw new ApiError(response.status, message);
    }
    const link = /<([^>]+)>\s*;\s*rel="next"/.exec(response.headers.get("Link") || "");
    const result = {data, etag: response.headers.get("ETag"), next: link ? link[1] : null,
                    truncated: response.headers.get("X-Restd-Truncated") === "true", fresh: true};
    if (result.etag) remember(url, result);
    return result;
  };

  /** The summary (jobs by schedd and owner, slots, machines); the header follows it. */
  R.summary = async function summary() {
    const answer = await R.api("/v1/summary");
    state.summary = answer.data;
    if (answer.fresh) header(answer.data);
    return answer;
  };

  function header(summary) {
    const pool = summary.pool || {};
    if (pool.name) R.$("#pool-name").textContent = pool.name;
    if (pool.version) {
      R.$("#htcondor-version").textContent = pool.version;
      R.$("#htcondor").hidden = false;
    }
  }

  // ------------------------------------------------------------------------- token mode

  function askForToken(message) {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* no storage: nothing kept */ }
    const box = R.$("#auth");
    let note = R.$("#token-message");
    if (!R.$("#token-form")) {
      note = h("p", {id: "token-message", class: "error", role: "alert"});
      const input = h("input", {id: "token", name: "token", type: "password", autocomplete: "off",
                                required: true, spellcheck: "false"});
      const form = h("form", {id: "token-form", onsubmit: (event) => {
        event.preventDefault();
        try { sessionStorage.setItem(TOKEN_KEY, input.value.trim()); } catch (e) { return; }
        box.hidden = true;
        box.replaceChildren();
        state.cache.clear();
        controls();
        route(false);
      }},
      h("label", {for: "token"}, "Bearer token for this API", input),
      h("button", {type: "submit"}, "Use this token"));
      box.replaceChildren(h("h2", {}, "Sign in"),
                          h("p", {}, "This daemon needs a bearer token (a JWT from your site's token issuer). "
                                     + "It is kept in this browser tab only (sessionStorage) and sent as "
                                     + "Authorization: Bearer."), form, note);
      box.hidden = false;
      input.focus();
    }
    for (const id of ["#summary", "#view", "#endpoints"]) R.$(id).hidden = true;  // nothing to show yet
    note.textContent = message ? "The daemon said: " + message : "";
    controls();
  }

  function forgetToken() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing kept */ }
    state.cache.clear();
    askForToken(null);
  }

  // ------------------------------------------------------------------ refresh and polling

  function controls() {
    const box = R.$("#controls");
    const select = h("select", {id: "interval", onchange: () => {
      state.interval = Number(select.value);
      schedule();
      status();
    }}, INTERVALS.map((s) => h("option", {value: s, selected: s === state.interval},
                                     s < 60 ? s + " s" : s / 60 + " min")));
    const pause = h("button", {type: "button", id: "pause", "aria-pressed": String(state.paused),
                               onclick: () => {
      state.paused = !state.paused;
      pause.setAttribute("aria-pressed", String(state.paused));
      pause.textContent = state.paused ? "Resume" : "Pause";
      if (state.paused) clearTimeout(state.timer); else refresh(false);
      status();
    }}, state.paused ? "Resume" : "Pause");
    R.fill(box, h("label", {for: "interval"}, "Refresh every "), select, pause,
                        h("button", {type: "button", id: "refresh-now", onclick: () => refresh(false)},
                          "Refresh now"),
                        R.tokenMode && token() ? h("button", {type: "button", id: "forget-token",
                                                              onclick: forgetToken}, "Forget token") : null,
                        h("span", {id: "refresh-status", class: "status"}));
    box.hidden = false;
    status();
  }

  function status() {
    const el = R.$("#refresh-status");
    if (!el) return;
    const every = state.paused ? "paused" : doc.hidden ? "stopped while hidden"
      : "every " + (state.interval < 60 ? state.interval + " s" : state.interval / 60 + " min");
    el.textContent = (state.checked ? "checked " + R.clock(state.checked) + ", " : "") + every;
    const fetched = R.$("#fetched");
    if (fetched && state.checked) {
      fetched.replaceChildren(" · fetched ", h("time", {datetime: state.checked.toISOString()},
                                             R.clock(state.checked)));
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    if (!state.paused && !doc.hidden && state.view) {
      state.timer = setTimeout(() => refresh(false), state.interval * 1000);
    }
  }

  function problem(message) {
    const box = R.$("#problem");
    box.textContent = message || "";
    box.hidden = !message;
  }
  R.problem = problem;

  /** Load the current view (first: a new view; else a poll), then schedule the next poll. */
  async function refresh(first) {
    clearTimeout(state.timer);
    const view = state.view;
    if (!view) return;
    if (R.tokenMode && !token()) { askForToken(null); return; }
    const generation = ++state.generation;
    try {
      await view.load(first);
      if (generation !== state.generation) return;
      problem(null);
      state.checked = new Date();
    } catch (error) {
      if (generation !== state.generation) return;
      if (!(view.failed && view.failed(error))) problem(error.message);
    }
    status();
    schedule();
  }
  R.refresh = refresh;

  // ------------------------------------------------------------------------------ routes

  R.views = R.views || {};
  const NAV = [["", "Overview"], ["jobs", "Jobs"], ["batches", "Batches"], ["held", "Held jobs"],
               ["machines", "Machines"], ["history", "Completions"]];

  function nav(current) {
    const box = R.$("#views");
    box.replaceChildren(h("ul", {}, NAV.map(([name, label]) => h("li", {}, h("a", {
      href: "#/" + name, "aria-current": name === current ? "page" : null}, label))),
    h("li", {}, h("a", {href: "/v1/docs"}, "API docs"))));
    box.hidden = false;
  }

  /** Parse #/view/part/part?query and show that view. */
  function route(focus) {
    const hash = location.hash.startsWith("#/") ? location.hash.slice(2) : "";
    const cut = hash.indexOf("?");
    const path = (cut < 0 ? hash : hash.slice(0, cut)).split("/").filter(Boolean).map(decodeURIComponent);
    const params = new URLSearchParams(cut < 0 ? "" : hash.slice(cut + 1));
    const name = R.views[path[0]] ? path[0] : "";
    nav(name === "job" ? "jobs" : name);
    const overview = name === "";
    R.$("#summary").hidden = !overview;
    R.$("#endpoints").hidden = !overview;
    const section = R.$("#view");
    section.hidden = overview;
    if (!overview) section.replaceChildren();
    problem(null);
    state.view = R.views[name](path.slice(1), params, overview ? R.$("#summary") : section);
    doc.title = state.view.title + " · condor_restd";
    refresh(true).then(() => {
      const heading = (overview ? R.$("#summary") : section).querySelector("h2");
      if (focus && heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
    });
  }
  R.go = function go(hash) {
    if (location.hash === hash) route(true); else location.hash = hash;
  };

  window.addEventListener("hashchange", () => {
    if (location.hash === "" || location.hash.startsWith("#/")) route(true);
  });
  doc.addEventListener("visibilitychange", () => {
    if (doc.hidden) { clearTimeout(state.timer); status(); } else if (!state.paused) refresh(false);
  });
  window.addEventListener("DOMContentLoaded", () => {
    controls();
    route(false);
  });
}());

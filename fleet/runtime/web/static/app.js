// The fleet dashboard: plain JavaScript, no build step, nothing fetched but this server's API.
// Live: one EventSource on /api/events; each "change" refetches what is on screen,
// at most one fetch in flight per view (the server coalesces changes already).
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || sessionStorage.getItem("fleet-token") || "";
  if (params.has("token")) {  // kept in this tab only; out of the address bar and history
    sessionStorage.setItem("fleet-token", token);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  const $ = (id) => document.getElementById(id);
  const state = { filter: { selector: "", name: "", state: "" }, page: 0, size: 50, version: 0 };
  window.fleetLoadId = Math.random().toString(36).slice(2);  // tests: no reload happened

  function showError(text) {
    const box = $("error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  async function api(path, action) {
    const init = { headers: { Authorization: "Bearer " + token }, cache: "no-store" };
    if (action) {  // a rollout button: POST, token in the header only, a JSON body (no CSRF)
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = "{}";
    }
    const response = await fetch(path, init);
    let body = null;
    try { body = await response.json(); } catch (e) { body = { error: "unreadable answer (" + response.status + ")" }; }
    if (!response.ok) {
      const err = new Error(body && body.error ? body.error : "HTTP " + response.status);
      err.status = response.status;
      throw err;
    }
    return body;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  function bar(aggregate) {
    const total = aggregate.targeted || 0;
    const node = el("div", { class: "bar" });
    for (const cls of ["running", "pending", "failed", "unreachable"]) {
      const n = aggregate[cls] || 0;
      const seg = el("div", { class: "seg " + cls, "data-count": n, title: cls + " " + n });
      seg.style.width = total ? (100 * n / total) + "%" : "0";
      node.append(seg);
    }
    return node;
  }

  function counts(aggregate) {
    return el("span", { class: "counts" },
      ["running", "pending", "failed", "unreachable"].map((c) => c + " " + (aggregate[c] || 0)).join(" · ")
      + " of " + (aggregate.targeted || 0));
  }

  function renderOverview(data) {
    $("devices-online").textContent = data.devices.online;
    $("devices-unreachable").textContent = data.devices.unreachable;
    $("devices-total").textContent = data.devices.total;
    const list = $("deployments");
    list.replaceChildren(...data.deployments.map((d) => {
      const key = d.namespace + "/" + d.name;
      const ready = d.ready.status || "Unknown";
      return el("div", { class: "deployment", "data-name": key },
        el("a", { href: "#/deployment/" + encodeURIComponent(d.namespace) + "/" + encodeURIComponent(d.name) }, key),
        " ", el("span", { class: "ready ready-" + ready, "data-ready": ready }, "Ready=" + ready + (d.ready.reason ? " (" + d.ready.reason + ")" : "")),
        bar(d.aggregate), counts(d.aggregate));
    }));
    if (!data.deployments.length) list.replaceChildren(el("p", {}, "no Deployments"));
  }

  function renderDevices(data) {
    const body = $("devices").tBodies[0];
    body.replaceChildren(...data.devices.map((d) => el("tr", { "data-device": d.id },
      el("td", {}, d.id),
      el("td", { class: "state " + (d.online ? "online" : "unreachable") }, d.online ? "online" : "unreachable"),
      el("td", {}, ...Object.entries(d.labels).map(([k, v]) => el("span", { class: "label" }, k + "=" + v))),
      el("td", {}, d.inventory ? Object.entries(d.inventory).filter(([, v]) => typeof v !== "object").map(([k, v]) => k + ": " + v).join(", ") : ""),
      el("td", {}, d.lastHeartbeat || "never"),
      el("td", {}, ...d.deployments.map((r) => el("div", { class: "phase-" + r.phase, "data-deployment": r.deployment },
        r.deployment + ": " + r.phase + " (rev " + r.revision + ")" + (r.message ? " — " + r.message : "")))))));
    const pages = Math.max(1, Math.ceil(data.total / data.size));
    $("page-info").textContent = " page " + (data.page + 1) + " of " + pages + " (" + data.total + " devices) ";
    $("prev").disabled = data.page === 0;
    $("next").disabled = data.page + 1 >= pages;
  }

  function renderDeployment(data) {
    $("dep-title").textContent = data.namespace + "/" + data.name;
    $("dep-bar").replaceChildren(bar(data.aggregate), counts(data.aggregate));
    const ready = data.ready.status || "Unknown";
    $("dep-ready").className = "ready ready-" + ready;
    $("dep-ready").textContent = "Ready=" + ready + " " + (data.ready.reason || "") + (data.ready.message ? ": " + data.ready.message : "")
      + (data.selectorError ? " (selector: " + data.selectorError + ")" : "");
    $("dep-targets").replaceChildren(...Object.entries(data.targets).map(([cls, devices]) =>
      el("p", { class: "targets", "data-class": cls }, el("strong", {}, cls + " (" + data.targetCounts[cls] + "): "), devices.join(", ") || "none")));
    $("dep-failing").tBodies[0].replaceChildren(...data.failing.map((f) =>
      el("tr", { "data-device": f.device }, el("td", {}, f.device), el("td", {}, f.message))));
  }

  function renderRollout(where, data) {
    const st = data.status, r = st.rollout;
    const head = $("rollout-head");
    head.replaceChildren();
    if (st.paused) head.append(el("span", { class: "paused", id: "rollout-paused" }, "paused"), " ");
    head.append(r ? "revision " + r.revision + ": " + r.phase + ", batch " + r.currentBatch + " of " + r.batchCount
      + (r.stableRevision ? " (stable: revision " + r.stableRevision + ")" : "") + (r.reason ? " — " + r.reason : "")
      : "no rollout yet (the operator writes one when it acts on this Deployment)");
    head.dataset.phase = r ? r.phase : "";
    $("rollout-batches").replaceChildren(...(r ? r.batches : []).map((b) => {
      const node = el("div", { class: "batch" + (b.batch === r.currentBatch ? " current" : ""), "data-batch": b.batch },
        el("strong", {}, "batch " + b.batch), bar({ targeted: b.devices, running: b.running, failed: b.failed,
          unreachable: b.unreachable, pending: Math.max(0, b.updated - b.running - b.failed - b.unreachable) }),
        el("span", { class: "counts" }, b.updated + " of " + b.devices + " updated, " + b.running + " running, "
          + b.failed + " failed, " + b.unreachable + " unreachable" + (b.skipped ? ", " + b.skipped + " skipped" : "")));
      return node;
    }));
    const buttons = [];
    const show = {
      pause: !st.paused, resume: st.paused,
      approve: !!r && r.phase === "WaitingForApproval",
      undo: !!r && r.revision > 1,
    };
    for (const action of ["pause", "resume", "approve", "undo"]) {
      if (!data.actions[action] || !show[action]) continue;
      const button = el("button", { type: "button", "data-action": action }, action);
      button.addEventListener("click", () => act(where, action));
      buttons.push(button);
    }
    $("rollout-actions").replaceChildren(...buttons);
  }

  async function act(where, action) {
    const result = $("rollout-result");
    try {
      const done = await api(rolloutPath(where) + "/" + encodeURIComponent(action), true);
      result.className = "result"; result.textContent = done.message;
    } catch (e) {
      result.className = "result failed"; result.textContent = action + ": " + e.message;
    }
    refresh();
  }

  function rolloutPath(where) {
    return "/api/deployments/" + encodeURIComponent(where.ns) + "/" + encodeURIComponent(where.name) + "/rollout";
  }

  function route() {
    const hash = location.hash.replace(/^#\/?/, "");
    if (hash.startsWith("deployment/")) {
      const [ns, name] = hash.slice("deployment/".length).split("/").map(decodeURIComponent);
      return { page: "deployment", ns: ns || "", name: name || "" };
    }
    return { page: "fleet" };
  }

  let inflight = false, again = false;
  async function refresh() {
    if (inflight) { again = true; return; }
    inflight = true;
    try {
      const where = route();
      $("fleet").hidden = where.page !== "fleet";
      $("deployment").hidden = where.page !== "deployment";
      if (where.page === "fleet") {
        renderOverview(await api("/api/overview"));
        const q = new URLSearchParams({ ...state.filter, page: state.page, size: state.size });
        try {
          renderDevices(await api("/api/devices?" + q));
          $("filter-error").textContent = "";
        } catch (e) {
          if (e.status !== 400) throw e;
          $("filter-error").textContent = e.message;
          $("devices").tBodies[0].replaceChildren();
        }
      } else {
        renderDeployment(await api("/api/deployments/" + encodeURIComponent(where.ns) + "/" + encodeURIComponent(where.name)));
        try {
          renderRollout(where, await api(rolloutPath(where)));
          $("rollout").hidden = false;
        } catch (e) {
          if (e.status !== 404 && e.status !== 409) throw e;  // 404: this server has no buttons
          $("rollout").hidden = e.status === 404;
          $("rollout-head").textContent = e.status === 409 ? e.message : "";
        }
      }
      showError("");
    } catch (e) {
      showError(e.message);
      if (e.status === 401 || e.status === 403) {
        $("fleet").hidden = true; $("deployment").hidden = true;
        $("login").hidden = e.status !== 401;
        return;  // no data for this viewer: stop here (no stream)
      }
      if (e.status === 404) $("deployment").hidden = true;
    } finally {
      inflight = false;
      if (again) { again = false; refresh(); }
    }
    connect();
  }

  let source = null;
  function connect() {
    if (source) return;
    source = new EventSource("/api/events?token=" + encodeURIComponent(token) + "&after=" + state.version);
    source.addEventListener("open", () => { $("live").textContent = "live"; $("live").classList.remove("off"); });
    source.addEventListener("error", () => { $("live").textContent = "reconnecting"; $("live").classList.add("off"); });
    source.addEventListener("change", (event) => {
      state.version = JSON.parse(event.data).version;
      $("live").dataset.version = state.version;
      refresh();
    });
  }

  $("filter").addEventListener("submit", (event) => {
    event.preventDefault();
    state.filter = { selector: $("f-selector").value, name: $("f-name").value, state: $("f-state").value };
    state.page = 0;
    refresh();
  });
  $("prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); refresh(); });
  $("next").addEventListener("click", () => { state.page += 1; refresh(); });
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("fleet-token", $("login-token").value);
    location.search = "";
  });
  window.addEventListener("hashchange", refresh);
  if (!token) { $("login").hidden = false; showError("no token: open the URL with ?token=... or paste a bearer token"); }
  else refresh();
})();

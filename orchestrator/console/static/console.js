// Baton's operator console. Plain JavaScript, no build step. Every text
// from Baton (names, messages, errors) goes into the page through
// textContent or a text node, never as HTML.
"use strict";

const state = { csrf: "", pages: [], waiting: 10, view: null, timer: null };

// el builds an element: attrs are properties or attributes (on* are
// listeners), children are nodes or strings (text nodes).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

function fmtTime(s) {
  if (!s || s.startsWith("0001-")) return "";
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleString();
}

// ago is how long before now (Baton's clock, not the browser's) s was.
function ago(s, now) {
  if (!s) return "";
  const m = Math.round(((now ? new Date(now).getTime() : Date.now()) - new Date(s).getTime()) / 60000);
  if (m < 1) return "just now";
  if (m < 60) return m + " min ago";
  const h = Math.round(m / 60);
  return h < 48 ? h + " h ago" : Math.round(h / 24) + " days ago";
}

class HTTPError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// call talks to the admin API (or the console's own) with the session
// cookie; a change carries the session's CSRF token.
async function call(method, url, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") {
    opts.headers["X-Baton-CSRF"] = state.csrf;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
  }
  const resp = await fetch(url, opts);
  if (resp.status === 401) {
    location.assign("/console/login");
    throw new HTTPError(401, "signed out");
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    const msg = data && data.error ? data.error.message : resp.statusText;
    throw new HTTPError(resp.status, msg);
  }
  return data;
}

function notice(text, kind) {
  const n = document.getElementById("notice");
  n.textContent = text;
  n.className = kind || "info";
  n.hidden = !text;
}

function q(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined && v !== null) u.set(k, v);
  const s = u.toString();
  return s ? "?" + s : "";
}

function route() {
  const h = location.hash.replace(/^#\/?/, "");
  const [path, query] = h.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || "overview", args: parts.slice(1), params: new URLSearchParams(query || "") };
}

function appName(pageID, id) {
  for (const p of state.pages) if (p.id === pageID) for (const a of p.apps) if (a.id === id) return a.name;
  return id;
}

function allApps() {
  const seen = new Map();
  for (const p of state.pages) for (const a of p.apps) seen.set(a.name, a);
  return [...seen.values()];
}

function table(headers, rows, cls) {
  return el("table", { class: cls },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows : [el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "none"))]));
}

function threadLink(page, psid, text) {
  return el("a", { href: "#/thread/" + encodeURIComponent(page) + "/" + encodeURIComponent(psid), class: "thread-link" }, text || psid);
}

// ---- views ----

async function viewOverview(main) {
  const ov = await call("GET", "/console/api/overview" + q({ waiting: state.waiting }));
  const waitInput = el("input", { type: "number", id: "waiting-minutes", min: 0, max: 10080, value: ov.waiting_minutes });
  waitInput.addEventListener("change", () => { state.waiting = Number(waitInput.value) || 0; render(); });
  main.append(el("h1", {}, "Overview"),
    el("section", { class: "totals" },
      el("div", { class: "stat" }, el("span", { class: "n", id: "total-pending" }, ov.pending), " deliveries pending"),
      el("div", { class: "stat" + (ov.dead ? " bad" : "") }, el("a", { href: "#/dead" }, el("span", { class: "n", id: "total-dead" }, ov.dead + (ov.dead_truncated ? "+" : "")), " dead letters"))));
  for (const p of ov.pages) {
    const states = Object.entries(p.by_state).map(([s, n]) =>
      el("tr", { dataset: { state: s } }, el("td", {}, el("a", { href: "#/threads" + q({ page: p.page_id, state: s }) }, s)), el("td", { class: "n" }, n)));
    const owners = Object.entries(p.by_owner).sort().map(([o, n]) =>
      el("tr", { dataset: { owner: o } }, el("td", {}, el("a", { href: "#/threads" + q({ page: p.page_id, owner: o }) }, o)), el("td", { class: "n" }, n)));
    const waiting = p.waiting.map((w) => el("tr", {},
      el("td", {}, threadLink(p.page_id, w.psid, w.name ? w.name + " (" + w.psid + ")" : w.psid)),
      el("td", {}, w.owner), el("td", { title: fmtTime(w.since) }, ago(w.since, ov.now))));
    main.append(el("section", { class: "page card", dataset: { page: p.page_id } },
      el("h2", {}, "Page " + p.page_id + " ", el("span", { class: "muted" }, p.platform + " · " + p.threads + " threads" + (p.truncated ? " (first 20,000 counted)" : ""))),
      el("div", { class: "cols" },
        el("div", {}, el("h3", {}, "By state"), table(["state", "threads"], states, "by-state")),
        el("div", {}, el("h3", {}, "By owner"), table(["owner", "threads"], owners, "by-owner")),
        el("div", { class: "wide" },
          el("h3", {}, "Waiting for a human for ", waitInput, " min or more"),
          table(["conversation", "owner", "last message"], waiting, "waiting")))));
  }
  const bots = ov.bots.map((b) => el("tr", { dataset: { app: b.app }, class: b.healthy ? "" : "bad" },
    el("td", {}, b.app),
    el("td", { class: "health" }, b.healthy ? "healthy" : "failing since " + fmtTime(b.failing_since)),
    el("td", { class: "n pending" }, b.pending), el("td", { class: "n dead" }, b.dead)));
  main.append(el("section", { class: "card" }, el("h2", {}, "Bots"), table(["bot", "health", "pending", "dead"], bots, "bots")));
}

async function viewThreads(main, params) {
  const f = { page: params.get("page") || "", owner: params.get("owner") || "", state: params.get("state") || "", q: params.get("q") || "" };
  const pageSel = el("select", { id: "f-page" }, el("option", { value: "" }, "all pages"), state.pages.map((p) => el("option", { value: p.id }, p.id)));
  const ownerSel = el("select", { id: "f-owner" }, el("option", { value: "" }, "any owner"), el("option", { value: "idle" }, "idle"),
    allApps().map((a) => el("option", { value: a.name }, a.name)));
  const stateSel = el("select", { id: "f-state" }, el("option", { value: "" }, "any state"), ["idle", "primary", "secondary"].map((s) => el("option", { value: s }, s)));
  const search = el("input", { type: "search", id: "f-q", placeholder: "search: a word, a PSID, a name", value: f.q });
  pageSel.value = f.page; ownerSel.value = f.owner; stateSel.value = f.state;
  const apply = (ev) => {
    if (ev) ev.preventDefault();
    location.hash = "#/threads" + q({ page: pageSel.value, owner: ownerSel.value, state: stateSel.value, q: search.value.trim() });
  };
  for (const s of [pageSel, ownerSel, stateSel]) s.addEventListener("change", apply);
  main.append(el("h1", {}, "Threads"),
    el("form", { class: "filters", id: "filters", onsubmit: apply }, pageSel, ownerSel, stateSel, search, el("button", { type: "submit" }, "Search")));
  const list = el("div", { id: "thread-list" });
  main.append(list);
  let cursor = "";
  const more = el("button", { type: "button", id: "more", hidden: true }, "More");
  main.append(more);
  const load = async () => {
    let rows;
    if (f.q) {
      const res = await call("GET", "/admin/transcripts" + q({ q: f.q, page: f.page, cursor, limit: 50 }));
      rows = res.threads.map((t) => el("tr", { class: "hit" },
        el("td", {}, threadLink(t.page_id, t.psid)), el("td", {}, t.name), el("td", { class: "snippet" }, t.snippet), el("td", {}, fmtTime(t.last_at))));
      if (!cursor) list.append(table(["thread", "name", "latest match", "at"], [], "threads"));
      cursor = res.next_cursor;
    } else {
      const res = await call("GET", "/admin/threads" + q({ page: f.page, owner: f.owner, state: f.state, cursor, limit: 100 }));
      rows = res.threads.map((t) => el("tr", { dataset: { psid: t.psid } },
        el("td", {}, threadLink(t.page_id, t.psid)), el("td", {}, t.page_id), el("td", { class: "state" }, t.state),
        el("td", { class: "owner" }, t.owner || "idle"), el("td", {}, fmtTime(t.last_user_message_at))));
      if (!cursor) list.append(table(["thread", "page", "state", "owner", "person's last message"], [], "threads"));
      cursor = res.next_cursor;
    }
    const tbody = list.querySelector("tbody");
    if (rows.length) {
      if (tbody.querySelector("td.muted")) tbody.replaceChildren();
      tbody.append(...rows);
    }
    more.hidden = !cursor;
  };
  more.addEventListener("click", () => load().catch((e) => notice(e.message, "error")));
  await load();
}

function entryNode(page, e) {
  const who = { message: "person", postback: "person", reaction: "person", echo: e.app || "page", handover: "control", rule: "rule" }[e.kind] || e.kind;
  const body = el("div", { class: "body" });
  switch (e.kind) {
    case "handover":
      body.append(e.event + ": " + (e.from || "idle") + " → " + (e.to || (e.event === "request_thread_control" ? "(asks for control)" : "idle")),
        e.text ? el("span", { class: "muted" }, " (" + e.text + ")") : "", e.metadata ? el("span", { class: "muted" }, " “" + e.metadata + "”") : "");
      break;
    case "rule":
      body.append("rule " + e.event + ": " + e.text);
      break;
    case "postback":
      body.append("[button] " + (e.text || ""), e.payload ? el("span", { class: "muted" }, " payload " + e.payload) : "");
      break;
    case "reaction":
      body.append((e.event === "unreact" ? "removed reaction " : "reacted ") + (e.text || ""));
      break;
    default:
      body.append(e.text || "");
      if (e.payload) body.append(el("span", { class: "muted" }, " [quick reply " + e.payload + "]"));
  }
  for (const a of e.attachments || []) {
    const safe = /^https?:\/\//i.test(a.url || "");
    body.append(el("div", { class: "attachment" }, "[" + a.type + "] ",
      safe ? el("a", { href: a.url, target: "_blank", rel: "noopener noreferrer" }, a.url) : (a.url || "")));
  }
  return el("li", { class: "entry " + e.kind + (e.ai_generated ? " ai" : ""), dataset: { seq: e.seq, kind: e.kind } },
    el("span", { class: "at" }, fmtTime(e.at)),
    el("span", { class: "who" }, who + (e.ai_generated ? " (Meta AI)" : "")),
    body);
}

async function viewThread(main, args) {
  const [page, psid] = args;
  const base = "/admin/threads/" + encodeURIComponent(page) + "/" + encodeURIComponent(psid);
  const [tv, tr] = await Promise.all([call("GET", base), call("GET", base + "/transcript?limit=100")]);
  const pageCfg = state.pages.find((p) => p.id === page) || { apps: [] };
  main.append(el("h1", {}, "Thread ", el("span", { class: "mono" }, page + " / " + psid)),
    el("dl", { class: "facts", id: "facts" },
      el("dt", {}, "state"), el("dd", { id: "thread-state" }, tv.state),
      el("dt", {}, "owner"), el("dd", { id: "thread-owner" }, tv.owner || "idle"),
      el("dt", {}, "control expires"), el("dd", {}, fmtTime(tv.expires_at) || "—"),
      el("dt", {}, "person's last message"), el("dd", {}, fmtTime(tv.last_user_message_at) || "—")));

  const passTo = el("select", { id: "pass-to" }, pageCfg.apps.filter((a) => a.name !== tv.owner).map((a) => el("option", { value: a.name }, a.name)));
  const meta = el("input", { type: "text", id: "action-metadata", placeholder: "metadata (optional)", maxlength: 1000 });
  const takeAs = el("select", { id: "take-as" }, pageCfg.apps.filter((a) => a.can_act).map((a) => el("option", { value: a.name }, a.name)));
  const act = async (op, body) => {
    try {
      await call("POST", base + "/" + op, body);
      notice(op + " done", "ok");
      meta.value = ""; // said with this action; the next one says its own
    } catch (e) {
      notice(op + " refused: " + e.message, "error");
    }
    render();
  };
  main.append(el("section", { class: "card actions", id: "actions" }, el("h2", {}, "Actions"),
    el("div", { class: "row" }, el("button", { type: "button", id: "do-pass", onclick: () => act("pass", { to: passTo.value, metadata: meta.value }) }, "Pass to"), passTo),
    el("div", { class: "row" }, el("button", { type: "button", id: "do-take", onclick: () => act("take", { app: takeAs.value, metadata: meta.value }) }, "Take as"), takeAs),
    el("div", { class: "row" }, el("button", { type: "button", id: "do-release", onclick: () => act("release", { metadata: meta.value }) }, "Release"), meta)));

  const list = el("ol", { class: "transcript", id: "transcript" }, tr.entries.map((e) => entryNode(page, e)));
  const older = el("button", { type: "button", id: "older", hidden: !tr.next_cursor }, "Older lines");
  let cursor = tr.next_cursor;
  older.addEventListener("click", async () => {
    const res = await call("GET", base + "/transcript" + q({ limit: 100, cursor }));
    list.prepend(...res.entries.map((e) => entryNode(page, e)));
    cursor = res.next_cursor;
    older.hidden = !cursor;
  });
  main.append(el("section", { class: "card" }, el("h2", {}, "Transcript"), older,
    tr.entries.length ? list : el("p", { class: "muted", id: "transcript" }, "No lines kept (older than the retention, or erased).")));

  const hist = (tv.history || []).slice().reverse().map((h) => el("tr", { class: h.ignored ? "ignored" : "" },
    el("td", {}, fmtTime(h.at)), el("td", {}, h.event), el("td", {}, (h.from || "idle") + " → " + (h.to || "idle")),
    el("td", {}, h.cause), el("td", {}, h.by), el("td", {}, h.ignored ? "ignored: " + h.ignored : h.metadata)));
  main.append(el("section", { class: "card" }, el("h2", {}, "Ownership history"), table(["at", "event", "owner", "cause", "by", "metadata"], hist, "history")));
  const jobs = (tv.pending || []).map((j) => el("tr", {}, el("td", {}, j.rule), el("td", {}, fmtTime(j.at)), el("td", {}, j.app), el("td", {}, j.target), el("td", {}, j.reason), el("td", { class: "n" }, j.attempts)));
  main.append(el("section", { class: "card" }, el("h2", {}, "Pending rule jobs"), table(["rule", "due", "app", "target", "reason", "attempts"], jobs, "jobs")));
}

async function viewDead(main) {
  // A page of up to 1,000 (the listing's most): what the view showed before it paged.
  const res = await call("GET", "/admin/deliveries?status=dead&limit=1000");
  const byApp = new Map();
  for (const d of res.deliveries) byApp.set(d.app, (byApp.get(d.app) || 0) + 1);
  const retryOne = async (id) => {
    try {
      await call("POST", "/admin/deliveries/" + id + "/retry");
      notice("dead letter " + id + " put back", "ok");
    } catch (e) { notice("retry " + id + ": " + e.message, "error"); }
    render();
  };
  const retryApp = async (app) => {
    try {
      const r = await call("POST", "/admin/deliveries/retry" + q({ app }));
      notice(app + ": " + r.retried + " put back, " + r.failed + " failed, " + r.remaining + " left", r.failed ? "error" : "ok");
    } catch (e) { notice("retry " + app + ": " + e.message, "error"); }
    render();
  };
  main.append(el("h1", {}, "Dead letters"),
    el("div", { class: "row", id: "retry-apps" }, [...byApp.entries()].map(([app, n]) =>
      el("button", { type: "button", dataset: { app }, onclick: () => retryApp(app) }, "Retry all " + n + " of " + app))));
  const rows = res.deliveries.map((d) => el("tr", { dataset: { id: d.id } },
    el("td", { class: "n" }, d.id), el("td", {}, d.app), el("td", {}, threadLink(d.page_id, d.psid)), el("td", {}, d.kind),
    el("td", { class: "n" }, d.attempts), el("td", { class: "err" }, d.last_error || ""), el("td", {}, fmtTime(d.dead_at)),
    el("td", {}, el("button", { type: "button", class: "retry", onclick: () => retryOne(d.id) }, "Retry"))));
  main.append(table(["id", "bot", "thread", "kind", "attempts", "last error", "dead since", ""], rows, "dead"));
}

async function viewErrors(main) {
  const res = await call("GET", "/admin/errors");
  const rows = res.errors.map((e) => el("tr", {},
    el("td", {}, fmtTime(e.at)), el("td", {}, e.kind), el("td", {}, e.app || ""),
    el("td", {}, e.psid ? threadLink(e.page_id, e.psid, e.page_id + "/" + e.psid) : (e.page_id || "")), el("td", { class: "err" }, e.message)));
  main.append(el("h1", {}, "Recent errors"), table(["at", "kind", "app", "thread", "message"], rows, "errors"));
}

const views = { overview: viewOverview, threads: viewThreads, thread: viewThread, dead: viewDead, errors: viewErrors };

let rendering = null;
async function render() {
  const r = route();
  const fn = views[r.name] || viewOverview;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === r.name);
  const next = el("main", { id: "view", "data-route": location.hash });
  const token = {};
  rendering = token;
  try {
    await fn(next, r.name === "thread" ? r.args : r.params);
  } catch (e) {
    if (e.status === 401) return;
    next.replaceChildren(el("p", { class: "error" }, e.message));
  }
  if (rendering !== token) return; // a newer render won
  // Keep what the operator chose and is typing: a live refresh must not
  // eat it, nor turn "pass to billing-bot" back into the first app of
  // the list while the metadata is typed.
  const old = document.getElementById("view");
  const focused = document.activeElement;
  let refocus = null;
  // Only on a refresh of the same view: another thread's view starts
  // afresh.
  const same = old.dataset.route === next.dataset.route;
  for (const o of same ? old.querySelectorAll("input[id], select[id]") : []) {
    const twin = next.querySelector("#" + CSS.escape(o.id));
    if (!twin || twin.tagName !== o.tagName) continue;
    // A choice the new view no longer offers (the app that now owns the
    // thread) is not kept.
    if (twin.tagName === "SELECT" && ![...twin.options].some((opt) => opt.value === o.value)) continue;
    twin.value = o.value;
    if (o === focused) refocus = twin;
  }
  old.replaceWith(next);
  if (refocus) refocus.focus();
  // The newest lines in view: the transcript scrolls, the page does not.
  const t = document.getElementById("transcript");
  if (t) t.scrollTop = t.scrollHeight;
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
}

// refresh coalesces live changes into one render.
function refresh() {
  clearTimeout(state.timer);
  state.timer = setTimeout(render, 200);
}

function live() {
  const ind = document.getElementById("live");
  const es = new EventSource("/console/api/events");
  es.addEventListener("open", () => { ind.className = "on"; ind.textContent = "live"; });
  es.addEventListener("change", refresh);
  es.addEventListener("error", () => {
    ind.className = "off";
    ind.textContent = "reconnecting";
    // The browser retries a dropped stream itself, but not one refused
    // (a reload of Baton's config in progress): start again.
    if (es.readyState === EventSource.CLOSED) setTimeout(live, 3000);
  });
}

async function start() {
  const s = await call("GET", "/console/api/session");
  state.csrf = s.csrf;
  state.pages = s.pages;
  document.getElementById("signout").addEventListener("click", async () => {
    try { await call("POST", "/console/logout"); } finally { location.assign("/console/login"); }
  });
  window.addEventListener("hashchange", () => { notice(""); render(); });
  await render();
  live();
}

start().catch((e) => notice(e.message, "error"));

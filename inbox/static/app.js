"use strict";
// The inbox's page. Every text from the network goes in with
// textContent, never as HTML. Changes carry the CSRF token /api/me gives.

const $ = (id) => document.getElementById(id);
let me = null;          // /api/me
let convs = [];         // the list
let current = null;     // "page/psid" open
let detail = null;      // the open conversation, as last read
let offset = 0;         // the inbox's clock minus this browser's
let es = null;
let typingSent = 0, typingTimer = null;
const failedPics = new Set(); // pictures that did not load: not tried again

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function keyOf(c) { return c.page_id + "/" + c.psid; }
function clock(s) { return new Date(s).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}); }
function personName(c) { return c.name || ("Person " + c.psid); }
function agentName(name) {
  const a = me && me.agents.find((x) => x.name === name);
  return a ? a.display_name : name;
}
function showError(msg) { $("error").textContent = msg || ""; }

async function api(method, path, body) {
  const opt = {method, headers: {}};
  if (method !== "GET") {
    opt.headers["X-CSRF-Token"] = me ? me.csrf : "";
    opt.headers["Content-Type"] = "application/json";
    opt.body = JSON.stringify(body || {});
  }
  const r = await fetch(path, opt);
  if (r.status === 401) { signedOut(); throw new Error("signed out"); }
  const out = r.status === 204 ? {} : await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(out.error || ("the inbox answered " + r.status));
  return out;
}

function convPath(action) {
  const [page, psid] = current.split("/");
  return "api/conversations/" + encodeURIComponent(page) + "/" + encodeURIComponent(psid) + (action ? "/" + action : "");
}

// --- signing in ---

function signedOut() {
  me = null;
  if (es) { es.close(); es = null; }
  $("app").hidden = true;
  $("login").hidden = false;
}

$("login-form").onsubmit = async (e) => {
  e.preventDefault();
  $("login-error").textContent = "";
  const r = await fetch("login", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({name: $("login-name").value, password: $("login-password").value})});
  if (!r.ok) {
    const out = await r.json().catch(() => ({}));
    $("login-error").textContent = out.error || ("the inbox answered " + r.status);
    return;
  }
  $("login-password").value = "";
  start();
};

$("logout").onclick = async () => {
  try { await api("POST", "logout"); } catch (err) { /* signed out anyway */ }
  signedOut();
};

async function start() {
  const r = await fetch("api/me");
  if (r.status === 401) { signedOut(); return; }
  me = await r.json();
  $("login").hidden = true;
  $("app").hidden = false;
  $("me").textContent = "Signed in as " + me.agent.display_name;
  $("logout").hidden = !me.password_login;
  const canned = $("canned");
  canned.replaceChildren(el("option", "", "Canned replies…"));
  canned.firstChild.value = "";
  me.canned.forEach((c, i) => { const o = el("option", "", c.title); o.value = String(i); canned.append(o); });
  canned.hidden = me.canned.length === 0;
  const assign = $("assign");
  assign.replaceChildren(el("option", "", "—"));
  assign.firstChild.value = "";
  me.agents.forEach((a) => { const o = el("option", "", a.display_name); o.value = a.name; assign.append(o); });
  live();
}

// --- live updates: every change on the server says "update" ---

function live() {
  if (es) es.close();
  es = new EventSource("api/events");
  es.addEventListener("update", () => refresh());
  es.onopen = () => { $("status").textContent = "live"; $("status").className = "live"; };
  es.onerror = () => { $("status").textContent = "reconnecting…"; $("status").className = ""; };
}

let refreshing = null, again = false;
async function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    do {
      again = false;
      try {
        const out = await api("GET", "api/conversations");
        offset = new Date(out.now).getTime() - Date.now();
        convs = out.conversations;
        if (current && !convs.some((c) => keyOf(c) === current)) { current = null; detail = null; }
        if (!current && convs.length && window.matchMedia("(min-width: 641px)").matches) current = keyOf(convs[0]);
        renderList();
        if (current) await loadDetail(); else renderPane();
      } catch (err) {
        if (err.message !== "signed out") showError(err.message);
      }
    } while (again);
  })();
  try { await refreshing; } finally { refreshing = null; }
}

let listed = ""; // what the list shows, so that an update that changes nothing leaves it alone
function renderList() {
  const sig = JSON.stringify([current, convs]);
  if (sig === listed) return;
  listed = sig;
  $("empty-list").hidden = convs.length > 0;
  $("list").replaceChildren(...convs.map((c) => {
    const li = el("li", keyOf(c) === current ? "selected" : "");
    li.dataset.page = c.page_id; li.dataset.psid = c.psid;
    const usable = c.picture && !failedPics.has(c.picture);
    const pic = usable ? el("img") : el("span", "pic");
    if (usable) { pic.alt = ""; pic.onerror = () => { failedPics.add(c.picture); pic.replaceWith(el("span", "pic")); }; pic.src = c.picture; }
    const who = el("div", "who", personName(c));
    const badge = el("span", "unread", c.unread ? String(c.unread) : "");
    badge.hidden = !c.unread;
    const claim = el("div", "claim" + (c.claimed_by === me.agent.name ? " mine" : ""),
      c.claimed_by ? agentName(c.claimed_by) + " has it" : "Open: nobody claimed it");
    if (c.warn) claim.append(el("span", "warn", " · going back soon"));
    li.append(pic, who, badge, el("div", "why", c.why || "handed to the inbox"),
      el("div", "last", c.last ? (c.last_from === "person" ? "" : c.last_from + ": ") + c.last : ""), claim);
    li.onclick = () => { current = keyOf(c); detail = null; renderList(); loadDetail(); };
    return li;
  }));
  document.querySelector("main").classList.toggle("open", !!current);
}

async function loadDetail() {
  const key = current;
  const out = await api("GET", convPath(""));
  if (key !== current) return;
  offset = new Date(out.now).getTime() - Date.now();
  const fresh = !detail || keyOf(detail.conversation) !== key;
  detail = out;
  renderPane(fresh);
}

// --- the open conversation ---

function atBottom(box) { return box.scrollHeight - box.scrollTop - box.clientHeight < 40; }

let shown = ""; // what the message list shows: key and last seq
function renderPane(fresh) {
  const c = detail && detail.conversation;
  $("nothing").hidden = !!c;
  $("head").hidden = $("reply").hidden = !c;
  if (!c) { $("messages").replaceChildren(); $("warning").hidden = true; shown = ""; return; }
  $("who").textContent = personName(c);
  $("why").textContent = (c.why || "handed to the inbox") + (c.handed_at ? " · since " + clock(c.handed_at) : "") + " · page " + c.page_id;
  $("avatar").hidden = !c.picture || failedPics.has(c.picture);
  if (c.picture && $("avatar").src !== c.picture) $("avatar").src = c.picture;
  const mine = c.claimed_by === me.agent.name;
  $("claimed-by").textContent = c.claimed_by ? (mine ? "You have it" : agentName(c.claimed_by) + " has it") : "Open: nobody claimed it";
  $("claimed-by").dataset.agent = c.claimed_by || "";
  $("claim").hidden = !!c.claimed_by;
  $("unclaim").hidden = !c.claimed_by;
  $("assign").value = c.claimed_by || "";
  renderWarning();

  const box = $("messages");
  if (fresh) shown = "";
  const key = keyOf(c) + "#" + detail.messages.length + "#" + (detail.messages.length ? detail.messages[detail.messages.length - 1].seq : 0);
  if (key === shown) return;
  const stick = fresh || shown === "" || following;
  shown = key;
  box.replaceChildren(...detail.messages.map((m) => {
    const d = el("div", "msg " + m.from + (m.seq > detail.read && m.from === "person" && !fresh ? "" : ""));
    d.dataset.from = m.from; d.dataset.seq = String(m.seq);
    let who = m.from === "person" ? personName(c) : m.from;
    if (m.agent) who = agentName(m.agent) + (m.from === "note" ? " · private note" : "");
    if (m.from !== "event") d.append(el("div", "from", who + " · " + clock(m.at)));
    if (m.text) d.append(el("div", "text", m.text));
    (m.attachments || []).forEach((a) => {
      if (!a.url) { d.append(el("div", "text", "[" + a.type + "]")); return; }
      if (a.type === "image") {
        const img = el("img", "attachment"); img.src = a.url; img.alt = "image from " + who; img.loading = "lazy";
        d.append(img);
      } else {
        const link = el("a", "", a.type + " attachment"); link.href = a.url; link.target = "_blank"; link.rel = "noopener noreferrer";
        d.append(link);
      }
    });
    return d;
  }));
  if (stick) {
    box.scrollTop = box.scrollHeight;
    following = true;
    $("jump").hidden = true;
  } else {
    $("jump").hidden = false;
  }
  markRead();
}

// Whether the agent is reading the newest messages: kept through a
// resize of the window, so that a smaller window still shows them.
// Only a move up lets go: a layout change that grows the content above
// the bottom (a resize, a wrapped header) must not.
let following = true, lastTop = 0;
$("messages").addEventListener("scroll", () => {
  const box = $("messages");
  if (atBottom(box)) following = true;
  else if (box.scrollTop < lastTop - 2) following = false;
  lastTop = box.scrollTop;
  if (following) { $("jump").hidden = true; markRead(); }
});
new ResizeObserver(() => {
  const box = $("messages");
  if (following) box.scrollTop = box.scrollHeight;
}).observe($("messages"));
$("jump").onclick = () => { const box = $("messages"); box.scrollTop = box.scrollHeight; $("jump").hidden = true; markRead(); };

let lastRead = "";
function markRead() {
  if (!detail || !detail.messages.length || !atBottom($("messages")) || document.hidden) return;
  const seq = detail.messages.reduce((m, x) => Math.max(m, x.seq), 0);
  const k = keyOf(detail.conversation) + "#" + seq;
  if (k === lastRead || seq <= detail.read) return;
  lastRead = k;
  detail.read = seq;
  const c = convs.find((x) => keyOf(x) === keyOf(detail.conversation));
  if (c && c.unread) { c.unread = 0; renderList(); }
  api("POST", convPath("read"), {seq}).catch(() => {});
}

// The warning before Baton hands the conversation back, counting down on
// the inbox's clock.
function renderWarning() {
  const c = detail && detail.conversation;
  const w = $("warning");
  if (!c || !detail.warn || !c.return_at) { w.hidden = true; return; }
  const left = Math.max(0, Math.round((new Date(c.return_at).getTime() - (Date.now() + offset)) / 1000));
  $("countdown").textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
  w.hidden = false;
}
setInterval(renderWarning, 1000);

async function act(action, body, button) {
  if (!current) return;
  if (button) button.disabled = true;
  try { const out = await api("POST", convPath(action), body); showError(""); return out; }
  catch (err) { showError(err.message); throw err; }
  finally { if (button) button.disabled = false; }
}

$("claim").onclick = () => act("claim", {}, $("claim")).catch(() => {});
$("keep").onclick = () => act("claim", {}, $("keep")).catch(() => {});
$("unclaim").onclick = () => act("unclaim", {}, $("unclaim")).catch(() => {});
$("assign").onchange = () => {
  const to = $("assign").value;
  (to ? act("claim", {agent: to}) : act("unclaim", {})).catch(() => {});
};
$("back").onclick = () => { current = null; detail = null; renderList(); renderPane(); };

$("canned").onchange = () => {
  const c = me.canned[Number($("canned").value)];
  if (c) { const t = $("reply-text"); t.value = t.value ? t.value + " " + c.text : c.text; t.focus(); typed(); }
  $("canned").value = "";
};
$("note-mode").onchange = () => {
  $("reply").classList.toggle("note", $("note-mode").checked);
  $("reply-send").textContent = $("note-mode").checked ? "Add note" : "Send";
  $("reply-text").placeholder = $("note-mode").checked ? "A note for colleagues; the person never sees it…" : "Reply to the person…";
};

// Typing holds Baton's return rule: said when the agent starts (again
// every 20 s while they go on), and stopped 15 s after the last key or
// when the box is emptied.
function typed() {
  if ($("note-mode").checked) return;
  const text = $("reply-text").value.trim();
  clearTimeout(typingTimer);
  if (!text) { stopTyping(); return; }
  if (Date.now() - typingSent > 20000) {
    typingSent = Date.now();
    act("typing", {typing: true}).catch(() => {});
  }
  typingTimer = setTimeout(stopTyping, 15000);
}
function stopTyping() {
  clearTimeout(typingTimer);
  if (!typingSent || !current) return;
  typingSent = 0;
  act("typing", {typing: false}).catch(() => {});
}
$("reply-text").addEventListener("input", typed);
$("reply-text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("reply").requestSubmit(); }
});

$("reply").onsubmit = async (e) => {
  e.preventDefault();
  const text = $("reply-text").value.trim();
  if (!text || !current) return;
  const note = $("note-mode").checked;
  try {
    await act(note ? "note" : "reply", {text}, $("reply-send"));
    $("reply-text").value = "";
    if (!note) stopTyping();
  } catch (err) { showError((note ? "Note not kept: " : "Not sent: ") + err.message); }
};

// Done asks first, with the closing message to send (editable).
$("done").onclick = () => {
  const c = detail && detail.conversation;
  if (!c) return;
  $("done-what").textContent = personName(c) + " goes back to " + (me.done === "release" ? "nobody (the thread is released)" : "the page's bot") + ".";
  $("closing").value = me.closing_message || "";
  $("done-error").textContent = "";
  $("done-dialog").showModal();
};
$("done-cancel").onclick = () => $("done-dialog").close();
$("done-form").onsubmit = async (e) => {
  e.preventDefault();
  $("done-confirm").disabled = true;
  try {
    await api("POST", convPath("done"), {closing_message: $("closing").value});
    $("done-dialog").close();
    current = null; detail = null;
    await refresh();
  } catch (err) { $("done-error").textContent = err.message; }
  finally { $("done-confirm").disabled = false; }
};

document.addEventListener("visibilitychange", markRead);
$("avatar").onerror = () => { failedPics.add($("avatar").src); $("avatar").hidden = true; };
start();

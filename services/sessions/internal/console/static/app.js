// Agent console: signs in, then speaks the agent websocket protocol v1
// (services/sessions/PROTOCOL.md). State lives in memory and is replaced by
// the server's snapshot after every (re)connect.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem("sb.token") || "",
  agent: JSON.parse(sessionStorage.getItem("sb.agent") || "null"),
  roles: JSON.parse(sessionStorage.getItem("sb.roles") || '["agent"]'),
  ws: null,
  nextId: 1,
  pending: new Map(), // frame id -> {resolve, reject}
  // Replies not yet acknowledged, kept across reconnects and reloads and
  // sent again with the same client_msg_id (the server sends each once).
  outbox: new Map(JSON.parse(sessionStorage.getItem("sb.outbox") || "[]")),
  offers: new Map(),
  sessions: new Map(),
  // Messages of a chat this console does not show yet: its session.assigned
  // may come after them (another replica pushed it), and brings a
  // transcript read before they were added. Kept until it comes.
  early: new Map(), // session id -> [message]
  wrapups: new Map(), // task id -> wrap-up form (after-call work)
  selected: "",
  presence: "offline",
  rona: false,
  retry: 0,
  closing: false,
  // Where this console stands in the server's numbered frames (its stream,
  // the last frame seen): a reconnect resumes from there and gets only
  // what it missed, or a snapshot when the server cannot tell.
  stream: "",
  seq: 0,
  resumed: false, // the last connection resumed (no snapshot)
};

// mergeEarly adds to a chat the messages that came before it did.
function mergeEarly(s) {
  const list = state.early.get(s.session_id);
  if (!list) return;
  state.early.delete(s.session_id);
  s.messages = s.messages || [];
  for (const m of list) if (!s.messages.some((x) => x.id === m.id)) s.messages.push(m);
}

function show(view) {
  $("login-view").hidden = view !== "login";
  $("desk-view").hidden = view !== "desk";
  $("supervisor-view").hidden = view !== "supervisor";
  $("who").hidden = view === "login";
  const isAgent = state.roles.includes("agent"), isSupervisor = state.roles.includes("supervisor");
  $("view-switch").hidden = !(isAgent && isSupervisor) || view === "login";
  $("presence").hidden = !isAgent;
  $("offer-alerts").parentElement.hidden = !isAgent;
  $("view-desk").classList.toggle("active", view === "desk");
  $("view-supervisor").classList.toggle("active", view === "supervisor");
  if (view === "supervisor" && window.supervisorShown) window.supervisorShown();
}

function deskError(msg) { $("desk-error").textContent = msg || ""; }

async function login(ev) {
  ev.preventDefault();
  $("login-error").textContent = "";
  $("login-submit").disabled = true;
  try {
    const res = await fetch("api/agent/v1/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ tenant_id: $("login-tenant").value.trim(), email: $("login-email").value.trim(), password: $("login-password").value }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error || `sign-in failed (${res.status})`);
    const roles = body.roles || ["agent"];
    if (!roles.includes("agent") && !roles.includes("supervisor")) {
      // An analyst's or admin's sign-in is good for reports and
      // administration (switchboardctl login), not for this console.
      $("login-password").value = "";
      throw new Error(`This console is for agents and supervisors; you are signed in as ${roles.join(" and ")}. ` +
        "Use your sign-in for reports and exports: switchboardctl login, then switchboardctl report.");
    }
    state.token = body.token;
    state.agent = body.agent;
    sessionStorage.setItem("sb.token", body.token);
    sessionStorage.setItem("sb.agent", JSON.stringify(body.agent));
    state.roles = roles;
    sessionStorage.setItem("sb.roles", JSON.stringify(state.roles));
    $("login-password").value = "";
    start();
  } catch (e) {
    $("login-error").textContent = e.message;
  } finally {
    $("login-submit").disabled = false;
  }
}

function signOut() {
  state.closing = true;
  state.outbox.clear();
  sessionStorage.clear();
  state.token = "";
  if (state.ws) state.ws.close();
  location.reload();
}

function start() {
  show(state.roles.includes("agent") ? "desk" : "supervisor");
  $("agent-name").textContent = state.agent ? state.agent.display_name : "";
  connect();
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}${location.pathname.replace(/[^/]*$/, "")}api/agent/v1/ws`);
  state.ws = ws;
  ws.onopen = () => {
    const auth = { token: state.token };
    if (state.stream) auth.resume = { stream: state.stream, after: state.seq };
    send("auth", auth).catch((e) => {
      state.closing = true;
      sessionStorage.clear();
      $("login-error").textContent = e.message;
      show("login");
    });
  };
  ws.onmessage = (m) => onFrame(JSON.parse(m.data));
  ws.onclose = (ev) => {
    setConn(false);
    for (const p of state.pending.values()) p.reject(new Error("connection lost"));
    state.pending.clear();
    if (state.closing || ev.code === 4401) {
      if (ev.code === 4401) { sessionStorage.clear(); show("login"); }
      return;
    }
    const delay = Math.min(10000, 500 * 2 ** state.retry++);
    setTimeout(connect, delay);
  };
}

function setConn(online) {
  const el = $("conn-state");
  el.textContent = online ? "connected" : "reconnecting…";
  el.classList.toggle("online", online);
}

function send(type, data) {
  const id = `c${state.nextId++}`;
  return new Promise((resolve, reject) => {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return reject(new Error("not connected"));
    state.pending.set(id, { resolve, reject });
    state.ws.send(JSON.stringify({ v: 1, type, id, data }));
  });
}

function onFrame(f) {
  const d = f.data || {};
  if (f.stream) {
    // A snapshot: it stands for every frame of its stream up to f.seq.
    state.stream = f.stream;
    state.seq = f.seq || 0;
  } else if (f.seq) state.seq = f.seq;
  if (window.supervisorFrame && f.type !== "queues") window.supervisorFrame(f);
  switch (f.type) {
    case "ack": settle(d.ref, null, d); break;
    case "error":
      if (d.ref && state.pending.has(d.ref)) settle(d.ref, new Error(d.message || d.code));
      else deskError(d.message || d.code);
      break;
    case "welcome":
      state.retry = 0;
      // Resumed: the frames missed follow, and the desk stays as it is.
      state.resumed = !!d.resumed;
      if (d.resumed && state.outbox.size) setTimeout(flushOutbox, 0);
      if (d.roles) { state.roles = d.roles; sessionStorage.setItem("sb.roles", JSON.stringify(d.roles)); }
      setConn(true);
      if (window.supervisorConnected) window.supervisorConnected();
      break;
    case "queues": if (window.supervisorFrame) window.supervisorFrame(f); break;
    case "snapshot":
      if (state.outbox.size) setTimeout(flushOutbox, 0);
      state.offers = new Map((d.offers || []).map((o) => [o.offer_id, o]));
      state.sessions = new Map((d.sessions || []).map((s) => [s.session_id, s]));
      state.sessions.forEach(mergeEarly);
      state.early = new Map();
      state.wrapups = new Map((d.wrapups || []).map((w) => [w.task_id, w]));
      setPresence(d.presence, d.rona);
      // After a reload the most recent active chat is open, not an empty pane.
      if (!state.sessions.has(state.selected)) state.selected = ordered()[0] ? ordered()[0].session_id : "";
      render();
      break;
    case "offer.created": state.offers.set(d.offer_id, d); render(); offerAlert(d); break;
    case "offer.revoked": state.offers.delete(d.offer_id); render(); break;
    case "session.assigned":
      mergeEarly(d);
      state.sessions.set(d.session_id, d);
      state.selected = d.session_id;
      render();
      break;
    case "message.added": {
      const s = state.sessions.get(d.session_id);
      if (!s) {
        const list = state.early.get(d.session_id) || [];
        if (list.length < 200) list.push(d.message);
        state.early.set(d.session_id, list);
        break;
      }
      if (!s.messages.some((m) => m.id === d.message.id)) {
        s.messages.push(d.message);
        if (d.message.direction === "inbound" && d.session_id !== state.selected) s.unread = (s.unread || 0) + 1;
        render();
      }
      break;
    }
    case "message.status": {
      const s = state.sessions.get(d.session_id);
      const m = s && s.messages.find((x) => x.id === d.message_id);
      if (m) { m.status = d.status; m.error_code = d.error_code; m.error_message = d.error_message; m.reason = d.reason; render(); }
      break;
    }
    case "session.compliance": {
      const s = state.sessions.get(d.session_id);
      if (s) { s.compliance = d.compliance; render(); }
      break;
    }
    case "session.ended": {
      state.early.delete(d.session_id);
      const s = state.sessions.get(d.session_id);
      if (s) { s.state = "ended"; s.outcome = d.outcome; render(); }
      // An offer accepted just as its chat ended: nothing to open.
      else deskError(`That chat ended before it reached you${d.reason ? " (" + d.reason + ")" : ""}.`);
      break;
    }
    case "session.parked":
    case "session.resumed": {
      const s = state.sessions.get(d.session_id);
      if (s) { s.parked = f.type === "session.parked"; render(); }
      break;
    }
    case "session.transferred": {
      const s = state.sessions.get(d.session_id);
      if (s) { s.state = "transferred"; s.transferred_to = d.to; render(); }
      break;
    }
    case "wrapup.started": state.wrapups.set(d.task_id, d); render(); break;
    case "wrapup.ended": state.wrapups.delete(d.task_id); render(); break;
    case "presence": setPresence(d.presence, d.rona); break;
  }
}

function settle(ref, err, data) {
  const p = state.pending.get(ref);
  if (!p) return;
  state.pending.delete(ref);
  if (err) p.reject(err); else p.resolve(data);
}

function setPresence(p, rona) {
  state.presence = p;
  state.rona = !!rona;
  // During RONA the control says so: the agent gets no offers, whatever
  // the presence.
  if (state.rona) $("presence").value = "rona";
  else if (p === "available" || p === "away") $("presence").value = p;
  $("rona-banner").hidden = !state.rona;
}

// lastActivity is when a chat last had a message (or was assigned).
function lastActivity(s) {
  const m = s.messages && s.messages[s.messages.length - 1];
  return new Date((m && m.at) || s.started_at || 0).getTime();
}

// ordered lists the chats: active before ended, the most recent first.
function ordered() {
  return [...state.sessions.values()].sort((a, b) => {
    const ea = a.state === "active" ? 0 : 1, eb = b.state === "active" ? 0 : 1;
    return ea - eb || lastActivity(b) - lastActivity(a);
  });
}

// Offer alerts (opt-in, remembered in this browser): a short tone and a
// browser notification; the page title always counts open offers, so a
// background tab shows them.
function alertsOn() { return localStorage.getItem("sb.alerts") === "1"; }

function offerAlert(o) {
  if (!alertsOn()) return;
  try {
    const ac = new (window.AudioContext || window.webkitAudioContext)();
    const osc = ac.createOscillator();
    const gain = ac.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.1;
    osc.connect(gain).connect(ac.destination);
    osc.start();
    osc.stop(ac.currentTime + 0.25);
  } catch (e) { /* no audio here */ }
  if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
    new Notification("New chat offer", { body: `${o.customer_name || o.customer} · ${o.service_name || o.service_id}${o.preview ? "\n" + o.preview : ""}`, tag: o.offer_id });
  }
  state.alerted = (state.alerted || 0) + 1;
}

async function toggleAlerts(ev) {
  const on = ev.target.checked;
  localStorage.setItem("sb.alerts", on ? "1" : "0");
  if (on && "Notification" in window && Notification.permission === "default") {
    try { await Notification.requestPermission(); } catch (e) { /* the tone still plays */ }
  }
}

function waitLabel(since) {
  const secs = Math.max(0, Math.round((Date.now() - new Date(since)) / 1000));
  return `waiting ${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, "0")}`;
}

function channelLabel(c) { return c === "whatsapp" ? "WhatsApp" : c === "sms" ? "SMS" : c; }

// Parameters the workflow collected (name → value), in name order.
function paramEntries(params) {
  return Object.entries(params || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

// renderParams fills dl with the first limit parameters ("name: value",
// as text: they are the customer's and the workflow's words, never
// markup) and a count of the rest; hidden when there are none.
function renderParams(dl, params, limit) {
  const entries = paramEntries(params);
  dl.replaceChildren();
  dl.hidden = !entries.length;
  for (const [k, v] of entries.slice(0, limit || entries.length)) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  }
  if (limit && entries.length > limit) {
    const more = document.createElement("dd");
    more.className = "muted params-more";
    more.textContent = `+${entries.length - limit} more`;
    dl.append(more);
  }
}

// offerParams is how many parameters an offer card lists.
const offerParams = 3;

function render() {
  const offers = $("offers");
  offers.replaceChildren();
  for (const o of state.offers.values()) {
    const li = $("offer-tpl").content.firstElementChild.cloneNode(true);
    li.dataset.offerId = o.offer_id;
    li.querySelector(".offer-customer").textContent = o.customer_name ? `${o.customer_name} · ${o.customer}` : o.customer;
    li.querySelector(".offer-meta").textContent = `${channelLabel(o.channel)} · ${o.service_name || o.service_id}`;
    li.querySelector(".offer-timer").dataset.expires = o.expires_at;
    li.querySelector(".offer-preview").textContent = o.preview || "";
    li.querySelector(".offer-preview").hidden = !o.preview;
    if (o.waiting_since) li.querySelector(".offer-wait").dataset.since = o.waiting_since;
    renderParams(li.querySelector(".offer-params"), o.parameters, offerParams);
    if (o.note || o.transferred_by) {
      const n = li.querySelector(".offer-note");
      n.hidden = false;
      n.textContent = `Transferred${o.transferred_by ? " by " + o.transferred_by : ""}${o.note ? ": " + o.note : ""}`;
    }
    li.querySelector(".accept").onclick = () => answer("offer.accept", o.offer_id);
    li.querySelector(".decline").onclick = () => answer("offer.decline", o.offer_id);
    offers.append(li);
  }
  if (!state.offers.size) offers.innerHTML = '<li class="muted">No offers.</li>';
  document.title = state.offers.size ? `(${state.offers.size}) New offer · Switchboard` : "Switchboard · Agent console";
  tick();

  const list = $("sessions");
  list.replaceChildren();
  for (const s of ordered()) {
    const li = document.createElement("li");
    li.dataset.sessionId = s.session_id;
    li.textContent = `${s.customer_name || s.customer} · ${channelLabel(s.channel)}`;
    if (s.unread && s.session_id !== state.selected) {
      const b = document.createElement("span");
      b.className = "badge unread";
      b.textContent = String(s.unread);
      b.title = `${s.unread} new message${s.unread === 1 ? "" : "s"}`;
      li.append(b);
    }
    li.classList.toggle("selected", s.session_id === state.selected);
    li.classList.toggle("ended", s.state === "ended");
    li.classList.toggle("transferred", s.state === "transferred");
    const parked = !!s.parked && s.state === "active";
    li.classList.toggle("parked", parked);
    if (parked) {
      const b = document.createElement("span");
      b.className = "badge parked";
      b.textContent = "Parked";
      li.append(b);
    }
    li.onclick = () => { state.selected = s.session_id; s.unread = 0; render(); };
    list.append(li);
  }
  renderWrapUps();
  renderSession();
}

// renderWrapUps shows a form per task in after-call work: the service's
// codes and tags, and the time left before distribution ends it.
function renderWrapUps() {
  const ul = $("wrapups");
  ul.replaceChildren();
  $("wrapups-head").hidden = !state.wrapups.size;
  for (const w of state.wrapups.values()) {
    const li = $("wrapup-tpl").content.firstElementChild.cloneNode(true);
    li.dataset.taskId = w.task_id;
    const s = state.sessions.get(w.session_id);
    const who = s ? (s.customer_name || s.customer) : w.session_id;
    li.querySelector(".wrapup-title").textContent = `${w.service_name || w.service_id} · ${who}`;
    li.querySelector(".wrapup-timer").dataset.expires = w.ends_at;
    for (const [cls, name, values] of [["service-codes", "service_codes", w.service_codes], ["sales-codes", "sales_codes", w.sales_codes], ["tags", "tags", w.tags]]) {
      const fs = li.querySelector("fieldset." + cls);
      if (!values || !values.length) { fs.hidden = true; continue; }
      for (const v of values) {
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox"; box.name = name; box.value = v;
        label.append(box, document.createTextNode(v));
        fs.append(label);
      }
    }
    li.querySelector("form").onsubmit = (ev) => submitWrapUp(ev, w.task_id, li);
    ul.append(li);
  }
}

async function submitWrapUp(ev, taskId, li) {
  ev.preventDefault();
  deskError("");
  const picked = (name) => [...li.querySelectorAll(`input[name=${name}]:checked`)].map((b) => b.value);
  const button = li.querySelector(".wrapup-submit");
  button.disabled = true;
  try {
    await send("wrapup.submit", { task_id: taskId, service_codes: picked("service_codes"), sales_codes: picked("sales_codes"), tags: picked("tags") });
  } catch (e) { deskError(e.message); button.disabled = false; }
}

// mediaHref returns an attachment's URL when it is an absolute http(s) URL
// with a host, else "" (the label is then shown without a link). The
// server stores only such URLs; this keeps javascript:, data: and the like
// out of the page whatever the server sends.
function mediaHref(raw) {
  if (typeof raw !== "string" || raw === "") return "";
  let u;
  try { u = new URL(raw); } catch { return ""; }
  if ((u.protocol !== "https:" && u.protocol !== "http:") || !u.host || u.username || u.password) return "";
  return u.href;
}

// Customers' attachments come through the sessions service (it fetches
// them from Twilio; the browser never holds a Twilio credential), with the
// console's token, and are kept as blob URLs while the page lives.
const mediaCache = new Map(); // "session/message/n" -> {state, url, type, error}

function loadMedia(key) {
  let e = mediaCache.get(key);
  if (e) return e;
  e = { state: "loading" };
  mediaCache.set(key, e);
  fetch(`api/agent/v1/media/${key}`, { headers: { Authorization: `Bearer ${state.token}` } })
    .then(async (res) => {
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        throw new Error(body.error || `HTTP ${res.status}`);
      }
      const blob = await res.blob();
      Object.assign(e, { state: "ready", url: URL.createObjectURL(blob), type: blob.type });
    })
    .catch((err) => Object.assign(e, { state: "failed", error: err.message }))
    .finally(render);
  return e;
}

// attachment is a customer's file in the transcript: a picture, sound or
// video shown in place, any other file a download link.
function attachment(sessionId, messageId, n, md) {
  const key = [sessionId, messageId, n].map(encodeURIComponent).join("/");
  const type = md.content_type || "attachment";
  const box = document.createElement("div");
  box.className = "attachment";
  const e = loadMedia(key);
  if (e.state === "loading") { box.textContent = `Loading ${type}…`; return box; }
  if (e.state === "failed") { box.textContent = `[${type}: ${e.error}]`; box.classList.add("failed"); return box; }
  let el;
  if (e.type.startsWith("image/")) {
    el = document.createElement("img");
    el.alt = `${type} from the customer`;
  } else if (e.type.startsWith("audio/") || e.type.startsWith("video/")) {
    el = document.createElement(e.type.startsWith("audio/") ? "audio" : "video");
    el.controls = true;
  } else {
    el = document.createElement("a");
    el.download = `${messageId}-${n}`;
    el.textContent = `Download ${type}`;
    el.href = e.url;
    box.append(el);
    return box;
  }
  el.src = e.url;
  box.append(el);
  return box;
}

let renderedSession = "";
function renderSession() {
  const s = state.sessions.get(state.selected);
  $("no-session").hidden = !!s;
  $("no-session").textContent = state.sessions.size ? "Select a chat." : "Accept an offer to start chatting.";
  $("session-pane").hidden = !s;
  if (!s) { renderedSession = ""; return; }
  if (s.session_id !== renderedSession) {
    // Another chat: its own draft and meter, no panel left open from the last.
    const prev = state.sessions.get(renderedSession);
    if (prev) prev.draft = $("reply").value;
    $("reply").value = s.draft || "";
    renderedSession = s.session_id;
    s.unread = 0;
    $("confirm-end").hidden = true;
    $("transfer-form").hidden = true;
    $("canned-picker").hidden = true;
    $("history-panel").hidden = true;
    countReply();
  }
  $("session-customer").textContent = s.customer_name ? `${s.customer_name} (${s.customer})` : s.customer;
  let status = "";
  if (s.state === "ended") status = " · ended";
  if (s.state === "transferred") status = ` · transferred to ${s.transferred_to}`;
  const parked = !!s.parked && s.state === "active";
  if (parked) status += " · parked";
  $("session-meta").textContent = ` · ${channelLabel(s.channel)} · ${s.service_name || s.service_id}${status}`;
  renderParams($("session-details-list"), s.parameters);
  $("session-details").hidden = !paramEntries(s.parameters).length;
  const ended = s.state === "ended" || s.state === "transferred";
  $("transfer").hidden = ended;
  $("park").hidden = ended;
  $("park").textContent = parked ? "Resume" : "Park";
  $("transfer").disabled = parked;
  $("parked-note").hidden = !parked;
  $("terminate").hidden = ended;
  $("dismiss").hidden = !ended;
  if (ended) { $("confirm-end").hidden = true; $("transfer-form").hidden = true; }
  const blocked = blockedBy(s);
  $("terminate").disabled = ended;
  $("reply").disabled = ended || parked || !!blocked;
  $("note").disabled = ended;
  $("send").disabled = ended || parked || !!blocked;
  $("attach").disabled = ended || parked || !!blocked;
  renderAttached(s);
  renderCompliance(s, blocked);
  // Outside the WhatsApp window only a template may go: the picker
  // replaces the reply box.
  const picker = blocked === "window_closed" && !ended && !parked;
  $("template-form").hidden = !picker;
  $("reply-form").hidden = picker;
  if (picker) templatePicker(s);
  const ol = $("transcript");
  ol.replaceChildren();
  for (const m of s.messages) {
    const li = document.createElement("li");
    li.className = `${m.direction} ${m.sender}`;
    li.dataset.messageId = m.id;
    li.append(document.createTextNode(m.body || ""));
    (m.media || []).forEach((md, i) => {
      if (m.direction === "inbound") { li.append(attachment(s.session_id, m.id, i, md)); return; }
      const label = ` [${md.content_type || "attachment"}]`;
      const href = mediaHref(md.url);
      if (!href) { li.append(document.createTextNode(label)); return; }
      const a = document.createElement("a");
      a.href = href; a.textContent = label; a.target = "_blank"; a.rel = "noopener noreferrer";
      li.append(a);
    });
    const meta = document.createElement("span");
    meta.className = "meta";
    const who = senderLabel(m);
    let text = `${who} · ${new Date(m.at).toLocaleTimeString()}`;
    if (m.resend_of) text += " · resend";
    if (m.content_sid) text += " · template";
    if (m.direction === "outbound" && m.status) {
      text += ` · ${statusLabel(m.status)}`;
      if (m.error_code) text += ` (${m.error_code}${m.error_message ? ": " + m.error_message : ""})`;
      else if (m.error_message) text += ` (${m.error_message})`;
      meta.classList.add(`status-${m.status}`);
    }
    meta.textContent = text;
    meta.dataset.status = m.status || "";
    li.dataset.status = m.status || "";
    li.append(meta);
    if (m.direction === "outbound" && (m.status === "failed" || m.status === "undelivered")) {
      const resentAs = s.messages.find((x) => x.resend_of === m.id);
      if (resentAs) {
        const note = document.createElement("span");
        note.className = "meta resent";
        note.textContent = "Resent below.";
        li.append(note);
      } else if (unresendable(m)) {
        const note = document.createElement("span");
        note.className = "meta unresendable";
        note.textContent = unresendable(m);
        li.append(note);
      } else if (!ended) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "resend";
        b.textContent = "Resend";
        b.onclick = () => resend(s.session_id, m.id, b);
        li.append(b);
      }
    }
    ol.append(li);
  }
  ol.scrollTop = ol.scrollHeight;
}

// senderLabel names who wrote a transcript entry, for the agent's view.
function senderLabel(m) {
  if (m.direction === "internal") return m.sender === "supervisor" ? "Supervisor (whisper, not sent)" : m.sender === "agent" ? "Note (not sent)" : "System";
  if (m.sender === "supervisor") return "Supervisor";
  return m.sender === "customer" ? "Customer" : m.sender === "workflow" ? "Bot" : "You";
}

// The canned-response picker: typing "/" and a shortcut's start lists the
// chat's canned responses (the service's and the tenant's, filled in by the
// server); a click or Enter inserts one.
async function cannedPicker() {
  const s = state.sessions.get(state.selected);
  const m = /^\/([a-z0-9_-]*)$/.exec($("reply").value);
  const picker = $("canned-picker");
  if (!s || !m) { picker.hidden = true; return; }
  if (!s.canned) {
    try { s.canned = (await send("canned.list", { session_id: s.session_id })).responses || []; } catch (e) { deskError(e.message); return; }
  }
  const items = s.canned.filter((c) => c.shortcut.startsWith(m[1]));
  picker.replaceChildren();
  for (const c of items) {
    const li = document.createElement("li");
    li.dataset.shortcut = c.shortcut;
    const sc = document.createElement("span"); sc.className = "shortcut"; sc.textContent = "/" + c.shortcut;
    const title = document.createTextNode(c.title);
    const pv = document.createElement("span"); pv.className = "preview"; pv.textContent = c.body;
    li.append(sc, title, pv);
    li.onmousedown = (ev) => { ev.preventDefault(); insertCanned(c); };
    picker.append(li);
  }
  if (items.length) picker.firstElementChild.classList.add("active");
  picker.hidden = !items.length;
}

function insertCanned(c) {
  $("reply").value = c.body;
  $("canned-picker").hidden = true;
  $("reply").focus();
  countReply();
}

async function addNote() {
  const body = $("reply").value;
  if (!body.trim() || !state.selected) return;
  deskError("");
  try {
    await send("note.add", { session_id: state.selected, body });
    $("reply").value = "";
    countReply();
  } catch (e) { deskError(e.message); }
}

function tick() {
  for (const el of document.querySelectorAll(".offer-timer")) {
    const left = Math.max(0, Math.round((new Date(el.dataset.expires) - Date.now()) / 1000));
    el.textContent = `${left}s to answer`;
  }
  for (const el of document.querySelectorAll(".offer-wait")) {
    if (el.dataset.since) el.textContent = waitLabel(el.dataset.since);
  }
  for (const el of document.querySelectorAll(".wrapup-timer")) {
    const left = Math.max(0, Math.round((new Date(el.dataset.expires) - Date.now()) / 1000));
    el.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left`;
  }
  const s = state.sessions.get(state.selected);
  const c = s && s.compliance;
  if (c && c.window_applies && c.window_open && c.window_expires_at) {
    if (new Date(c.window_expires_at) <= Date.now()) {
      c.window_open = false;
      c.blocked = "window_closed";
      c.message = "The WhatsApp 24-hour window is closed: the customer has not written in the last 24 hours. Free-form replies are not allowed; a template must be sent.";
      renderSession();
    } else {
      renderCompliance(s, blockedBy(s));
    }
  }
}

const statusLabels = { pending: "sending…", queued: "queued", accepted: "accepted", sending: "sending", sent: "sent", delivered: "delivered", read: "read", failed: "failed", undelivered: "not delivered" };
function statusLabel(st) { return statusLabels[st] || st; }

// blockedBy says why a reply to the session would be refused ("" if not).
function blockedBy(s) {
  const c = s.compliance;
  if (!c || s.state === "ended") return "";
  return c.blocked || "";
}

function renderCompliance(s, blocked) {
  const el = $("compliance");
  const c = s.compliance;
  el.className = "compliance";
  el.dataset.blocked = blocked;
  if (!c || s.state === "ended") { el.hidden = true; el.textContent = ""; return; }
  if (blocked) {
    el.hidden = false;
    el.classList.add("blocked");
    el.textContent = c.message || (blocked === "opted_out" ? "The customer opted out." : "The WhatsApp window is closed.");
    return;
  }
  if (c.window_applies && c.window_open && c.window_expires_at) {
    const mins = Math.max(0, Math.round((new Date(c.window_expires_at) - Date.now()) / 60000));
    el.hidden = false;
    el.textContent = `WhatsApp window open: free-form replies allowed for ${Math.floor(mins / 60)}h ${mins % 60}m.`;
    return;
  }
  el.hidden = true;
  el.textContent = "";
}
setInterval(tick, 1000);

async function answer(type, offerId) {
  deskError("");
  try {
    await send(type, { offer_id: offerId });
    if (type === "offer.decline") { state.offers.delete(offerId); render(); }
  } catch (e) { deskError(e.message); }
}

function saveOutbox() { sessionStorage.setItem("sb.outbox", JSON.stringify([...state.outbox])); }

const lostConnection = (e) => e.message === "connection lost" || e.message === "not connected";

// deliver sends one outbox entry; it stays in the outbox only while the
// connection is what failed.
async function deliver(item) {
  try {
    await send("message.send", item);
    state.outbox.delete(item.client_msg_id);
    saveOutbox();
    return true;
  } catch (e) {
    if (lostConnection(e)) { deskError("Not sent yet: it goes out when the connection is back."); return false; }
    state.outbox.delete(item.client_msg_id);
    saveOutbox();
    throw e;
  }
}

// flushOutbox sends again what a lost connection left unacknowledged.
async function flushOutbox() {
  for (const item of [...state.outbox.values()]) {
    try { if (!(await deliver(item))) return; } catch (e) { deskError(`A reply to ${item.session_id} was not sent: ${e.message}`); }
  }
  deskError("");
}

// Files attached to the next reply, per chat: uploaded at once (the
// server checks type and size for the chat's channel), sent by id.
const attached = new Map(); // session id -> [{id, name}]

async function attachFile() {
  const input = $("attach-file");
  const file = input.files && input.files[0];
  input.value = "";
  if (!file || !state.selected) return;
  const sid = state.selected;
  deskError("");
  $("attach").disabled = true;
  try {
    const res = await fetch(`api/agent/v1/media/${encodeURIComponent(sid)}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${state.token}`, "Content-Type": file.type || "application/octet-stream", "X-Filename": encodeURIComponent(file.name) },
      body: file,
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error || `upload failed (${res.status})`);
    const list = attached.get(sid) || [];
    list.push({ id: body.media_id, name: file.name });
    attached.set(sid, list);
  } catch (e) {
    deskError(`Not attached: ${e.message}`);
  } finally {
    $("attach").disabled = false;
    render();
  }
}

function renderAttached(s) {
  const list = (s && attached.get(s.session_id)) || [];
  $("attached").textContent = list.length ? `Attached: ${list.map((a) => a.name).join(", ")}` : "";
  $("attach").hidden = !(s && s.attachments);
}

async function reply(ev) {
  ev.preventDefault();
  const body = $("reply").value;
  const files = attached.get(state.selected) || [];
  if ((!body.trim() && !files.length) || !state.selected) return;
  deskError("");
  $("send").disabled = true;
  const clientMsgId = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/[^a-zA-Z0-9-]/g, "");
  const item = { session_id: state.selected, body, client_msg_id: clientMsgId };
  if (files.length) item.media_ids = files.map((a) => a.id);
  attached.delete(state.selected);
  state.outbox.set(clientMsgId, item);
  saveOutbox();
  $("reply").value = "";
  countReply();
  renderAttached(state.sessions.get(state.selected));
  try {
    await deliver(item);
  } catch (e) {
    deskError(e.message);
    if (!$("reply").value) { $("reply").value = body; countReply(); }
  } finally { $("send").disabled = false; }
}

// The WhatsApp template picker: the chat's templates (the connector's,
// from Twilio's Content API through sessions), one chosen, its variables
// filled in (prefilled from the chat where a default names a parameter or
// the customer's name), a preview, and the send.
async function templatePicker(s) {
  const form = $("template-form");
  if (form.dataset.session === s.session_id) return; // built; keep what the agent typed
  form.dataset.session = s.session_id;
  $("template-select").replaceChildren();
  $("template-vars").replaceChildren();
  $("template-preview").textContent = "";
  $("template-info").textContent = "Loading templates…";
  $("template-send").disabled = true;
  try {
    if (!s.templates) s.templates = (await send("template.list", { session_id: s.session_id })).templates || [];
  } catch (e) {
    $("template-info").textContent = `Templates unavailable: ${e.message}`;
    delete form.dataset.session;
    return;
  }
  if (form.dataset.session !== s.session_id) return;
  const sel = $("template-select");
  for (const t of s.templates) {
    const o = document.createElement("option");
    o.value = t.sid;
    o.textContent = t.language ? `${t.friendly_name} (${t.language})` : t.friendly_name;
    sel.append(o);
  }
  $("template-info").textContent = s.templates.length ? "" : "This WhatsApp account has no templates.";
  showTemplate(s);
}

// templateDefault is what a variable starts with: a session parameter the
// default names, the customer's name or number, or the default itself.
function templateDefault(s, def) {
  const key = (def || "").trim();
  const params = s.parameters || {};
  if (key && Object.prototype.hasOwnProperty.call(params, key)) return params[key];
  const k = key.toLowerCase().replace(/\s+/g, "_");
  if (k && Object.prototype.hasOwnProperty.call(params, k)) return params[k];
  if (k === "customer_name" || k === "name" || k === "first_name") return s.customer_name || "";
  if (k === "customer" || k === "phone" || k === "customer_number") return s.customer.replace(/^whatsapp:/, "");
  return key;
}

function currentTemplate(s) {
  return (s.templates || []).find((t) => t.sid === $("template-select").value);
}

function showTemplate(s) {
  const t = currentTemplate(s);
  const box = $("template-vars");
  box.replaceChildren();
  $("template-send").disabled = !t;
  if (!t) { $("template-preview").textContent = ""; return; }
  for (const v of t.variables) {
    const row = document.createElement("div");
    row.className = "template-var";
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.id = `template-var-${v.name}`;
    input.dataset.name = v.name;
    input.maxLength = 1024;
    input.value = templateDefault(s, v.default);
    input.placeholder = v.default || "";
    input.addEventListener("input", () => previewTemplate(s));
    label.htmlFor = input.id;
    label.textContent = `{{${v.name}}}`;
    row.append(label, input);
    box.append(row);
  }
  previewTemplate(s);
}

function templateValues() {
  const vars = {};
  for (const input of $("template-vars").querySelectorAll("input")) vars[input.dataset.name] = input.value;
  return vars;
}

function previewTemplate(s) {
  const t = currentTemplate(s);
  if (!t) return;
  const vars = templateValues();
  let text = t.body.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (m, name) => (vars[name] ? vars[name] : `[${name}]`));
  if (t.actions && t.actions.length) text += `\n[${t.actions.join("] [")}]`;
  $("template-preview").textContent = text;
}

async function sendTemplate(ev) {
  ev.preventDefault();
  const s = state.sessions.get(state.selected);
  const t = s && currentTemplate(s);
  if (!t) return;
  const vars = templateValues();
  const missing = t.variables.filter((v) => !vars[v.name] || !vars[v.name].trim());
  if (missing.length) { deskError(`Fill in ${missing.map((v) => `{{${v.name}}}`).join(", ")} first.`); return; }
  deskError("");
  $("template-send").disabled = true;
  const clientMsgId = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/[^a-zA-Z0-9-]/g, "");
  const item = { session_id: s.session_id, content_sid: t.sid, content_variables: vars, client_msg_id: clientMsgId };
  state.outbox.set(clientMsgId, item);
  saveOutbox();
  try {
    await deliver(item);
    delete $("template-form").dataset.session; // a fresh form for the next one
    renderSession();
  } catch (e) {
    deskError(e.message);
  } finally { $("template-send").disabled = false; }
}

// A business-initiated WhatsApp conversation: one of the tenant's
// WhatsApp entries, the customer's number, one of the entry's templates
// with its variables. The chat is the agent's from the start; it appears
// on the desk with session.assigned. The form keeps its client_msg_id
// until a start is acknowledged or refused, so a start sent again after a
// lost connection opens nothing twice.
const starting = { entries: [], templates: [], clientMsgId: "" };

async function openStart() {
  const form = $("start-form");
  if (!form.hidden) { form.hidden = true; return; }
  form.hidden = false;
  starting.clientMsgId = "";
  $("start-info").textContent = "Loading entries…";
  $("start-send").disabled = true;
  try {
    starting.entries = (await send("entries.list", {})).entries || [];
  } catch (e) {
    $("start-info").textContent = `Entries unavailable: ${e.message}`;
    return;
  }
  const sel = $("start-entry");
  sel.replaceChildren();
  for (const en of starting.entries) {
    const o = document.createElement("option");
    o.value = en.entry_id;
    o.textContent = `${en.name || en.entry_id} · ${en.business_address.replace(/^whatsapp:/, "")} · ${en.service_name || en.service_id}`;
    sel.append(o);
  }
  if (!starting.entries.length) { $("start-info").textContent = "No WhatsApp entry of your tenant can start conversations."; return; }
  await loadStartTemplates();
}

async function loadStartTemplates() {
  const entry = $("start-entry").value;
  $("start-template").replaceChildren();
  $("start-vars").replaceChildren();
  $("start-preview").textContent = "";
  $("start-send").disabled = true;
  $("start-info").textContent = "Loading templates…";
  try {
    starting.templates = (await send("template.list", { entry_id: entry })).templates || [];
  } catch (e) {
    $("start-info").textContent = `Templates unavailable: ${e.message}`;
    return;
  }
  if ($("start-entry").value !== entry) return;
  for (const t of starting.templates) {
    const o = document.createElement("option");
    o.value = t.sid;
    o.textContent = t.language ? `${t.friendly_name} (${t.language})` : t.friendly_name;
    $("start-template").append(o);
  }
  $("start-info").textContent = starting.templates.length ? "" : "This WhatsApp account has no templates.";
  showStartTemplate();
}

function startTemplate() { return starting.templates.find((t) => t.sid === $("start-template").value); }

function showStartTemplate() {
  const t = startTemplate();
  const box = $("start-vars");
  box.replaceChildren();
  $("start-send").disabled = !t;
  if (!t) { $("start-preview").textContent = ""; return; }
  for (const v of t.variables) {
    const row = document.createElement("div");
    row.className = "template-var";
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.id = `start-var-${v.name}`;
    input.dataset.name = v.name;
    input.maxLength = 1024;
    input.placeholder = v.default || "";
    input.addEventListener("input", previewStart);
    label.htmlFor = input.id;
    label.textContent = `{{${v.name}}}`;
    row.append(label, input);
    box.append(row);
  }
  previewStart();
}

function startValues() {
  const vars = {};
  for (const input of $("start-vars").querySelectorAll("input")) if (input.value.trim()) vars[input.dataset.name] = input.value;
  return vars;
}

function previewStart() {
  const t = startTemplate();
  if (!t) return;
  const vars = startValues();
  const defaults = Object.fromEntries(t.variables.map((v) => [v.name, v.default]));
  $("start-preview").textContent = t.body.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (m, name) => vars[name] || defaults[name] || `[${name}]`);
}

async function startConversation(ev) {
  ev.preventDefault();
  const t = startTemplate();
  if (!t) return;
  const vars = startValues();
  const missing = t.variables.filter((v) => !vars[v.name] && !v.default);
  if (missing.length) { $("start-info").textContent = `Fill in ${missing.map((v) => `{{${v.name}}}`).join(", ")} first.`; return; }
  if (!starting.clientMsgId) starting.clientMsgId = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/[^a-zA-Z0-9-]/g, "");
  $("start-send").disabled = true;
  $("start-info").textContent = "Starting…";
  try {
    const ack = await send("conversation.start", {
      entry_id: $("start-entry").value, customer: $("start-customer").value.trim(), content_sid: t.sid,
      content_variables: vars, client_msg_id: starting.clientMsgId,
    });
    starting.clientMsgId = "";
    $("start-form").hidden = true;
    $("start-customer").value = "";
    $("start-info").textContent = "";
    state.selected = ack.session_id; // shown as soon as session.assigned arrives
    render();
  } catch (e) {
    if (!lostConnection(e)) starting.clientMsgId = "";
    $("start-info").textContent = lostConnection(e) ? "Not started yet: the connection dropped; press Start again when it is back." : e.message;
  } finally { $("start-send").disabled = false; }
}

async function terminate() {
  if (!state.selected) return;
  deskError("");
  $("confirm-end").hidden = true;
  try { await send("session.terminate", { session_id: state.selected }); } catch (e) { deskError(e.message); }
}

// History: the customer's earlier chats, and one of them read-only.
async function toggleHistory() {
  const panel = $("history-panel");
  if (!panel.hidden) { panel.hidden = true; return; }
  const s = state.sessions.get(state.selected);
  if (!s) return;
  deskError("");
  const ul = $("history-list");
  ul.replaceChildren();
  $("history-view").hidden = true;
  try {
    const r = await send("session.history", { session_id: s.session_id });
    for (const e of r.sessions || []) {
      const li = document.createElement("li");
      li.dataset.sessionId = e.session_id;
      const when = new Date(e.started_at).toLocaleString();
      li.textContent = `${when} · ${channelLabel(e.channel)} · ${e.service_name || ""} · ${(e.outcome || e.state).replace(/_/g, " ")}${e.agent_id ? " · " + e.agent_id : ""}`;
      li.onclick = () => showEarlier(s.session_id, e.session_id);
      ul.append(li);
    }
    if (!ul.children.length) ul.innerHTML = '<li class="muted">No earlier chats.</li>';
  } catch (e) { deskError(e.message); return; }
  panel.hidden = false;
}

async function showEarlier(current, earlier) {
  deskError("");
  try {
    const r = await send("session.earlier", { session_id: current, earlier_session_id: earlier });
    const e = r.session;
    $("history-meta").textContent = `${channelLabel(e.channel)} · ${e.service_name || e.service_id} · ${new Date(e.started_at).toLocaleString()}`;
    const ol = $("history-transcript");
    ol.replaceChildren();
    for (const m of e.messages || []) {
      const li = document.createElement("li");
      li.className = `${m.direction} ${m.sender}`;
      li.append(document.createTextNode(m.body || ""));
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = `${senderLabel(m).replace("You", m.agent_id ? "Agent " + m.agent_id : "Agent")} · ${new Date(m.at).toLocaleString()}`;
      li.append(meta);
      ol.append(li);
    }
    $("history-view").hidden = false;
  } catch (err) { deskError(err.message); }
}

// dismiss closes an ended or transferred chat. The server keeps an
// agent's recently ended chats for their next snapshot until they are
// dismissed, so it is told (a transferred chat is no longer on its list).
async function dismiss() {
  const s = state.sessions.get(state.selected);
  if (!s || (s.state !== "ended" && s.state !== "transferred")) return;
  state.sessions.delete(s.session_id);
  state.selected = "";
  render();
  if (s.state === "ended") {
    try { await send("session.dismiss", { session_id: s.session_id }); } catch (e) { deskError(e.message); }
  }
}

// openTransfer fills the target list with the tenant's services, and an
// entry for a named agent.
async function openTransfer() {
  deskError("");
  $("confirm-end").hidden = true;
  const sel = $("transfer-target");
  sel.replaceChildren();
  try {
    const r = await send("services.list", {});
    for (const svc of r.services || []) sel.append(new Option(`Service: ${svc.name}`, "service:" + svc.id));
  } catch (e) { deskError(e.message); }
  sel.append(new Option("An agent, by id…", "agent:"));
  $("transfer-agent-label").hidden = sel.value !== "agent:";
  $("transfer-form").hidden = false;
}

// parkOrResume parks the selected chat or resumes it; the chat changes
// when the server's session.parked or session.resumed arrives.
async function parkOrResume() {
  const s = state.sessions.get(state.selected);
  if (!s) return;
  const button = $("park");
  button.disabled = true;
  try {
    await send(s.parked ? "session.resume" : "session.park", { session_id: s.session_id });
  } catch (e) { deskError(e.message); } finally { button.disabled = false; }
}

async function transfer(ev) {
  ev.preventDefault();
  if (!state.selected) return;
  deskError("");
  const target = $("transfer-target").value;
  const data = { session_id: state.selected, note: $("transfer-note").value };
  if (target.startsWith("service:")) data.to_service_id = target.slice(8);
  else data.to_agent_id = $("transfer-agent").value.trim();
  $("transfer-submit").disabled = true;
  try {
    await send("session.transfer", data);
    $("transfer-form").hidden = true;
    $("transfer-note").value = "";
  } catch (e) { deskError(e.message); } finally { $("transfer-submit").disabled = false; }
}

// countReply shows what the draft costs. The numbers come from the server
// (pkg/segments, the counter outbound-sender uses), never from a second
// implementation here.
let countTimer = 0;
let gsm7Rewrite = "";
let countSeq = 0;
function countReply() {
  const body = $("reply").value;
  const s = state.sessions.get(state.selected);
  const chars = [...body].length;
  // A count still waiting or under way is of what the box held before
  // (an earlier text, or another chat's draft): it must not land here.
  clearTimeout(countTimer);
  const seq = ++countSeq;
  if (!s || s.channel !== "sms") { $("reply-count").textContent = `${chars} / 1600`; $("gsm7").hidden = true; return; }
  countTimer = setTimeout(async () => {
    try {
      const r = await send("message.count", { body });
      if (seq !== countSeq) return;
      let text = `${chars} / 1600 · ${r.segments} SMS segment${r.segments === 1 ? "" : "s"} · ${r.encoding}`;
      if (r.segments > 0) text += ` · ${r.remaining} left in this segment`;
      if (r.non_gsm && r.non_gsm.length) text += ` · UCS-2 because of ${r.non_gsm.join(" ")}`;
      $("reply-count").textContent = text;
      $("reply-count").dataset.segments = String(r.segments);
      // One typographic character can double the cost: offer the rewrite.
      gsm7Rewrite = r.gsm7_rewrite || "";
      $("gsm7").hidden = !gsm7Rewrite;
      if (gsm7Rewrite) $("gsm7").textContent = `Use plain characters (${r.gsm7_segments} segment${r.gsm7_segments === 1 ? "" : "s"})`;
    } catch (e) { if (seq === countSeq) $("reply-count").textContent = `${chars} / 1600`; }
  }, 150);
}

// unresendable says why sending a failed message again cannot help (the
// server refuses it too).
function unresendable(m) {
  if (m.error_code === 63016 || m.reason === "whatsapp_window_closed") return "Not resent: the WhatsApp window is closed; a template must be sent.";
  if (m.error_code === 21610 || m.reason === "opted_out") return "Not resent: the customer opted out (STOP).";
  return "";
}

async function resend(sessionId, messageId, button) {
  deskError("");
  button.disabled = true;
  const clientMsgId = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/[^a-zA-Z0-9-]/g, "");
  try {
    await send("message.resend", { session_id: sessionId, message_id: messageId, client_msg_id: clientMsgId });
  } catch (e) { deskError(e.message); button.disabled = false; }
}

async function changePresence(p) {
  deskError("");
  try { const r = await send("presence.set", { presence: p }); setPresence(r.presence, r.rona); } catch (e) { deskError(e.message); }
}

$("login-form").addEventListener("submit", login);
$("sign-out").addEventListener("click", signOut);
$("reply-form").addEventListener("submit", reply);
$("template-form").addEventListener("submit", sendTemplate);
$("new-conversation").addEventListener("click", openStart);
$("start-cancel").addEventListener("click", () => { $("start-form").hidden = true; });
$("start-entry").addEventListener("change", loadStartTemplates);
$("start-template").addEventListener("change", showStartTemplate);
$("start-form").addEventListener("submit", startConversation);
$("template-select").addEventListener("change", () => { const s = state.sessions.get(state.selected); if (s) showTemplate(s); });
$("reply").addEventListener("input", () => { countReply(); cannedPicker(); });
$("reply").addEventListener("keydown", (ev) => {
  const first = $("canned-picker").hidden ? null : $("canned-picker").querySelector("li");
  if (first && (ev.key === "Enter" || ev.key === "Tab")) {
    ev.preventDefault();
    const s = state.sessions.get(state.selected);
    const c = s && s.canned && s.canned.find((x) => x.shortcut === first.dataset.shortcut);
    if (c) insertCanned(c);
  }
  if (ev.key === "Escape") $("canned-picker").hidden = true;
});
$("terminate").addEventListener("click", () => { $("transfer-form").hidden = true; $("confirm-end").hidden = false; });
$("terminate-yes").addEventListener("click", terminate);
$("note").addEventListener("click", addNote);
$("attach").addEventListener("click", () => $("attach-file").click());
$("attach-file").addEventListener("change", attachFile);
$("offer-alerts").checked = alertsOn();
$("offer-alerts").addEventListener("change", toggleAlerts);
$("gsm7").addEventListener("click", () => { if (gsm7Rewrite) { $("reply").value = gsm7Rewrite; countReply(); } });
$("view-desk").addEventListener("click", () => show("desk"));
$("view-supervisor").addEventListener("click", () => show("supervisor"));
$("terminate-no").addEventListener("click", () => { $("confirm-end").hidden = true; });
$("dismiss").addEventListener("click", dismiss);
$("history").addEventListener("click", toggleHistory);
$("transfer").addEventListener("click", openTransfer);
$("park").addEventListener("click", parkOrResume);
$("transfer-cancel").addEventListener("click", () => { $("transfer-form").hidden = true; });
$("transfer-target").addEventListener("change", (e) => { $("transfer-agent-label").hidden = e.target.value !== "agent:"; });
$("transfer-form").addEventListener("submit", transfer);
$("presence").addEventListener("change", (e) => changePresence(e.target.value));
$("rona-reset").addEventListener("click", () => changePresence("available"));

if (state.token && state.agent) start(); else show("login");

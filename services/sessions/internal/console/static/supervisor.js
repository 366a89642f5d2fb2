// Supervisor view: the tenant's queues and agents live (distribution's
// watch through the sessions gateway), an agent's chats, and one monitored
// chat with whisper, barge and end. Speaks the same websocket as the desk
// (app.js: state, send, $); PROTOCOL.md lists the supervisor.* frames.
"use strict";

const sv = {
  queues: null,        // last "queues" frame's data
  agent: "",           // agent whose chats are listed
  chats: [],
  session: null,       // the monitored chat
  watching: false,
};

function svError(msg) { $("sv-error").textContent = msg || ""; }

function isSupervisor() { return state.roles.includes("supervisor"); }

async function svWatch() {
  if (!isSupervisor() || !state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  try { await send("supervisor.watch", {}); sv.watching = true; } catch (e) { svError(e.message); }
  if (sv.session) svMonitor(sv.session.session_id); // after a reconnect
}

// Called by app.js after every (re)connect and when the view is shown.
window.supervisorConnected = () => { sv.watching = false; if (!$("supervisor-view").hidden) svWatch(); };
window.supervisorShown = () => { if (!sv.watching) svWatch(); svRender(); };

window.supervisorFrame = (f) => {
  const d = f.data || {};
  switch (f.type) {
    case "queues": sv.queues = d; svRender(); break;
    case "message.added": {
      const s = sv.session;
      if (s && d.session_id === s.session_id && !s.messages.some((m) => m.id === d.message.id)) { s.messages.push(d.message); svRenderChat(); }
      break;
    }
    case "message.status": {
      const s = sv.session;
      const m = s && d.session_id === s.session_id && s.messages.find((x) => x.id === d.message_id);
      if (m) { m.status = d.status; svRenderChat(); }
      break;
    }
    case "session.ended":
    case "session.transferred":
      if (sv.session && d.session_id === sv.session.session_id) {
        sv.session.state = f.type === "session.ended" ? "ended" : "transferred";
        svRenderChat();
      }
      break;
  }
};

function fmtWait(secs) { return `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, "0")}`; }

function agentState(a) {
  if (a.rona) return "RONA";
  if (a.wrapping) return "wrap-up";
  if (a.presence === "available" && a.active_tasks >= a.capacity && a.capacity > 0) return "busy (full)";
  if (a.presence === "available" && a.active_tasks > 0) return "busy";
  return a.presence;
}

function svRender() {
  const q = sv.queues;
  $("sv-at").textContent = q ? `as of ${new Date(q.at).toLocaleTimeString()}` : "";
  const qb = $("sv-queues").querySelector("tbody");
  qb.replaceChildren();
  for (const s of (q && q.services) || []) {
    const tr = document.createElement("tr");
    tr.dataset.serviceId = s.service_id;
    for (const v of [s.service_id, s.waiting, fmtWait(s.longest_wait_seconds || 0), s.agents_available, s.agents_busy, s.agents_wrapping, s.agents_rona, s.agents_away, s.agents_offline]) {
      const td = document.createElement("td");
      td.textContent = String(v);
      tr.append(td);
    }
    qb.append(tr);
  }
  const ab = $("sv-agents").querySelector("tbody");
  ab.replaceChildren();
  for (const a of (q && q.agents) || []) {
    const tr = document.createElement("tr");
    tr.dataset.agentId = a.agent_id;
    tr.classList.toggle("selected", a.agent_id === sv.agent);
    for (const v of [a.agent_id, agentState(a), a.capacity > 0 ? `${a.active_tasks} / ${a.capacity}` : String(a.active_tasks)]) {
      const td = document.createElement("td");
      td.textContent = String(v);
      tr.append(td);
    }
    const td = document.createElement("td");
    const chats = document.createElement("button");
    chats.type = "button"; chats.className = "chats secondary"; chats.textContent = "Chats";
    chats.onclick = () => svChats(a.agent_id);
    td.append(chats);
    if (a.rona) {
      const reset = document.createElement("button");
      reset.type = "button"; reset.className = "reset-rona"; reset.textContent = "Reset RONA";
      reset.onclick = () => svResetRona(a.agent_id, reset);
      td.append(reset);
    }
    tr.append(td);
    ab.append(tr);
  }
  $("sv-chats-head").hidden = !sv.agent;
  $("sv-chats-agent").textContent = sv.agent;
  const ul = $("sv-chats");
  ul.replaceChildren();
  for (const c of sv.chats) {
    const li = document.createElement("li");
    li.dataset.sessionId = c.session_id;
    li.textContent = `${c.customer_name || c.customer} · ${channelLabel(c.channel)} · ${c.service_name || c.service_id}`;
    li.classList.toggle("selected", sv.session && sv.session.session_id === c.session_id);
    li.onclick = () => svMonitor(c.session_id);
    ul.append(li);
  }
  if (sv.agent && !sv.chats.length) ul.innerHTML = '<li class="muted">No active chats.</li>';
  svRenderChat();
}

async function svChats(agentId) {
  svError("");
  sv.agent = agentId;
  try { const r = await send("supervisor.agent_chats", { agent_id: agentId }); sv.chats = r.sessions || []; } catch (e) { sv.chats = []; svError(e.message); }
  svRender();
}

async function svResetRona(agentId, button) {
  svError("");
  button.disabled = true;
  try { await send("supervisor.reset_rona", { agent_id: agentId }); } catch (e) { svError(e.message); button.disabled = false; }
}

async function svMonitor(sessionId) {
  svError("");
  if (sv.session && sv.session.session_id !== sessionId) {
    send("supervisor.unmonitor", { session_id: sv.session.session_id }).catch(() => {});
  }
  try {
    const r = await send("supervisor.monitor", { session_id: sessionId });
    sv.session = r.session;
  } catch (e) { svError(e.message); }
  svRender();
}

function svRenderChat() {
  const s = sv.session;
  $("sv-none").hidden = !!s;
  $("sv-pane").hidden = !s;
  if (!s) return;
  $("sv-customer").textContent = s.customer_name ? `${s.customer_name} (${s.customer})` : s.customer;
  const state_ = s.state === "active" ? "" : ` · ${s.state}`;
  $("sv-meta").textContent = ` · ${channelLabel(s.channel)} · ${s.service_name || s.service_id} · agent ${s.agent_id || "none"}${state_}`;
  renderParams($("sv-details-list"), s.parameters);
  $("sv-details").hidden = !paramEntries(s.parameters).length;
  const over = s.state !== "active";
  for (const id of ["sv-end", "sv-whisper", "sv-barge"]) $(id).disabled = over;
  for (const b of document.querySelectorAll("#sv-whisper-form button, #sv-barge-form button")) b.disabled = over;
  const ol = $("sv-transcript");
  ol.replaceChildren();
  for (const m of s.messages) {
    const li = document.createElement("li");
    li.className = `${m.direction} ${m.sender}${m.visibility === "supervisors" ? " audit" : ""}`;
    li.dataset.messageId = m.id;
    li.append(document.createTextNode(m.body || ""));
    const meta = document.createElement("span");
    meta.className = "meta";
    let who = { customer: "Customer", workflow: "Bot", agent: `Agent ${m.agent_id || ""}`.trim(), supervisor: `Supervisor ${m.agent_id || ""}`.trim(), system: "Audit" }[m.sender] || m.sender;
    if (m.direction === "internal" && m.sender !== "system") who += " · internal";
    meta.textContent = `${who} · ${new Date(m.at).toLocaleTimeString()}${m.status ? " · " + statusLabel(m.status) : ""}`;
    li.append(meta);
    ol.append(li);
  }
  ol.scrollTop = ol.scrollHeight;
}

async function svWhisper(ev) {
  ev.preventDefault();
  const body = $("sv-whisper").value;
  if (!body.trim() || !sv.session) return;
  svError("");
  try { await send("supervisor.whisper", { session_id: sv.session.session_id, body }); $("sv-whisper").value = ""; } catch (e) { svError(e.message); }
}

async function svBarge(ev) {
  ev.preventDefault();
  const body = $("sv-barge").value;
  if (!body.trim() || !sv.session) return;
  svError("");
  const clientMsgId = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/[^a-zA-Z0-9-]/g, "").slice(0, 60);
  try { await send("supervisor.barge", { session_id: sv.session.session_id, body, client_msg_id: clientMsgId }); $("sv-barge").value = ""; } catch (e) { svError(e.message); }
}

async function svEnd() {
  if (!sv.session) return;
  svError("");
  try { await send("supervisor.end", { session_id: sv.session.session_id }); } catch (e) { svError(e.message); }
}

function svStop() {
  if (!sv.session) return;
  send("supervisor.unmonitor", { session_id: sv.session.session_id }).catch(() => {});
  sv.session = null;
  svRender();
}

$("sv-whisper-form").addEventListener("submit", svWhisper);
$("sv-barge-form").addEventListener("submit", svBarge);
$("sv-end").addEventListener("click", svEnd);
$("sv-stop").addEventListener("click", svStop);
if (!$("supervisor-view").hidden) window.supervisorShown();

// The web console: cameras and their online state, file requests with live status (pushed over
// MQTT over WebSocket, never polled), the file when ready, plate reads and plate search.
// Message shapes mirror functions/protocol (the single source of truth):
//  - notification on web/{user}/notifications: {v, request_id, camera_id, file, state,
//    progress?, size?, url?, reason?, at}
//  - presence on {camera}/presence (retained): {v, on}
// Configuration comes from config.json next to this file: {api_url, mqtt_url, user,
// notifications_topic, users: [{name, org, role}], cameras: [{id, name, org}],
// sample_files: [..]}. With `users` (the local stack only) the person picks a demo user and the
// console gets a signed token for it from the local-only POST /local/token; every API call
// carries it as `Authorization: Bearer`.
import { MqttClient, topicMatches } from './mqtt.js';

const RANK = { requested: 0, accepted: 1, uploading: 2, ready: 3, failed: 3, rejected: 3, expired: 3 };
const VIDEO = /\.(mp4|webm|mov|m4v|ogv)$/i;

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
};

const state = { cfg: null, token: null, requests: new Map(), presence: new Map(), searching: null };

async function api(path, init = {}) {
  const headers = { ...(init.headers || {}) };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  const resp = await fetch(state.cfg.api_url + path, { ...init, headers });
  let body = null;
  try { body = await resp.json(); } catch (_) { /* empty or not JSON */ }
  if (!resp.ok) {
    const err = body && (body.error || body);
    const msg = err && err.message ? err.message : `HTTP ${resp.status}`;
    throw new Error(msg);
  }
  return body;
}

function time(secsOrMs, ms = false) {
  const d = new Date(ms ? secsOrMs : secsOrMs * 1000);
  return d.toLocaleTimeString();
}

// ---- cameras
function renderCameras() {
  const body = $('#cameras tbody');
  body.replaceChildren();
  for (const c of state.cfg.cameras) {
    const on = state.presence.get(c.id);
    const label = on === undefined ? 'unknown' : on ? 'online' : 'offline';
    body.append(el('tr', { 'data-camera-id': c.id },
      el('td', {}, c.id), el('td', {}, c.name || ''),
      el('td', { class: label === 'online' ? 'online' : 'offline' }, label)));
  }
}

// ---- requests
function statusText(r) {
  if (r.state === 'uploading' && r.progress != null) return `uploading ${r.progress}%`;
  if ((r.state === 'failed' || r.state === 'rejected') && r.reason) return `${r.state} (${r.reason})`;
  return r.state;
}

// A link from a notification is followed only if it is https:, or http: on the loopback
// interface (the local stack's S3); anything else (javascript:, data:, …) is never a link.
function safeUrl(u) {
  try {
    const url = new URL(u);
    if (url.protocol === 'https:') return true;
    return url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  } catch (_) {
    return false;
  }
}

function upsertRequest(update, announce) {
  if (update.url != null && !safeUrl(update.url)) {
    update = { ...update };
    delete update.url;
    update.refusedUrl = true;
  }
  const cur = state.requests.get(update.request_id);
  if (cur) {
    const older = RANK[update.state] < RANK[cur.state] ||
      (update.state === 'uploading' && cur.state === 'uploading' &&
        (update.progress || 0) < (cur.progress || 0));
    if (older) return; // late or duplicate notification: notifications are idempotent
  }
  const merged = { ...(cur || {}), ...update };
  if (cur && cur.url && !update.url) merged.url = cur.url;
  state.requests.set(update.request_id, merged);
  renderRequest(merged);
  if (announce) $('#status-announcer').textContent = `${merged.file} from ${merged.camera_id}: ${statusText(merged)}`;
}

function renderRequest(r) {
  const body = $('#requests tbody');
  let row = body.querySelector(`tr[data-request-id="${CSS.escape(r.request_id)}"]`);
  const status = el('td', { class: `state state-${r.state}` }, statusText(r));
  if (r.state === 'uploading' && r.progress != null) {
    status.append(' ', el('progress', { max: 100, value: r.progress, ariaLabel: 'upload progress' }));
  }
  const result = el('td', { class: 'result' });
  if (r.state === 'ready') {
    if (r.url) {
      result.append(
        el('button', { type: 'button', class: 'view secondary', onclick: () => view(r) }, 'View'), ' ',
        el('a', { class: 'download', href: r.url, target: '_blank', rel: 'noopener' }, 'Download'),
        r.size != null ? ` (${(r.size / 1e6).toFixed(1)} MB)` : '');
    } else if (r.refusedUrl) {
      result.append('ready (its link was not a safe https link and is not shown)');
    } else {
      result.append('ready (fetching a download link…)');
    }
  }
  const cells = [
    el('td', {}, r.requested_at ? time(r.requested_at) : time(r.at || Date.now() / 1000)),
    el('td', {}, r.camera_id), el('td', {}, r.file), status, result,
  ];
  const fresh = el('tr', { 'data-request-id': r.request_id, 'data-state': r.state }, ...cells);
  if (row) row.replaceWith(fresh);
  else body.prepend(fresh);
}

function view(r) {
  const fig = $('#viewer');
  const media = VIDEO.test(r.file)
    ? el('video', { src: r.url, controls: true, autoplay: true, muted: true })
    : el('img', { src: r.url, alt: `${r.file} from camera ${r.camera_id}` });
  $('#viewer-caption').textContent = `${r.file} from ${r.camera_id}`;
  $('#viewer-body').replaceChildren(media);
  fig.hidden = false;
  fig.scrollIntoView({ block: 'nearest' });
}

async function loadRequests() {
  for (const c of state.cfg.cameras) {
    try {
      const page = await api(`/cameras/${encodeURIComponent(c.id)}/file-requests?limit=20`);
      for (const r of page.items.slice().reverse()) upsertRequest(r, false);
      // A ready request listed without the link its notification carried (a reload, a lost
      // connection): a fresh link from the API.
      for (const r of page.items) {
        const cur = state.requests.get(r.request_id);
        if (r.state === 'ready' && cur && !cur.url) {
          try {
            const d = await api(`/file-requests/${encodeURIComponent(r.request_id)}/download`);
            upsertRequest({ ...cur, url: d.url, size: d.size ?? cur.size }, false);
          } catch (e) {
            console.warn('download link failed', r.request_id, e);
          }
        }
      }
    } catch (e) {
      console.warn('listing requests failed', c.id, e);
    }
  }
}

async function submitRequest(ev) {
  ev.preventDefault();
  const camera = $('#camera-select').value;
  const file = $('#file-input').value.trim();
  const note = $('#note-input').value.trim();
  $('#request-error').textContent = '';
  try {
    const r = await api(`/cameras/${encodeURIComponent(camera)}/file-requests`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': crypto.randomUUID() },
      body: JSON.stringify(note ? { file, note } : { file }),
    });
    upsertRequest(r, true);
  } catch (e) {
    $('#request-error').textContent = `Request refused: ${e.message}`;
  }
}

// ---- plate reads
function renderReads(items, caption) {
  $('#reads-caption').textContent = caption;
  const body = $('#reads tbody');
  body.replaceChildren();
  for (const r of items) {
    const img = r.img
      ? el('button', { type: 'button', class: 'secondary', onclick: () => requestImage(r) }, `Request ${r.img}`)
      : '';
    body.append(el('tr', { 'data-read-id': r.read_id },
      el('td', {}, time(r.t_ms, true)), el('td', {}, r.camera_id), el('td', {}, r.plate),
      el('td', {}, r.plate_raw), el('td', {}, `${r.confidence}%`), el('td', {}, img)));
  }
}

async function requestImage(read) {
  $('#camera-select').value = read.camera_id;
  $('#file-input').value = read.img;
  $('#request-form').requestSubmit();
}

async function loadLatestReads() {
  if (state.searching) return;
  const all = [];
  for (const c of state.cfg.cameras) {
    try {
      const page = await api(`/cameras/${encodeURIComponent(c.id)}/plate-reads?limit=10`);
      all.push(...page.items);
    } catch (e) {
      console.warn('listing reads failed', c.id, e);
    }
  }
  if (state.searching) return;
  all.sort((a, b) => b.t_ms - a.t_ms);
  renderReads(all.slice(0, 15), `Latest reads (${all.length ? 'newest first' : 'none yet'})`);
}

async function search(ev) {
  ev.preventDefault();
  const plate = $('#plate-input').value.trim();
  state.searching = plate;
  try {
    const page = await api(`/plate-reads?plate=${encodeURIComponent(plate)}&limit=50`);
    renderReads(page.items, `${page.items.length} sighting(s) of ${plate}`);
  } catch (e) {
    renderReads([], `Search failed: ${e.message}`);
  }
}

// ---- camera configuration (device shadow `config`: GET/PUT /cameras/{id}/config)
// The settings of anpr_protocol::config::RemoteConfig.
const SETTINGS = ['keep_alive_secs', 'health_interval_secs', 'upload_max_bytes_per_sec',
  'upload_progress_step_pct', 'outbox_batch_max_reads', 'outbox_batch_max_age_secs',
  'recognizer_min_confidence', 'recognizer_region', 'recognizer_group_gap_ms',
  'media_quota_bytes', 'mqtt_port', 'mqtt_alpn'];

async function loadConfig() {
  const cam = $('#config-camera').value;
  if (!cam) return;
  try {
    const view = await api(`/cameras/${encodeURIComponent(cam)}/config`);
    state.configVersion = view.version;
    renderConfig(view);
  } catch (e) {
    $('#config-status').textContent = `Could not read the configuration: ${e.message}`;
  }
}

function renderConfig(view) {
  const keys = new Set([...Object.keys(view.desired), ...Object.keys(view.reported)]);
  keys.delete('config_error');
  const body = $('#config-table tbody');
  body.replaceChildren();
  const show = (v) => (v === undefined ? '' : JSON.stringify(v));
  for (const k of [...keys].sort()) {
    const pending = k in view.pending;
    body.append(el('tr', { 'data-setting': k, 'data-pending': String(pending) },
      el('th', { scope: 'row' }, k), el('td', { class: 'desired' }, show(view.desired[k])),
      el('td', { class: 'reported' }, show(view.reported[k])),
      el('td', {}, pending ? 'waiting for the camera' : '')));
  }
  $('#config-error').textContent = view.error
    ? `The camera refused its configuration: ${JSON.stringify(view.error)}` : '';
  const n = Object.keys(view.pending).length;
  $('#config-status').textContent = `Version ${view.version}: ` +
    (n ? `${n} setting(s) waiting for the camera` : 'the camera runs what is desired');
}

function parseValue(raw) {
  try { return JSON.parse(raw); } catch (_) { return raw; } // a bare word is a string (e.g. a region)
}

async function saveConfig(ev) {
  ev.preventDefault();
  const cam = $('#config-camera').value;
  const setting = $('#config-setting').value;
  const value = parseValue($('#config-value').value.trim());
  const headers = { 'content-type': 'application/json' };
  if (state.configVersion != null) headers['if-match'] = `"${state.configVersion}"`;
  try {
    const view = await api(`/cameras/${encodeURIComponent(cam)}/config`, {
      method: 'PUT', headers, body: JSON.stringify({ [setting]: value }),
    });
    state.configVersion = view.version;
    renderConfig(view);
  } catch (e) {
    $('#config-status').textContent = `Not saved: ${e.message}`;
    loadConfig();
  }
}

function shadowCamera(topic) {
  const m = /^\$aws\/things\/([^/]+)\/shadow\/name\/config\/update\/accepted$/.exec(topic);
  return m ? m[1] : null;
}

// ---- live updates
function onMessage(topic, payload) {
  let msg;
  try { msg = JSON.parse(new TextDecoder().decode(payload)); } catch (_) { return; }
  if (!msg || typeof msg !== 'object') return;
  if (shadowCamera(topic)) { // shadow service messages have no protocol version
    if (shadowCamera(topic) === $('#config-camera').value) loadConfig();
    return;
  }
  if (msg.v !== 1) return;
  if (topic === state.cfg.notifications_topic && typeof msg.request_id === 'string' && msg.state in RANK) {
    upsertRequest(msg, true);
  } else if (topicMatches('+/presence', topic) && typeof msg.on === 'boolean') {
    state.presence.set(topic.split('/')[0], msg.on);
    renderCameras();
  }
}

// A fresh token for the signed-in user (the live connection asks for one before it expires).
async function refreshToken() {
  const resp = await fetch(`${state.cfg.api_url}/local/token`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user: state.cfg.user }),
  });
  if (!resp.ok) throw new Error(`token refresh: HTTP ${resp.status}`);
  state.token = (await resp.json()).token;
  state.tokenAt = Date.now();
}

// Signs in as a demo user (local stack): a token from POST /local/token; only the user's
// organisation's cameras are listed (the API refuses the others anyway).
async function signIn() {
  const users = state.cfg.users || [];
  if (!users.length) return;
  const picked = sessionStorage.getItem('anpr-user');
  const user = users.find((u) => u.name === picked) || users.find((u) => u.name === state.cfg.user) || users[0];
  const resp = await fetch(`${state.cfg.api_url}/local/token`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user: user.name }),
  });
  if (!resp.ok) throw new Error(`signing in as ${user.name}: HTTP ${resp.status}`);
  const t = await resp.json();
  state.token = t.token;
  state.tokenAt = Date.now();
  state.cfg.user = t.user;
  state.cfg.notifications_topic = t.notifications_topic;
  state.cfg.cameras = state.cfg.cameras.filter((c) => c.org === t.org);
  const select = $('#user-select');
  for (const u of users) {
    select.append(el('option', { value: u.name, selected: u.name === t.user }, `${u.name} (${u.role}, ${u.org})`));
  }
  select.hidden = false;
  select.addEventListener('change', () => {
    sessionStorage.setItem('anpr-user', select.value);
    location.reload();
  });
  document.body.dataset.user = t.user;
}

async function main() {
  state.cfg = await (await fetch('config.json', { cache: 'no-store' })).json();
  await signIn();
  $('#user').textContent = state.cfg.user;
  const select = $('#camera-select');
  for (const c of state.cfg.cameras) select.append(el('option', { value: c.id }, `${c.id} ${c.name ? '– ' + c.name : ''}`));
  for (const f of state.cfg.sample_files || []) $('#sample-files').append(el('option', { value: f }));
  for (const c of state.cfg.cameras) $('#config-camera').append(el('option', { value: c.id }, c.id));
  for (const k of SETTINGS) $('#config-setting').append(el('option', { value: k }, k));
  $('#config-camera').addEventListener('change', () => { state.configVersion = null; loadConfig(); });
  $('#config-form').addEventListener('submit', saveConfig);
  renderCameras();
  $('#request-form').addEventListener('submit', submitRequest);
  $('#search-form').addEventListener('submit', search);
  $('#search-clear').addEventListener('click', () => { state.searching = null; loadLatestReads(); });

  // The notification session is clean: what was published while the link was down is gone.
  // After a reconnect the page reloads what notifications would have changed.
  let dropped = false;
  // The broker admits the console with the user's token as the password, under a client id
  // of the form web-{user}-{random}, and lets it subscribe to the user's notifications and the
  // organisation's cameras only.
  const userLevel = state.cfg.notifications_topic.split('/')[1];
  const mqtt = new MqttClient(state.cfg.mqtt_url, {
    clientId: `web-${userLevel}-${Math.random().toString(36).slice(2, 10)}`,
    credentials: async () => {
      if (Date.now() - (state.tokenAt || 0) > 50 * 60 * 1000) await refreshToken();
      return { username: state.cfg.user, password: state.token || '' };
    },
    onMessage,
    onState: (s) => {
      $('#mqtt-state').textContent = s;
      document.body.dataset.mqtt = s;
      if (s === 'offline') dropped = true;
      if (s === 'online' && dropped) {
        dropped = false;
        loadRequests().then(loadConfig).catch(() => {});
      }
    },
  });
  mqtt.subscribe(state.cfg.notifications_topic, 1);
  for (const c of state.cfg.cameras) {
    mqtt.subscribe(`${c.id}/presence`, 1);
    // The shadow service's accepted updates (the camera's reports among them). In AWS the web
    // identity's policy must allow these; otherwise the editor refreshes on save only.
    mqtt.subscribe(`$aws/things/${c.id}/shadow/name/config/update/accepted`, 1);
  }
  mqtt.connect();

  await loadRequests();
  await loadLatestReads();
  await loadConfig();
  setInterval(loadLatestReads, 5000);
  document.body.dataset.ready = 'true';
}

main().catch((e) => {
  $('#mqtt-state').textContent = `console failed to start: ${e.message}`;
});

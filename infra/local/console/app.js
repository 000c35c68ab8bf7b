// The web console: cameras and their online state, file requests with live status (pushed over
// MQTT over WebSocket, never polled), the file when ready, plate reads and plate search.
// Message shapes mirror functions/protocol (the single source of truth), both on the signed-in
// user's organisation's topic web/org/{org}/notifications:
//  - a request changed state: {v, request_id, camera_id, file, state, progress?, size?, url?,
//    reason?, at}
//  - a camera connected or disconnected: {v, camera_id, online, last_seen_ms}
// Cameras come from GET /cameras (the organisation's, with online state); nothing about cameras
// is in config.json: {api_url, mqtt_url, mqtt_keepalive_secs, sample_files, auth: {domain_url,
// client_id, authorizer}}. Signing in (the hosted UI, Cognito's or the local stand-in): auth.js.
import { MqttClient } from './mqtt.js';
import { Session } from './auth.js';

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

const state = { cfg: null, session: null, cameras: [], requests: new Map(), searching: null };

async function api(path, init = {}) {
  const headers = { ...(init.headers || {}) };
  if (state.session && state.session.token) headers.authorization = `Bearer ${state.session.token}`;
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
async function loadCameras() {
  const all = [];
  let cursor = null;
  do {
    const page = await api(`/cameras?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    all.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  state.cameras = all;
  renderCameras();
}

function renderCameras() {
  const body = $('#cameras tbody');
  body.replaceChildren();
  for (const c of state.cameras) {
    const label = c.online ? 'online' : 'offline';
    const since = c.last_seen_ms ? ` (since ${time(c.last_seen_ms, true)})` : '';
    body.append(el('tr', { 'data-camera-id': c.camera_id },
      el('td', {}, c.camera_id), el('td', {}, c.name || ''),
      el('td', { class: label, title: `${label}${since}` }, label)));
  }
}

function onPresence(msg) {
  const c = state.cameras.find((x) => x.camera_id === msg.camera_id);
  if (!c || (c.last_seen_ms && msg.last_seen_ms < c.last_seen_ms)) return;
  c.online = msg.online;
  c.last_seen_ms = msg.last_seen_ms;
  renderCameras();
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
  for (const c of state.cameras) {
    try {
      const page = await api(`/cameras/${encodeURIComponent(c.camera_id)}/file-requests?limit=20`);
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
      console.warn('listing requests failed', c.camera_id, e);
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
  for (const c of state.cameras) {
    try {
      const page = await api(`/cameras/${encodeURIComponent(c.camera_id)}/plate-reads?limit=10`);
      all.push(...page.items);
    } catch (e) {
      console.warn('listing reads failed', c.camera_id, e);
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
  // The camera's report comes through its shadow, which a browser does not subscribe to:
  // while settings are pending, the page asks again every two seconds.
  clearTimeout(state.configPoll);
  if (n) state.configPoll = setTimeout(loadConfig, 2000);
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

// ---- live updates
function onMessage(topic, payload) {
  if (topic !== state.topic) return;
  let msg;
  try { msg = JSON.parse(new TextDecoder().decode(payload)); } catch (_) { return; }
  if (!msg || typeof msg !== 'object' || msg.v !== 1) return;
  if (typeof msg.request_id === 'string' && msg.state in RANK) {
    upsertRequest(msg, true);
  } else if (typeof msg.camera_id === 'string' && typeof msg.online === 'boolean') {
    onPresence(msg);
  }
}

async function main() {
  state.cfg = await (await fetch('config.json', { cache: 'no-store' })).json();
  state.session = new Session(state.cfg);
  await state.session.signIn();
  const session = state.session;
  // Everyone of the organisation hears of its requests and cameras here, and nobody else.
  state.topic = `web/org/${session.org}/notifications`;
  document.body.dataset.user = session.user;
  $('#user').textContent = session.user;
  $('#sign-out').addEventListener('click', () => session.signOut());
  await loadCameras();
  const select = $('#camera-select');
  for (const c of state.cameras) select.append(el('option', { value: c.camera_id }, `${c.camera_id} ${c.name ? '– ' + c.name : ''}`));
  for (const f of state.cfg.sample_files || []) $('#sample-files').append(el('option', { value: f }));
  for (const c of state.cameras) $('#config-camera').append(el('option', { value: c.camera_id }, c.camera_id));
  for (const k of SETTINGS) $('#config-setting').append(el('option', { value: k }, k));
  $('#config-camera').addEventListener('change', () => { state.configVersion = null; loadConfig(); });
  $('#config-form').addEventListener('submit', saveConfig);
  $('#request-form').addEventListener('submit', submitRequest);
  $('#search-form').addEventListener('submit', search);
  $('#search-clear').addEventListener('click', () => { state.searching = null; loadLatestReads(); });

  // The notification session is clean: what was published while the link was down is gone.
  // After a reconnect the page reloads what notifications would have changed.
  let dropped = false;
  // The broker (AWS IoT through the custom authorizer, or the local listener) admits the
  // console with the user's ID token, under a client id web-{user}-{random}, and lets it
  // subscribe to its organisation's notifications only. In AWS the token travels in the URL
  // (custom authorizer, signing disabled); locally as the MQTT password. Both are asked afresh
  // before every connection, so a refreshed token is used on the next one.
  const auth = state.cfg.auth;
  const mqtt = new MqttClient(auth.authorizer
    ? async () => `${state.cfg.mqtt_url}?${new URLSearchParams({ 'x-amz-customauthorizer-name': auth.authorizer, token: session.token })}`
    : state.cfg.mqtt_url, {
    clientId: `web-${session.user}-${Math.random().toString(36).slice(2, 10)}`,
    keepAlive: state.cfg.mqtt_keepalive_secs,
    credentials: async () => ({ username: session.user, password: session.token || '' }),
    onMessage,
    onState: (s) => {
      $('#mqtt-state').textContent = s;
      document.body.dataset.mqtt = s;
      // Page opened -> signed in and live, in ms (a figure the browser test reads).
      if (s === 'online' && !document.body.dataset.liveMs) document.body.dataset.liveMs = String(Math.round(performance.now()));
      if (s === 'offline') dropped = true;
      if (s === 'online' && dropped) {
        dropped = false;
        loadCameras().then(loadRequests).then(loadConfig).catch(() => {});
      }
    },
  });
  mqtt.subscribe(state.topic, 1);
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

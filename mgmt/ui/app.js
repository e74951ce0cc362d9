// ringmq management dashboard: a single page over the RabbitMQ-compatible HTTP API (/api/...).
// Plain JS, no framework. Every value that comes from the server is put into the page with
// textContent (through el() below), never as HTML: queue, user and vhost names are user input.
'use strict';
(function () {
  const AUTH_KEY = 'ringmq.auth';
  const POLL_MS = 5000;      // refresh period of every page
  const HISTORY = 60;        // points kept for the overview charts
  const COLORS = ['#2563eb', '#16a34a', '#ea580c', '#9333ea', '#0891b2'];

  // ---------------------------------------------------------------- small helpers

  // el('div', {class, testid, text, onclick, ...attrs}, ...children): children are Nodes or text.
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'class') e.className = v;
      else if (k === 'testid') e.dataset.testid = v;
      else if (k === 'value' || k === 'checked') e[k] = v;
      else if (k === 'style') Object.assign(e.style, v);   // CSSOM: fine under a strict CSP
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid != null && kid !== false) e.append(kid instanceof Node ? kid : String(kid));
    }
    return e;
  }
  const clear = (node, ...kids) => { node.replaceChildren(); node.append(...kids.filter(Boolean)); };
  const pick = (obj, path) => path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
  const enc = encodeURIComponent;
  const qpath = (vhost, name) => `${enc(vhost)}/${enc(name)}`;
  const xname = (name) => (name === '' ? 'amq.default' : name);   // URL alias of the default exchange

  function fmtNum(n) {
    if (n == null || n === '') return '–';
    return typeof n === 'number' ? n.toLocaleString('en-US') : String(n);
  }
  function fmtRate(r) {
    if (r == null) return '–';
    const d = r >= 100 ? 0 : r >= 10 ? 1 : 2;
    return `${Number(r).toFixed(d)}/s`;
  }
  function fmtBytes(b) {
    if (b == null) return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (Math.abs(b) >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return `${b.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
  }
  function fmtSecs(s) {
    if (s == null || !isFinite(s)) return '+Inf';
    if (s < 1e-3) return `${+(s * 1e6).toPrecision(3)} µs`;
    if (s < 1) return `${+(s * 1e3).toPrecision(3)} ms`;
    return `${+s.toPrecision(3)} s`;
  }
  const fmtPlain = (v) => (v == null || v === '' ? '–' : String(v));
  const fmtRegex = (v) => (v === '' ? '(none)' : fmtPlain(v));   // permission patterns
  const fmtBool = (b) => (b == null ? '–' : b ? 'yes' : 'no');
  const fmtTime = (t) => new Date(t).toLocaleTimeString('en-GB');
  const fmtTags = (t) => (Array.isArray(t) ? t.join(', ') : t || '');
  const fmtArgs = (a) => Object.entries(a || {}).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join('\n') || '–';

  // Unicode-safe base64 for the Basic auth header.
  const b64 = (s) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));

  // ---------------------------------------------------------------- auth + API

  function getAuth() {
    try { return JSON.parse(sessionStorage.getItem(AUTH_KEY)); } catch (_) { return null; }
  }
  let loginError = '';
  let flash = '';   // one-off message shown on the next page (e.g. "queue deleted")

  class ApiError extends Error {
    constructor(status, message, reason) { super(message); this.status = status; this.reason = reason; }
  }

  // api(path, {method, body, headers, auth, login}): JSON (or null) on 2xx, ApiError otherwise.
  // A 401 outside the login form logs out and returns to the login page with the server's reason.
  async function api(path, opts = {}) {
    const auth = opts.auth || getAuth();
    // No Accept header: RabbitMQ answers 406 to DELETE .../contents with Accept: application/json.
    const headers = Object.assign({}, opts.headers || {});
    if (auth) headers.Authorization = 'Basic ' + b64(`${auth.user}:${auth.pass}`);
    const init = { method: opts.method || 'GET', headers, credentials: 'omit', cache: 'no-store' };
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.body);
    }
    let res;
    try {
      res = await fetch(path.replace(/^\//, ''), init);
    } catch (e) {
      throw new ApiError(0, `cannot reach the server (${e.message})`);
    }
    const text = await res.text();
    let data = null;
    if (text) { try { data = JSON.parse(text); } catch (_) { data = text; } }
    if (res.ok) return data;
    const reason = (data && (data.reason || data.error)) || res.statusText || 'error';
    const err = new ApiError(res.status, `${res.status}: ${reason}`, reason);
    if (res.status === 401 && !opts.login) {
      sessionStorage.removeItem(AUTH_KEY);
      loginError = `Please log in again (the server said: ${reason}).`;
      location.hash = '#/login';
    }
    throw err;
  }

  // ---------------------------------------------------------------- routing + polling

  let timer = null;   // the current page's refresh interval
  let onResize = null;

  // every(fn): run fn now and every POLL_MS until the page changes.
  function every(fn) {
    fn();
    timer = setInterval(fn, POLL_MS);
  }

  const routes = [
    [/^\/login$/, 'login', pageLogin],
    [/^\/overview$/, 'overview', pageOverview],
    [/^\/queues$/, 'queues', pageQueues],
    [/^\/queues\/([^/]+)\/([^/]+)$/, 'queues', pageQueue],
    [/^\/exchanges$/, 'exchanges', pageExchanges],
    [/^\/exchanges\/([^/]+)\/([^/]+)$/, 'exchanges', pageExchange],
    [/^\/connections$/, 'connections', pageConnections],
    [/^\/channels$/, 'channels', pageChannels],
    [/^\/users$/, 'users', pageUsers],
    [/^\/vhosts$/, 'vhosts', pageVhosts],
    [/^\/permissions$/, 'permissions', pagePermissions],
  ];

  function route() {
    clearInterval(timer);
    timer = null;
    onResize = null;
    const hash = location.hash.replace(/^#/, '') || '/overview';
    const auth = getAuth();
    if (!auth && hash !== '/login') { location.hash = '#/login'; return; }
    const found = routes.find(([re]) => re.test(hash));
    if (!found) { location.hash = '#/overview'; return; }
    const [re, name, handler] = found;
    const args = hash.match(re).slice(1).map(decodeURIComponent);
    document.getElementById('topbar').hidden = name === 'login';
    document.getElementById('who').textContent = auth ? auth.user : '';
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === name);
    const main = document.getElementById('main');
    main.replaceChildren();
    main.dataset.page = name;
    if (flash) { main.append(el('div', { class: 'notice ok', testid: 'flash', text: flash })); flash = ''; }
    handler(main, ...args);
  }

  // ---------------------------------------------------------------- page building blocks

  // Page title with an "updated at" stamp; returns {node, stamp()}.
  function pageHead(title, sub) {
    const updated = el('span', { class: 'updated', testid: 'updated' });
    const node = el('div', { class: 'page-head' },
      el('h1', { testid: 'page-title' }, title, sub ? el('span', { class: 'sub', text: sub }) : null),
      updated);
    return { node, stamp: () => { updated.textContent = `updated ${fmtTime(Date.now())} · refreshes every ${POLL_MS / 1000} s`; } };
  }

  // An error line that a page shows while its last refresh failed.
  function errorBox() {
    const box = el('div', { class: 'notice error', testid: 'error', hidden: true });
    return {
      node: box,
      show(e) { if (e && e.status === 401) return; box.textContent = e ? e.message || String(e) : ''; box.hidden = !e; },
    };
  }

  const sortState = {};   // table testid -> {key, reverse} for client-side sorted tables

  // table(testid, cols, rows, opts): cols are {key, label, get?, fmt?, node?, num?, cls?, nosort?}.
  // opts.rowId(row) gives each row's data-testid; opts.server = {key, reverse, onSort} sorts on the
  // server instead of here.
  function table(testid, cols, rows, opts = {}) {
    const server = opts.server;
    const st = server || sortState[testid] || {};
    const value = (c, r) => (c.get ? c.get(r) : pick(r, c.key));
    if (!server && st.key) {
      const c = cols.find((x) => x.key === st.key);
      if (c) {
        rows = rows.slice().sort((a, b) => {
          const x = value(c, a), y = value(c, b);
          const cmp = typeof x === 'number' && typeof y === 'number' ? x - y : String(x ?? '').localeCompare(String(y ?? ''));
          return st.reverse ? -cmp : cmp;
        });
      }
    }
    const head = el('tr', null, cols.map((c) => {
      const sortable = !c.nosort;
      const key = c.key;
      const th = el('th', { class: `col-${c.cls || c.key}${c.num ? ' num' : ''}${sortable ? ' sortable' : ''}`, scope: 'col' }, c.label);
      if (st.key === key) th.append(el('span', { class: 'arrow', text: st.reverse ? ' ▼' : ' ▲' }));
      if (sortable) {
        th.addEventListener('click', () => {
          const reverse = st.key === key ? !st.reverse : false;
          if (server) server.onSort(key, reverse);
          else { sortState[testid] = { key, reverse }; opts.resort(); }
        });
      }
      return th;
    }));
    const body = el('tbody', null, rows.map((r) => el('tr', { testid: opts.rowId ? opts.rowId(r) : null, 'data-vhost': r.vhost },
      cols.map((c) => {
        const td = el('td', { class: `col-${c.cls || c.key}${c.num ? ' num' : ''}` });
        if (c.node) td.append(c.node(r));
        else td.textContent = (c.fmt || fmtNum)(value(c, r));
        return td;
      }))));
    if (!rows.length) body.append(el('tr', { class: 'empty' }, el('td', { colspan: cols.length, text: opts.empty || 'Nothing to show.' })));
    return el('div', { class: 'table-wrap' }, el('table', { class: 'data', testid }, el('thead', null, head), body));
  }

  // A list page: title, error line, a table refreshed every POLL_MS from `path`.
  function listPage(main, title, path, testid, cols, opts = {}) {
    const head = pageHead(title);
    const err = errorBox();
    const holder = el('div');
    main.append(head.node, err.node, holder);
    let rows = [];
    const draw = () => clear(holder, table(testid, cols, rows, Object.assign({ resort: draw }, opts)));
    every(async () => {
      try {
        rows = await api(path);
        draw();
        head.stamp();
        err.show(null);
      } catch (e) { err.show(e); }
    });
    return { refresh: () => api(path).then((r) => { rows = r; draw(); }).catch(err.show) };
  }

  const link = (href, text) => el('a', { href, text });
  const queueLink = (vhost, name) => link(`#/queues/${qpath(vhost, name)}`, name);
  const exchangeLink = (vhost, name) => link(`#/exchanges/${qpath(vhost, xname(name))}`, name === '' ? '(AMQP default)' : name);
  const card = (title, ...body) => el('section', { class: 'card' }, title ? el('h2', { text: title }) : null, ...body);
  const stat = (label, value, testid, cls) =>
    el('div', { class: `stat ${cls || ''}` }, el('div', { class: 'stat-value', testid, text: value }), el('div', { class: 'stat-label', text: label }));
  const kvTable = (pairs) => el('table', { class: 'kv' }, el('tbody', null,
    pairs.map(([k, v, testid, pre]) => el('tr', null, el('th', { text: k }), el('td', { testid, class: pre ? 'pre' : null }, v)))));

  function actionButton(label, testid, cls, fn) {
    const b = el('button', { type: 'button', class: `btn ${cls || ''}`, testid, text: label });
    b.addEventListener('click', async () => {
      b.disabled = true;
      try { await fn(); } finally { b.disabled = false; }
    });
    return b;
  }

  // ---------------------------------------------------------------- charts (canvas)

  // Size a canvas to its CSS box at the device's pixel ratio; returns a 2D context in CSS pixels.
  function prepCanvas(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 600, h = canvas.clientHeight || 220;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = '11px system-ui, -apple-system, "Segoe UI", sans-serif';
    return { ctx, w, h };
  }

  // A round upper bound for an axis, and its step for `n` grid lines.
  function niceMax(v, n = 4) {
    if (!(v > 0)) return 1;
    const raw = v / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    return step * n;
  }
  const shortNum = (v) => (v >= 1e6 ? `${+(v / 1e6).toFixed(1)}M` : v >= 1e3 ? `${+(v / 1e3).toFixed(1)}k` : `${+v.toFixed(2)}`);

  function drawYAxis(ctx, pad, w, h, max) {
    ctx.strokeStyle = '#e5e7eb';
    ctx.fillStyle = '#6b7280';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + (h - pad.t - pad.b) * (1 - i / 4);
      ctx.beginPath(); ctx.moveTo(pad.l, y + 0.5); ctx.lineTo(w - pad.r, y + 0.5); ctx.stroke();
      ctx.fillText(shortNum((max * i) / 4), pad.l - 6, y);
    }
  }

  // Time series: points [{t, v: {key: number}}], series [{key, label, color}], over the last
  // HISTORY * POLL_MS milliseconds.
  function drawLines(canvas, points, series, unit) {
    const { ctx, w, h } = prepCanvas(canvas);
    const pad = { l: 48, r: 12, t: 22, b: 22 };
    const tEnd = points.length ? points[points.length - 1].t : Date.now();
    const span = Math.min(HISTORY * POLL_MS, Math.max(60000, points.length ? tEnd - points[0].t : 0));
    const tStart = tEnd - span;
    let max = 0;
    for (const p of points) for (const s of series) max = Math.max(max, p.v[s.key] || 0);
    max = niceMax(max);
    drawYAxis(ctx, pad, w, h, max);
    ctx.fillStyle = '#6b7280';
    ctx.textBaseline = 'top';
    ctx.textAlign = 'left';
    ctx.fillText(span < 120000 ? `-${Math.round(span / 1000)} s` : `-${+(span / 60000).toFixed(1)} min`, pad.l, h - pad.b + 6);
    ctx.textAlign = 'right';
    ctx.fillText(points.length ? fmtTime(tEnd) : 'waiting for data…', w - pad.r, h - pad.b + 6);
    if (unit) { ctx.textAlign = 'left'; ctx.fillText(unit, 4, 2); }
    const x = (t) => pad.l + ((t - tStart) / span) * (w - pad.l - pad.r);
    const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - v / max);
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      points.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.v[s.key] || 0)) : ctx.moveTo(x(p.t), y(p.v[s.key] || 0))));
      ctx.stroke();
      const last = points[points.length - 1];
      if (last) { ctx.beginPath(); ctx.arc(x(last.t), y(last.v[s.key] || 0), 3, 0, 2 * Math.PI); ctx.fill(); }
    }
    ctx.lineWidth = 1;
    canvas.dataset.points = String(points.length);
  }

  // Bars: [{label, value}].
  function drawBars(canvas, bars, color) {
    const { ctx, w, h } = prepCanvas(canvas);
    const pad = { l: 48, r: 12, t: 14, b: 34 };
    const max = niceMax(Math.max(0, ...bars.map((b) => b.value)));
    drawYAxis(ctx, pad, w, h, max);
    const slot = (w - pad.l - pad.r) / Math.max(1, bars.length);
    const stride = Math.ceil(62 / slot);   // label every n-th bar so labels do not overlap
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    bars.forEach((b, i) => {
      const x0 = pad.l + i * slot, bh = ((h - pad.t - pad.b) * b.value) / max;
      ctx.fillStyle = color;
      ctx.fillRect(x0 + slot * 0.12, h - pad.b - bh, slot * 0.76, bh);
      if (i % stride === 0) { ctx.fillStyle = '#6b7280'; ctx.fillText(b.label, x0 + slot / 2, h - pad.b + 5); }
    });
    ctx.fillStyle = '#6b7280';
    ctx.textAlign = 'right';
    ctx.fillText('latency bucket (≤ upper bound)', w - pad.r, h - 13);
    canvas.dataset.points = String(bars.length);
  }

  function legend(series, values, fmt) {
    return el('div', { class: 'legend' }, series.map((s) => el('span', { class: 'legend-item' },
      el('i', { class: 'swatch', style: { background: s.color } }), `${s.label} `,
      el('b', { testid: `legend-${s.key}`, text: fmt(values ? values[s.key] : null) }))));
  }

  // ---------------------------------------------------------------- login

  function pageLogin(main) {
    const user = el('input', { name: 'username', autocomplete: 'username', required: true, testid: 'login-username' });
    const pass = el('input', { name: 'password', type: 'password', autocomplete: 'current-password', testid: 'login-password' });
    const error = el('div', { class: 'notice error', testid: 'login-error', hidden: !loginError, text: loginError });
    loginError = '';
    const submit = el('button', { type: 'submit', class: 'btn btn-primary', testid: 'login-submit', text: 'Log in' });
    const form = el('form', { class: 'login card', testid: 'login-form' },
      el('div', { class: 'brand big' }, 'ring', el('span', { text: 'mq' })),
      el('p', { class: 'muted', text: 'Management dashboard' }),
      error,
      el('label', null, 'Username', user),
      el('label', null, 'Password', pass),
      submit);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const auth = { user: user.value, pass: pass.value };
      submit.disabled = true;
      try {
        await api('/api/whoami', { auth, login: true });
        sessionStorage.setItem(AUTH_KEY, JSON.stringify(auth));
        location.hash = '#/overview';
      } catch (e) {
        error.textContent = e.status === 401 ? `Login failed: ${e.reason}. Check the username and password.` : `Login failed: ${e.message}`;
        error.hidden = false;
      } finally { submit.disabled = false; }
    });
    main.append(form);
    (user.value ? pass : user).focus();
  }

  // ---------------------------------------------------------------- overview

  const history = [];   // [{t, rates: {...}, queued: {...}}], kept across page changes
  const RATE_SERIES = [
    { key: 'publish', label: 'Publish', color: COLORS[0] },
    { key: 'deliver_get', label: 'Deliver / get', color: COLORS[1] },
    { key: 'ack', label: 'Ack', color: COLORS[2] },
    { key: 'confirm', label: 'Confirm', color: COLORS[3] },
  ];
  const QUEUED_SERIES = [
    { key: 'messages', label: 'Total', color: COLORS[0] },
    { key: 'messages_ready', label: 'Ready', color: COLORS[1] },
    { key: 'messages_unacknowledged', label: 'Unacked', color: COLORS[2] },
  ];

  function pageOverview(main) {
    const head = pageHead('Overview');
    const err = errorBox();
    const alarms = el('div', { testid: 'alarms' });
    const product = el('div', { class: 'product', testid: 'product' });
    const totals = el('div', { class: 'stats', testid: 'object-totals' });
    const queued = el('div', { class: 'stats', testid: 'queue-totals' });
    const rates = el('div', { class: 'stats', testid: 'message-rates' });
    const rateCanvas = el('canvas', { class: 'chart', testid: 'rates-chart' });
    const queuedCanvas = el('canvas', { class: 'chart', testid: 'queued-chart' });
    const rateLegend = el('div'), queuedLegend = el('div');
    const nodes = el('div', { testid: 'nodes' });
    main.append(head.node, err.node, alarms, product,
      el('div', { class: 'grid2' },
        card('Queued messages', queued, queuedCanvas, queuedLegend),
        card('Message rates', rates, rateCanvas, rateLegend)),
      card('Totals', totals),
      card('Nodes', nodes));

    const draw = () => {
      const last = history[history.length - 1];
      drawLines(rateCanvas, history.map((p) => ({ t: p.t, v: p.rates })), RATE_SERIES, 'msg/s');
      drawLines(queuedCanvas, history.map((p) => ({ t: p.t, v: p.queued })), QUEUED_SERIES, 'messages');
      clear(rateLegend, legend(RATE_SERIES, last && last.rates, fmtRate));
      clear(queuedLegend, legend(QUEUED_SERIES, last && last.queued, fmtNum));
    };
    onResize = draw;
    draw();

    every(async () => {
      try {
        const [ov, nodeList] = await Promise.all([api('/api/overview'), api('/api/nodes').catch(() => [])]);
        const ms = ov.message_stats || {}, qt = ov.queue_totals || {}, ot = ov.object_totals || {};
        const rate = (k) => pick(ms, `${k}_details.rate`) || 0;
        history.push({
          t: Date.now(),
          rates: { publish: rate('publish'), deliver_get: rate('deliver_get'), ack: rate('ack'), confirm: rate('confirm') },
          queued: { messages: qt.messages || 0, messages_ready: qt.messages_ready || 0, messages_unacknowledged: qt.messages_unacknowledged || 0 },
        });
        while (history.length > HISTORY) history.shift();
        clear(product, el('strong', { text: `${ov.product_name || 'ringmq'} ${ov.product_version || ''}` }),
          ov.node ? el('span', { class: 'muted', text: ` on node ${ov.node}` }) : null,
          ov.cluster_name ? el('span', { class: 'muted', text: ` · cluster ${ov.cluster_name}` }) : null);
        clear(totals, ...['connections', 'channels', 'exchanges', 'queues', 'consumers']
          .map((k) => stat(k[0].toUpperCase() + k.slice(1), fmtNum(ot[k]), `total-${k}`)));
        clear(queued, stat('Total', fmtNum(qt.messages), 'total-messages'),
          stat('Ready', fmtNum(qt.messages_ready), 'total-ready'),
          stat('Unacked', fmtNum(qt.messages_unacknowledged), 'total-unacked'));
        clear(rates, ...RATE_SERIES.map((s) => stat(s.label, fmtRate(rate(s.key)), `rate-${s.key}`)));
        renderNodes(nodes, alarms, nodeList || []);
        draw();
        head.stamp();
        err.show(null);
      } catch (e) { err.show(e); }
    });
  }

  function meter(used, limit, invert) {
    // invert: for disk, "free" should stay above the limit
    if (used == null || !limit) return el('span', { text: '–' });
    const frac = invert ? Math.min(1, limit / Math.max(used, 1)) : Math.min(1, used / limit);
    return el('div', { class: 'meter' }, el('div', { class: `meter-bar${frac >= 1 ? ' bad' : frac > 0.8 ? ' warn' : ''}`, style: { width: `${(frac * 100).toFixed(1)}%` } }));
  }

  function renderNodes(box, alarmBox, list) {
    const alarms = [];
    for (const n of list) {
      if (n.mem_alarm) alarms.push(`Memory alarm on ${n.name}: ${fmtBytes(n.mem_used)} used, limit ${fmtBytes(n.mem_limit)}. Publishers are blocked.`);
      if (n.disk_free_alarm) alarms.push(`Disk alarm on ${n.name}: ${fmtBytes(n.disk_free)} free, limit ${fmtBytes(n.disk_free_limit)}. Publishers are blocked.`);
    }
    clear(alarmBox, ...alarms.map((a) => el('div', { class: 'alarm', testid: 'alarm-banner', text: `⚠ ${a}` })));
    const badge = (on, label) => el('span', { class: `badge ${on ? 'badge-alarm' : 'badge-ok'}`, text: on ? `${label} ALARM` : `${label} ok` });
    clear(box, table('nodes-table', [
      { key: 'name', label: 'Node' },
      { key: 'mem', label: 'Memory used / limit', nosort: true, node: (n) => el('div', { class: 'res' },
        el('span', { text: `${fmtBytes(n.mem_used)} / ${fmtBytes(n.mem_limit)}` }), meter(n.mem_used, n.mem_limit)) },
      { key: 'disk', label: 'Disk free / limit', nosort: true, node: (n) => el('div', { class: 'res' },
        el('span', { text: `${fmtBytes(n.disk_free)} / ${fmtBytes(n.disk_free_limit)}` }), meter(n.disk_free, n.disk_free_limit, true)) },
      { key: 'alarms', label: 'Alarms', nosort: true, node: (n) => el('span', null, badge(n.mem_alarm, 'memory'), ' ', badge(n.disk_free_alarm, 'disk')) },
      { key: 'uptime', label: 'Uptime', num: true, fmt: (ms) => (ms == null ? '–' : `${Math.floor(ms / 3600000)} h ${Math.floor((ms % 3600000) / 60000)} min`) },
    ], list, { resort: () => renderNodes(box, alarmBox, list), rowId: (n) => `node-row-${n.name}` }));
  }

  // ---------------------------------------------------------------- queues

  const qstate = { page: 1, page_size: 50, name: '', sort: 'name', reverse: false };

  function pageQueues(main) {
    const head = pageHead('Queues');
    const err = errorBox();
    const filter = el('input', { type: 'search', placeholder: 'Filter by name', testid: 'queue-filter', value: qstate.name });
    const size = el('select', { testid: 'page-size' }, [20, 50, 100, 500].map((n) => el('option', { value: String(n), text: `${n} per page` })));
    size.value = String(qstate.page_size);
    const holder = el('div');
    const pager = el('div', { class: 'pager', testid: 'pager' });
    main.append(head.node, err.node, el('div', { class: 'toolbar' }, filter, size), holder, pager, addQueueForm(() => load()));

    let debounce = null;
    filter.addEventListener('input', () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => { qstate.name = filter.value; qstate.page = 1; load(); }, 250);
    });
    size.addEventListener('change', () => { qstate.page_size = +size.value; qstate.page = 1; load(); });

    const cols = [
      { key: 'vhost', label: 'Vhost' },
      { key: 'name', label: 'Name', node: (q) => queueLink(q.vhost, q.name) },
      { key: 'type', label: 'Type' },
      { key: 'state', label: 'State', node: (q) => el('span', { class: `state state-${q.state}`, text: q.state || '–' }) },
      { key: 'messages_ready', label: 'Ready', num: true, cls: 'ready' },
      { key: 'messages_unacknowledged', label: 'Unacked', num: true, cls: 'unacked' },
      { key: 'messages', label: 'Total', num: true },
      { key: 'message_stats.publish_details.rate', label: 'Publish rate', num: true, cls: 'publish-rate', fmt: fmtRate },
      { key: 'consumers', label: 'Consumers', num: true },
    ];

    async function load() {
      const q = `page=${qstate.page}&page_size=${qstate.page_size}&name=${enc(qstate.name)}` +
        `&use_regex=false&sort=${enc(qstate.sort)}&sort_reverse=${qstate.reverse}`;
      let res;
      try {
        res = await api(`/api/queues?${q}`);
      } catch (e) {
        if (e.status === 400 && qstate.page > 1) { qstate.page = 1; return load(); }   // page out of range
        return err.show(e);
      }
      if (Array.isArray(res)) res = { items: res, page: 1, page_count: 1, filtered_count: res.length, total_count: res.length };
      const onSort = (key, reverse) => { qstate.sort = key; qstate.reverse = reverse; load(); };
      clear(holder, table('queues-table', cols, res.items || [], {
        server: { key: qstate.sort, reverse: qstate.reverse, onSort },
        rowId: (r) => `queue-row-${r.name}`,
        empty: qstate.name ? 'No queue matches the filter.' : 'No queues yet.',
      }));
      const pages = Math.max(1, res.page_count || 1);
      const go = (p) => { qstate.page = p; load(); };
      clear(pager,
        el('button', { type: 'button', class: 'btn', testid: 'page-prev', text: '‹ Prev', disabled: qstate.page <= 1, onclick: () => go(qstate.page - 1) }),
        el('span', { testid: 'page-info', text: `Page ${res.page || qstate.page} of ${pages}` }),
        el('button', { type: 'button', class: 'btn', testid: 'page-next', text: 'Next ›', disabled: qstate.page >= pages, onclick: () => go(qstate.page + 1) }),
        el('span', { class: 'muted', testid: 'queue-counts',
          text: `${fmtNum(res.filtered_count)} matching of ${fmtNum(res.total_count)} queues` }));
      head.stamp();
      err.show(null);
    }
    every(load);
  }

  function addQueueForm(done) {
    const vhost = el('select', { testid: 'add-queue-vhost' }, el('option', { value: '/', text: '/' }));
    api('/api/vhosts').then((vs) => {
      if (Array.isArray(vs) && vs.length) clear(vhost, ...vs.map((v) => el('option', { value: v.name, text: v.name })));
    }).catch(() => {});
    const name = el('input', { required: true, placeholder: 'queue name', testid: 'add-queue-name' });
    const durable = el('input', { type: 'checkbox', checked: true, testid: 'add-queue-durable' });
    const result = el('span', { class: 'result', testid: 'add-queue-result' });
    const form = el('form', { class: 'inline-form', testid: 'add-queue-form' },
      el('label', null, 'Vhost', vhost), el('label', null, 'Name', name),
      el('label', { class: 'check' }, durable, 'Durable'),
      el('button', { type: 'submit', class: 'btn btn-primary', testid: 'add-queue-submit', text: 'Add queue' }), result);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        await api(`/api/queues/${qpath(vhost.value, name.value)}`,
          { method: 'PUT', body: { durable: durable.checked, auto_delete: false, arguments: {} } });
        result.className = 'result ok';
        result.textContent = `Queue "${name.value}" declared.`;
        name.value = '';
        done();
      } catch (e) { result.className = 'result bad'; result.textContent = e.message; }
    });
    return card('Add a queue', form);
  }

  // ---------------------------------------------------------------- one queue

  function pageQueue(main, vhost, name) {
    const base = `/api/queues/${qpath(vhost, name)}`;
    const head = pageHead(`Queue ${name}`, `vhost ${vhost}`);
    const err = errorBox();
    const stats = el('div', { class: 'stats' });
    const details = el('div');
    const latency = el('div', { testid: 'latency' }, el('p', { class: 'muted', text: 'Loading…' }));
    const actionResult = el('span', { class: 'result', testid: 'action-result' });
    const say = (text, ok) => { actionResult.className = `result ${ok ? 'ok' : 'bad'}`; actionResult.textContent = text; };

    async function refresh() {
      try {
        const q = await api(base);
        const r = (k) => pick(q, `message_stats.${k}_details.rate`);
        clear(stats,
          stat('Total', fmtNum(q.messages), 'queue-messages'),
          stat('Ready', fmtNum(q.messages_ready), 'queue-ready'),
          stat('Unacked', fmtNum(q.messages_unacknowledged), 'queue-unacked'),
          stat('Consumers', fmtNum(q.consumers), 'queue-consumers'),
          stat('Publish', fmtRate(r('publish')), 'queue-publish-rate'),
          stat('Deliver / get', fmtRate(r('deliver_get')), 'queue-deliver-rate'));
        clear(details, kvTable([
          ['Type', q.type || '–'], ['State', q.state || '–'], ['Durable', fmtBool(q.durable)],
          ['Auto delete', fmtBool(q.auto_delete)], ['Exclusive', fmtBool(q.exclusive)],
          ['Node', q.node || '–'], ['Policy', q.policy || '–'],
          ['Message bytes', fmtBytes(q.message_bytes)],
          ['Arguments', fmtArgs(q.arguments), 'queue-arguments', true],
        ]));
        head.stamp();
        err.show(null);
      } catch (e) { err.show(e); }
      refreshLatency();
    }

    async function refreshLatency() {
      let data;
      try { data = await api(`${base}/latency`); } catch (e) { data = null; }
      const parts = [['publish_to_deliver', 'Publish → deliver', COLORS[0]], ['publish_to_confirm', 'Publish → confirm', COLORS[3]]]
        .filter(([k]) => data && data[k] && Array.isArray(data[k].buckets));
      if (!parts.length) { clear(latency, el('p', { class: 'muted', testid: 'no-latency', text: 'no latency data' })); return; }
      clear(latency, el('div', { class: 'grid2' }, parts.map(([k, label, color]) => {
        const h = data[k];
        const canvas = el('canvas', { class: 'chart small', testid: `latency-${k}` });
        const bars = histogramBars(h);
        const mean = h.count ? fmtSecs(h.sum / h.count) : '–';
        const box = el('div', null, el('h3', { text: label }),
          el('p', { class: 'muted', text: `${fmtNum(h.count)} samples · mean ${mean} · p50 ${quantile(bars, 0.5)} · p99 ${quantile(bars, 0.99)}` }), canvas);
        requestAnimationFrame(() => drawBars(canvas, bars, color));
        return box;
      })));
    }

    const ackmode = el('select', { testid: 'get-ackmode' },
      el('option', { value: 'ack_requeue_true', text: 'Nack, requeue (keeps the message)' }),
      el('option', { value: 'ack_requeue_false', text: 'Ack (removes the message)' }),
      el('option', { value: 'reject_requeue_true', text: 'Reject, requeue' }));
    const count = el('input', { type: 'number', min: '1', value: '1', testid: 'get-count', class: 'narrow' });
    const got = el('div', { class: 'messages', testid: 'got-messages' });
    const payload = el('textarea', { rows: '3', placeholder: 'message payload', testid: 'publish-payload' });
    const persistent = el('input', { type: 'checkbox', testid: 'publish-persistent' });
    const pubResult = el('span', { class: 'result', testid: 'publish-result' });

    const bump = () => { refresh(); setTimeout(refresh, 1500); };
    main.append(head.node, err.node, el('p', null, link('#/queues', '← all queues')),
      card(null, el('div', { class: 'stats-bar' }, stats, el('div', { class: 'actions' }, actionResult,
        actionButton('Purge', 'purge', 'btn-warn', async () => {
          if (!confirm(`Purge all messages from queue "${name}"?`)) return;
          try { await api(`${base}/contents`, { method: 'DELETE' }); say('Queue purged.', true); bump(); } catch (e) { say(e.message); }
        }),
        actionButton('Delete', 'delete', 'btn-danger', async () => {
          if (!confirm(`Delete queue "${name}"?`)) return;
          try { await api(base, { method: 'DELETE' }); flash = `Queue "${name}" deleted.`; location.hash = '#/queues'; } catch (e) { say(e.message); }
        })))),
      el('div', { class: 'grid2' },
        card('Details', details),
        card('Publish a message', el('p', { class: 'muted', text: `To the default exchange with routing key "${name}".` }),
          el('label', null, 'Payload', payload), el('div', { class: 'inline-form' }, el('label', { class: 'check' }, persistent, 'Persistent'),
            actionButton('Publish message', 'publish', 'btn-primary', async () => {
              pubResult.textContent = '';
              const ok = await publish(vhost, '', name, payload.value, persistent.checked, pubResult);
              if (ok) bump();
            }), pubResult))),
      card('Get messages', el('div', { class: 'inline-form' },
        el('label', null, 'Count', count), el('label', null, 'Ack mode', ackmode),
        actionButton('Get messages', 'get', 'btn-primary', async () => {
          try {
            const msgs = await api(`${base}/get`, { method: 'POST',
              body: { count: Math.max(1, +count.value || 1), ackmode: ackmode.value, encoding: 'auto', truncate: 50000 } });
            renderMessages(got, msgs || []);
            bump();
          } catch (e) { clear(got, el('div', { class: 'notice error', text: e.message })); }
        })), got),
      card('Latency', latency));
    every(refresh);
  }

  // Bars of a latency histogram {buckets: [{le, count}], count, sum}. Buckets may hold cumulative
  // counts (Prometheus style) or per-bucket counts; the counts' sum against `count` tells which.
  function histogramBars(h) {
    const buckets = h.buckets.slice().sort((a, b) => num(a.le) - num(b.le));
    const counts = buckets.map((b) => b.count || 0);
    const sum = counts.reduce((a, b) => a + b, 0);
    const monotone = counts.every((c, i) => !i || c >= counts[i - 1]);
    const cumulative = sum !== h.count && monotone && counts.length && counts[counts.length - 1] === h.count;
    return buckets.map((b, i) => ({
      label: `≤${fmtSecs(num(b.le))}`,
      le: num(b.le),
      value: cumulative ? counts[i] - (i ? counts[i - 1] : 0) : counts[i],
    }));
  }
  function num(le) { const n = Number(le); return le == null || le === '+Inf' || isNaN(n) ? Infinity : n; }
  function quantile(bars, q) {
    const total = bars.reduce((a, b) => a + b.value, 0);
    if (!total) return '–';
    let acc = 0;
    for (const b of bars) { acc += b.value; if (acc >= q * total) return `≤${fmtSecs(b.le)}`; }
    return '+Inf';
  }

  function renderMessages(box, msgs) {
    if (!msgs.length) { clear(box, el('p', { class: 'muted', testid: 'got-empty', text: 'Queue is empty.' })); return; }
    clear(box, ...msgs.map((m, i) => el('div', { class: 'message', testid: 'got-message' },
      el('div', { class: 'message-head' }, el('strong', { text: `Message ${i + 1}` }),
        el('span', { class: 'muted', text: ` · ${fmtNum(m.message_count)} left in queue` })),
      kvTable([
        ['Exchange', m.exchange === '' ? '(AMQP default)' : m.exchange],
        ['Routing key', m.routing_key],
        ['Redelivered', fmtBool(m.redelivered)],
        ['Properties', fmtArgs(Array.isArray(m.properties) ? {} : m.properties), 'got-properties', true],
        ['Payload', `${fmtNum(m.payload_bytes)} bytes, encoding ${m.payload_encoding}`],
      ]),
      el('pre', { class: 'payload', testid: 'got-payload', text: m.payload }))));
  }

  // POST .../publish; shows the outcome in `out`, returns true when the broker routed it.
  async function publish(vhost, exchange, routingKey, payload, persistent, out) {
    const properties = persistent ? { delivery_mode: 2 } : {};
    try {
      const res = await api(`/api/exchanges/${qpath(vhost, xname(exchange))}/publish`, {
        method: 'POST', body: { properties, routing_key: routingKey, payload, payload_encoding: 'string' } });
      const routed = res && res.routed;
      out.className = `result ${routed ? 'ok' : 'bad'}`;
      out.textContent = routed ? 'Message published (routed).' : 'Message published, but not routed to any queue.';
      return routed;
    } catch (e) {
      out.className = 'result bad';
      out.textContent = e.message;
      return false;
    }
  }

  // ---------------------------------------------------------------- exchanges

  function pageExchanges(main) {
    listPage(main, 'Exchanges', '/api/exchanges', 'exchanges-table', [
      { key: 'vhost', label: 'Vhost' },
      { key: 'name', label: 'Name', node: (x) => exchangeLink(x.vhost, x.name) },
      { key: 'type', label: 'Type' },
      { key: 'durable', label: 'Durable', fmt: fmtBool },
      { key: 'auto_delete', label: 'Auto delete', fmt: fmtBool },
      { key: 'internal', label: 'Internal', fmt: fmtBool },
      { key: 'message_stats.publish_in_details.rate', label: 'Publish in', num: true, cls: 'publish-in', fmt: fmtRate },
    ], { rowId: (x) => `exchange-row-${x.name}` });
  }

  function pageExchange(main, vhost, name) {
    const real = name === 'amq.default' ? '' : name;
    const base = `/api/exchanges/${qpath(vhost, name)}`;
    const head = pageHead(`Exchange ${real === '' ? '(AMQP default)' : real}`, `vhost ${vhost}`);
    const err = errorBox();
    const details = el('div');
    const bindings = el('div');
    const rk = el('input', { placeholder: 'routing key', testid: 'publish-routing-key' });
    const payload = el('textarea', { rows: '3', placeholder: 'message payload', testid: 'publish-payload' });
    const persistent = el('input', { type: 'checkbox', testid: 'publish-persistent' });
    const out = el('span', { class: 'result', testid: 'publish-result' });
    main.append(head.node, err.node, el('p', null, link('#/exchanges', '← all exchanges')),
      el('div', { class: 'grid2' }, card('Details', details),
        card('Publish a message', el('div', { class: 'stack' }, el('label', null, 'Routing key', rk), el('label', null, 'Payload', payload)),
          el('div', { class: 'inline-form' }, el('label', { class: 'check' }, persistent, 'Persistent'),
            actionButton('Publish message', 'publish', 'btn-primary', () => publish(vhost, real, rk.value, payload.value, persistent.checked, out)),
            out))),
      card('Bindings from this exchange', bindings));
    let bs = [];
    const drawBindings = () => clear(bindings, table('bindings-table', [
      { key: 'destination', label: 'Destination',
        node: (b) => (b.destination_type === 'queue' ? queueLink(b.vhost, b.destination) : exchangeLink(b.vhost, b.destination)) },
      { key: 'destination_type', label: 'Type' },
      { key: 'routing_key', label: 'Routing key', fmt: (v) => (v === '' ? '(empty)' : fmtPlain(v)) },
      { key: 'arguments', label: 'Arguments', nosort: true, fmt: fmtArgs },
    ], bs, { resort: drawBindings, empty: real === '' ? 'The default exchange routes to every queue by its name.' : 'No bindings.' }));
    every(async () => {
      try {
        const [x, b] = await Promise.all([api(base), real === '' ? Promise.resolve([]) : api(`${base}/bindings/source`)]);
        clear(details, kvTable([['Type', x.type], ['Durable', fmtBool(x.durable)], ['Auto delete', fmtBool(x.auto_delete)],
          ['Internal', fmtBool(x.internal)], ['Arguments', fmtArgs(x.arguments), null, true],
          ['Publish in', fmtRate(pick(x, 'message_stats.publish_in_details.rate'))],
          ['Publish out', fmtRate(pick(x, 'message_stats.publish_out_details.rate'))]]));
        bs = b || [];
        drawBindings();
        head.stamp();
        err.show(null);
      } catch (e) { err.show(e); }
    });
  }

  // ---------------------------------------------------------------- connections, channels, access

  function pageConnections(main) {
    const out = el('div', { class: 'result', testid: 'close-result' });
    const list = listPage(main, 'Connections', '/api/connections', 'connections-table', [
      { key: 'name', label: 'Name', node: (c) => el('span', null, c.name,
        pick(c, 'client_properties.connection_name') ? el('div', { class: 'muted small', text: c.client_properties.connection_name }) : null) },
      { key: 'user', label: 'User' },
      { key: 'vhost', label: 'Vhost' },
      { key: 'peer_host', label: 'Peer host' },
      { key: 'peer_port', label: 'Peer port', num: true, fmt: fmtPlain },
      { key: 'channels', label: 'Channels', num: true },
      { key: 'state', label: 'State', node: (c) => el('span', { class: `state state-${c.state}`, text: c.state || '–' }) },
      { key: 'client_properties.product', label: 'Client', cls: 'product', fmt: (v) => v || '–' },
      { key: 'close', label: '', nosort: true, node: (c) => actionButton('Close', 'close-connection', 'btn-danger btn-small', async () => {
        if (!confirm(`Close connection ${c.name}?`)) return;
        try {
          await api(`/api/connections/${enc(c.name)}`, { method: 'DELETE', headers: { 'X-Reason': 'closed from the dashboard' } });
          out.className = 'result ok'; out.textContent = `Closed ${c.name}.`;
          list.refresh();
        } catch (e) { out.className = 'result bad'; out.textContent = e.message; }
      }) },
    ], { rowId: (c) => `connection-row-${c.name}`, empty: 'No connections.' });
    main.append(out);
  }

  function pageChannels(main) {
    listPage(main, 'Channels', '/api/channels', 'channels-table', [
      { key: 'name', label: 'Channel' },
      { key: 'connection_details.name', label: 'Connection', cls: 'connection', fmt: (v) => v || '–' },
      { key: 'number', label: 'Number', num: true },
      { key: 'user', label: 'User' },
      { key: 'consumer_count', label: 'Consumers', num: true },
      { key: 'messages_unacknowledged', label: 'Unacked', num: true },
      { key: 'prefetch_count', label: 'Prefetch', num: true },
    ], { rowId: (c) => `channel-row-${c.name}`, empty: 'No channels.' });
  }

  function pageUsers(main) {
    listPage(main, 'Users', '/api/users', 'users-table', [
      { key: 'name', label: 'Name' },
      { key: 'tags', label: 'Tags', get: (u) => fmtTags(u.tags), fmt: (v) => v || '–' },
    ], { rowId: (u) => `user-row-${u.name}` });
  }

  function pageVhosts(main) {
    listPage(main, 'Virtual hosts', '/api/vhosts', 'vhosts-table', [
      { key: 'name', label: 'Name' },
      { key: 'description', label: 'Description', fmt: (v) => v || '' },
      { key: 'messages_ready', label: 'Ready', num: true, cls: 'ready' },
      { key: 'messages_unacknowledged', label: 'Unacked', num: true, cls: 'unacked' },
      { key: 'messages', label: 'Total', num: true },
    ], { rowId: (v) => `vhost-row-${v.name}` });
  }

  function pagePermissions(main) {
    listPage(main, 'Permissions', '/api/permissions', 'permissions-table', [
      { key: 'user', label: 'User' },
      { key: 'vhost', label: 'Vhost' },
      { key: 'configure', label: 'Configure', fmt: fmtRegex },
      { key: 'write', label: 'Write', fmt: fmtRegex },
      { key: 'read', label: 'Read', fmt: fmtRegex },
    ], { rowId: (p) => `permission-row-${p.user}-${p.vhost}` });
  }

  // ---------------------------------------------------------------- start

  document.getElementById('logout').addEventListener('click', () => {
    sessionStorage.removeItem(AUTH_KEY);
    loginError = '';
    location.hash = '#/login';
  });
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => onResize && onResize(), 150);
  });
  window.addEventListener('hashchange', route);
  route();
})();

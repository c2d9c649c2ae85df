/*
 * Alpha Panda dashboard: one script, no framework, no build step, no network beyond this server.
 *
 * How it is put together:
 * - `api(method, path, body)` is the one way to call the API: it adds the bearer token, trades the
 *   refresh token once on a 401, and turns every failure into an `ApiError` whose message is the
 *   API's own `message`, which `showError` puts in the banner.
 * - Each page (hash routes `#/overview` …) has a `render` (builds its DOM from what is already
 *   known), a `load` (fetches, then updates that DOM) and optional polls; leaving a page undoes its
 *   timers, charts and streams.
 * - One EventSource carries the live events; each event updates the store and, when the page that
 *   shows it is open, just the rows it touches.
 * - Paper and Zerodha are always shown in separate, labelled columns, never in one table; a
 *   namespace the server does not run is absent.
 * - Nothing from the API goes through innerHTML: every string reaches the DOM as text (`h`).
 * - Money and prices arrive as decimal strings and are shown as they are (with ₹ and separators);
 *   sums are done in integer paise (BigInt), never in floats. Only the chart turns them into numbers,
 *   for drawing; its legend shows the exact strings.
 */
'use strict';

(() => {
  // ---------------------------------------------------------------------------------------------
  // Constants and state

  const BROKERS = ['paper', 'zerodha'];
  const NS_LABEL = { paper: 'Paper', zerodha: 'Zerodha', shared: 'Shared' };
  const NS_NOTE = { paper: 'simulated fills', zerodha: 'real money', shared: 'both namespaces' };
  const PAGE_TITLES = {
    overview: 'Overview',
    portfolios: 'Portfolios',
    orders: 'Orders & fills',
    signals: 'Signals',
    strategies: 'Strategies',
    risk: 'Risk',
    dlq: 'Dead letters',
    logs: 'Logs',
  };
  const EVENT_TYPES = [
    'order_filled', 'order_submitted', 'order_ack', 'order_failed', 'trading_signal',
    'validated_signal', 'rejected_signal', 'signal_at_target', 'pnl_snapshot', 'alert',
  ];
  const ORDER_STATUS = { order_submitted: 'submitted', order_ack: 'acknowledged', order_failed: 'failed' };
  const SIGNAL_TYPES = [
    ['validated_signal', 'validated'],
    ['rejected_signal', 'rejected'],
    ['signal_at_target', 'at target'],
    ['trading_signal', 'raw signal'],
  ];
  // The pipeline, in the order events flow through it.
  const FLOW = ['market_feed', 'strategy_runner', 'risk_manager', 'trading_engine', 'portfolio_manager'];
  // Services that may run once for both namespaces, under `shared`.
  const SHARED_FLOW = new Set(['market_feed', 'strategy_runner']);
  const ROLE_RANK = { viewer: 0, trader: 1, admin: 2 };
  const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
  const CAP = 200; // rows kept per live list and namespace
  const LOG_CAP = 2000; // log lines kept
  const ALERT_CAP = 100;
  const SESSION_KEY = 'alpha-panda.session';

  const S = {
    session: null, // {access_token, refresh_token, expires_in, expires_at, username, role, brokers?}
    ready: false, // the app view is set up (namespaces known)
    brokers: [], // the active namespaces, in BROKERS order
    page: null,
    cleanup: [], // what leaving the current page must undo
    ns: {}, // per namespace: see ns()
    pipeline: [],
    pipelinePrev: new Map(),
    strategies: null,
    editing: null, // the strategy whose editor is open
    signalFilter: new Set(['validated_signal', 'rejected_signal', 'signal_at_target']),
    instruments: new Map(), // token → trading symbol
    alerts: [],
    alertsExpanded: false,
    seen: new Set(), // envelope ids already handled (two streams overlap while the token changes)
    seenOrder: [],
    liveSince: null,
    dlq: { entries: [], selected: new Map(), unavailable: null, loaded: false },
    logs: { lines: [], buffer: [], paused: false, level: 'info', es: null, failures: 0, timer: null },
    refreshTimer: null,
    endReason: null,
  };

  /** The store of one namespace. `null` lists have not been loaded yet. */
  function ns(b) {
    if (!S.ns[b]) {
      S.ns[b] = {
        portfolios: null, orders: null, fills: null, signals: [], limits: null, kill: null,
        selected: null, equity: null,
      };
    }
    return S.ns[b];
  }

  const $ = (id) => document.getElementById(id);
  const can = (role) => !!S.session && (ROLE_RANK[S.session.role] ?? -1) >= ROLE_RANK[role];

  // ---------------------------------------------------------------------------------------------
  // DOM helpers. `h` never parses HTML: strings become text nodes, so API data cannot inject markup.

  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v == null || v === false) continue;
        if (k === 'class') node.className = v;
        else if (k === 'text') node.textContent = v;
        else if (k === 'testid') node.dataset.testid = v;
        else if (k === 'dataset') Object.assign(node.dataset, v);
        else if (k === 'value') node.value = v;
        else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
        else if (v === true) node[k] = true; // disabled, checked, hidden, selected
        else node.setAttribute(k, String(v));
      }
    }
    appendAll(node, children);
    return node;
  }

  function appendAll(node, children) {
    for (const c of children) {
      if (c == null || c === false) continue;
      if (Array.isArray(c)) appendAll(node, c);
      else node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  /** A button that needs `role`: disabled (not hidden) for a user without it, saying why. */
  function roleButton(role, props, ...children) {
    const allowed = can(role);
    const p = { type: 'button', class: 'btn', ...props };
    if (!allowed) {
      p.disabled = true;
      p.title = `needs the ${role} role`;
      p['aria-disabled'] = 'true';
    }
    return h('button', p, ...children);
  }

  function pageHead(title, note, ...tools) {
    return h('div', { class: 'page-head' },
      h('div', null, h('h1', null, title), note ? h('p', { class: 'muted' }, note) : null),
      h('div', { class: 'tools' }, tools));
  }

  function nsTitle(b) {
    return h('h2', { class: `ns-title ns-${b}` }, NS_LABEL[b] || b, h('span', { class: 'ns-note' }, NS_NOTE[b] || ''));
  }

  /** One labelled column per active namespace, side by side; `body(b)` fills a column. */
  function nsGrid(body) {
    if (!S.brokers.length) {
      return h('p', { class: 'empty' }, 'No broker namespace is active on this server.');
    }
    return h('div', { class: `ns-grid cols-${S.brokers.length}` },
      S.brokers.map((b) => h('section', { class: `ns ns-${b}`, testid: `ns-${b}`, dataset: { broker: b } },
        nsTitle(b), body(b))));
  }

  function table(testid, cols, bodyId, extra) {
    return h('div', { class: 'table-wrap' },
      h('table', { class: 'grid', testid, id: testid },
        h('thead', null, h('tr', null, cols.map((c) => (typeof c === 'string'
          ? h('th', null, c)
          : h('th', { class: c.num ? 'num' : null, title: c.title }, c.label))))),
        h('tbody', { id: bodyId }),
        extra || null));
  }

  function emptyNote(id, text) {
    return h('p', { class: 'empty', id, hidden: true }, text);
  }

  function setEmpty(id, isEmpty) {
    const node = $(id);
    if (node) node.hidden = !isEmpty;
  }

  /** Puts a live row on top of a table body (or list), flashing, and keeps it to CAP rows. */
  function prependRow(bodyId, row, emptyId) {
    const body = $(bodyId);
    if (!body) return;
    row.classList.add('flash');
    body.prepend(row);
    while (body.childElementCount > CAP) body.lastElementChild.remove();
    if (emptyId) setEmpty(emptyId, false);
  }

  // ---------------------------------------------------------------------------------------------
  // Formatting. Decimal strings are re-grouped as text; they never pass through a float.

  const DECIMAL = /^([+-]?)(\d+)(?:\.(\d+))?$/;

  /** Indian grouping (lakh, crore): the last three digits, then pairs: "1234567" → "12,34,567". */
  function groupDigits(digits) {
    return digits.replace(/\B(?=(?:\d{2})*\d{3}$)/g, ',');
  }

  function splitDecimal(value) {
    if (value == null || value === '') return null;
    const m = DECIMAL.exec(String(value).trim());
    if (!m) return null;
    const zero = /^0*$/.test(m[2] + (m[3] || ''));
    return { negative: m[1] === '-' && !zero, zero, int: m[2], frac: m[3] };
  }

  /** "1234567.5" → "12,34,567.5"; anything that is not a plain decimal is shown as it came. */
  function fmtNum(value) {
    if (value == null || value === '') return '—';
    const d = splitDecimal(value);
    if (!d) return String(value);
    return (d.negative ? '-' : '') + groupDigits(d.int.replace(/^0+(?=\d)/, '')) + (d.frac !== undefined ? `.${d.frac}` : '');
  }

  /** "-1234567.89" → "−₹12,34,567.89" (a minus sign, U+2212, before the rupee sign). */
  function fmtMoney(value) {
    if (value == null || value === '') return '—';
    const d = splitDecimal(value);
    if (!d) return String(value);
    const shown = fmtNum(value);
    return d.negative ? `\u2212₹${shown.slice(1)}` : `₹${shown}`;
  }

  /** -1, 0 or 1, read from the string itself. */
  function signOf(value) {
    const d = splitDecimal(value);
    if (!d || d.zero) return 0;
    return d.negative ? -1 : 1;
  }

  /** A decimal string as integer paise (half away from zero past two places); null if not one. */
  function toPaise(value) {
    const d = splitDecimal(value);
    if (!d) return null;
    const frac = d.frac || '';
    let paise = BigInt(d.int) * 100n + BigInt((frac + '00').slice(0, 2));
    if (frac.length > 2 && frac[2] >= '5') paise += 1n;
    return d.negative ? -paise : paise;
  }

  function paiseToDecimal(paise) {
    const negative = paise < 0n;
    const abs = negative ? -paise : paise;
    return `${negative ? '-' : ''}${abs / 100n}.${(abs % 100n).toString().padStart(2, '0')}`;
  }

  /** The sum of decimal strings, as a decimal string with two places; null if one is unreadable. */
  function sumMoney(values) {
    let total = 0n;
    for (const v of values) {
      const p = toPaise(v);
      if (p === null) return null;
      total += p;
    }
    return paiseToDecimal(total);
  }

  const pad2 = (n) => String(n).padStart(2, '0');

  function fmtClock(date) {
    return `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
  }

  /** Local time: HH:MM:SS today, with the date otherwise. */
  function fmtTime(ts) {
    if (!ts) return '—';
    const d = new Date(ts);
    if (Number.isNaN(d.getTime())) return String(ts);
    const today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    return sameDay ? fmtClock(d) : `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${fmtClock(d)}`;
  }

  function fmtRate(perSecond) {
    if (perSecond == null) return '— /s';
    if (perSecond >= 100) return `${Math.round(perSecond)} /s`;
    return `${perSecond.toFixed(1)} /s`;
  }

  function truncate(text, n) {
    const s = text == null ? '' : String(text);
    return s.length > n ? `${s.slice(0, n - 1)}…` : s;
  }

  function describeObject(obj) {
    return Object.entries(obj)
      .map(([k, v]) => `${k}=${v !== null && typeof v === 'object' ? JSON.stringify(v) : v}`)
      .join(', ');
  }

  // Table cells.
  const td = (text, cls, title) => h('td', { class: cls, title }, text == null || text === '' ? '—' : text);
  const timeCell = (ts) => h('td', { class: 'time', title: ts || null }, fmtTime(ts));
  const numCell = (v) => h('td', { class: 'num' }, fmtNum(v));
  const priceCell = (v) => h('td', { class: 'num' }, fmtNum(v));

  function moneySpan(value, signed) {
    const sign = signed ? signOf(value) : 0;
    return h('span', { class: `num money${sign > 0 ? ' pos' : sign < 0 ? ' neg' : ''}`, title: value ?? null }, fmtMoney(value));
  }

  function moneyCell(value, signed) {
    return h('td', { class: 'num' }, moneySpan(value, signed));
  }

  function badge(text, kind) {
    return h('span', { class: `badge b-${kind || String(text).toLowerCase().replace(/[^a-z0-9]+/g, '-')}` }, text);
  }

  function sideCell(side) {
    return h('td', null, side ? badge(side, side === 'BUY' ? 'buy' : 'sell') : '—');
  }

  function instrumentCell(token, symbol) {
    const name = symbol || S.instruments.get(Number(token));
    return h('td', { class: 'instr', title: token != null ? `instrument token ${token}` : null },
      name || (token != null ? String(token) : '—'));
  }

  // ---------------------------------------------------------------------------------------------
  // Error banner and notices. Errors are never swallowed: each distinct message is listed (with a
  // count when it repeats, as a failing poll does) until dismissed.

  const bannerItems = new Map();

  function showError(err, context) {
    if (err && err.sessionEnded) return; // the login form says it
    const message = err instanceof Error ? err.message : String(err);
    const text = context ? `${context}: ${message}` : message;
    const item = bannerItems.get(text) || { count: 0 };
    item.count += 1;
    item.at = new Date();
    bannerItems.delete(text);
    bannerItems.set(text, item); // the newest last
    while (bannerItems.size > 6) bannerItems.delete(bannerItems.keys().next().value);
    renderBanner();
  }

  function renderBanner() {
    const items = [...bannerItems].reverse().map(([text, item]) => h('li', null,
      h('span', { class: 'banner-time' }, fmtClock(item.at)), ' ', text,
      item.count > 1 ? h('span', { class: 'banner-count' }, ` ×${item.count}`) : null));
    $('error-list').replaceChildren(...items);
    $('error-banner').hidden = bannerItems.size === 0;
  }

  function clearErrors() {
    bannerItems.clear();
    renderBanner();
  }

  let noticeTimer = null;
  function notify(text) {
    const n = $('notice');
    n.textContent = text;
    n.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { n.hidden = true; }, 5000);
  }

  /** Wraps an event handler so that whatever it throws reaches the banner. */
  function action(fn) {
    return async (event) => {
      try {
        await fn(event);
      } catch (err) {
        showError(err);
      }
    };
  }

  /** Disables a button while `promise` runs (no double submits). */
  async function busy(button, promise) {
    const was = button ? button.disabled : false;
    if (button) button.disabled = true;
    try {
      return await promise;
    } finally {
      if (button && button.isConnected) button.disabled = was;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.name = 'ApiError';
      this.status = status;
      this.code = code;
    }
  }

  async function readBody(res) {
    const text = await res.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  function errorOf(res, data) {
    const message = data && typeof data === 'object' && data.message
      ? data.message
      : (typeof data === 'string' && data.trim() ? data.trim() : `${res.status} ${res.statusText || 'error'}`);
    const code = data && typeof data === 'object' && data.error ? data.error : `http_${res.status}`;
    return new ApiError(res.status, code, message);
  }

  /**
   * Calls the API. `opts.auth` (default true) sends the bearer token; on a 401 the refresh token
   * is traded once and the call repeated, and if that fails too the session ends (login form).
   * `opts.allow` lists error statuses whose body is the answer (readiness answers 503 with checks).
   */
  async function api(method, path, body, opts = {}) {
    const auth = opts.auth !== false;
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const token = auth && S.session ? S.session.access_token : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'network', `${method} ${path}: the server cannot be reached (${e.message})`);
    }
    const data = res.status === 204 ? null : await readBody(res);
    if (res.ok || (opts.allow || []).includes(res.status)) return data;
    const err = errorOf(res, data);
    if (res.status === 401 && token && S.session) {
      // Another call may have refreshed the tokens while this one was on its way.
      if (S.session.access_token !== token && !opts.retried) return api(method, path, body, { ...opts, retried: true });
      if (opts.refresh !== false && !opts.retried && (await refreshSession())) {
        return api(method, path, body, { ...opts, retried: true });
      }
      if (opts.endOn401 !== false) {
        endSession(`Your session has ended (${S.endReason || err.message}); log in again.`);
        err.sessionEnded = true;
      }
    }
    throw err;
  }

  /** Runs `fn(b)` for every active namespace at once; a failure in one is shown, not fatal. */
  function perBroker(fn, what) {
    return Promise.all(S.brokers.map(async (b) => {
      try {
        await fn(b);
      } catch (err) {
        showError(err, `${NS_LABEL[b]} ${what}`);
      }
    }));
  }

  // ---------------------------------------------------------------------------------------------
  // Session: tokens in sessionStorage, refreshed shortly before they expire

  function persistSession() {
    if (S.session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(S.session));
  }

  function loadSession() {
    try {
      const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
      return s && s.access_token && s.refresh_token ? s : null;
    } catch {
      return null;
    }
  }

  function saveTokens(tokens) {
    const expiresIn = Number(tokens.expires_in) || 900;
    S.session = {
      ...(S.session || {}),
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      expires_in: expiresIn,
      expires_at: Date.now() + expiresIn * 1000,
      username: tokens.username,
      role: tokens.role,
    };
    persistSession();
    scheduleRefresh();
  }

  // Refresh tokens are single-use: two refreshes at once would burn the token, so there is only
  // ever one in flight and every caller waits for it.
  let refreshing = null;
  function refreshSession() {
    if (!refreshing) refreshing = doRefresh().finally(() => { refreshing = null; });
    return refreshing;
  }

  /** true: new tokens; false: the refresh token was refused. Throws if the server is unreachable. */
  async function doRefresh() {
    const token = S.session && S.session.refresh_token;
    if (!token) return false;
    let tokens;
    try {
      tokens = await api('POST', '/api/v1/auth/refresh', { refresh_token: token }, { auth: false });
    } catch (err) {
      if (err.status === 0 || err.status >= 500) throw err;
      S.endReason = err.message;
      return false;
    }
    if (!S.session) return false; // logged out meanwhile
    saveTokens(tokens);
    onTokensChanged();
    return true;
  }

  function scheduleRefresh() {
    clearTimeout(S.refreshTimer);
    if (!S.session) return;
    const life = S.session.expires_in * 1000;
    const lead = Math.min(60000, life * 0.2); // a minute early, or a fifth of a short life
    const delay = Math.max(1000, S.session.expires_at - lead - Date.now());
    S.refreshTimer = setTimeout(runScheduledRefresh, delay);
  }

  async function runScheduledRefresh() {
    try {
      if (!(await refreshSession())) endSession(`Your session has ended (${S.endReason || 'refresh refused'}); log in again.`);
    } catch (err) {
      showError(err, 'Refreshing the session');
      clearTimeout(S.refreshTimer);
      S.refreshTimer = setTimeout(runScheduledRefresh, 10000);
    }
  }

  /** New tokens: the streams carry the token in their URL, so they are reopened with it. */
  function onTokensChanged() {
    if (!S.ready) return;
    openEvents();
    if (S.logs.es) openLogs();
  }

  /** Back to the login form, forgetting everything of the session. */
  function endSession(message, info) {
    const wasActive = !!S.session;
    S.session = null;
    S.ready = false;
    sessionStorage.removeItem(SESSION_KEY);
    clearTimeout(S.refreshTimer);
    leavePage();
    S.page = null;
    closeEvents();
    closeLogs();
    S.ns = {};
    S.strategies = null;
    S.editing = null;
    S.alerts = [];
    S.pipeline = [];
    S.pipelinePrev.clear();
    S.dlq = { entries: [], selected: new Map(), unavailable: null, loaded: false };
    S.logs.lines = [];
    S.logs.buffer = [];
    renderAlerts();
    if (wasActive || message) showLogin(message, info);
  }

  // ---------------------------------------------------------------------------------------------
  // Login, logout, start

  /** The login form, with why it shows (`info`: not an error, e.g. after logging out). */
  function showLogin(message, info) {
    $('app-view').hidden = true;
    $('nav').hidden = true;
    $('user').hidden = true;
    $('stream-status').hidden = true;
    $('page').replaceChildren();
    $('login-view').hidden = false;
    const err = $('login-error');
    err.textContent = message || '';
    err.hidden = !message;
    err.classList.toggle('info', !!info);
    $('login-password').value = '';
    $('login-username').focus();
  }

  async function onLoginSubmit(event) {
    event.preventDefault();
    const username = $('login-username').value.trim();
    const password = $('login-password').value;
    const err = $('login-error');
    err.hidden = true;
    err.classList.remove('info');
    try {
      const tokens = await busy($('login-submit'),
        api('POST', '/api/v1/auth/login', { username, password }, { auth: false }));
      S.session = null;
      S.endReason = null;
      saveTokens(tokens);
      $('login-password').value = '';
      clearErrors();
      await startApp();
    } catch (e) {
      // 401: wrong username or password; 429: too many attempts, wait. The API says which.
      err.textContent = e.message;
      err.hidden = false;
      showError(e, 'Log in');
    }
  }

  async function logout() {
    const session = S.session;
    if (session) {
      try {
        // A refresh here would trade the very token being revoked, so a 401 just ends locally.
        await api('POST', '/api/v1/auth/logout', { refresh_token: session.refresh_token },
          { refresh: false, endOn401: false });
      } catch (err) {
        showError(err, 'Log out');
      }
    }
    endSession('You are logged out.', true);
  }

  function renderUser() {
    $('user-name').textContent = S.session.username || '';
    const role = $('user-role');
    role.textContent = S.session.role || '';
    role.className = `badge role role-${S.session.role}`;
    role.title = {
      viewer: 'viewer: read only',
      trader: 'trader: may also change strategies and the kill switch',
      admin: 'admin: may also manage users and purge dead letters',
    }[S.session.role] || '';
  }

  async function startApp() {
    $('login-view').hidden = true;
    $('app-view').hidden = false;
    $('nav').hidden = false;
    $('user').hidden = false;
    renderUser();
    $('page').replaceChildren(h('p', { class: 'empty' }, 'Loading…'));
    await Promise.all([detectBrokers(), loadInstruments()]);
    if (!S.session) return;
    S.ready = true;
    S.liveSince = new Date();
    openEvents();
    route();
  }

  /**
   * Which namespaces the server runs: `brokers` of `GET /api/v1/auth/me`. Kept for the session, so
   * reloads do not ask again. If the server cannot say, both columns are kept (their own calls
   * will say what is wrong) and it is asked again next time.
   */
  async function detectBrokers() {
    if (!Array.isArray(S.session.brokers)) {
      let me;
      try {
        me = await api('GET', '/api/v1/auth/me');
      } catch (err) {
        if (!S.session) return;
        showError(err, 'Namespaces');
        S.brokers = [...BROKERS];
        return;
      }
      if (!S.session) return;
      if (me && me.username) S.session.username = me.username;
      if (me && me.role) S.session.role = me.role;
      if (!Array.isArray(me && me.brokers)) {
        showError('Namespaces: the server did not list its active namespaces.');
        S.brokers = [...BROKERS];
        return;
      }
      S.session.brokers = me.brokers.map(String);
      persistSession();
      renderUser();
    }
    S.brokers = BROKERS.filter((b) => S.session.brokers.includes(b));
  }

  async function loadInstruments() {
    try {
      const list = await api('GET', '/api/v1/instruments?limit=1000');
      for (const i of list || []) S.instruments.set(Number(i.instrument_token), i.tradingsymbol);
    } catch (err) {
      showError(err, 'Instruments');
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Readiness, in the header: a dot per check

  async function pollHealth() {
    const box = $('health');
    try {
      const r = await api('GET', '/health/ready', undefined, { auth: false, allow: [503] });
      const checks = Object.entries((r && r.checks) || {});
      box.replaceChildren(...checks.map(([name, c]) => h('span', {
        class: `health-check ${c.status === 'ok' ? 'ok' : 'failing'}`,
        testid: `health-${name}`,
        title: c.status === 'ok' ? `${name}: ok` : `${name}: ${c.status}${c.reason ? ` — ${c.reason}` : ''}`,
      }, h('span', { class: 'dot' }), name)));
      box.title = r && r.status === 'ready' ? 'ready' : 'not ready';
    } catch (err) {
      box.replaceChildren(h('span', { class: 'health-check failing', title: err.message }, h('span', { class: 'dot' }), 'server'));
      showError(err, 'Readiness');
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Live events

  const live = { es: null, previous: null, timer: null, failures: 0, stale: false };

  function setStreamStatus(state, title) {
    const node = $('stream-status');
    node.hidden = false;
    node.className = `stream-status s-${state}`;
    node.textContent = { live: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…', down: 'stream down' }[state] || state;
    node.title = title || 'the live event stream';
  }

  function streamUrl(path, params) {
    const q = Object.entries(params).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
    return `${path}?${q}`;
  }

  /**
   * Opens the event stream. While the token changes, the new stream is opened before the old one
   * is closed, so nothing falls between them; events seen twice are dropped by envelope id.
   */
  function openEvents() {
    clearTimeout(live.timer);
    if (!S.session) return;
    const params = {};
    if (S.brokers.length) params.broker = S.brokers.join(',');
    params.type = EVENT_TYPES.join(',');
    params.access_token = S.session.access_token; // EventSource cannot send headers
    const url = streamUrl('/api/v1/events', params);
    if (live.previous) live.previous.close();
    live.previous = live.es;
    const es = new EventSource(url);
    live.es = es;
    if (!live.previous) setStreamStatus('connecting');
    // A named SSE event does not reach onmessage: one listener per type.
    for (const type of EVENT_TYPES) es.addEventListener(type, onLiveMessage);
    es.addEventListener('open', () => {
      if (live.es !== es) return;
      if (live.previous) {
        live.previous.close();
        live.previous = null;
      }
      live.failures = 0;
      setStreamStatus('live');
      // After a gap, fetch the page's data again rather than trust what the stream replayed.
      if (live.stale) {
        live.stale = false;
        reloadPage();
      }
    });
    es.addEventListener('error', () => {
      if (live.es !== es) {
        es.close();
        return;
      }
      live.stale = true;
      if (es.readyState === EventSource.CLOSED) {
        // Not a dropped connection (which the browser retries, sending Last-Event-ID itself) but a
        // refusal: find out why.
        setStreamStatus('down');
        recoverStream(url, 'Live events', openEvents, live.failures++, (t) => { live.timer = t; });
      } else {
        setStreamStatus('reconnecting');
      }
    });
  }

  function closeEvents() {
    clearTimeout(live.timer);
    for (const es of [live.es, live.previous]) if (es) es.close();
    live.es = null;
    live.previous = null;
  }

  /** What the server answers on a stream's URL (EventSource does not say): an ApiError, or null. */
  async function probeStream(url) {
    const controller = new AbortController();
    try {
      const res = await fetch(url, { headers: { Accept: 'text/event-stream' }, signal: controller.signal, cache: 'no-store' });
      if (res.ok) {
        controller.abort();
        return null;
      }
      return errorOf(res, await readBody(res));
    } catch (e) {
      if (e.name === 'AbortError') return null;
      return new ApiError(0, 'network', `the server cannot be reached (${e.message})`);
    }
  }

  /** A stream was refused: refresh on 401 (which reopens it), give up on 404, else retry later. */
  async function recoverStream(url, context, reopen, attempt, setTimer) {
    const err = await probeStream(url);
    if (!S.session) return;
    if (err && err.status === 401) {
      try {
        if (await refreshSession()) return; // onTokensChanged reopened it with the new token
        endSession(`Your session has ended (${S.endReason || err.message}); log in again.`);
        return;
      } catch (e) {
        showError(e, context);
      }
    } else if (err) {
      showError(err, context);
      if (err.status === 404) return { gaveUp: true, err };
    }
    const delay = Math.min(30000, 1000 * 2 ** Math.min(attempt, 5));
    setTimer(setTimeout(() => { if (S.session) reopen(); }, delay));
    return { gaveUp: false, err };
  }

  function alreadySeen(id) {
    if (S.seen.has(id)) return true;
    S.seen.add(id);
    S.seenOrder.push(id);
    if (S.seenOrder.length > 5000) S.seen.delete(S.seenOrder.shift());
    return false;
  }

  function onLiveMessage(e) {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      showError(`Live events: a ${e.type} event that is not JSON`);
      return;
    }
    msg = msg && typeof msg === 'object' ? msg : {};
    const env = msg.envelope || {};
    const type = msg.event_type || env.type || env.event_type || e.type;
    const broker = msg.broker || env.broker || 'shared';
    // The envelope carries its payload as `data` (or `payload` in other versions).
    const payload = env.data ?? env.payload ?? {};
    const id = env.id || `${broker}:${msg.seq ?? e.lastEventId}`;
    if (alreadySeen(id)) return;
    const ev = { id, seq: msg.seq ?? Number(e.lastEventId), type, broker, env, payload, at: env.ts || new Date().toISOString() };
    try {
      routeLiveEvent(ev);
    } catch (err) {
      showError(err, `Live ${type} event`);
    }
  }

  /** Sends a live event to what it changes. */
  function routeLiveEvent(ev) {
    if (ev.type === 'alert') {
      onAlert(ev);
      return;
    }
    if (!S.brokers.includes(ev.broker)) return;
    if (ev.type === 'order_filled') onFill(ev);
    else if (ORDER_STATUS[ev.type]) onOrder(ev);
    else if (ev.type === 'pnl_snapshot') onSnapshot(ev);
    else if (SIGNAL_TYPES.some(([t]) => t === ev.type)) onSignal(ev);
  }

  // Debounced work, by key: a burst of fills reloads the portfolios once.
  const pending = new Map();
  function soon(key, fn, ms) {
    clearTimeout(pending.get(key));
    pending.set(key, setTimeout(() => {
      pending.delete(key);
      Promise.resolve().then(fn).catch((err) => showError(err));
    }, ms));
  }

  // ---------------------------------------------------------------------------------------------
  // Pages and routing

  const PAGES = {
    overview: { render: renderOverview, load: loadOverview, polls: [[pollPipeline, 2000]] },
    portfolios: { render: renderPortfolios, load: loadPortfolios },
    orders: { render: renderOrders, load: loadOrders },
    signals: { render: renderSignals },
    strategies: { render: renderStrategies, load: loadStrategies },
    risk: { render: renderRisk, load: loadRisk, polls: [[loadKillSwitches, 5000]] },
    dlq: { render: renderDlq, load: loadDlq },
    logs: { render: renderLogs },
  };

  function route() {
    if (!S.ready) return;
    const m = /^#\/([a-z]+)/.exec(location.hash);
    const name = m && PAGES[m[1]] ? m[1] : 'overview';
    if (!m || m[1] !== name) history.replaceState(null, '', `#/${name}`);
    try {
      showPage(name);
    } catch (err) {
      showError(err, PAGE_TITLES[name]);
    }
  }

  function showPage(name) {
    leavePage();
    S.page = name;
    for (const a of document.querySelectorAll('#nav a')) {
      const on = a.dataset.page === name;
      a.classList.toggle('active', on);
      if (on) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = `${PAGE_TITLES[name]} · Alpha Panda`;
    const main = $('page');
    main.replaceChildren();
    const page = PAGES[name];
    page.render(main);
    for (const [fn, ms] of page.polls || []) every(ms, fn);
    reloadPage();
  }

  function reloadPage() {
    const page = S.page && PAGES[S.page];
    if (page && page.load) page.load().catch((err) => showError(err));
  }

  /** A poll for the current page, paused while the tab is hidden, stopped when the page is left. */
  function every(ms, fn) {
    const timer = setInterval(() => {
      if (!document.hidden && S.session) fn().catch((err) => showError(err));
    }, ms);
    S.cleanup.push(() => clearInterval(timer));
  }

  function leavePage() {
    for (const undo of S.cleanup.splice(0)) {
      try {
        undo();
      } catch (err) {
        showError(err);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Overview: the pipeline as a flow, per namespace

  function renderOverview(main) {
    main.append(
      pageHead('Overview', 'Each namespace’s pipeline, polled every 2 s. Rates are events per second between two recordings of a service’s figures.'),
      nsGrid((b) => [
        h('div', { class: 'summary', id: `summary-${b}`, testid: `summary-${b}` }),
        h('div', { class: 'flow', id: `flow-${b}`, testid: `flow-${b}` }, h('p', { class: 'empty' }, 'Loading…')),
      ]),
      h('div', { id: 'pipeline-shared' }));
    for (const b of S.brokers) renderSummary(b);
    if (S.pipeline.length) renderPipeline();
  }

  async function loadOverview() {
    await Promise.all([
      pollPipeline(),
      perBroker(async (b) => {
        const [portfolios, kill] = await Promise.all([
          api('GET', `/api/v1/${b}/portfolios`),
          api('GET', `/api/v1/${b}/kill-switch`),
        ]);
        ns(b).portfolios = portfolios;
        ns(b).kill = kill;
        renderSummary(b);
      }, 'summary'),
    ]);
  }

  async function pollPipeline() {
    let list;
    try {
      list = await api('GET', '/api/v1/pipeline');
    } catch (err) {
      showError(err, 'Pipeline');
      return;
    }
    S.pipeline = list || [];
    for (const s of S.pipeline) s.rate = rateOf(s);
    renderPipeline();
  }

  /**
   * Events per second of a service. A service records its figures every so often, so the rate is
   * taken between two different recordings (by their `updated_at`), not between two polls that may
   * have read the same recording twice.
   */
  function rateOf(s) {
    const key = `${s.broker}/${s.service}`;
    const prev = S.pipelinePrev.get(key);
    const at = Date.parse(s.updated_at) || Date.now();
    if (s.status === 'stale') {
      S.pipelinePrev.set(key, { at, in: s.events_in, out: s.events_out, rate: null });
      return { in: 0, out: 0 };
    }
    if (prev && prev.at === at) return prev.rate;
    let rate = null;
    if (prev && at > prev.at) {
      const dt = (at - prev.at) / 1000;
      rate = { in: Math.max(0, (s.events_in - prev.in) / dt), out: Math.max(0, (s.events_out - prev.out) / dt) };
    }
    S.pipelinePrev.set(key, { at, in: s.events_in, out: s.events_out, rate });
    return rate;
  }

  function renderPipeline() {
    const byKey = new Map(S.pipeline.map((s) => [`${s.broker}/${s.service}`, s]));
    for (const b of S.brokers) renderFlow(b, byKey);
    // Shared services outside the flow, if any, in their own row.
    const box = $('pipeline-shared');
    if (!box) return;
    const extra = S.pipeline.filter((s) => s.broker === 'shared' && !SHARED_FLOW.has(s.service));
    box.replaceChildren(...(extra.length
      ? [h('section', { class: 'ns ns-shared', testid: 'ns-shared' }, nsTitle('shared'),
        h('div', { class: 'flow flow-row' }, extra.map((s) => stageBox('shared', s.service, s, false))))]
      : []));
  }

  function renderFlow(b, byKey) {
    const box = $(`flow-${b}`);
    if (!box) return;
    const nodes = [];
    FLOW.forEach((service, i) => {
      let s = byKey.get(`${b}/${service}`);
      let shared = false;
      if (!s && SHARED_FLOW.has(service)) {
        s = byKey.get(`shared/${service}`);
        shared = !!s;
      }
      if (i) nodes.push(h('div', { class: 'flow-arrow', 'aria-hidden': 'true' }, '↓'));
      nodes.push(stageBox(b, service, s, shared));
    });
    const others = S.pipeline.filter((s) => s.broker === b && !FLOW.includes(s.service));
    if (others.length) {
      nodes.push(h('h4', { class: 'flow-others' }, 'Other services'),
        h('div', { class: 'flow-row' }, others.map((s) => stageBox(b, s.service, s, false))));
    }
    box.replaceChildren(...nodes);
  }

  function stageBox(b, service, s, shared) {
    const status = s ? s.status : 'absent';
    const r = s && s.rate;
    return h('div', {
      class: `stage st-${status}`,
      testid: `stage-${b}-${service}`,
      title: s ? `${s.broker}/${service}, figures of ${s.updated_at}` : `${service}: no figures recorded`,
    },
    h('div', { class: 'stage-head' },
      h('span', { class: 'dot' }),
      h('span', { class: 'stage-name' }, service),
      shared ? h('span', { class: 'tag', title: 'one service for both namespaces' }, 'shared') : null,
      h('span', { class: 'spacer' }),
      badge(s ? s.status : 'not reporting', status)),
    s ? h('div', { class: 'stage-metrics' },
      metric('in', fmtNum(s.events_in), fmtRate(r && r.in)),
      metric('out', fmtNum(s.events_out), fmtRate(r && r.out)),
      metric('lag', fmtNum(s.lag), null, s.lag > 100 ? 'warn' : null),
      metric('DLQ', fmtNum(s.dead_lettered), null, s.dead_lettered > 0 ? 'bad' : null),
      metric('retries', fmtNum(s.retries), null, s.retries > 0 ? 'warn' : null),
      metric('dups', fmtNum(s.duplicates)),
      metric('last event', s.last_event_at ? fmtTime(s.last_event_at) : '—')) : null);
  }

  function metric(label, value, sub, cls) {
    return h('div', { class: `metric${cls ? ` ${cls}` : ''}` },
      h('span', { class: 'm-label' }, label),
      h('span', { class: 'm-value' }, value),
      sub ? h('span', { class: 'm-sub' }, sub) : null);
  }

  function killBadge(kill) {
    return badge(kill.engaged ? 'engaged' : 'released', kill.engaged ? 'bad' : 'ok');
  }

  function renderSummary(b) {
    const box = $(`summary-${b}`);
    if (!box) return;
    const d = ns(b);
    const pf = d.portfolios || [];
    const item = (label, value) => h('div', { class: 'sum-item' }, h('span', { class: 'm-label' }, label), h('span', { class: 'm-value' }, value));
    box.replaceChildren(
      item('Kill switch', d.kill ? killBadge(d.kill) : '…'),
      item('Portfolios', d.portfolios ? String(pf.length) : '…'),
      item('Total PnL', d.portfolios ? moneySpan(sumMoney(pf.map((p) => p.total_pnl)), true) : '…'),
      item('Realized', d.portfolios ? moneySpan(sumMoney(pf.map((p) => p.realized_pnl)), true) : '…'),
      item('Fees', d.portfolios ? moneySpan(sumMoney(pf.map((p) => p.fees))) : '…'));
  }

  // ---------------------------------------------------------------------------------------------
  // Portfolios: figures, and the chosen one's equity, drawdown and positions

  const PORTFOLIO_COLS = ['Strategy', { label: 'Cash', num: true }, { label: 'Realized', num: true },
    { label: 'Unrealized', num: true }, { label: 'Fees', num: true }, { label: 'Total PnL', num: true }, 'As of'];
  const POSITION_COLS = ['Instrument', { label: 'Qty', num: true }, { label: 'Avg price', num: true },
    { label: 'Last', num: true }, { label: 'Realized', num: true }, { label: 'Unrealized', num: true }];

  const charts = {}; // namespace → {plot, observer}

  function renderPortfolios(main) {
    main.append(
      pageHead('Portfolios', 'Choose a portfolio to see its equity and drawdown and its positions. Figures follow fills and PnL snapshots live.'),
      nsGrid((b) => [
        table(`portfolios-table-${b}`, PORTFOLIO_COLS, `portfolios-body-${b}`, h('tfoot', { id: `portfolios-foot-${b}` })),
        emptyNote(`portfolios-empty-${b}`, 'No portfolio yet.'),
        h('div', { class: 'detail', id: `portfolio-detail-${b}`, testid: `portfolio-detail-${b}` }),
      ]));
    for (const b of S.brokers) {
      renderPortfolioTable(b);
      renderPortfolioDetail(b);
      drawEquity(b);
    }
    S.cleanup.push(() => { for (const b of BROKERS) destroyChart(b); });
  }

  function loadPortfolios() {
    return perBroker(async (b) => {
      await loadPortfoliosOf(b);
      await loadEquity(b);
    }, 'portfolios');
  }

  async function loadPortfoliosOf(b) {
    const list = await api('GET', `/api/v1/${b}/portfolios`);
    const d = ns(b);
    d.portfolios = list || [];
    if (!d.selected || !d.portfolios.some((p) => p.portfolio_id === d.selected)) {
      d.selected = d.portfolios.length ? d.portfolios[0].portfolio_id : null;
    }
    renderPortfolioTable(b);
    renderPortfolioDetail(b);
    renderSummary(b);
  }

  function renderPortfolioTable(b) {
    const body = $(`portfolios-body-${b}`);
    if (!body) return;
    const d = ns(b);
    const list = d.portfolios || [];
    body.replaceChildren(...list.map((p) => h('tr', {
      class: `clickable${p.portfolio_id === d.selected ? ' selected' : ''}`,
      testid: `portfolio-row-${p.portfolio_id}`,
      title: `portfolio ${p.portfolio_id}`,
      tabindex: '0',
      onclick: action(() => selectPortfolio(b, p.portfolio_id)),
      onkeydown: (e) => { if (e.key === 'Enter') selectPortfolio(b, p.portfolio_id).catch((err) => showError(err)); },
    },
    td(p.strategy_id || p.portfolio_id, 'id'),
    moneyCell(p.cash),
    moneyCell(p.realized_pnl, true),
    moneyCell(p.unrealized_pnl, true),
    moneyCell(p.fees),
    moneyCell(p.total_pnl, true),
    timeCell(p.as_of))));
    const foot = $(`portfolios-foot-${b}`);
    if (foot) {
      // Sums in integer paise, from the exact strings.
      const sum = (k) => sumMoney(list.map((p) => p[k]));
      foot.replaceChildren(...(list.length > 1 ? [h('tr', { class: 'total' },
        td(`Total (${list.length})`),
        moneyCell(sum('cash')), moneyCell(sum('realized_pnl'), true), moneyCell(sum('unrealized_pnl'), true),
        moneyCell(sum('fees')), moneyCell(sum('total_pnl'), true), td(''))] : []));
    }
    setEmpty(`portfolios-empty-${b}`, d.portfolios !== null && list.length === 0);
  }

  async function selectPortfolio(b, id) {
    const d = ns(b);
    if (d.selected === id) return;
    d.selected = id;
    renderPortfolioTable(b);
    renderPortfolioDetail(b);
    await loadEquity(b);
  }

  /** The chosen portfolio: heading, chart box (kept while the portfolio stays) and positions. */
  function renderPortfolioDetail(b) {
    const box = $(`portfolio-detail-${b}`);
    if (!box) return;
    const d = ns(b);
    const p = (d.portfolios || []).find((x) => x.portfolio_id === d.selected);
    if (!p) {
      destroyChart(b);
      box.dataset.portfolio = '';
      box.replaceChildren();
      return;
    }
    if (box.dataset.portfolio !== p.portfolio_id) {
      destroyChart(b);
      box.dataset.portfolio = p.portfolio_id;
      box.replaceChildren(
        h('h3', { class: 'detail-title' }, p.portfolio_id, h('span', { class: 'muted' }, ' — equity (total PnL) and drawdown')),
        h('div', { class: 'chart', id: `equity-${b}`, testid: `equity-chart-${b}` }),
        h('h3', null, 'Positions'),
        table(`positions-table-${b}`, POSITION_COLS, `positions-body-${b}`),
        emptyNote(`positions-empty-${b}`, 'No position.'));
    }
    const positions = p.positions || [];
    $(`positions-body-${b}`).replaceChildren(...positions.map((x) => h('tr', { testid: `position-row-${b}-${x.instrument_token}` },
      instrumentCell(x.instrument_token),
      numCell(x.quantity),
      priceCell(x.average_price),
      priceCell(x.last_price),
      moneyCell(x.realized_pnl, true),
      moneyCell(x.unrealized_pnl, true))));
    setEmpty(`positions-empty-${b}`, positions.length === 0);
  }

  async function loadEquity(b) {
    const d = ns(b);
    const id = d.selected;
    if (!id) return;
    const points = await api('GET', `/api/v1/${b}/equity?portfolio=${encodeURIComponent(id)}&limit=500`);
    if (d.selected !== id) return; // another portfolio was chosen meanwhile
    d.equity = { id, points: points || [] };
    drawEquity(b);
  }

  function destroyChart(b) {
    const c = charts[b];
    if (!c) return;
    c.observer.disconnect();
    c.plot.destroy();
    delete charts[b];
  }

  const compactNumber = new Intl.NumberFormat('en-IN', { notation: 'compact', maximumFractionDigits: 1 });

  function drawEquity(b) {
    const box = $(`equity-${b}`);
    const d = ns(b);
    if (!box || !d.equity || d.equity.id !== d.selected) return;
    destroyChart(b);
    box.replaceChildren();
    const pts = d.equity.points;
    if (!pts.length) {
      box.append(h('p', { class: 'empty' }, 'No equity points yet for this portfolio.'));
      return;
    }
    if (typeof window.uPlot !== 'function') {
      showError('The chart library (uPlot) did not load.');
      return;
    }
    // Numbers for drawing only; the legend shows the API's exact strings.
    const xs = pts.map((p) => Date.parse(p.at) / 1000);
    const equity = pts.map((p) => Number(p.total_pnl));
    const drawdown = pts.map((p) => Number(p.drawdown));
    const legend = (key) => (u, v, si, idx) => (idx == null || !pts[idx] ? '—' : fmtMoney(pts[idx][key]));
    const opts = {
      width: Math.max(300, box.clientWidth || 560),
      height: 220,
      scales: { x: { time: true } },
      series: [
        { value: (u, v, si, idx) => (idx == null || !pts[idx] ? '—' : fmtTime(pts[idx].at)) },
        { label: 'Total PnL', stroke: '#2563eb', width: 1.5, value: legend('total_pnl') },
        { label: 'Drawdown', stroke: '#dc2626', width: 1, fill: 'rgba(220, 38, 38, 0.12)', value: legend('drawdown') },
      ],
      axes: [
        { stroke: '#4b5563', grid: { stroke: '#eef0f3' } },
        { stroke: '#4b5563', grid: { stroke: '#eef0f3' }, size: 64, values: (u, splits) => splits.map((v) => `${v < 0 ? '\u2212' : ''}₹${compactNumber.format(Math.abs(v))}`) },
      ],
    };
    const plot = new window.uPlot(opts, [xs, equity, drawdown], box);
    // Follow the column's width.
    const observer = new ResizeObserver(() => {
      const width = Math.max(300, box.clientWidth);
      if (Math.abs(width - plot.width) > 2) plot.setSize({ width, height: 220 });
    });
    observer.observe(box);
    charts[b] = { plot, observer };
  }

  function onSnapshot(ev) {
    const b = ev.broker;
    const snap = ev.payload || {};
    const d = ns(b);
    if (d.portfolios && snap.portfolio_id) {
      const i = d.portfolios.findIndex((p) => p.portfolio_id === snap.portfolio_id);
      // Snapshots may come late (a reconnect replays them): keep the newest figures.
      if (i >= 0 && Date.parse(d.portfolios[i].as_of) > Date.parse(snap.as_of)) return;
      const portfolio = {
        portfolio_id: snap.portfolio_id, strategy_id: snap.strategy_id, broker: snap.broker || b,
        as_of: snap.as_of, cash: snap.cash, realized_pnl: snap.realized_pnl, unrealized_pnl: snap.unrealized_pnl,
        fees: snap.fees, total_pnl: snap.total_pnl, positions: snap.positions || [],
      };
      if (i >= 0) d.portfolios[i] = portfolio;
      else d.portfolios.push(portfolio);
      if (!d.selected) d.selected = snap.portfolio_id;
      renderPortfolioTable(b);
      renderPortfolioDetail(b);
      renderSummary(b);
      flashRow(`portfolios-body-${b}`, `portfolio-row-${snap.portfolio_id}`);
    } else {
      refreshPortfoliosSoon(b);
    }
    if (S.page === 'portfolios' && d.selected === snap.portfolio_id) soon(`equity-${b}`, () => loadEquity(b), 1500);
  }

  function refreshPortfoliosSoon(b) {
    if (S.page !== 'portfolios' && S.page !== 'overview') return; // loaded when those pages open
    soon(`portfolios-${b}`, () => loadPortfoliosOf(b), 1000);
  }

  function flashRow(bodyId, testid) {
    const body = $(bodyId);
    if (!body) return;
    for (const row of body.rows) {
      if (row.dataset.testid === testid) {
        row.classList.remove('flash');
        void row.offsetWidth; // restart the animation
        row.classList.add('flash');
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Orders and fills

  const ORDER_COLS = ['Time', 'Status', 'Strategy', 'Instrument', 'Side', { label: 'Qty', num: true }, 'Order / reason'];
  const FILL_COLS = ['Time', 'Strategy', 'Instrument', 'Side', { label: 'Qty', num: true }, { label: 'Price', num: true },
    { label: 'Fees', num: true, title: 'total charges; hover a row’s fees for the breakdown' }, { label: 'Source', title: 'where the fees come from' }];

  function renderOrders(main) {
    main.append(
      pageHead('Orders & fills', 'Newest first. New order events and fills appear as they happen.'),
      nsGrid((b) => [
        h('h3', null, 'Orders'),
        table(`orders-table-${b}`, ORDER_COLS, `orders-body-${b}`),
        emptyNote(`orders-empty-${b}`, 'No order event yet.'),
        h('h3', null, 'Fills'),
        table(`fills-table-${b}`, FILL_COLS, `fills-body-${b}`),
        emptyNote(`fills-empty-${b}`, 'No fill yet.'),
      ]));
    for (const b of S.brokers) {
      renderOrderRows(b);
      renderFillRows(b);
    }
  }

  function loadOrders() {
    return Promise.all([
      perBroker(async (b) => {
        const list = await api('GET', `/api/v1/${b}/orders?limit=100`);
        ns(b).orders = mergeNewest(list || [], ns(b).orders, (o) => o.event_id, (o) => o.at);
        renderOrderRows(b);
      }, 'orders'),
      perBroker(async (b) => {
        const list = await api('GET', `/api/v1/${b}/fills?limit=100`);
        ns(b).fills = mergeNewest(list || [], ns(b).fills, (f) => f.event_id, (f) => f.fill && f.fill.filled_at);
        renderFillRows(b);
      }, 'fills'),
    ]);
  }

  /** The API's rows plus live ones it did not have yet, newest first. */
  function mergeNewest(fresh, current, key, time) {
    const known = new Set(fresh.map(key));
    const extra = (current || []).filter((x) => !known.has(key(x)));
    const ts = (x) => Date.parse(time(x)) || 0;
    return [...extra, ...fresh].sort((a, b) => ts(b) - ts(a)).slice(0, CAP);
  }

  function renderOrderRows(b) {
    const body = $(`orders-body-${b}`);
    if (!body) return;
    const list = ns(b).orders || [];
    body.replaceChildren(...list.map(orderRow));
    setEmpty(`orders-empty-${b}`, ns(b).orders !== null && list.length === 0);
  }

  function renderFillRows(b) {
    const body = $(`fills-body-${b}`);
    if (!body) return;
    const list = ns(b).fills || [];
    body.replaceChildren(...list.map(fillRow));
    setEmpty(`fills-empty-${b}`, ns(b).fills !== null && list.length === 0);
  }

  function orderRow(o) {
    const kind = { submitted: 'info', acknowledged: 'ok', failed: 'bad' }[o.status] || 'muted';
    const orderText = o.limit_price != null ? `${o.order_type} @ ${fmtNum(o.limit_price)}` : o.order_type;
    return h('tr', { testid: `order-row-${o.event_id}`, class: `status-${o.status}`, title: `order ${o.order_id}` },
      timeCell(o.at),
      h('td', null, badge(o.status, kind)),
      td(o.strategy_id),
      instrumentCell(o.instrument_token),
      sideCell(o.side),
      numCell(o.quantity),
      h('td', { class: 'wrap' },
        o.order_type ? h('div', null, orderText) : null,
        o.broker_order_id ? h('div', { class: 'mono muted' }, `broker ${o.broker_order_id}`) : null,
        o.reason ? h('div', { class: 'reason' }, o.reason) : null,
        !o.order_type && !o.broker_order_id && !o.reason ? '—' : null));
  }

  const FEE_PARTS = [['brokerage', 'brokerage'], ['stt', 'STT'], ['exchange_charges', 'exchange'], ['sebi_charges', 'SEBI'],
    ['gst', 'GST'], ['stamp_duty', 'stamp duty'], ['dp_charges', 'DP']];

  function fillRow(entry) {
    const f = entry.fill || {};
    const fees = f.fees || {};
    const breakdown = FEE_PARTS.filter(([k]) => fees[k] != null).map(([k, label]) => `${label} ${fmtMoney(fees[k])}`).join(', ');
    return h('tr', {
      testid: `fill-row-${entry.event_id}`,
      title: `${entry.portfolio_id} · order ${f.order_id}${f.broker_order_id ? ` (${f.broker_order_id})` : ''} · ${f.execution_mode || ''}`,
    },
    timeCell(f.filled_at),
    td(f.strategy_id),
    instrumentCell(f.instrument_token, f.tradingsymbol),
    sideCell(f.side),
    numCell(f.quantity),
    priceCell(f.fill_price),
    h('td', { class: 'num', title: breakdown || null }, moneySpan(fees.total)),
    // Absent on the wire: the venue's own fee model (every paper fill).
    h('td', null, badge(String(f.fees_source || 'model').replace(/_/g, ' '), f.fees_source === 'estimate' ? 'warn' : 'muted')));
  }

  function onFill(ev) {
    const b = ev.broker;
    const f = ev.payload || {};
    const entry = { event_id: ev.env.id || ev.id, portfolio_id: `${b}:${f.strategy_id}`, fill: f };
    if (f.tradingsymbol && f.instrument_token != null) S.instruments.set(Number(f.instrument_token), f.tradingsymbol);
    const d = ns(b);
    d.fills = [entry, ...(d.fills || [])].slice(0, CAP);
    prependRow(`fills-body-${b}`, fillRow(entry), `fills-empty-${b}`);
    refreshPortfoliosSoon(b);
  }

  function onOrder(ev) {
    const b = ev.broker;
    const p = ev.payload || {};
    const entry = {
      event_id: ev.env.id || ev.id,
      status: ORDER_STATUS[ev.type],
      order_id: p.order_id,
      strategy_id: p.strategy_id,
      instrument_token: p.instrument_token,
      side: p.side,
      quantity: p.quantity,
      order_type: p.order_type,
      limit_price: p.limit_price,
      broker_order_id: p.broker_order_id,
      reason: p.reason,
      at: ev.at,
    };
    const d = ns(b);
    d.orders = [entry, ...(d.orders || [])].slice(0, CAP);
    prependRow(`orders-body-${b}`, orderRow(entry), `orders-empty-${b}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Signals and rejections: the risk manager's latest answers from the API, then live ones

  // The fields of a trading signal that have their own column.
  const SIGNAL_OWN = new Set(['strategy_id', 'instrument_token', 'side', 'quantity', 'target_quantity', 'order_type', 'limit_price', 'reason', 'tick']);
  const SIGNAL_WRAP = new Set(['signal', 'signal_event_id', 'violations', 'rules_checked', 'position', 'in_flight']);

  function renderSignals(main) {
    const filters = h('div', { class: 'filters' }, SIGNAL_TYPES.map(([type, label]) => h('label', { class: 'check' },
      h('input', {
        type: 'checkbox',
        checked: S.signalFilter.has(type),
        testid: `signals-filter-${type}`,
        onchange: (e) => {
          if (e.target.checked) S.signalFilter.add(type);
          else S.signalFilter.delete(type);
          applySignalFilter();
        },
      }), ` ${label}`)));
    main.append(
      pageHead('Signals & rejections', `The risk manager's latest answers, then live from the stream; the last ${CAP} per namespace.`, filters),
      h('div', { id: 'signals' }, nsGrid((b) => [
        h('div', { class: 'counts', id: `signal-counts-${b}`, testid: `signal-counts-${b}` }),
        h('div', { class: 'sig-list', id: `signals-body-${b}`, testid: `signals-list-${b}` }),
        emptyNote(`signals-empty-${b}`, 'No signal yet.'),
      ])));
    for (const b of S.brokers) {
      $(`signals-body-${b}`).replaceChildren(...ns(b).signals.map(signalRow));
      renderSignalCounts(b);
    }
    applySignalFilter();
    loadSignalHistory();
  }

  // What `GET /api/v1/{b}/signals` calls each kind of answer, and its event type.
  const SIGNAL_STATUS_TYPE = { validated: 'validated_signal', rejected: 'rejected_signal', at_target: 'signal_at_target' };

  /** Once per session, the answers the risk manager gave before the page opened, merged with the
   * live ones (by event id, newest first). */
  async function loadSignalHistory() {
    if (S.signalHistoryLoaded) return;
    S.signalHistoryLoaded = true;
    for (const b of S.brokers) {
      let kept = [];
      try {
        for (const status of Object.keys(SIGNAL_STATUS_TYPE)) {
          const rows = await api('GET', `/api/v1/${b}/signals?status=${status}&limit=${CAP}`);
          kept = kept.concat((rows || []).map((r) => ({
            id: r.event_id,
            type: SIGNAL_STATUS_TYPE[r.status] || SIGNAL_STATUS_TYPE[status],
            broker: b,
            at: r.at,
            payload: {
              signal: {
                strategy_id: r.strategy_id,
                instrument_token: r.instrument_token,
                side: r.side,
                quantity: r.quantity,
                target_quantity: r.target_quantity,
                reason: r.reason,
              },
              signal_event_id: r.signal_event_id,
              violations: r.violations || [],
            },
          })));
        }
      } catch (err) {
        showError(err, `Signals of ${b}`);
        continue;
      }
      const d = ns(b);
      const seen = new Set(d.signals.map((ev) => ev.id));
      const merged = d.signals.concat(kept.filter((ev) => !seen.has(ev.id)));
      merged.sort((x, y) => (x.at < y.at ? 1 : x.at > y.at ? -1 : 0));
      d.signals = merged.slice(0, CAP);
      const body = $(`signals-body-${b}`);
      if (body) body.replaceChildren(...d.signals.map(signalRow));
      renderSignalCounts(b);
    }
    applySignalFilter();
  }

  function applySignalFilter() {
    const box = $('signals');
    if (!box) return;
    for (const [type] of SIGNAL_TYPES) box.classList.toggle(`hide-${type}`, !S.signalFilter.has(type));
    for (const b of S.brokers) {
      const shown = ns(b).signals.filter((ev) => S.signalFilter.has(ev.type)).length;
      setEmpty(`signals-empty-${b}`, shown === 0);
    }
  }

  function renderSignalCounts(b) {
    const box = $(`signal-counts-${b}`);
    if (!box) return;
    const counts = {};
    for (const ev of ns(b).signals) counts[ev.type] = (counts[ev.type] || 0) + 1;
    box.replaceChildren(...SIGNAL_TYPES.map(([type, label]) => h('span', { class: 'count' }, badge(label, type), ` ${counts[type] || 0}`)));
  }

  function onSignal(ev) {
    const b = ev.broker;
    const d = ns(b);
    d.signals = [ev, ...d.signals].slice(0, CAP);
    prependRow(`signals-body-${b}`, signalRow(ev));
    renderSignalCounts(b);
    applySignalFilter();
  }

  function signalRow(ev) {
    const p = ev.payload || {};
    const sig = p.signal && typeof p.signal === 'object' ? p.signal : p;
    const instrument = S.instruments.get(Number(sig.instrument_token)) || (sig.instrument_token != null ? String(sig.instrument_token) : '—');
    return h('div', { class: `sig sig-${ev.type}`, testid: `signal-row-${ev.id}` },
      h('div', { class: 'sig-head' },
        h('span', { class: 'time', title: ev.at }, fmtTime(ev.at)),
        badge(SIGNAL_TYPES.find(([t]) => t === ev.type)?.[1] || ev.type, ev.type),
        h('span', { class: 'sig-strategy' }, sig.strategy_id || '—'),
        h('span', { class: 'instr', title: sig.instrument_token != null ? `instrument token ${sig.instrument_token}` : null }, instrument),
        sig.side ? badge(sig.side, sig.side === 'BUY' ? 'buy' : 'sell') : null,
        sig.quantity != null ? h('span', { class: 'num' }, fmtNum(sig.quantity)) : null),
      h('div', { class: 'sig-details' }, signalDetails(ev.type, p, sig)));
  }

  /** What a signal event says beyond its columns: failed rules, checks, position, and any other
   * string or list field the payload has (versions differ: `reasons`, `rules_failed`, …). */
  function signalDetails(type, p, sig) {
    const lines = [];
    const line = (label, text, cls) => h('div', { class: cls || null }, label ? h('span', { class: 'd-label' }, `${label}: `) : null, text);
    if (Array.isArray(p.violations)) {
      for (const v of p.violations) {
        if (v && typeof v === 'object') {
          const bounds = v.limit != null || v.actual != null ? ` (limit ${v.limit ?? '—'}, actual ${v.actual ?? '—'})` : '';
          lines.push(line(v.rule || 'rule', `${v.message || ''}${bounds}`, 'violation'));
        } else {
          lines.push(line('violation', String(v), 'violation'));
        }
      }
    }
    if (Array.isArray(p.rules_checked)) lines.push(line('passed', p.rules_checked.join(', ') || '—', 'muted'));
    if (type === 'signal_at_target' || p.position != null) {
      lines.push(line('at target', `position ${p.position ?? '—'}, in flight ${p.in_flight ?? '—'}, target ${sig.target_quantity ?? '—'}`));
    }
    for (const [k, v] of Object.entries(p)) {
      if (SIGNAL_WRAP.has(k) || (p === sig && SIGNAL_OWN.has(k))) continue;
      if (Array.isArray(v)) {
        lines.push(line(k, v.map((x) => (x && typeof x === 'object' ? describeObject(x) : String(x))).join('; ') || '—', k === 'reasons' || k === 'rules_failed' ? 'violation' : null));
      } else if (v !== null && typeof v !== 'object') {
        lines.push(line(k, String(v)));
      }
    }
    if (sig.order_type) lines.push(line('order', sig.limit_price != null ? `${sig.order_type} @ ${fmtNum(sig.limit_price)}` : sig.order_type, 'muted'));
    if (sig.reason) lines.push(line('why', sig.reason, 'muted'));
    return lines;
  }

  // ---------------------------------------------------------------------------------------------
  // Strategies

  const STRATEGY_COLS = ['Id', 'Type', 'Instruments', 'Parameters', 'Active', 'Zerodha', 'Updated', 'Actions'];

  function renderStrategies(main) {
    main.append(
      pageHead('Strategies', 'Changes are stored and taken up by the running strategy runner within seconds, without a restart.',
        h('button', { type: 'button', class: 'btn', testid: 'strategies-reload', onclick: action(loadStrategies) }, 'Reload')),
      h('div', { class: 'table-wrap' },
        h('table', { class: 'grid', testid: 'strategies-table', id: 'strategies-table' },
          h('thead', null, h('tr', null, STRATEGY_COLS.map((c) => h('th', null, c)))),
          h('tbody', { id: 'strategies-body' }))),
      emptyNote('strategies-empty', 'No strategy yet.'),
      newStrategyForm());
    renderStrategyRows();
  }

  async function loadStrategies() {
    S.strategies = (await api('GET', '/api/v1/strategies')) || [];
    renderStrategyRows();
  }

  function renderStrategyRows() {
    const body = $('strategies-body');
    if (!body) return;
    const list = S.strategies || [];
    // An open editor keeps its node, so what is being typed survives a reload of the list.
    const editor = S.editing ? body.querySelector('tr.editor-row') : null;
    const rows = [];
    for (const s of list) {
      rows.push(strategyRow(s));
      if (S.editing === s.id) rows.push(editor && editor.dataset.id === s.id ? editor : editorRow(s));
    }
    body.replaceChildren(...rows);
    setEmpty('strategies-empty', S.strategies !== null && list.length === 0);
  }

  function strategyRow(s) {
    const id = s.id;
    const params = JSON.stringify(s.parameters ?? null);
    return h('tr', { testid: `strategy-row-${id}`, dataset: { id }, class: s.is_active ? null : 'inactive' },
      td(id, 'id'),
      td(s.strategy_type),
      h('td', { class: 'instr', title: (s.instruments || []).join(', ') },
        (s.instruments || []).map((t) => S.instruments.get(Number(t)) || String(t)).join(', ') || '—'),
      h('td', { class: 'params mono', title: JSON.stringify(s.parameters ?? null, null, 2) }, truncate(params, 60)),
      h('td', null, badge(s.is_active ? 'active' : 'inactive', s.is_active ? 'ok' : 'muted')),
      h('td', null, badge(s.zerodha_trading_enabled ? 'on' : 'off', s.zerodha_trading_enabled ? 'bad' : 'muted')),
      timeCell(s.updated_at),
      h('td', null, h('div', { class: 'actions' },
        roleButton('trader', {
          class: 'btn btn-small',
          testid: `strategy-enable-${id}`,
          onclick: action((e) => setActive(id, true, e.currentTarget)),
        }, 'Enable'),
        roleButton('trader', {
          class: 'btn btn-small',
          testid: `strategy-disable-${id}`,
          onclick: action((e) => setActive(id, false, e.currentTarget)),
        }, 'Disable'),
        roleButton('trader', {
          class: `btn btn-small${s.zerodha_trading_enabled ? ' danger' : ''}`,
          testid: `strategy-zerodha-${id}`,
          'aria-pressed': String(!!s.zerodha_trading_enabled),
          title: s.zerodha_trading_enabled ? 'Trading with real money on Zerodha; click to stop' : 'Not on Zerodha; click to trade it with real money',
          onclick: action((e) => toggleZerodha(id, e.currentTarget)),
        }, s.zerodha_trading_enabled ? 'Zerodha: on' : 'Zerodha: off'),
        roleButton('trader', {
          class: 'btn btn-small',
          testid: `strategy-edit-${id}`,
          onclick: () => {
            S.editing = S.editing === id ? null : id;
            renderStrategyRows();
          },
        }, S.editing === id ? 'Close' : 'Edit'))));
  }

  function editorRow(s) {
    const id = s.id;
    return h('tr', { class: 'editor-row', testid: `strategy-editor-${id}`, dataset: { id } },
      h('td', { colspan: String(STRATEGY_COLS.length) },
        h('div', { class: 'editor' },
          h('label', { class: 'editor-params' }, `Parameters of ${id} (JSON)`,
            h('textarea', { id: 'editor-params', testid: `strategy-params-${id}`, rows: '8', spellcheck: 'false', value: JSON.stringify(s.parameters ?? null, null, 2) })),
          h('div', { class: 'editor-side' },
            h('label', null, 'Instruments (tokens, comma-separated)',
              h('input', { type: 'text', id: 'editor-instruments', testid: `strategy-instruments-${id}`, value: (s.instruments || []).join(', ') })),
            h('div', { class: 'editor-error', id: 'editor-error', testid: `strategy-error-${id}`, role: 'alert' }),
            h('div', { class: 'editor-buttons' },
              roleButton('trader', { class: 'btn primary', testid: `strategy-save-${id}`, onclick: action((e) => saveStrategy(id, e.currentTarget)) }, 'Save'),
              h('button', { type: 'button', class: 'btn', testid: `strategy-cancel-${id}`, onclick: () => { S.editing = null; renderStrategyRows(); } }, 'Cancel'))))));
  }

  /** "408065, 884737" → [408065, 884737], or {error}. */
  function parseInstruments(text) {
    const parts = text.split(/[\s,]+/).filter(Boolean);
    for (const p of parts) {
      if (!/^\d+$/.test(p) || Number(p) > 4294967295) return { error: `instruments: "${p}" is not an instrument token (a whole number)` };
    }
    return { list: parts.map(Number) };
  }

  function replaceStrategy(s) {
    if (!s || !S.strategies) return;
    const i = S.strategies.findIndex((x) => x.id === s.id);
    if (i >= 0) S.strategies[i] = s;
    else S.strategies.push(s);
    renderStrategyRows();
  }

  async function setActive(id, on, button) {
    const s = await busy(button, api('POST', `/api/v1/strategies/${encodeURIComponent(id)}/${on ? 'enable' : 'disable'}`));
    replaceStrategy(s);
    notify(`${id} ${on ? 'enabled' : 'disabled'}.`);
  }

  async function toggleZerodha(id, button) {
    const s = (S.strategies || []).find((x) => x.id === id);
    const enable = !(s && s.zerodha_trading_enabled);
    // Real money: say so, naming the strategy, before turning it on.
    if (enable && !window.confirm(`REAL MONEY\n\nTrade strategy "${id}" on Zerodha?\nIts signals will also be sent to Zerodha as real orders.`)) return;
    const updated = await busy(button, api('POST', `/api/v1/strategies/${encodeURIComponent(id)}/zerodha`, { enabled: enable }));
    replaceStrategy(updated);
    notify(enable ? `${id} now trades on Zerodha (real money).` : `${id} no longer trades on Zerodha.`);
  }

  async function saveStrategy(id, button) {
    const errBox = $('editor-error');
    errBox.textContent = '';
    let parameters;
    try {
      parameters = JSON.parse($('editor-params').value);
    } catch (e) {
      errBox.textContent = `parameters: not valid JSON (${e.message})`;
      return;
    }
    const instruments = parseInstruments($('editor-instruments').value);
    if (instruments.error) {
      errBox.textContent = instruments.error;
      return;
    }
    let s;
    try {
      s = await busy(button, api('PUT', `/api/v1/strategies/${encodeURIComponent(id)}`, { parameters, instruments: instruments.list }));
    } catch (err) {
      // A 422 names the bad parameter: next to the editor (and in the banner, like every error).
      if (!err.sessionEnded && $('editor-error')) $('editor-error').textContent = err.message;
      throw err;
    }
    S.editing = null;
    replaceStrategy(s);
    notify(`${id} saved.`);
  }

  function newStrategyForm() {
    const field = (label, input) => h('label', null, label, input);
    const types = [...new Set((S.strategies || []).map((s) => s.strategy_type))];
    return h('details', { class: 'card new-strategy', testid: 'strategy-new' },
      h('summary', null, 'New strategy'),
      h('div', { class: 'editor' },
        h('div', { class: 'editor-side' },
          field('Id', h('input', { type: 'text', id: 'new-id', testid: 'strategy-new-id', placeholder: 'ema_cross_infy' })),
          field('Type', h('input', { type: 'text', id: 'new-type', testid: 'strategy-new-type', placeholder: types[0] || 'ema_cross', list: 'strategy-types' })),
          h('datalist', { id: 'strategy-types' }, ['ema_cross', 'mean_reversion', ...types].filter((t, i, a) => a.indexOf(t) === i).map((t) => h('option', { value: t }))),
          field('Instruments (tokens, comma-separated)', h('input', { type: 'text', id: 'new-instruments', testid: 'strategy-new-instruments' })),
          h('label', { class: 'check' }, h('input', { type: 'checkbox', id: 'new-active', testid: 'strategy-new-active', checked: true }), ' run at once'),
          h('p', { class: 'muted' }, 'New strategies start on paper only; turn Zerodha on from the table.')),
        h('label', { class: 'editor-params' }, 'Parameters (JSON; empty for the type’s defaults)',
          h('textarea', { id: 'new-params', testid: 'strategy-new-params', rows: '6', spellcheck: 'false' })),
        h('div', { class: 'editor-side' },
          h('div', { class: 'editor-error', id: 'new-error', testid: 'strategy-new-error', role: 'alert' }),
          roleButton('trader', { class: 'btn primary', testid: 'strategy-create', onclick: action((e) => createStrategy(e.currentTarget)) }, 'Create'))));
  }

  async function createStrategy(button) {
    const errBox = $('new-error');
    errBox.textContent = '';
    const id = $('new-id').value.trim();
    const type = $('new-type').value.trim();
    if (!id || !type) {
      errBox.textContent = 'id and type are required';
      return;
    }
    const instruments = parseInstruments($('new-instruments').value);
    if (instruments.error) {
      errBox.textContent = instruments.error;
      return;
    }
    let parameters = null;
    const raw = $('new-params').value.trim();
    if (raw) {
      try {
        parameters = JSON.parse(raw);
      } catch (e) {
        errBox.textContent = `parameters: not valid JSON (${e.message})`;
        return;
      }
    }
    let s;
    try {
      s = await busy(button, api('POST', '/api/v1/strategies', {
        id, strategy_type: type, instruments: instruments.list, parameters, is_active: $('new-active').checked,
      }));
    } catch (err) {
      if (!err.sessionEnded && $('new-error')) $('new-error').textContent = err.message;
      throw err;
    }
    for (const k of ['new-id', 'new-instruments', 'new-params']) $(k).value = '';
    replaceStrategy(s);
    notify(`${id} created.`);
  }

  // ---------------------------------------------------------------------------------------------
  // Risk: limits and the kill switch

  const LIMIT_ROWS = [
    ['max_position_quantity', 'Max position quantity', fmtNum],
    ['max_position_value', 'Max position value', fmtMoney],
    ['max_order_value', 'Max order value', fmtMoney],
    ['max_daily_trades_per_strategy', 'Max daily trades per strategy', fmtNum],
    ['max_daily_loss', 'Max daily loss', fmtMoney],
    ['limit_price_band_pct', 'LIMIT price band', (v) => `${fmtNum(v)} %`],
    ['enforce_market_hours', 'Enforce market hours', (v) => (v ? 'yes' : 'no')],
  ];

  function renderRisk(main) {
    main.append(
      pageHead('Risk', 'The limits each namespace’s risk manager applies, and its kill switch (read by the risk manager every second).'),
      nsGrid((b) => [
        h('div', { class: 'card kill', id: `kill-${b}`, testid: `kill-card-${b}` }),
        h('h3', null, 'Limits'),
        h('table', { class: 'kv', testid: `risk-limits-${b}` }, h('tbody', { id: `limits-${b}` })),
      ]));
    for (const b of S.brokers) {
      renderKill(b);
      renderLimits(b);
    }
  }

  function loadRisk() {
    return Promise.all([
      perBroker(async (b) => {
        ns(b).limits = await api('GET', `/api/v1/${b}/risk/limits`);
        renderLimits(b);
      }, 'risk limits'),
      loadKillSwitches(),
    ]);
  }

  function loadKillSwitches() {
    return perBroker(async (b) => {
      ns(b).kill = await api('GET', `/api/v1/${b}/kill-switch`);
      renderKill(b);
    }, 'kill switch');
  }

  function renderLimits(b) {
    const body = $(`limits-${b}`);
    if (!body) return;
    const l = ns(b).limits;
    body.replaceChildren(...(l
      ? LIMIT_ROWS.map(([k, label, fmt]) => h('tr', { testid: `risk-limit-${b}-${k}` }, h('th', null, label), h('td', { class: 'num' }, l[k] == null ? '—' : fmt(l[k]))))
      : [h('tr', null, h('td', { class: 'muted' }, 'Loading…'))]));
  }

  function renderKill(b) {
    const box = $(`kill-${b}`);
    if (!box) return;
    const k = ns(b).kill;
    const engaged = !!(k && k.engaged);
    box.className = `card kill ${k ? (engaged ? 'kill-on' : 'kill-off') : ''}`;
    const row = (label, value) => [h('dt', null, label), h('dd', null, value || '—')];
    box.replaceChildren(
      h('div', { class: 'kill-head' },
        h('strong', null, 'Kill switch'),
        h('span', { class: `badge ${k ? (engaged ? 'b-bad' : 'b-ok') : 'b-muted'}`, testid: `kill-switch-state-${b}` }, k ? (engaged ? 'engaged' : 'released') : '…'),
        h('span', { class: 'spacer' }),
        roleButton('trader', {
          class: engaged ? 'btn' : 'btn danger',
          testid: `kill-switch-${b}`,
          disabled: !k,
          onclick: action((e) => toggleKill(b, e.currentTarget)),
        }, engaged ? 'Release' : 'Engage')),
      h('p', { class: 'muted' }, engaged
        ? 'Every signal that would add exposure is rejected; exits still go.'
        : 'Signals pass to the other risk rules.'),
      h('dl', { class: 'kill-facts' },
        row('Reason', k && k.reason),
        row('By', k && k.changed_by),
        row('When', k && k.changed_at ? `${fmtTime(k.changed_at)}` : null)));
  }

  async function toggleKill(b, button) {
    const k = ns(b).kill;
    const engage = !(k && k.engaged);
    const name = NS_LABEL[b];
    const reason = window.prompt(engage
      ? `Why engage the ${name} kill switch? (New entries will be rejected.)`
      : `Why release the ${name} kill switch?`, engage ? 'manual halt' : 'manual release');
    if (reason === null) return;
    if (!reason.trim()) {
      showError(`${name} kill switch: a reason is required.`);
      return;
    }
    if (engage && !window.confirm(`Engage the ${name} kill switch?\n\nEvery ${name} signal that adds exposure will be rejected until it is released.\nReason: ${reason.trim()}`)) return;
    ns(b).kill = await busy(button, api('POST', `/api/v1/${b}/kill-switch`, { engaged: engage, reason: reason.trim() }));
    renderKill(b);
    notify(`${name} kill switch ${engage ? 'engaged' : 'released'}.`);
  }

  // ---------------------------------------------------------------------------------------------
  // Dead letters

  const DLQ_COLS = ['', 'Time', 'Service', 'Topic', 'Class', 'Error', { label: 'Offset', num: true }, 'Payload'];

  function renderDlq(main) {
    main.append(
      pageHead('Dead letters', 'Events a service could not handle. Select rows and replay them to their original topic.',
        h('span', { class: 'muted', id: 'dlq-count', testid: 'dlq-count' }),
        h('button', { type: 'button', class: 'btn', testid: 'dlq-reload', onclick: action(loadDlq) }, 'Reload'),
        roleButton('trader', { class: 'btn primary', id: 'dlq-replay', testid: 'dlq-replay', onclick: action((e) => replayDlq(e.currentTarget)) }, 'Replay selected'),
        roleButton('admin', { class: 'btn danger', id: 'dlq-purge', testid: 'dlq-purge', onclick: action((e) => purgeDlq(e.currentTarget)) }, 'Purge all')),
      h('div', { id: 'dlq-body', testid: 'dlq-body' }));
    renderDlqBody();
  }

  async function loadDlq() {
    try {
      const list = await api('GET', '/api/v1/dlq?limit=100');
      S.dlq.unavailable = null;
      S.dlq.entries = list || [];
      const ids = new Set(S.dlq.entries.map((e) => String(e.id)));
      for (const key of [...S.dlq.selected.keys()]) if (!ids.has(key)) S.dlq.selected.delete(key);
    } catch (err) {
      if (err.status !== 404) throw err;
      // The routes may not exist yet on this server: say so on the page, not as an alarm.
      S.dlq.unavailable = err.message;
      S.dlq.entries = [];
      S.dlq.selected.clear();
    }
    S.dlq.loaded = true;
    renderDlqBody();
  }

  function renderDlqBody() {
    const box = $('dlq-body');
    if (!box) return;
    if (S.dlq.unavailable) {
      box.replaceChildren(h('div', { class: 'card unavailable', testid: 'dlq-unavailable' },
        h('strong', null, 'The dead-letter queue is not available on this server yet.'),
        h('p', { class: 'muted' }, S.dlq.unavailable)));
      updateDlqButtons();
      return;
    }
    // One table per namespace (and shared), never mixed.
    const groups = new Map([...S.brokers, 'shared'].map((b) => [b, []]));
    for (const e of S.dlq.entries) {
      const b = e.broker || 'shared';
      if (!groups.has(b)) groups.set(b, []);
      groups.get(b).push(e);
    }
    const section = (b) => [
      table(`dlq-table-${b}`, DLQ_COLS, `dlq-rows-${b}`),
      S.dlq.loaded && !groups.get(b).length ? h('p', { class: 'empty' }, 'No dead letter.') : null,
    ];
    const rest = [...groups.keys()].filter((b) => !S.brokers.includes(b) && groups.get(b).length);
    box.replaceChildren(
      nsGrid(section),
      ...rest.map((b) => h('section', { class: `ns ns-${b}`, testid: `ns-${b}` }, nsTitle(b), section(b))));
    for (const [b, entries] of groups) {
      const body = $(`dlq-rows-${b}`);
      if (body) body.replaceChildren(...entries.map(dlqRow));
    }
    updateDlqButtons();
  }

  function dlqRow(e) {
    const key = String(e.id);
    const selected = S.dlq.selected.has(key);
    return h('tr', {
      testid: `dlq-row-${e.id}`,
      class: `clickable${selected ? ' selected' : ''}`,
      dataset: { key },
      // A click anywhere on the row selects it; the checkbox handles its own clicks.
      onclick: (ev) => {
        if (ev.target.closest('input, button, a')) return;
        selectDlq(e, !S.dlq.selected.has(key));
      },
    },
    h('td', null, h('input', {
      type: 'checkbox', checked: selected, testid: `dlq-select-${e.id}`, 'aria-label': `select dead letter ${e.id}`,
      onchange: (ev) => selectDlq(e, ev.target.checked),
    })),
    timeCell(e.at),
    td(e.service),
    td(e.original_topic || e.topic, 'mono wrap', e.original_topic ? `dead-letter topic ${e.topic}` : null),
    h('td', null, e.error_class ? badge(e.error_class, 'warn') : '—'),
    td(e.error, 'wrap error-text'),
    numCell(e.offset),
    td(truncate(e.payload_preview, 80), 'mono wrap preview', e.payload_preview || null));
  }

  function selectDlq(entry, on) {
    const key = String(entry.id);
    if (on) S.dlq.selected.set(key, entry.id);
    else S.dlq.selected.delete(key);
    for (const row of document.querySelectorAll('#dlq-body tr[data-key]')) {
      if (row.dataset.key !== key) continue;
      row.classList.toggle('selected', on);
      const box = row.querySelector('input[type=checkbox]');
      if (box) box.checked = on;
    }
    updateDlqButtons();
  }

  function updateDlqButtons() {
    const n = S.dlq.selected.size;
    const count = $('dlq-count');
    if (count) count.textContent = S.dlq.unavailable ? '' : `${S.dlq.entries.length} shown, ${n} selected`;
    const replay = $('dlq-replay');
    if (replay && can('trader')) {
      replay.disabled = n === 0 || !!S.dlq.unavailable;
      replay.title = n === 0 ? 'select rows to replay' : `replay ${n} dead letter(s)`;
      replay.textContent = n ? `Replay selected (${n})` : 'Replay selected';
    }
    const purge = $('dlq-purge');
    if (purge && can('admin')) purge.disabled = !!S.dlq.unavailable;
  }

  async function replayDlq(button) {
    const ids = [...S.dlq.selected.values()];
    if (!ids.length) {
      showError('Select the dead letters to replay first.');
      return;
    }
    const r = await busy(button, api('POST', '/api/v1/dlq/replay', { ids }));
    S.dlq.selected.clear();
    notify(`Replayed ${r && r.replayed != null ? r.replayed : ids.length} dead letter(s).`);
    await loadDlq();
  }

  async function purgeDlq(button) {
    if (!window.confirm(`Purge every dead letter (${S.dlq.entries.length} shown here)?\nThis cannot be undone.`)) return;
    const r = await busy(button, api('DELETE', '/api/v1/dlq'));
    S.dlq.selected.clear();
    notify(`Purged ${r && r.purged != null ? r.purged : 'all'} dead letter(s).`);
    await loadDlq();
  }

  // ---------------------------------------------------------------------------------------------
  // Logs: a live stream while the page is open

  function renderLogs(main) {
    const level = h('select', {
      id: 'logs-level', testid: 'logs-level',
      onchange: (e) => {
        S.logs.level = e.target.value;
        openLogs();
      },
    }, LOG_LEVELS.map((l) => h('option', { value: l, selected: l === S.logs.level }, l)));
    main.append(
      pageHead('Logs', 'The server’s log lines as they are written, newest first.',
        h('label', null, 'Level ', level),
        h('button', { type: 'button', class: 'btn', id: 'logs-pause', testid: 'logs-pause', onclick: togglePause }, 'Pause'),
        h('button', {
          type: 'button', class: 'btn', testid: 'logs-clear',
          onclick: () => {
            S.logs.lines = [];
            renderLogLines();
          },
        }, 'Clear'),
        h('span', { class: 'muted', id: 'logs-status', testid: 'logs-status' })),
      h('div', { class: 'logs', id: 'logs-list', testid: 'logs-list' }));
    renderLogLines();
    updatePauseButton();
    openLogs();
    S.cleanup.push(closeLogs);
  }

  function setLogStatus(text) {
    const node = $('logs-status');
    if (node) node.textContent = text;
  }

  function openLogs() {
    closeLogs();
    if (!S.session || S.page !== 'logs') return;
    const url = streamUrl('/api/v1/logs', { level: S.logs.level, access_token: S.session.access_token });
    const es = new EventSource(url);
    S.logs.es = es;
    setLogStatus('connecting…');
    es.addEventListener('open', () => {
      if (S.logs.es !== es) return;
      S.logs.failures = 0;
      setLogStatus('live');
    });
    es.addEventListener('log', onLogLine);
    es.addEventListener('error', async () => {
      if (S.logs.es !== es) return;
      if (es.readyState !== EventSource.CLOSED) {
        setLogStatus('reconnecting…');
        return;
      }
      setLogStatus('stream refused');
      const r = await recoverStream(url, 'Logs', openLogs, S.logs.failures++, (t) => { S.logs.timer = t; });
      if (r && r.gaveUp) setLogStatus(`not available: ${r.err.message}`);
    });
  }

  function closeLogs() {
    clearTimeout(S.logs.timer);
    if (S.logs.es) S.logs.es.close();
    S.logs.es = null;
  }

  function onLogLine(e) {
    let line;
    try {
      line = JSON.parse(e.data);
    } catch {
      line = { at: new Date().toISOString(), level: 'info', target: '', message: String(e.data) };
    }
    if (S.logs.paused) {
      S.logs.buffer.push(line);
      if (S.logs.buffer.length > LOG_CAP) S.logs.buffer.shift();
      updatePauseButton();
      return;
    }
    S.logs.lines.unshift(line);
    if (S.logs.lines.length > LOG_CAP) S.logs.lines.pop();
    const list = $('logs-list');
    if (!list) return;
    list.prepend(logLine(line));
    while (list.childElementCount > LOG_CAP) list.lastElementChild.remove();
  }

  function logLine(l) {
    const level = String(l.level || 'info').toLowerCase();
    return h('div', { class: `log-line lvl-${level}` },
      h('span', { class: 'log-time', title: l.at || null }, fmtTime(l.at)),
      h('span', { class: `log-level lvl-${level}` }, level),
      h('span', { class: 'log-target' }, l.target || ''),
      h('span', { class: 'log-msg' }, l.message == null ? '' : String(l.message)));
  }

  function renderLogLines() {
    const list = $('logs-list');
    if (list) list.replaceChildren(...S.logs.lines.map(logLine));
  }

  function togglePause() {
    S.logs.paused = !S.logs.paused;
    if (!S.logs.paused && S.logs.buffer.length) {
      // The buffer is oldest first; the list is newest first.
      S.logs.lines = [...S.logs.buffer.reverse(), ...S.logs.lines].slice(0, LOG_CAP);
      S.logs.buffer = [];
      renderLogLines();
    }
    updatePauseButton();
  }

  function updatePauseButton() {
    const b = $('logs-pause');
    if (!b) return;
    b.textContent = S.logs.paused ? `Resume${S.logs.buffer.length ? ` (${S.logs.buffer.length} new)` : ''}` : 'Pause';
    b.classList.toggle('primary', S.logs.paused);
    b.setAttribute('aria-pressed', String(S.logs.paused));
  }

  // ---------------------------------------------------------------------------------------------
  // Alerts: a panel above every page

  function onAlert(ev) {
    S.alerts.unshift(ev);
    if (S.alerts.length > ALERT_CAP) S.alerts.pop();
    renderAlerts(true);
  }

  function renderAlerts(flashFirst) {
    const panel = $('alerts');
    const list = $('alerts-list');
    panel.hidden = S.alerts.length === 0;
    panel.classList.toggle('expanded', S.alertsExpanded);
    $('alerts-count').textContent = S.alerts.length ? `${S.alerts.length}` : '';
    $('alerts-toggle').textContent = S.alertsExpanded ? 'Show fewer' : 'Show all';
    list.replaceChildren(...S.alerts.map((ev, i) => {
      const a = ev.payload || {};
      const severity = String(a.severity || 'info');
      const item = h('li', { class: `alert sev-${severity}`, testid: 'alert-item', title: a.since ? `since ${a.since}` : null },
        h('span', { class: 'time' }, fmtTime(ev.at)),
        badge(NS_LABEL[ev.broker] || ev.broker, `ns-${ev.broker}`),
        badge(severity, severity === 'critical' ? 'bad' : severity === 'warning' ? 'warn' : 'info'),
        h('span', { class: 'alert-kind' }, a.kind || ''),
        a.service ? h('span', { class: 'muted' }, a.service) : null,
        h('span', { class: 'alert-msg' }, a.message || describeObject(a)));
      if (flashFirst && i === 0) item.classList.add('flash');
      return item;
    }));
  }

  // ---------------------------------------------------------------------------------------------
  // Start

  async function boot() {
    $('login-form').addEventListener('submit', onLoginSubmit);
    $('logout').addEventListener('click', logout);
    $('error-dismiss').addEventListener('click', clearErrors);
    $('alerts-toggle').addEventListener('click', () => {
      S.alertsExpanded = !S.alertsExpanded;
      renderAlerts();
    });
    $('alerts-clear').addEventListener('click', () => {
      S.alerts = [];
      renderAlerts();
    });
    window.addEventListener('hashchange', route);
    pollHealth();
    setInterval(() => { if (!document.hidden) pollHealth(); }, 10000);

    const saved = loadSession();
    if (!saved) {
      showLogin();
      return;
    }
    S.session = saved;
    try {
      if (saved.expires_at <= Date.now() + 5000 && !(await refreshSession())) {
        endSession('Your session has ended; log in again.');
        return;
      }
      // The role may have changed since the tokens were issued: the server's word counts.
      const me = await api('GET', '/api/v1/auth/me');
      if (!S.session) return;
      S.session.username = me.username;
      S.session.role = me.role;
      if (Array.isArray(me.brokers)) S.session.brokers = me.brokers.map(String);
      persistSession();
    } catch (err) {
      if (!S.session) return;
      showError(err, 'Restoring the session');
    }
    scheduleRefresh();
    await startApp();
  }

  boot().catch((err) => showError(err));
})();

// The dashboard in a real browser: Debian's Chromium driven by playwright-core (no downloaded
// browser), against a running `alpha-panda run`. Started by crates/cli/tests/dashboard.rs, which
// sets up the server, the users, the fast strategy and a dead letter; it can also be run by hand:
//
//   BASE_URL=http://127.0.0.1:8000 ADMIN_PASSWORD=… VIEWER_USER=viewer1 VIEWER_PASSWORD=… \
//   FAST_STRATEGY=fast_infy SCREENSHOT_DIR=/tmp/shots node tests/browser/journey.mjs
//
// Exits 0 when every step passed; otherwise 1, naming the step and printing why, the page's
// console errors and the dashboard's error banner.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
// The key app.js keeps the session (tokens, username, role) under in sessionStorage.
const SESSION_KEY = 'alpha-panda.session';
const PAGES = ['overview', 'portfolios', 'orders', 'signals', 'strategies', 'risk', 'dlq', 'logs'];
const LIVE_WAIT = 60_000; // fills and signals arrive within this
const UI_WAIT = 20_000; // what the page shows after a click or an API call

function env(name) {
  const value = process.env[name];
  if (!value) fail(`the environment variable ${name} is not set`);
  return value;
}

function fail(message) {
  console.error(`journey: FAILED: ${message}`);
  process.exit(1);
}

const BASE_URL = env('BASE_URL').replace(/\/+$/, '');
const ADMIN_PASSWORD = env('ADMIN_PASSWORD');
const VIEWER_USER = env('VIEWER_USER');
const VIEWER_PASSWORD = env('VIEWER_PASSWORD');
const FAST_STRATEGY = env('FAST_STRATEGY');
const SCREENSHOT_DIR = env('SCREENSHOT_DIR');

if (!fs.existsSync(CHROMIUM)) fail(`${CHROMIUM} is missing: apt-get install chromium`);
fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });

const started = Date.now();
const secs = (since) => `${((Date.now() - since) / 1000).toFixed(1)} s`;
const log = (text) => console.log(`journey [${secs(started)}] ${text}`);

// What the page said on its console (errors) and uncaught exceptions, for the failure report.
const consoleErrors = [];
let currentStep = 'start';

class StepFailure extends Error {}

function check(condition, message) {
  if (!condition) throw new StepFailure(message);
}

async function step(name, fn) {
  currentStep = name;
  const t0 = Date.now();
  log(`step: ${name}`);
  await fn();
  log(`  ok (${secs(t0)})`);
}

const sel = (testid) => `[data-testid="${testid}"]`;

/** Waits for `fn(arg)` to be truthy in the page; `what` names it when it is not in time. */
async function until(page, what, fn, arg, timeout = UI_WAIT) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 200 });
  } catch (err) {
    throw new StepFailure(`timed out after ${timeout / 1000} s waiting for ${what} (${err.message.split('\n')[0]})`);
  }
}

/** Two animation frames: what was just put in the DOM has been laid out and painted. */
const settled = (page) => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));

/** Opens a page from the navigation bar (a hash route: no reload) and waits until it is shown. */
async function open(page, name) {
  await page.click(sel(`nav-${name}`));
  await until(page, `the ${name} page`, (n) => location.hash === `#/${n}`
    && document.querySelector(`#nav a[data-page="${n}"]`)?.classList.contains('active')
    && document.getElementById('page').childElementCount > 0, name);
}

async function login(page, username, password, role) {
  await page.waitForSelector(sel('login-username'), { state: 'visible', timeout: UI_WAIT });
  await page.fill(sel('login-username'), username);
  await page.fill(sel('login-password'), password);
  await page.click(sel('login-submit'));
  await until(page, `the role badge to read ${role}`, (r) => {
    const badge = document.querySelector('[data-testid="user-role"]');
    return badge && badge.offsetParent !== null && badge.textContent.trim() === r;
  }, role);
  // The app is set up (namespaces known) once a page is shown.
  await until(page, 'the first page after logging in', () => /^#\/[a-z]+/.test(location.hash)
    && document.getElementById('page').childElementCount > 0
    && !document.getElementById('app-view').hidden);
}

/** The ids (data-testid) of the signal rows of `strategy` in the paper list. */
function signalRowsOf(page, strategy) {
  return page.$$eval(`${sel('signals-list-paper')} [data-testid^="signal-row-"]`,
    (rows, id) => rows.filter((r) => r.querySelector('.sig-strategy')?.textContent.trim() === id)
      .map((r) => r.dataset.testid), strategy);
}

async function bannerText(page) {
  try {
    return await page.evaluate(() => {
      const b = document.querySelector('[data-testid="error-banner"]');
      return b && !b.hidden ? b.innerText.trim() : null;
    });
  } catch {
    return null;
  }
}

async function expectNoBanner(page, context) {
  const text = await bannerText(page);
  check(text === null, `${context}: the error banner shows: ${text}`);
}

/** Every page shown, with what must be on it before the screenshot. */
const READY = {
  overview: [
    'the paper pipeline and summary',
    () => document.querySelector('[data-testid="stage-paper-market_feed"]')
      && document.querySelector('[data-testid="stage-paper-portfolio_manager"] .stage-metrics')
      && !document.querySelector('[data-testid="summary-paper"]').textContent.includes('…'),
  ],
  portfolios: [
    'a paper portfolio with its equity chart',
    () => document.querySelector('[data-testid="portfolios-table-paper"] tbody tr')
      && document.querySelector('[data-testid="equity-chart-paper"] canvas'),
  ],
  orders: [
    'paper orders and fills',
    () => document.querySelector('[data-testid="orders-table-paper"] tbody tr')
      && document.querySelector('[data-testid="fills-table-paper"] tbody tr'),
  ],
  signals: ['a paper signal', () => document.querySelector('[data-testid="signals-list-paper"] [data-testid^="signal-row-"]')],
  strategies: ['the strategies', () => document.querySelector('[data-testid^="strategy-row-"]')],
  risk: [
    'the paper kill switch and limits',
    () => ['engaged', 'released'].includes(document.querySelector('[data-testid="kill-switch-state-paper"]')?.textContent)
      && document.querySelector('[data-testid^="risk-limit-paper-"]'),
  ],
  dlq: ['the dead letters', () => document.querySelector('[data-testid="dlq-count"]')?.textContent.trim()
    && document.querySelector('[data-testid^="dlq-row-"]')],
  logs: ['the live log stream', () => document.querySelector('[data-testid="logs-status"]')?.textContent === 'live'],
};

async function journey(context) {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(UI_WAIT);
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(`[${currentStep}] console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => consoleErrors.push(`[${currentStep}] uncaught: ${err.message}`));
  // The kill switch asks for a reason (prompt) and to confirm; strategy changes may confirm.
  page.on('dialog', async (dialog) => {
    log(`  dialog (${dialog.type()}): ${dialog.message().split('\n')[0]}`);
    if (dialog.type() === 'prompt') await dialog.accept('browser journey drill');
    else await dialog.accept();
  });
  let loads = 0;
  page.on('load', () => { loads += 1; });

  await step('log in as admin', async () => {
    await page.goto(`${BASE_URL}/`, { waitUntil: 'load' });
    await login(page, 'admin', ADMIN_PASSWORD, 'admin');
  });

  await step('fills appear live, without a reload', async () => {
    const loaded = page.waitForResponse((r) => r.url().includes('/api/v1/paper/fills'), { timeout: UI_WAIT });
    await open(page, 'orders');
    check((await loaded).ok(), 'GET /api/v1/paper/fills failed');
    await settled(page);
    const rows = `${sel('fills-table-paper')} tbody tr`;
    const before = await page.$$eval(rows, (trs) => trs.map((tr) => tr.dataset.testid));
    const loadsBefore = loads;
    await page.evaluate(() => { window.__marker = 1; });
    log(`  ${before.length} fill rows; waiting for a new one`);
    // Grows: more rows, or (at the dashboard's cap of rows) a row that was not there.
    await until(page, 'a new paper fill row', (known) => {
      const ids = [...document.querySelectorAll('[data-testid="fills-table-paper"] tbody tr')].map((tr) => tr.dataset.testid);
      return ids.length > known.length || ids.some((id) => !known.includes(id));
    }, before, LIVE_WAIT);
    const after = await page.$$eval(rows, (trs) => trs.length);
    check(await page.evaluate(() => window.__marker === 1), 'the page was reloaded (window.__marker is gone)');
    check(loads === loadsBefore, 'the page was reloaded (a load event)');
    log(`  ${after} fill rows now`);
  });

  await step(`a disabled strategy (${FAST_STRATEGY}) stops signalling`, async () => {
    await open(page, 'signals');
    await until(page, `a signal row of ${FAST_STRATEGY}`, (id) => [...document.querySelectorAll('[data-testid="signals-list-paper"] [data-testid^="signal-row-"]')]
      .some((r) => r.querySelector('.sig-strategy')?.textContent.trim() === id), FAST_STRATEGY, LIVE_WAIT);
    // It signals often: a second raw signal follows (so that silence later means something).
    await until(page, `a second raw signal of ${FAST_STRATEGY}`, (id) => [...document.querySelectorAll('[data-testid="signals-list-paper"] .sig-trading_signal')]
      .filter((r) => r.querySelector('.sig-strategy')?.textContent.trim() === id).length >= 2, FAST_STRATEGY, LIVE_WAIT);
    log(`  ${(await signalRowsOf(page, FAST_STRATEGY)).length} signal rows of ${FAST_STRATEGY}`);

    await open(page, 'strategies');
    const row = sel(`strategy-row-${FAST_STRATEGY}`);
    await page.waitForSelector(row);
    await page.click(sel(`strategy-disable-${FAST_STRATEGY}`));
    await until(page, `the row of ${FAST_STRATEGY} to show it inactive`, (r) => {
      const tr = document.querySelector(r);
      return tr && tr.classList.contains('inactive') && [...tr.querySelectorAll('.badge')].some((b) => b.textContent === 'inactive');
    }, row);
    await expectNoBanner(page, 'disabling the strategy');

    // The signals page lists what the live stream brought while any page was open.
    await open(page, 'signals');
    await page.waitForTimeout(5_000); // the runner reads the configurations every 2 s
    const settledIds = await signalRowsOf(page, FAST_STRATEGY);
    await page.waitForTimeout(8_000);
    const laterIds = await signalRowsOf(page, FAST_STRATEGY);
    const fresh = laterIds.filter((id) => !settledIds.includes(id));
    log(`  ${settledIds.length} signal rows of ${FAST_STRATEGY} 5 s after disabling, ${laterIds.length} 8 s later`);
    check(laterIds.length <= settledIds.length && fresh.length === 0,
      `${FAST_STRATEGY} still signals after it was disabled: ${settledIds.length} rows, then ${laterIds.length} (new: ${fresh.join(', ')})`);
    // The rest of the pipeline still signals (the page itself is alive).
    await until(page, 'a signal of another strategy', (id) => [...document.querySelectorAll('[data-testid="signals-list-paper"] [data-testid^="signal-row-"]')]
      .some((r) => r.querySelector('.sig-strategy')?.textContent.trim() !== id), FAST_STRATEGY, LIVE_WAIT);
  });

  await step('engage the paper kill switch', async () => {
    await open(page, 'risk');
    const state = sel('kill-switch-state-paper');
    await until(page, 'the paper kill switch state', (s) => document.querySelector(s)?.textContent === 'released', state);
    await page.click(sel('kill-switch-paper'));
    await until(page, 'the paper kill switch to read engaged', (s) => document.querySelector(s)?.textContent === 'engaged', state);
    await expectNoBanner(page, 'engaging the kill switch');
  });

  await step('replay a dead letter', async () => {
    const loaded = page.waitForResponse((r) => r.url().includes('/api/v1/dlq'), { timeout: UI_WAIT });
    await open(page, 'dlq');
    check((await loaded).ok(), 'GET /api/v1/dlq failed');
    const first = await page.waitForSelector('[data-testid^="dlq-row-"]');
    const id = (await first.getAttribute('data-testid')).slice('dlq-row-'.length);
    log(`  dead letter ${id}`);
    await page.check(sel(`dlq-select-${id}`));
    await until(page, 'the replay button to be enabled', () => !document.querySelector('[data-testid="dlq-replay"]').disabled);
    const replayed = page.waitForResponse((r) => r.url().endsWith('/api/v1/dlq/replay'), { timeout: UI_WAIT });
    await page.click(sel('dlq-replay'));
    const answer = await replayed;
    check(answer.ok(), `POST /api/v1/dlq/replay answered ${answer.status()}: ${await answer.text()}`);
    await until(page, 'the notice saying the dead letter was replayed', () => {
      const n = document.querySelector('[data-testid="notice"]');
      const m = n && !n.hidden && /Replayed (\d+) dead letter/.exec(n.textContent);
      return m && Number(m[1]) >= 1;
    });
    log(`  notice: ${await page.textContent(sel('notice'))}`);
    await expectNoBanner(page, 'replaying the dead letter');
  });

  await step('a screenshot of every page', async () => {
    // The replay's notice goes by itself after 5 s: not in the pictures.
    await until(page, 'the notice to go', () => document.querySelector('[data-testid="notice"]').hidden);
    for (const name of PAGES) {
      await open(page, name);
      const [what, ready] = READY[name];
      await until(page, `${what} (${name} page)`, ready, undefined, name === 'portfolios' ? LIVE_WAIT : UI_WAIT);
      await settled(page);
      const file = path.join(SCREENSHOT_DIR, `${name}.png`);
      await page.screenshot({ path: file, animations: 'disabled' });
      log(`  ${file}`);
    }
  });

  const adminErrors = consoleErrors.length;

  await step(`log out, log in as the viewer ${VIEWER_USER}: read only`, async () => {
    await page.click(sel('logout'));
    await page.waitForSelector(sel('login-username'), { state: 'visible' });
    check(await page.evaluate((k) => sessionStorage.getItem(k) === null, SESSION_KEY), 'the session is still stored after logging out');
    await login(page, VIEWER_USER, VIEWER_PASSWORD, 'viewer');

    await open(page, 'strategies');
    await page.waitForSelector(sel(`strategy-row-${FAST_STRATEGY}`));
    for (const kind of ['enable', 'disable', 'zerodha']) {
      const states = await page.$$eval(`button[data-testid^="strategy-${kind}-"]`, (bs) => bs.map((b) => [b.dataset.testid, b.disabled]));
      check(states.length > 0, `no strategy-${kind}-* button`);
      const enabled = states.filter(([, disabled]) => !disabled).map(([id]) => id);
      check(enabled.length === 0, `the viewer may click: ${enabled.join(', ')}`);
    }

    await open(page, 'risk');
    await until(page, 'the paper kill switch state', () => ['engaged', 'released'].includes(document.querySelector('[data-testid="kill-switch-state-paper"]')?.textContent));
    check(await page.isDisabled(sel('kill-switch-paper')), 'the viewer may click the kill switch');

    await open(page, 'dlq');
    await until(page, 'the dead letters', () => document.querySelector('[data-testid="dlq-count"]')?.textContent.trim());
    check(await page.isDisabled(sel('dlq-replay')), 'the viewer may click replay');
    check(await page.isDisabled(sel('dlq-purge')), 'the viewer may click purge');

    const answer = await page.evaluate(async (key) => {
      const session = JSON.parse(sessionStorage.getItem(key) || 'null');
      if (!session || !session.access_token) return { error: `no session under ${key}` };
      const res = await fetch('/api/v1/paper/kill-switch', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${session.access_token}` },
        body: JSON.stringify({ engaged: false, reason: 'a viewer tries' }),
      });
      return { status: res.status, body: await res.text(), username: session.username };
    }, SESSION_KEY);
    check(!answer.error, answer.error);
    check(answer.username === VIEWER_USER, `the stored session is ${answer.username}'s`);
    check(answer.status === 403, `POST /api/v1/paper/kill-switch as the viewer answered ${answer.status}: ${answer.body}`);
    log(`  POST /api/v1/paper/kill-switch as the viewer: 403 ${answer.body}`);
  });

  // The admin's journey logged no console error (the viewer's refused call logs its 403).
  if (adminErrors) {
    currentStep = 'console';
    throw new StepFailure(`the page logged ${adminErrors} console error(s) before the viewer's steps`);
  }
  return page;
}

let context;
let userDataDir;
let page;
try {
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'alpha-panda-journey-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
  });
  page = await journey(context);
  log(`passed: every step (${secs(started)})`);
  if (consoleErrors.length) log(`console errors (expected, from the viewer's refused call):\n  ${consoleErrors.join('\n  ')}`);
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
  process.exit(0);
} catch (err) {
  console.error(`journey: FAILED in step "${currentStep}": ${err instanceof StepFailure ? err.message : err.stack || err}`);
  const p = page || (context && context.pages()[0]);
  if (p) {
    const banner = await bannerText(p);
    console.error(`journey: error banner: ${banner === null ? '(hidden)' : banner}`);
    try {
      console.error(`journey: at ${p.url()}`);
      const file = path.join(SCREENSHOT_DIR, 'failure.png');
      await p.screenshot({ path: file, timeout: 5_000 });
      console.error(`journey: screenshot of the failure: ${file}`);
    } catch {
      // no screenshot: the browser is gone
    }
  }
  console.error(`journey: console errors (${consoleErrors.length}):${consoleErrors.length ? `\n  ${consoleErrors.join('\n  ')}` : ' none'}`);
  if (context) await context.close().catch(() => {});
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  process.exit(1);
}

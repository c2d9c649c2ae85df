// A backtest's report.html in a real browser: Debian's Chromium driven by playwright-core, the page
// opened from disk with the network cut off (the report must be self-contained). Started by
// crates/cli/tests/backtest.rs; by hand:
//
//   REPORT=/tmp/out/report.html SCREENSHOT=/tmp/report.png node tests/browser/report.mjs
//
// Exits 0 when the page shows its charts and tables without a request or a console error.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';

function fail(message) {
  console.error(`report: FAILED: ${message}`);
  process.exit(1);
}

const REPORT = process.env.REPORT || fail('the environment variable REPORT is not set');
const SCREENSHOT = process.env.SCREENSHOT || fail('the environment variable SCREENSHOT is not set');
if (!fs.existsSync(CHROMIUM)) fail(`${CHROMIUM} is missing: apt-get install chromium`);
if (!fs.existsSync(REPORT)) fail(`${REPORT} does not exist`);

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'alpha-panda-report-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1280, height: 1500 },
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // Anything but the file itself is a request the report should not make.
  await page.route('**/*', (route) =>
    route.request().url().startsWith('file://')
      ? route.continue()
      : (problems.push(`request: ${route.request().url()}`), route.abort()),
  );
  await page.goto(`file://${path.resolve(REPORT)}`);
  const charts = await page.locator('svg').count();
  if (charts < 3) problems.push(`${charts} charts; the equity, drawdown and trades charts are expected`);
  const text = await page.locator('body').innerText();
  for (const word of ['Sharpe', 'Sortino', 'Calmar', 'drawdown', 'Profit factor', 'STT', 'Stamp']) {
    if (!text.toLowerCase().includes(word.toLowerCase())) problems.push(`the page does not say ${word}`);
  }
  // Triangles are paths; the legend draws one buy and one sell of its own.
  const markers = (await page.locator('svg path').count()) - 2;
  if (markers <= 0) problems.push('the trades chart has no buy or sell marker');
  await page.screenshot({ path: SCREENSHOT, fullPage: false, animations: 'disabled' });
  if (problems.length > 0) fail(problems.join('\n'));
  console.log(`report: ${charts} charts, ${markers} trade markers; screenshot ${SCREENSHOT}`);
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

// End-to-end checks of the gatelog dashboard in the system's headless
// Chromium, through playwright-core (which never downloads a browser).
//
// Usage: node dashboard.mjs <base-url> <artifacts-dir>
//
// The server at <base-url> must already hold the passages that
// tests/tests/e2e/browser.rs seeds. Exits non-zero with a message on the
// first failed check.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { check, launch } from './common.mjs';

const [base, artifacts] = process.argv.slice(2);
if (!base || !artifacts) {
  console.error('usage: node dashboard.mjs <base-url> <artifacts-dir>');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const browser = await launch();
const problems = [];

async function post(body) {
  const res = await fetch(`${base}/api/v1/recognitions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

try {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));

  await page.goto(base, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid="live"][data-state="live"]', { timeout: 10000 });
  check(true, 'the page loads and the live feed connects');

  const rows = page.locator('[data-testid="log-row"]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="log-row"]').length >= 6);
  const before = await rows.count();
  check(before >= 6, `the seeded passages are listed (${before} rows)`);

  // This server has no sync target: the header says so, and no row claims
  // to be waiting for one.
  const sync = await page.locator('[data-testid="sync"]').textContent();
  check(sync === 'local only', `the sync indicator shows "${sync}"`);
  const pendingRows = await page.locator('[data-testid="log-row"] td.sync-pending').count();
  check(pendingRows === 0, `no row says pending without a target (${pendingRows})`);

  // A passage posted now appears without a reload, highlighted.
  const now = new Date().toISOString();
  const created = await post({ container: 'TGHU7654320', captured_at: now, camera_id: 'gate-cam-2' });
  check(created.status === 201, 'a new read is accepted');
  const liveRow = page.locator('[data-testid="log-row"]', { hasText: 'TGHU7654320' });
  await liveRow.waitFor({ timeout: 5000 });
  check(await liveRow.evaluate((r) => r.classList.contains('fresh')), 'the new passage appears live, highlighted');
  check(await rows.first().textContent().then((t) => t.includes('TGHU7654320')), 'the newest passage is on top');

  // A repeat bumps the count in place.
  const again = await post({ container: 'TGHU7654320', captured_at: new Date(Date.parse(now) + 30000).toISOString() });
  check(again.status === 200, 'a repeat read is a duplicate');
  await page.waitForFunction(() => {
    const row = [...document.querySelectorAll('[data-testid="log-row"]')].find((r) => r.textContent.includes('TGHU7654320'));
    return row && row.querySelector('[data-testid="seen"]').textContent === '2';
  }, null, { timeout: 5000 });
  check(true, 'the repeat bumps the seen count to 2');

  // A wrong check digit is marked.
  const flagged = await post({ container: 'OOLU8888880', captured_at: new Date(Date.parse(now) + 1000).toISOString() });
  check(flagged.status === 201, 'a read with a wrong check digit is accepted, flagged');
  const flaggedRow = page.locator('[data-testid="log-row"][data-flagged="true"]', { hasText: 'OOLU888888' });
  await flaggedRow.waitFor({ timeout: 5000 });
  check(await flaggedRow.locator('[data-testid="flag"]').count() === 1, 'the flagged check digit is marked');

  // The search box filters the rows through the API.
  await page.fill('[data-testid="search"]', 'HLXU');
  await page.waitForFunction(() => {
    const rs = [...document.querySelectorAll('[data-testid="log-row"]')];
    return rs.length > 0 && rs.every((r) => r.textContent.includes('HLXU'));
  }, null, { timeout: 5000 });
  const filtered = await rows.count();
  check(filtered > 0 && filtered < before, `searching "HLXU" leaves ${filtered} of ${before + 2} rows`);
  await page.fill('[data-testid="search"]', '123456');
  await page.waitForFunction(() => {
    const rs = [...document.querySelectorAll('[data-testid="log-row"]')];
    return rs.length === 1 && rs[0].textContent.includes('MAEU1234567');
  }, null, { timeout: 5000 });
  check(true, 'searching a serial finds its one passage');
  // A live passage that does not match stays out of a filtered table.
  await post({ container: 'ZIMU5555550', captured_at: new Date().toISOString() });
  await page.waitForTimeout(500);
  check(await rows.count() === 1, 'a live passage outside the search is not added');
  await page.click('#clear');
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="log-row"]').length >= n, before + 2);
  check(true, 'clearing the search brings every row back');

  // The detail view shows sightings and the cropped image.
  const withImage = page.locator('[data-testid="log-row"]', { hasText: 'CMAU' }).first();
  await withImage.click();
  await page.waitForSelector('[data-testid="detail"]:not([hidden])');
  const sightings = await page.locator('[data-testid="sighting-row"]').count();
  check(sightings >= 1, `the detail view lists ${sightings} sighting(s)`);
  const img = page.locator('[data-testid="crop"]');
  await img.waitFor({ timeout: 5000 });
  await page.waitForFunction(() => {
    const i = document.querySelector('[data-testid="crop"]');
    return i && i.complete && i.naturalWidth > 0;
  }, null, { timeout: 5000 });
  check(true, 'the cropped image from the image folder is shown');
  await page.screenshot({ path: join(artifacts, 'dashboard-detail.png'), fullPage: false });
  await page.click('#close-detail');

  // A passage of 150 reads shows its sightings a page (100) at a time.
  const t0 = Date.now() - 60000;
  const many = await post(Array.from({ length: 150 }, (_, i) => (
    { container: 'TRLU1111110', captured_at: new Date(t0 + i * 100).toISOString() })));
  check(many.status === 200, 'a batch of 150 reads of one container is accepted');
  const manyRow = page.locator('[data-testid="log-row"]', { hasText: 'TRLU111111' });
  await manyRow.waitFor({ timeout: 5000 });
  await manyRow.click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="sighting-row"]').length === 100, null, { timeout: 5000 });
  const moreSightings = page.locator('[data-testid="more-sightings"]');
  check(await moreSightings.isVisible(), 'the detail lists the first 100 sightings and offers more');
  await moreSightings.click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="sighting-row"]').length === 150, null, { timeout: 5000 });
  check(!(await moreSightings.isVisible()), 'the next page brings all 150, and nothing more is offered');
  await page.click('#close-detail');

  // The chart has drawn a bar for this hour.
  await page.waitForFunction(() => [...document.querySelectorAll('#chart rect.bar')].some((b) => Number(b.dataset.count) > 0));
  check(true, 'the passages-per-hour chart shows passages');

  // Korean by toggle (and by browser language, below).
  await page.click('[data-testid="lang"]');
  const syncKo = await page.locator('[data-testid="sync"]').textContent();
  check(syncKo === '로컬 전용', `the toggle switches to Korean ("${syncKo}")`);
  await page.screenshot({ path: join(artifacts, 'dashboard-ko.png'), fullPage: true });
  await page.click('[data-testid="lang"]');
  await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });

  const ko = await browser.newContext({ locale: 'ko-KR' });
  const koPage = await ko.newPage();
  koPage.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error (ko): ${msg.text()}`);
  });
  await koPage.goto(base);
  await koPage.waitForSelector('[data-testid="live"][data-state="live"]');
  check(await koPage.evaluate(() => document.documentElement.lang) === 'ko', 'a Korean browser gets Korean');
  await ko.close();

  check(problems.length === 0, `no console errors${problems.length ? `:\n  ${problems.join('\n  ')}` : ''}`);
  await context.close();
} catch (e) {
  console.error(e.message);
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}

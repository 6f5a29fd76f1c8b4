// The yard view and the gate columns of the log in the system's headless
// Chromium: the count in the yard, the longest stays first with their
// dwell in words, the dwell histogram and the per-owner counts, in English
// and Korean; in the log, each movement's direction, lane, truck plate and
// size-type, the direction filter, and a plate that filters the log to
// its truck.
//
// Usage: node yard.mjs <base-url> <artifacts-dir>
//
// The server must hold what tests/tests/e2e/browser.rs seeds for it, with
// cameras `gate-1-in` (in) and `gate-1-out` (out), both lane 1:
//   MSCU1234566 in 50 h ago and CSQU3054383 one second later, one truck
//   (12가3456, 22G1); TGHU7654320 in 5 h ago; MAEU1234567 in 2 h ago and
//   out 30 min ago (truck 78라1234, 45R1); MSCU0000007 in 10 min ago;
//   OOLU0000008 out 5 min ago without an in.
// So four containers are in the yard, two of them MSCU's. Exits non-zero
// on the first failed check.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { check, launch } from './common.mjs';

const [base, artifacts] = process.argv.slice(2);
if (!base || !artifacts) {
  console.error('usage: node yard.mjs <base-url> <artifacts-dir>');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const browser = await launch();
const problems = [];

function watch(page, label) {
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error (${label}): ${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => problems.push(`page error (${label}): ${err.message}`));
  page.on('requestfailed', (req) => problems.push(`request failed (${label}): ${req.url()} ${req.failure()?.errorText}`));
}

/** The counts the histogram's bars show, in bin order. */
const barCounts = (page) => page.$$eval('[data-testid="hist-bar"]', (bars) => bars.map((b) => Number(b.dataset.count)));

/** The texts of a column of the visible log rows, by test id. */
const logColumn = (page, testid) => page.$$eval('[data-testid="log-row"]',
  (rows, id) => rows.map((r) => r.querySelector(`[data-testid="${id}"]`)?.textContent ?? ''), testid);

/** Waits until exactly `n` log rows show, each containing every text in `texts`. */
async function waitForLogRows(page, n, texts = []) {
  await page.waitForFunction(([count, want]) => {
    const rs = [...document.querySelectorAll('[data-testid="log-row"]')];
    return rs.length === count && want.every((w) => rs.some((r) => r.textContent.includes(w)));
  }, [n, texts], { timeout: 5000 });
}

try {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  watch(page, 'en');

  await page.goto(base, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid="live"][data-state="live"]', { timeout: 10000 });
  check(await page.locator('[data-testid="yard"]').isHidden(), 'the dashboard opens on the log');

  // ---- The yard view ----
  await page.click('[data-testid="view-yard"]');
  await page.waitForSelector('[data-testid="yard"]:not([hidden])');
  check(await page.locator('.table-box').isHidden(), 'the yard view replaces the log');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="yard-row"]').length === 4, null, { timeout: 5000 });
  const count = await page.locator('[data-testid="yard-count"]').textContent();
  check(count === '4', `the yard view counts 4 containers in the yard (${count})`);

  const yardRows = page.locator('[data-testid="yard-row"]');
  const first = await yardRows.first().textContent();
  check(first.includes('MSCU1234566'), `the longest stay is listed first (${first})`);
  check(first.includes('12가3456') && first.includes('22G1'), 'its truck plate and size-type are shown');
  const firstDwell = await yardRows.first().locator('[data-testid="dwell"]').textContent();
  check(firstDwell === '2 d 2 h', `its dwell reads "2 d 2 h" (${firstDwell})`);
  const secs = await page.$$eval('[data-testid="dwell"]', (cells) => cells.map((c) => Number(c.dataset.secs)));
  check(secs.every((s, i) => i === 0 || secs[i - 1] >= s), `longest stays first (${secs.join(', ')})`);
  const lastDwell = await yardRows.last().locator('[data-testid="dwell"]').textContent();
  check(/^1[01] min$/.test(lastDwell), `the newest arrival has been in for about "10 min" (${lastDwell})`);
  const listed = (await yardRows.allTextContents()).join(' ');
  check(!listed.includes('MAEU1234567') && !listed.includes('OOLU0000008'), 'containers that went out are not in the yard');

  // Bins: under 1 h, 1–6 h, 6–24 h, 1–3 d, 3–7 d, 7–14 d, 14–30 d, 30 d and more.
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="hist-bar"]').length === 8);
  const bars = await barCounts(page);
  check(JSON.stringify(bars) === JSON.stringify([1, 1, 0, 2, 0, 0, 0, 0]),
    `the dwell histogram puts the boxes in the right bins (${bars.join(', ')})`);
  check(bars.reduce((a, b) => a + b, 0) === 4, 'the histogram holds as many boxes as the yard');
  const median = await page.locator('[data-testid="yard-dwell"]').textContent();
  check(median.includes('longest 2 d 2 h'), `the dwell summary names the longest stay (${median})`);

  const owners = await page.$$eval('[data-testid="yard-owner"]',
    (items) => Object.fromEntries(items.map((i) => [i.dataset.owner, i.querySelector('[data-testid="owner-count"]').textContent])));
  check(JSON.stringify(owners) === JSON.stringify({ MSCU: '2', CSQU: '1', TGHU: '1' }),
    `the per-owner counts are right (${JSON.stringify(owners)})`);

  // An owner narrows the view to its containers; clicking it again shows all.
  await page.click('[data-testid="yard-owner"][data-owner="MSCU"] button');
  await page.waitForFunction(() => document.querySelector('[data-testid="yard-count"]').textContent === '2');
  const mscu = await yardRows.allTextContents();
  check(mscu.length === 2 && mscu.every((r) => r.includes('MSCU')), 'choosing MSCU lists its 2 containers');
  const mscuBars = await barCounts(page);
  check(JSON.stringify(mscuBars) === JSON.stringify([1, 0, 0, 1, 0, 0, 0, 0]), `and the histogram follows (${mscuBars.join(', ')})`);
  await page.click('[data-testid="yard-owner-clear"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="yard-count"]').textContent === '4');
  await page.screenshot({ path: join(artifacts, 'yard.png'), fullPage: true });

  // A gate-in posted now shows in the yard without a reload.
  const res = await fetch(`${base}/api/v1/recognitions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ container: 'HLXU3131310', captured_at: new Date().toISOString(), camera_id: 'gate-1-in', iso_type: '42G1' }),
  });
  check(res.status === 201, 'a new gate-in is accepted');
  await page.waitForFunction(() => document.querySelector('[data-testid="yard-count"]').textContent === '5', null, { timeout: 10000 });
  check(await yardRows.last().textContent().then((r) => r.includes('HLXU3131310')), 'the live gate-in joins the yard, newest last');
  check((await barCounts(page))[0] === 2, 'and the histogram\'s first bin');

  // Korean.
  await page.click('[data-testid="lang"]');
  const title = await page.locator('#yard-title').textContent();
  check(title.startsWith('야드'), `the yard view speaks Korean ("${title}")`);
  await page.waitForFunction(() => document.querySelector('[data-testid="dwell"]').textContent === '2일 2시간', null, { timeout: 5000 });
  check(true, 'dwell reads "2일 2시간" in Korean');
  const koLabel = await page.locator('#yard-histogram text').last().textContent();
  check(koLabel === '30일 이상', `the histogram's bins are labelled in Korean ("${koLabel}")`);
  await page.screenshot({ path: join(artifacts, 'yard-ko.png'), fullPage: true });
  await page.click('[data-testid="lang"]');

  // ---- The log: direction, lane, truck and size-type ----
  // A plate in the yard leads to every movement of that truck.
  await page.locator('[data-testid="yard-row"]', { hasText: 'MSCU1234566' }).locator('[data-testid="plate"]').click();
  await page.waitForSelector('.table-box:not([hidden])');
  check(await page.locator('[data-testid="yard"]').isHidden(), 'a plate in the yard opens the log');
  check(await page.inputValue('[data-testid="plate-filter"]') === '12가3456', 'filtered by that plate');
  await waitForLogRows(page, 2, ['MSCU1234566', 'CSQU3054383']);
  check(true, 'the two boxes on that truck show together');
  await page.click('#clear');
  await waitForLogRows(page, 8);

  const dirs = await logColumn(page, 'direction');
  check(dirs.filter((d) => d === '→ In').length === 6 && dirs.filter((d) => d === '← Out').length === 2,
    `the log shows each movement's direction (${dirs.join(' | ')})`);
  const lanes = await logColumn(page, 'lane');
  check(lanes.every((l) => l === '1'), 'and its lane');
  const out = page.locator('[data-testid="log-row"]', { hasText: 'MAEU1234567' }).filter({ hasText: 'Out' });
  check(await out.locator('[data-testid="plate"]').textContent() === '78라1234', 'the out movement shows its own truck');
  check(await out.locator('[data-testid="iso-type"]').textContent() === '45R1', 'and its size-type');
  const stray = page.locator('[data-testid="log-row"]', { hasText: 'OOLU0000008' });
  const strayFlag = await stray.locator('[data-testid="flag"]').textContent();
  check(strayFlag.includes('out without an in'), `an out without an in is labelled ("${strayFlag}")`);

  // The direction filter.
  await page.selectOption('[data-testid="direction-filter"]', 'out');
  await waitForLogRows(page, 2, ['MAEU1234567', 'OOLU0000008']);
  check(true, 'the direction filter leaves the 2 gate-outs');
  await page.selectOption('[data-testid="direction-filter"]', '');
  await waitForLogRows(page, 8);

  // A plate in the log filters too; the detail shows the movement.
  await out.locator('[data-testid="plate"]').click();
  await waitForLogRows(page, 1, ['MAEU1234567']);
  check(await page.locator('[data-testid="detail"]').isHidden(), 'clicking a plate filters without opening the detail');
  await page.locator('[data-testid="log-row"]').first().click();
  await page.waitForSelector('[data-testid="detail"]:not([hidden])');
  const detail = await page.locator('#detail-body dl').textContent();
  for (const want of ['← Out', '78라1234', '45R1', 'Stayed1 h 30 min']) {
    check(detail.includes(want), `the detail shows "${want}"`);
  }
  await page.screenshot({ path: join(artifacts, 'yard-log.png'), fullPage: true });

  // A Korean browser opened on #yard lands in the yard, in Korean.
  const ko = await browser.newContext({ locale: 'ko-KR', viewport: { width: 1280, height: 900 } });
  const koPage = await ko.newPage();
  watch(koPage, 'ko');
  await koPage.goto(`${base}/#yard`, { waitUntil: 'load' });
  await koPage.waitForFunction(() => document.querySelectorAll('[data-testid="yard-row"]').length === 5, null, { timeout: 5000 });
  check(await koPage.locator('[data-testid="view-yard"]').getAttribute('aria-pressed') === 'true', 'the address #yard opens the yard view');
  const koCount = await koPage.locator('.yard-total').textContent();
  check(koCount.replace(/\s+/g, ' ').trim() === '5 개 장치 중', `the count reads in Korean ("${koCount.trim()}")`);

  // Before the pages close, which would cut their requests short.
  check(problems.length === 0, `no console errors${problems.length ? `:\n  ${problems.join('\n  ')}` : ''}`);
  await ko.close();
  await context.close();
} catch (e) {
  console.error(e.message);
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}

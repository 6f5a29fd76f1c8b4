// The head-office dashboard (gatelog central serve) in the system's
// headless Chromium: a site column on every row and a site filter filled
// from /api/v1/sites, which narrows the log to one site; the parts only a
// site has (the yard, the exceptions queue) are not offered.
//
// Usage: node central.mjs <base-url> <artifacts-dir>
//
// The central database must hold what tests/tests/e2e/central_serve.rs
// seeds: three passages of site `gate-a` and two of site `gate-b`.
// Exits non-zero on the first failed check.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { check, launch } from './common.mjs';

const [base, artifacts] = process.argv.slice(2);
if (!base || !artifacts) {
  console.error('usage: node central.mjs <base-url> <artifacts-dir>');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const browser = await launch();
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  await page.goto(base);

  const sites = () => page.$$eval('[data-testid="log-row"] [data-testid="site"]', (cells) => cells.map((c) => c.textContent));
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="log-row"]').length === 5);
  check(await page.isVisible('[data-testid="site-col"]'), 'the log has a site column');
  const all = await sites();
  check(all.filter((s) => s === 'gate-a').length === 3 && all.filter((s) => s === 'gate-b').length === 2,
    `every row names its site (${all.join(', ')})`);

  const options = await page.$$eval('[data-testid="site-filter"] option', (os) => os.map((o) => o.value));
  check(JSON.stringify(options) === JSON.stringify(['', 'gate-a', 'gate-b']),
    `the site filter offers every site (${options.join(', ')})`);
  check(!(await page.isVisible('[data-testid="view-yard"]')) && !(await page.isVisible('[data-testid="show-exceptions"]')),
    'the yard and the exceptions queue, which only a site keeps, are not offered');

  await page.selectOption('[data-testid="site-filter"]', 'gate-b');
  await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll('[data-testid="log-row"] [data-testid="site"]')];
    return cells.length === 2 && cells.every((c) => c.textContent === 'gate-b');
  });
  check(true, 'the site filter narrows the log to one site');
  await page.screenshot({ path: join(artifacts, 'central-site-filter.png'), fullPage: true });

  await page.click('#clear');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="log-row"]').length === 5);
  check(true, 'clearing the filters shows every site again');
  check(problems.length === 0, `no console or page errors (${problems.join('; ')})`);
} finally {
  await browser.close();
}

// The exceptions view in the system's headless Chromium: an operator signs
// in with an operator key, sees a queued read with its crop image and live
// count, types a number that the page refuses until its check digit is
// right, resolves the read, and sees it become a passage in the log,
// marked corrected, with the correction in its history.
//
// Usage: node exceptions.mjs <base-url> <operator-key> <artifacts-dir>
//
// The server must hold one queued read, "CSQU30K438" (see
// tests/tests/e2e/browser.rs). Exits non-zero on the first failed check.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { check, launch } from './common.mjs';

const [base, key, artifacts] = process.argv.slice(2);
if (!base || !key || !artifacts) {
  console.error('usage: node exceptions.mjs <base-url> <operator-key> <artifacts-dir>');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const browser = await launch();
const problems = [];

try {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));

  await page.goto(base, { waitUntil: 'load' });
  await page.fill('input[name="key"]', key);
  await Promise.all([page.waitForURL(`${base}/`), page.press('input[name="key"]', 'Enter')]);
  await page.waitForSelector('[data-testid="live"][data-state="live"]', { timeout: 10000 });
  check(true, 'an operator key signs in and the live feed connects');

  const badge = page.locator('[data-testid="exceptions-count"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="exceptions-count"]').textContent === '1');
  check(true, 'the badge counts the one open item');

  await page.click('[data-testid="show-exceptions"]');
  const item = page.locator('[data-testid="exception"][data-kind="unresolved_read"]');
  await item.waitFor({ timeout: 10000 });
  const text = await item.locator('[data-testid="exception-text"]').textContent();
  check(text === 'CSQU30K438', `the queued read shows its text as read (${text})`);
  const meta = await item.textContent();
  check(meta.includes('gate-cam-1'), 'the queued read shows its camera');
  const imageOk = await item.locator('[data-testid="exception-image"]').evaluate(
    (img) => img.complete ? img.naturalWidth > 0 : new Promise((r) => { img.onload = () => r(img.naturalWidth > 0); img.onerror = () => r(false); }),
  );
  check(imageOk, 'the crop image of the queued read loads');

  // Only a valid ISO 6346 number can be sent.
  const input = item.locator('[data-testid="number-input"]');
  const submit = item.locator('[data-testid="number-submit"]');
  for (const wrong of ['CSQU30K438', 'CSQU305438', 'CSQU3054384', 'CSQX3054383']) {
    await input.fill(wrong);
    check(await submit.isDisabled(), `"${wrong}" cannot be sent`);
  }
  const hint = await item.locator('[data-testid="number-hint"]').textContent();
  check(hint.includes('check digit'), `the hint names the problem ("${hint}")`);
  await input.fill('CSQU3054384');
  const digitHint = await item.locator('[data-testid="number-hint"]').textContent();
  check(digitHint.endsWith(' 3'), `the hint gives the right check digit ("${digitHint}")`);
  await input.fill('csqu 305438 3');
  check(await submit.isEnabled(), 'a valid number can be sent');
  await page.screenshot({ path: join(artifacts, 'exceptions.png'), fullPage: true });
  await submit.click();

  await item.waitFor({ state: 'detached', timeout: 10000 });
  check(true, 'the resolved read leaves the queue');
  const row = page.locator('[data-testid="log-row"]', { hasText: 'CSQU3054383' });
  await row.waitFor({ timeout: 10000 });
  check(await row.getAttribute('data-corrected') === 'true', 'it appears in the log as a passage, marked corrected');
  await page.waitForFunction(() => document.querySelector('[data-testid="exceptions-count"]').textContent === '0');
  check(await badge.textContent() === '0', 'the live count drops to 0');

  await row.click();
  const history = page.locator('[data-testid="correction-row"]');
  await history.first().waitFor({ timeout: 10000 });
  const line = await history.first().textContent();
  check(line.includes('CSQU30K438') && line.includes('operator') && line.includes('kim'),
    `the detail shows the correction history (${line})`);
  await page.screenshot({ path: join(artifacts, 'exceptions-resolved.png'), fullPage: true });

  check(problems.length === 0, `no console errors${problems.length ? `: ${problems.join('; ')}` : ''}`);
} catch (e) {
  console.error(e.message);
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}

// The dashboard with keys configured, in the system's headless Chromium:
// a visitor is sent to the sign-in form, a read key opens the dashboard,
// and when the session stops being valid (as after a server restart) the
// dashboard goes back to the sign-in form by itself.
//
// Usage: node signin.mjs <base-url> <read-key>
import { check, launch } from './common.mjs';

const [base, key] = process.argv.slice(2);
if (!base || !key) {
  console.error('usage: node signin.mjs <base-url> <read-key>');
  process.exit(2);
}

const browser = await launch();

try {
  const context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();

  await page.goto(base, { waitUntil: 'load' });
  check(new URL(page.url()).pathname === '/login', `a visitor without a session is sent to ${page.url()}`);

  await page.fill('input[name="key"]', key);
  await Promise.all([page.waitForURL(`${base}/`), page.press('input[name="key"]', 'Enter')]);
  await page.waitForSelector('[data-testid="live"][data-state="live"]', { timeout: 10000 });
  check(true, 'a read key signs in and the live feed connects');

  // The session stops being valid, as every session does when the server
  // restarts, and the feed drops.
  const url = new URL(base);
  await context.addCookies([{ name: 'gatelog_session', value: '1.2.stale', domain: url.hostname, path: '/' }]);
  await page.evaluate(() => socket.close());
  await page.waitForURL(`${base}/login`, { timeout: 10000 });
  check(true, 'a dashboard whose session ended goes back to the sign-in form');
} catch (e) {
  console.error(e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}

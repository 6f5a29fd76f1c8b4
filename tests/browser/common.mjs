// What the browser scripts share: the system's Chromium, started the way
// this machine needs, and a check that stops at the first failure.
import { chromium } from 'playwright-core';

// Debian's Chromium (or CHROMIUM), headless; the background-networking
// flags keep it from calling out of a closed network.
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// Throws unless `ok`; prints an `ok - …` line the Rust test looks for.
export function check(ok, message) {
  if (!ok) throw new Error(`check failed: ${message}`);
  console.log(`ok - ${message}`);
}

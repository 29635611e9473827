// What the browser tests share: their settings from the environment, Debian's
// Chromium launched by playwright-core with the test CA trusted, named steps,
// screenshots and checks that fail with a clear message.
//
// Chromium verifies the gateway's certificate for real (ignoreHTTPSErrors is
// false): the test CA is added as a trusted root to an NSS database in a
// HOME of the script's own (certutil, from libnss3-tools), which is where
// Chromium on Linux reads locally trusted roots from. trustCheck() shows that
// without it the page does not load.
//
// Settings (set by tests/system/browser_test.cc):
//   BROWSER_TEST_GATEWAY         https://127.0.0.1:<port> of the gateway
//   BROWSER_TEST_CA_FILE         the test CA (PEM) that issued the gateway's certificate
//   BROWSER_TEST_ADMIN_USER, BROWSER_TEST_ADMIN_PASSWORD
//   BROWSER_TEST_MAIL_DIR        the SMTP sink's folder of .eml files
//   BROWSER_TEST_SCREENSHOT_DIR  where <name>.png screenshots go
//   BROWSER_TEST_WORK_DIR        a scratch folder (the browser's HOME)
//   BROWSER_TEST_CHROMIUM        the browser (default /usr/bin/chromium)
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export function setting(name) {
  const v = process.env[name];
  if (!v) fail(`setting ${name} is missing`);
  return v;
}

export function fail(message) {
  console.error(`FAILED: ${message}`);
  process.exit(1);
}

// Throws (and so fails the current step) unless `condition`.
export function check(condition, message) {
  if (!condition) throw new Error(message);
}

let current = 'start';
// Runs one named step; the name is printed, and on failure with the error.
export async function step(name, fn) {
  current = name;
  const t0 = Date.now();
  await fn();
  console.log(`ok   ${name} (${Date.now() - t0} ms)`);
}

// The script's body with a deadline; on any failure the failing step is
// named, the browser closed and the process ends with 1.
export async function run(title, body, { deadlineMs = 120000 } = {}) {
  const browsers = [];
  const timer = setTimeout(async () => {
    console.error(`FAILED: ${title}: step "${current}" did not finish within ${deadlineMs} ms`);
    await Promise.allSettled(browsers.map((b) => b.close()));
    process.exit(1);
  }, deadlineMs);
  try {
    await body((b) => { browsers.push(b); return b; });
    console.log(`${title}: all steps passed`);
  } catch (e) {
    console.error(`FAILED: ${title}: step "${current}": ${e && e.stack ? e.stack : e}`);
    process.exitCode = 1;
  } finally {
    clearTimeout(timer);
    await Promise.allSettled(browsers.map((b) => b.close()));
  }
}

// A HOME whose NSS database trusts `caFile` as a root for servers (or, with
// caFile null, trusts nothing of ours).
function browserHome(name, caFile) {
  const home = join(setting('BROWSER_TEST_WORK_DIR'), name);
  rmSync(home, { recursive: true, force: true });
  const db = join(home, '.pki', 'nssdb');
  mkdirSync(db, { recursive: true });
  if (caFile) {
    execFileSync('certutil', ['-d', `sql:${db}`, '-N', '--empty-password']);
    execFileSync('certutil', ['-d', `sql:${db}`, '-A', '-t', 'C,,', '-n', 'crm-test-ca', '-i', caFile]);
  }
  return home;
}

// Debian's Chromium, headless, never a downloaded one.
export async function launch(name, { trustTestCa = true } = {}) {
  const home = browserHome(name, trustTestCa ? setting('BROWSER_TEST_CA_FILE') : null);
  return chromium.launch({
    executablePath: process.env.BROWSER_TEST_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // No sandbox: tests run as root in containers, where Chromium's sandbox
    // cannot start.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--disable-gpu'],
    env: { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, '.config') },
  });
}

// The gateway's certificate is really checked: a browser that does not
// trust the test CA refuses the page.
export async function trustCheck(url, keep) {
  const browser = keep(await launch('untrusting', { trustTestCa: false }));
  const page = await (await browser.newContext({ ignoreHTTPSErrors: false })).newPage();
  let error = '';
  try {
    await page.goto(url);
  } catch (e) {
    error = String(e.message);
  }
  await browser.close();
  check(/ERR_CERT_AUTHORITY_INVALID/.test(error),
    `a browser without the test CA loaded ${url} (error: "${error}"): certificates are not verified`);
}

export async function screenshot(page, name) {
  const dir = setting('BROWSER_TEST_SCREENSHOT_DIR');
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

// Collects what a page must never show: uncaught script errors and console
// errors other than failed requests (which the tests cause on purpose), e.g.
// a Content-Security-Policy violation.
export function watch(page) {
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) {
      problems.push(`console: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return problems;
}

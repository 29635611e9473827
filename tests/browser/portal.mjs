// The privacy portal in Chromium (tests/system/browser_test.cc,
// BrowserTest.ASubjectGetsACopyOfTheirDataThroughThePortal).
//
// A customer (BROWSER_TEST_SUBJECT_EMAIL, whose given name is
// BROWSER_TEST_SUBJECT_NAME) opens the portal on a phone-sized screen in
// Polish, switches to English, is told which field is wrong, asks for a code,
// reads it from the SMTP sink's folder, is refused a wrong code, signs in
// with the right one, corrects their family name, asks for a copy of their data, waits on the page until
// it is ready, downloads it and finds their name in it, sees their consents
// and signs out. Screenshots: portal-*.png.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  check, launch, run, screenshot, setting, step, watch,
} from './lib.mjs';

const base = setting('BROWSER_TEST_GATEWAY');
const mailDir = setting('BROWSER_TEST_MAIL_DIR');
const email = setting('BROWSER_TEST_SUBJECT_EMAIL');
const name = setting('BROWSER_TEST_SUBJECT_NAME');

// The code of the newest verification mail to `email` (after `seen` of
// them), waiting for it to arrive.
async function mailedCode(seen) {
  for (let i = 0; i < 100; i += 1) {
    const codes = readdirSync(mailDir).filter((f) => f.endsWith('.eml')).sort()
      .map((f) => readFileSync(join(mailDir, f), 'latin1').replace(/=\r?\n/g, ''))
      .filter((m) => m.includes(email) && m.includes('verification code for the privacy portal'))
      .map((m) => m.match(/privacy portal is:\s*(\d{6})/))
      .filter(Boolean)
      .map((m) => m[1]);
    if (codes.length > seen) return codes[codes.length - 1];
    await new Promise((r) => { setTimeout(r, 100); });
  }
  throw new Error(`no verification mail to the subject in ${mailDir}`);
}

const codesBefore = () => readdirSync(mailDir).filter((f) => f.endsWith('.eml'))
  .map((f) => readFileSync(join(mailDir, f), 'latin1'))
  .filter((m) => m.includes(email) && m.includes('verification code for the privacy portal')).length;

await run('portal', async (keep) => {
  const browser = keep(await launch('portal'));
  const context = await browser.newContext({
    ignoreHTTPSErrors: false, viewport: { width: 390, height: 780 }, locale: 'pl-PL',
    isMobile: true, hasTouch: true, deviceScaleFactor: 2, acceptDownloads: true,
  });
  const page = await context.newPage();
  const problems = watch(page);

  await step('the portal opens in the browser\'s language, Polish', async () => {
    const r = await page.goto(`${base}/portal`);
    check(r.status() === 200, `GET /portal: ${r.status()}`);
    check((r.headers()['content-security-policy'] || '').includes("script-src 'self'") ||
      (r.headers()['content-security-policy'] || '').includes("default-src 'self'"), 'no CSP');
    await page.getByRole('heading', { name: 'Zobacz swoje dane i zarządzaj nimi' }).waitFor();
    check(await page.evaluate(() => document.documentElement.lang) === 'pl', 'lang is not pl');
    await screenshot(page, 'portal-sign-in-pl');
  });

  await step('English on request; a bad address is named at its field', async () => {
    await page.getByRole('button', { name: 'English' }).click();
    await page.getByRole('heading', { name: 'See and manage your data' }).waitFor();
    await page.getByLabel('E-mail address', { exact: true }).fill('not an address');
    await page.getByRole('button', { name: 'Send me a code' }).click();
    const error = page.locator('#email-error');
    await error.waitFor();
    check(/email/.test(await error.textContent()), `the error does not name the field: ${await error.textContent()}`);
    check(await page.getByLabel('E-mail address', { exact: true }).getAttribute('aria-invalid') === 'true',
      'the field is not marked invalid');
    await screenshot(page, 'portal-bad-address');
  });

  let code = '';
  await step('a code is mailed to the address', async () => {
    const seen = codesBefore();
    // Keyboard only: type the address, press Enter.
    await page.getByLabel('E-mail address', { exact: true }).fill(email);
    await page.getByLabel('E-mail address', { exact: true }).press('Enter');
    await page.getByRole('heading', { name: 'Enter the code' }).waitFor();
    check(await page.evaluate(() => document.activeElement && document.activeElement.id) === 'h-code',
      'focus did not move to the new step');
    code = await mailedCode(seen);
    await screenshot(page, 'portal-code');
  });

  await step('a wrong code is refused, saying how many tries are left', async () => {
    await page.getByLabel('Code', { exact: true }).fill(code === '000000' ? '000001' : '000000');
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.locator('#code-error').waitFor();
    check(/tries left/.test(await page.locator('#code-error').textContent()), 'no tries-left message');
  });

  await step('the right code signs the subject in', async () => {
    await page.getByLabel('Code', { exact: true }).fill(code);
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByRole('heading', { name: 'Your data and your requests' }).waitFor();
    await page.getByText('You have made no requests yet.').waitFor();
    await page.locator('#consents li').first().waitFor();
    check((await page.textContent('#consents')).length > 0, 'no consents shown');
    await screenshot(page, 'portal-signed-in');
  });

  await step('the subject sees their details and corrects their family name', async () => {
    const given = page.getByLabel('Given name', { exact: true });
    check(await given.inputValue() === name, `the given name shown is "${await given.inputValue()}"`);
    await page.getByLabel('Family name', { exact: true }).fill('Corrected-Portal');
    await page.getByRole('button', { name: 'Save corrections' }).click();
    await page.getByText('Your details are corrected.').waitFor();
    check(await page.getByLabel('Family name', { exact: true }).inputValue() === 'Corrected-Portal',
      'the correction is not shown after saving');
    await screenshot(page, 'portal-details');
  });

  await step('a copy of the data is asked for, followed and downloaded', async () => {
    await page.getByRole('button', { name: 'Get a copy of my data' }).click();
    await page.getByText('We received your request for a copy.').waitFor();
    await page.locator('#requests li').first().waitFor();
    // The page follows the open request by itself.
    const download = page.getByRole('button', { name: 'Download the copy' });
    await download.waitFor({ timeout: 60000 });
    await screenshot(page, 'portal-copy-ready');
    const saving = page.waitForEvent('download');
    await download.click();
    const file = await (await saving).path();
    const text = readFileSync(file, 'utf8');
    check(text.includes('"format":"crm.access-export.v1"'), 'the download is not an access export');
    check(text.includes(name), 'the subject\'s name is not in their copy');
    check(text.includes('Corrected-Portal'), 'the corrected name is not in their copy');
    JSON.parse(text);
  });

  await step('signing out forgets the token', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'See and manage your data' }).waitFor();
    check(await page.evaluate(() => window.sessionStorage.getItem('portal.token')) === null,
      'the token is still stored');
    check(problems.length === 0, `the page reported problems: ${problems.join('; ')}`);
  });
});

// One-click unsubscription in Chromium (tests/system/browser_test.cc,
// BrowserTest.AOneClickUnsubscribeInTheBrowserStopsTheNextCampaign).
//
// Takes the List-Unsubscribe link of the newest campaign mail to
// BROWSER_TEST_RECIPIENT from the SMTP sink's folder, opens it on the
// gateway (the mail names the public address, https://crm.shop.example/u/;
// only the token is kept) on a phone-sized screen, checks that the page
// offers one button and no script, presses the button and checks the
// confirmation names BROWSER_TEST_LIST. A changed token gets the "not valid"
// page when its button is pressed. Whether mail still arrives is for the C++
// test to check. Screenshots: unsubscribe-*.png.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  check, launch, run, screenshot, setting, step, watch,
} from './lib.mjs';

const base = setting('BROWSER_TEST_GATEWAY');
const mailDir = setting('BROWSER_TEST_MAIL_DIR');
const recipient = setting('BROWSER_TEST_RECIPIENT');
const list = setting('BROWSER_TEST_LIST');

// The header `name` of an RFC 5322 message (continuation lines unfolded).
function header(message, name) {
  const head = message.split(/\r?\n\r?\n/, 1)[0].replace(/\r?\n[ \t]+/g, ' ');
  const line = head.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line ? line.slice(name.length + 1).trim() : '';
}

await run('unsubscribe', async (keep) => {
  let token = '';
  await step('the campaign mail carries a List-Unsubscribe link', async () => {
    const mails = readdirSync(mailDir).filter((f) => f.endsWith('.eml')).sort()
      .map((f) => readFileSync(join(mailDir, f), 'latin1'))
      .filter((m) => header(m, 'To').includes(recipient) && header(m, 'List-Unsubscribe'));
    check(mails.length > 0, `no campaign mail to the recipient in ${mailDir}`);
    const link = header(mails[mails.length - 1], 'List-Unsubscribe');
    const m = link.match(/<https:\/\/[^>]*\/u\/([^>]+)>/);
    check(m, `List-Unsubscribe without an https /u/ link: ${link}`);
    [, token] = m;
    check(header(mails[mails.length - 1], 'List-Unsubscribe-Post') === 'List-Unsubscribe=One-Click',
      'no List-Unsubscribe-Post: List-Unsubscribe=One-Click');
  });

  const browser = keep(await launch('unsubscribe'));
  const context = await browser.newContext({
    ignoreHTTPSErrors: false, viewport: { width: 390, height: 700 }, locale: 'en-US',
    isMobile: true, hasTouch: true, deviceScaleFactor: 2,
  });
  const page = await context.newPage();
  const problems = watch(page);

  await step('the link opens a page with one button, without script', async () => {
    const r = await page.goto(`${base}/u/${token}`);
    check(r.status() === 200, `GET /u/<token>: ${r.status()}`);
    check((r.headers()['content-security-policy'] || '').includes("default-src 'self'"), 'no CSP');
    await page.getByRole('heading', { name: 'Unsubscribe' }).waitFor();
    check(await page.getByRole('button').count() === 1, 'not exactly one button');
    check(await page.locator('script').count() === 0, 'the page has a script');
    check((await page.textContent('body')).includes('Do you want to stop receiving'),
      'the question is missing');
    await screenshot(page, 'unsubscribe-page');
  });

  await step('pressing the button unsubscribes at once', async () => {
    const answer = page.waitForResponse((r) => r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Unsubscribe' }).click();
    const r = await answer;
    check(r.status() === 200, `POST /u/<token>: ${r.status()}`);
    await page.getByRole('heading', { name: 'You are unsubscribed' }).waitFor();
    check((await page.textContent('main')).includes(list), `the list ${list} is not named`);
    check((await context.cookies()).length === 0, 'a cookie was set');
    await screenshot(page, 'unsubscribe-done');
  });

  await step('a changed link is refused', async () => {
    // The page itself asks nothing of mailing (mail scanners open links);
    // the button does, and mailing rejects the changed signature.
    const changed = `${token.slice(0, -2)}${token.endsWith('xx') ? 'yy' : 'xx'}`;
    await page.goto(`${base}/u/${changed}`);
    const answer = page.waitForResponse((r) => r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Unsubscribe' }).click();
    const r = await answer;
    check(r.status() === 400, `a changed token: ${r.status()}`);
    await page.getByRole('heading', { name: 'This link is not valid' }).waitFor();
    await screenshot(page, 'unsubscribe-invalid');
  });

  await step('no script error or policy violation on the page', async () => {
    check(problems.length === 0, problems.join('\n'));
  });
});

// The admin console in Chromium (tests/system/browser_test.cc,
// BrowserTest.AnOperatorErasesTheShopsCustomerAndReadsTheCertificate).
//
// The administrator signs in (after a refused wrong password), finds the
// example shop's customer by e-mail, views the person, reads the activity
// report (and a malformed subject id is refused naming the field), erases
// the customer, follows the request to its end, reads the certificate, finds
// the customer gone and signs out (the old token no longer works). A second
// operator changes the first password, then locks the account with five
// wrong passwords; the administrator sees the lockout and the operator's
// expiring grant. Screenshots: console-*.png.
//
// Settings besides lib.mjs's: BROWSER_TEST_CUSTOMER_EMAIL (the example
// shop's customer), BROWSER_TEST_OPERATOR_USER and
// BROWSER_TEST_OPERATOR_PASSWORD (an operator with a first password and a
// grant ending within 7 days).
import {
  check, launch, run, screenshot, setting, step, trustCheck, watch,
} from './lib.mjs';

const base = setting('BROWSER_TEST_GATEWAY');
const admin = setting('BROWSER_TEST_ADMIN_USER');
const adminPassword = setting('BROWSER_TEST_ADMIN_PASSWORD');
const email = setting('BROWSER_TEST_CUSTOMER_EMAIL');
const operator = setting('BROWSER_TEST_OPERATOR_USER');
const operatorPassword = setting('BROWSER_TEST_OPERATOR_PASSWORD');
const operatorNewPassword = 'a new and long enough password 2';

// Polls `fn` (every 300 ms) until it returns true or `ms` pass.
async function eventually(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

await run('console', async (keep) => {
  await step('a browser that does not trust the test CA refuses the gateway',
    () => trustCheck(`${base}/console`, keep));

  const browser = keep(await launch('console'));
  const context = await browser.newContext({
    ignoreHTTPSErrors: false, viewport: { width: 1280, height: 860 }, locale: 'en-US',
  });
  const page = await context.newPage();
  const problems = watch(page);
  const text = async (selector) => (await page.locator(selector).textContent()) || '';

  // Signs in through the form; the HTTP status of identity's answer.
  async function signIn(user, password, { keyboard = false } = {}) {
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    const answer = page.waitForResponse((r) => r.url().endsWith('/crm.identity.v1.Identity/Login'));
    if (keyboard) {
      // Focus starts in the username field; Tab to the password; Enter submits.
      await page.keyboard.type(user);
      await page.keyboard.press('Tab');
      await page.keyboard.type(password);
      await page.keyboard.press('Enter');
    } else {
      await page.locator('#signin').getByLabel('Username').fill(user);
      await page.locator('#signin').getByLabel('Password', { exact: true }).fill(password);
      await page.getByRole('button', { name: 'Sign in' }).click();
    }
    return (await answer).status();
  }
  async function signOut() {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  }
  async function section(name) {
    await page.getByRole('link', { name }).click();
    await page.getByRole('heading', { name, level: 1 }).waitFor();
  }

  await step('/console is served with the security headers', async () => {
    const r = await page.goto(`${base}/console`);
    check(r.status() === 200, `GET /console: ${r.status()}`);
    const h = r.headers();
    check((h['content-security-policy'] || '').includes("default-src 'self'"),
      `no strict Content-Security-Policy: ${h['content-security-policy']}`);
    check((h['strict-transport-security'] || '').includes('max-age='), 'no HSTS');
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await screenshot(page, 'console-signin');
  });

  await step('a wrong password is refused and the error shown', async () => {
    const status = await signIn(admin, 'not the password at all 1');
    check(status === 401, `a wrong password answered ${status}`);
    await page.locator('#signin-error').waitFor({ state: 'visible' });
    const error = await text('#signin-error');
    check(/Not signed in/.test(error), `sign-in error shown: "${error}"`);
    check(await page.getByRole('heading', { name: 'Contacts' }).count() === 0, 'signed in anyway');
  });

  await step('the administrator signs in with the keyboard', async () => {
    await page.locator('#signin-username').fill('');
    await page.locator('#signin-username').focus();
    await signIn(admin, adminPassword, { keyboard: true });
    await page.getByRole('heading', { name: 'Contacts', level: 1 }).waitFor();
    check((await text('#who-name')).includes(admin), 'the signed-in user is not shown');
    const stored = await page.evaluate(() => sessionStorage.getItem('crm.console.session'));
    check(stored && JSON.parse(stored).accessToken, 'no token in sessionStorage');
    check((await context.cookies()).length === 0, 'the console set a cookie');
  });

  let subject = '';
  await step("finds the shop's customer by e-mail and views the person", async () => {
    await page.getByLabel('E-mail address').fill(email);
    await page.getByRole('button', { name: 'Find' }).click();
    const rows = page.locator('#persons tbody tr');
    await rows.first().waitFor();
    check(await rows.count() === 1, `${await rows.count()} contacts found for the customer's address`);
    check((await rows.first().textContent()).includes(email), 'the row does not show the address');
    await page.getByRole('button', { name: /^View / }).click();
    await page.locator('#person').waitFor({ state: 'visible' });
    const fields = await text('#person-fields');
    check(fields.includes(email), 'the person view does not show the address');
    check(/Status\s*lead/.test(fields), `the status is not shown: ${fields}`);
    const masked = await text('#person-masked');
    check(masked === 'No field is masked for you.', `masking note for the administrator: "${masked}"`);
    subject = await page.evaluate(() => [...document.querySelectorAll('#person-fields dt')]
      .find((dt) => dt.textContent === 'Subject id').nextElementSibling.textContent);
    check(/^[0-9a-f-]{36}$/.test(subject), `subject id shown: "${subject}"`);
    await screenshot(page, 'console-person');
  });

  await step('a malformed subject id is refused with the field named', async () => {
    await section('Activity report');
    const input = page.locator('#report').getByLabel('Subject id');
    await input.fill('not-a-subject-id');
    await page.getByRole('button', { name: 'Show report' }).click();
    await page.locator('#report-error').waitFor({ state: 'visible' });
    const error = await text('#report-error');
    check(/Invalid input/.test(error) && /field: subject_id/.test(error), `error shown: "${error}"`);
    check(await input.getAttribute('aria-invalid') === 'true',
      'the input is not marked invalid');
  });

  await step("the activity report lists what was done with the customer's data", async () => {
    await page.locator('#report').getByLabel('Subject id').fill(subject);
    // The services' audit events reach audit through their outboxes: soon, not at once.
    await eventually(async () => {
      await page.getByRole('button', { name: 'Show report' }).click();
      await page.locator('#report-out p').waitFor();
      return page.evaluate(() => [...document.querySelectorAll('#report-out tbody tr')]
        .some((tr) => tr.cells[1].textContent === 'contacts'));
    }, 20000, "contacts' events in the report");
    check((await text('#report-out')).includes('contacts.person.create'),
      'the registration is not in the report');
    check(await page.locator('#report-error').isHidden(), 'the earlier error is still shown');
    await screenshot(page, 'console-report');
  });

  let requestId = '';
  await step('erases the customer and follows the request to its end', async () => {
    await section('Contacts');
    await page.getByRole('button', { name: 'Erase this person…' }).click();
    await page.getByRole('heading', { name: 'Erasure', level: 1 }).waitFor();
    check(await page.locator('#erasure-form').getByLabel('Subject id').inputValue() === subject,
      'the subject id is not filled in');
    await page.getByRole('button', { name: 'Erase', exact: true }).click();
    const refused = await text('#erasure-error');
    check(/confirm/.test(refused), `erasing without the confirmation: "${refused}"`);
    await page.getByLabel(/I understand that the subject.s data will be erased/).check();
    await page.getByRole('button', { name: 'Erase', exact: true }).click();
    await page.locator('#request').waitFor({ state: 'visible' });
    requestId = ((await text('#request-h')).match(/[0-9a-f-]{36}/) || [''])[0];
    check(requestId, 'no request id shown');
    await page.waitForFunction(
      () => /State: completed/.test(document.querySelector('#request-state').textContent),
      null, { timeout: 60000 });
    const targets = page.locator('#request-targets tbody tr');
    const services = [];
    for (const row of await targets.all()) {
      const cells = await row.locator('td').allTextContents();
      services.push(cells[0]);
      check(cells[1] === 'verified', `target ${cells[0]} is "${cells[1]}", not verified`);
    }
    for (const s of ['audit', 'consent', 'contacts', 'mailing']) {
      check(services.includes(s), `no target ${s} among ${services.join(', ')}`);
    }
  });

  await step('reads the signed certificate', async () => {
    await page.locator('#certificate').waitFor({ state: 'visible' });
    const cert = JSON.parse(await text('#certificate-json'));
    const json = JSON.stringify(cert);
    check(json.includes(requestId), 'the certificate does not name the request');
    check(!json.includes(email) && !json.includes('Erin'), 'the certificate holds personal data');
    const signature = await text('#certificate-signature');
    check(Buffer.from(signature, 'base64').length === 64, `signature: "${signature}"`);
    await screenshot(page, 'console-erasure');
  });

  await step('the customer can no longer be found', async () => {
    await section('Contacts');
    await page.getByLabel('E-mail address').fill(email);
    await page.getByRole('button', { name: 'Find' }).click();
    await page.locator('#persons .empty').waitFor();
    check((await text('#persons')).includes('No contact found.'), 'the customer is still found');
  });

  await step('signing out ends the session', async () => {
    const token = await page.evaluate(
      () => JSON.parse(sessionStorage.getItem('crm.console.session')).accessToken);
    await signOut();
    check(await page.evaluate(() => sessionStorage.getItem('crm.console.session')) === null,
      'the session is still stored');
    await eventually(async () => 401 === await page.evaluate(async (t) => (await fetch(
      '/api/v1/crm.identity.v1.Identity/ListRoles',
      { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${t}` }, body: '{}' },
    )).status, token), 5000, 'the signed-out token refused');
  });

  await step('a new operator must choose a new password first', async () => {
    check(await signIn(operator, operatorPassword) === 200, 'the first password was refused');
    await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
    check(await page.locator('#nav').isHidden(), 'the sections are offered before the change');
    await screenshot(page, 'console-password');
    await page.getByLabel('New password', { exact: true }).fill(operatorNewPassword);
    await page.getByLabel('Repeat the new password').fill(`${operatorNewPassword}x`);
    await page.getByRole('button', { name: 'Change password' }).click();
    check(/differ/.test(await text('#password-error')), 'different repeats accepted');
    await page.getByLabel('New password', { exact: true }).fill('short');
    await page.getByLabel('Repeat the new password').fill('short');
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.locator('#password-error .field-name').waitFor();
    const error = await text('#password-error');
    check(/field: new_password/.test(error), `policy error shown: "${error}"`);
    await page.getByLabel('New password', { exact: true }).fill(operatorNewPassword);
    await page.getByLabel('Repeat the new password').fill(operatorNewPassword);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.getByRole('heading', { name: 'Contacts', level: 1 }).waitFor();
    check((await text('#notice')).includes('Your password was changed.'), 'no confirmation shown');
    await signOut();
  });

  await step('five wrong passwords lock the operator out', async () => {
    for (let i = 0; i < 5; i++) {
      const status = await signIn(operator, `wrong password number ${i}`);
      check(status === 401, `wrong password ${i + 1} answered ${status}`);
      await page.getByRole('button', { name: 'Sign in' }).and(page.locator(':enabled')).waitFor();
    }
    // Locked: the right password is refused as well.
    check(await signIn(operator, operatorNewPassword) === 401, 'the locked account signed in');
    await page.getByRole('button', { name: 'Sign in' }).and(page.locator(':enabled')).waitFor();
    check(/Not signed in/.test(await text('#signin-error')), 'no error shown');
  });

  await step('the administrator sees the expiring grant and the lockout', async () => {
    check(await signIn(admin, adminPassword) === 200, 'the administrator was refused');
    await page.getByRole('heading', { name: 'Contacts', level: 1 }).waitFor();
    await section('Grants and lockouts');
    await page.getByRole('button', { name: 'Show grants' }).click();
    await page.locator('#grants-out table').waitFor();
    const grants = await text('#grants-out');
    check(grants.includes(operator) && grants.includes('sales') && grants.includes('holiday cover'),
      `expiring grants: ${grants}`);
    await eventually(async () => {
      await page.getByRole('button', { name: 'Show lockouts' }).click();
      await page.locator('#lockouts-out p, #lockouts-out table').first().waitFor();
      return page.evaluate(() => [...document.querySelectorAll('#lockouts-out table')].some(
        (t) => t.caption.textContent.startsWith('Lockouts') && t.tBodies[0].rows.length > 0));
    }, 15000, 'the lockout in the login report');
    const lockouts = await text('#lockouts-out');
    check(/Locked now/.test(lockouts) && lockouts.includes(operator), `lockouts: ${lockouts}`);
    await screenshot(page, 'console-security');
  });

  await step('the console works on a narrow screen', async () => {
    // Grants and lockouts, with its tables: they scroll inside their own region.
    await page.setViewportSize({ width: 375, height: 740 });
    await page.locator('#lockouts-out table').first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    check(overflow <= 375, `the page is ${overflow} px wide on a 375 px screen`);
    await screenshot(page, 'console-narrow');
  });

  await step('no script error or policy violation on the page', async () => {
    check(problems.length === 0, problems.join('\n'));
  });
});

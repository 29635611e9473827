// The admin console: one page over the gateway's JSON API
// (POST /api/v1/<package.Service>/<Method>, protobuf's JSON mapping). Every
// call carries the operator's access token; each service authorizes it as it
// does a gRPC call, so the page holds no rules of its own beyond what to show.
//
// The session (tokens, user id, username) lives in sessionStorage: it ends
// with the tab, and nothing is kept in cookies (the API takes no cookies, so
// there is nothing to forge across sites). The page builds every element with
// textContent, never HTML from data, and runs under the gateway's CSP
// (script-src 'self', no inline script or style).

const SESSION_KEY = 'crm.console.session';
const TERMINAL = new Set([
  'STATE_COMPLETED', 'STATE_COMPLETED_WITH_RETENTION', 'STATE_NEEDS_ATTENTION',
  'STATE_CANCELLED', 'STATE_EXPIRED',
]);
const POLL_MS = 1000;

const $ = (id) => document.getElementById(id);

// ---- The JSON API ---------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || '';
  }
}

function session() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
  } catch {
    return null;
  }
}

function saveSession(s) {
  if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
  else sessionStorage.removeItem(SESSION_KEY);
}

async function post(method, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(`/api/v1/${method}`, {
      method: 'POST', headers, body: JSON.stringify(body || {}), credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, 'UNAVAILABLE', 'the gateway cannot be reached; try again', '');
  }
  let json = null;
  try {
    json = await res.json();
  } catch {
    json = null;
  }
  if (!res.ok) {
    const e = (json && json.error) || {};
    throw new ApiError(res.status, e.code || `HTTP ${res.status}`,
      e.message || 'the request failed', e.field || '');
  }
  return json || {};
}

// Calls `method` as the signed-in operator. An expired access token is
// renewed once with the refresh token; a session that cannot be renewed
// ends, and the sign-in form comes back.
async function api(method, body) {
  const s = session();
  if (!s) {
    showSignIn('Your session has ended. Please sign in again.');
    throw new ApiError(401, 'UNAUTHENTICATED', 'not signed in', '');
  }
  try {
    return await post(method, body, s.accessToken);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401 || !s.refreshToken) throw e;
  }
  try {
    const r = await post('crm.identity.v1.Identity/RefreshSession', { refreshToken: s.refreshToken });
    s.accessToken = r.tokens.accessToken;
    s.refreshToken = r.tokens.refreshToken;
    saveSession(s);
  } catch {
    saveSession(null);
    showSignIn('Your session has ended. Please sign in again.');
    throw new ApiError(401, 'UNAUTHENTICATED', 'the session has ended', '');
  }
  return post(method, body, s.accessToken);
}

// ---- Showing things -------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'scope' ||
             k === 'tabindex') node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return node;
}

// "2025-03-01 14:05 UTC" for a protobuf JSON timestamp; "" for none.
function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return ts;
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

// "STATE_COMPLETED_WITH_RETENTION" -> "completed with retention".
function enumText(value, prefix) {
  if (!value) return '';
  return value.replace(prefix, '').toLowerCase().replaceAll('_', ' ');
}

// A table in a scrollable, focusable region (narrow screens scroll it
// sideways). `columns`: [header, row => text or node].
function table(caption, columns, rows) {
  const head = el('tr', {}, ...columns.map(([h]) => el('th', { scope: 'col', text: h })));
  const body = rows.map((r) => el('tr', {}, ...columns.map(([, f]) => {
    const v = f(r);
    return el('td', {}, v === null || v === undefined ? '' : v);
  })));
  return el('div', { class: 'table-wrap', role: 'region', 'aria-label': caption, tabindex: '0' },
    el('table', {}, el('caption', { text: caption }), el('thead', {}, head), el('tbody', {}, ...body)));
}

function clearError(box) {
  box.hidden = true;
  box.textContent = '';
  const form = box.closest('section');
  if (form) for (const i of form.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
}

// Shows an API error in `box`: the code, the message and, when the service
// named a field, which one (and marks the matching input).
function showError(box, e) {
  box.textContent = '';
  if (!(e instanceof ApiError)) {
    box.append(el('strong', { text: 'Error: ' }), String(e && e.message ? e.message : e));
    box.hidden = false;
    return;
  }
  box.append(el('strong', { text: `${friendlyCode(e.code)}: ` }), e.message);
  if (e.field) {
    box.append(' ', el('span', { class: 'field-name', text: `(field: ${e.field})` }));
    const section = box.closest('section');
    const base = e.field.replace(/^.*\./, '').replace(/\[\d+\]$/, '');
    const input = section && (section.querySelector(`[data-field="${CSS.escape(e.field)}"]`) ||
                              section.querySelector(`[data-field="${CSS.escape(base)}"]`));
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  }
  box.hidden = false;
}

function friendlyCode(code) {
  return {
    INVALID_ARGUMENT: 'Invalid input',
    UNAUTHENTICATED: 'Not signed in',
    PERMISSION_DENIED: 'Not allowed',
    NOT_FOUND: 'Not found',
    FAILED_PRECONDITION: 'Not possible now',
    ALREADY_EXISTS: 'Already exists',
    RESOURCE_EXHAUSTED: 'Too many attempts',
    UNAVAILABLE: 'Service unavailable',
  }[code] || code;
}

// A client-side check failing on `input` (before any call).
function localError(box, input, message) {
  box.textContent = '';
  box.append(el('strong', { text: 'Invalid input: ' }), message);
  input.setAttribute('aria-invalid', 'true');
  input.focus();
  box.hidden = false;
}

function notice(text) {
  const n = $('notice');
  n.textContent = text || '';
  n.hidden = !text;
}

// Runs `fn` with the form's submit button disabled (and busy).
async function busy(form, fn) {
  const buttons = form.querySelectorAll('button');
  for (const b of buttons) b.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    for (const b of buttons) b.disabled = false;
    form.removeAttribute('aria-busy');
  }
}

// ---- Views ----------------------------------------------------------------

const PAGES = ['contacts', 'report', 'erasure', 'security'];

function hideAll() {
  for (const id of ['signin', 'password', ...PAGES]) $(id).hidden = true;
}

function showSignIn(message) {
  stopPolling();
  hideAll();
  $('nav').hidden = true;
  $('who').hidden = true;
  $('signin-totp-field').hidden = true;
  $('signin-totp').value = '';
  $('signin-password').value = '';
  notice(message || '');
  $('signin').hidden = false;
  document.title = 'Sign in – CRM admin console';
  $('signin-username').focus();
}

let pendingPassword = '';  // the password just typed, for a forced change only

function showPasswordChange(forced) {
  hideAll();
  $('password-current-field').hidden = forced;
  $('password-why').textContent = forced
    ? 'Your password must be changed before you can continue.'
    : 'Choose a new password for your account.';
  $('password').hidden = false;
  document.title = 'New password – CRM admin console';
  (forced ? $('password-new') : $('password-current')).focus();
}

function showPage(name, focus = true) {
  const s = session();
  if (!s) return showSignIn();
  if (s.changeOnly) return showPasswordChange(true);
  if (!PAGES.includes(name)) name = 'contacts';
  hideAll();
  $('nav').hidden = false;
  $('who').hidden = false;
  $('who-name').textContent = `Signed in as ${s.username}`;
  for (const a of $('nav').querySelectorAll('a')) {
    if (a.getAttribute('href') === `#${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const section = $(name);
  section.hidden = false;
  document.title = `${section.querySelector('h1').textContent} – CRM admin console`;
  if (focus) section.querySelector('h1').setAttribute('tabindex', '-1');
  if (focus) section.querySelector('h1').focus();
}

function route() {
  showPage(location.hash.slice(1) || 'contacts');
}

// ---- Sign in, password, sign out ------------------------------------------

async function signIn(ev) {
  ev.preventDefault();
  const box = $('signin-error');
  clearError(box);
  const username = $('signin-username').value.trim();
  const password = $('signin-password').value;
  const totp = $('signin-totp').value.trim();
  if (!username) return localError(box, $('signin-username'), 'enter your username');
  if (!password) return localError(box, $('signin-password'), 'enter your password');
  await busy(ev.target, async () => {
    try {
      const body = { username, password };
      if (!$('signin-totp-field').hidden && totp) body.totpCode = totp;
      const r = await post('crm.identity.v1.Identity/Login', body);
      saveSession({
        accessToken: r.tokens.accessToken,
        refreshToken: r.tokens.refreshToken,
        userId: r.userId,
        username,
        changeOnly: Boolean(r.passwordChangeRequired),
      });
      notice('');
      if (r.passwordChangeRequired) {
        pendingPassword = password;
        return showPasswordChange(true);
      }
      pendingPassword = '';
      if (r.mfaEnrollmentRequired) {
        notice('A role of yours requires two-factor authentication: enrol an authenticator ' +
               '(tools/crmctl totp enroll) before using the console.');
      } else if (r.passwordExpiresInDays > 0) {
        notice(`Your password expires in ${r.passwordExpiresInDays} days.`);
      }
      if (!location.hash) location.hash = '#contacts';
      else route();
    } catch (e) {
      if (e instanceof ApiError && e.code === 'FAILED_PRECONDITION' && /totp required/.test(e.message)) {
        $('signin-totp-field').hidden = false;
        box.textContent = 'Enter the code from your authenticator app to finish signing in.';
        box.hidden = false;
        $('signin-totp').focus();
        return;
      }
      $('signin-password').value = '';
      showError(box, e);
    }
  });
}

async function changePassword(ev) {
  ev.preventDefault();
  const box = $('password-error');
  clearError(box);
  const forced = $('password-current-field').hidden;
  const current = forced ? pendingPassword : $('password-current').value;
  const next = $('password-new').value;
  if (!forced && !current) return localError(box, $('password-current'), 'enter your current password');
  if (!next) return localError(box, $('password-new'), 'enter a new password');
  if (next !== $('password-repeat').value) {
    return localError(box, $('password-repeat'), 'the two new passwords differ');
  }
  await busy(ev.target, async () => {
    try {
      const r = await api('crm.identity.v1.Identity/ChangePassword',
        { currentPassword: current, newPassword: next });
      const s = session();
      s.accessToken = r.tokens.accessToken;
      s.refreshToken = r.tokens.refreshToken;
      s.changeOnly = false;
      saveSession(s);
      pendingPassword = '';
      for (const id of ['password-current', 'password-new', 'password-repeat']) $(id).value = '';
      notice('Your password was changed.');
      if (!location.hash) location.hash = '#contacts';
      else route();
    } catch (e) {
      showError(box, e);
    }
  });
}

async function signOut() {
  try {
    await api('crm.identity.v1.Identity/Logout', {});
  } catch {
    // Signed out here regardless; the access token expires on its own.
  }
  saveSession(null);
  pendingPassword = '';
  history.replaceState(null, '', location.pathname);
  showSignIn('You are signed out.');
}

// ---- Contacts -------------------------------------------------------------

let currentSubject = '';

function personName(p) {
  return [p.givenName, p.familyName].filter(Boolean).join(' ') || '(no name)';
}

function primaryEmail(p) {
  const e = (p.emails || []).find((x) => x.primary) || (p.emails || [])[0];
  return e ? e.address : '';
}

function personsTable(persons) {
  const out = $('persons');
  out.textContent = '';
  if (persons.length === 0) {
    out.append(el('p', { class: 'empty', text: 'No contact found.' }));
    return;
  }
  out.append(table(`${persons.length} contact${persons.length === 1 ? '' : 's'}`, [
    ['Name', personName],
    ['E-mail', primaryEmail],
    ['Status', (p) => enumText(p.status, 'PERSON_STATUS_')],
    ['Subject id', (p) => el('code', { text: p.subjectId })],
    ['', (p) => el('button', {
      type: 'button', class: 'secondary small', text: 'View',
      'aria-label': `View ${personName(p)}`, onclick: () => viewPerson(p.subjectId),
    })],
  ], persons));
}

async function lookup(ev) {
  ev.preventDefault();
  const box = $('contacts-error');
  clearError(box);
  const email = $('lookup-email').value.trim();
  if (!email) return localError(box, $('lookup-email'), 'enter an e-mail address');
  await busy(ev.target, async () => {
    try {
      const r = await api('crm.contacts.v1.Contacts/LookupPersons', { email });
      $('person').hidden = true;
      personsTable(r.persons || []);
    } catch (e) {
      showError(box, e);
    }
  });
}

async function listPersons() {
  const box = $('contacts-error');
  clearError(box);
  await busy($('lookup-form'), async () => {
    try {
      const r = await api('crm.contacts.v1.Contacts/ListPersons', { page: { pageSize: 20 } });
      $('person').hidden = true;
      personsTable(r.persons || []);
    } catch (e) {
      showError(box, e);
    }
  });
}

// The person's fields as catalogue paths (masked_fields uses them) and what
// to show for each.
function personRows(p) {
  const list = (xs, f) => (xs || []).map(f).join('; ');
  return [
    ['person.subject_id', 'Subject id', p.subjectId],
    ['person.status', 'Status', enumText(p.status, 'PERSON_STATUS_')],
    ['person.given_name', 'Given name', p.givenName],
    ['person.family_name', 'Family name', p.familyName],
    ['person.emails', 'E-mail addresses',
      list(p.emails, (e) => `${e.address}${e.primary ? ' (primary)' : ''}${e.label ? ` [${e.label}]` : ''}`)],
    ['person.phones', 'Phone numbers', list(p.phones, (x) => `${x.number}${x.primary ? ' (primary)' : ''}`)],
    ['person.addresses', 'Postal addresses', list(p.addresses, (a) =>
      [...(a.streetLines || []), [a.postalCode, a.city].filter(Boolean).join(' '), a.region, a.countryCode]
        .filter(Boolean).join(', '))],
    ['person.job_title', 'Job title', p.jobTitle],
    ['person.company_id', 'Company', p.companyId],
    ['person.personal_id_number', 'Personal id number', p.personalIdNumber],
    ['person.notes', 'Notes', p.notes],
    ['person.registration', 'Registered',
      p.registration ? [when(p.registration.createdAt), p.registration.channel, p.registration.source]
        .filter(Boolean).join(', ') : ''],
    ['person.restricted', 'Processing restricted (Art. 18)', p.restricted ? 'yes' : 'no'],
    ['person.updated_at', 'Last changed', when(p.updatedAt)],
  ];
}

async function viewPerson(subjectId) {
  const box = $('contacts-error');
  clearError(box);
  try {
    const r = await api('crm.contacts.v1.Contacts/GetPerson', { subjectId });
    const p = r.person || {};
    const masked = new Set(r.maskedFields || []);
    currentSubject = p.subjectId;
    $('person-h').textContent = personName(p);
    const dl = $('person-fields');
    dl.textContent = '';
    for (const [path, label, value] of personRows(p)) {
      const isMasked = masked.has(path);
      if (!value && !isMasked) continue;
      dl.append(el('dt', { text: label }), el('dd', {},
        isMasked ? el('span', { class: 'badge', text: 'masked' }) : null,
        isMasked ? ' hidden from you: your roles lack contacts.read.sensitive' : value));
    }
    $('person-masked').textContent = masked.size === 0
      ? 'No field is masked for you.'
      : `Masked for you: ${[...masked].map((m) => m.replace(/^person\./, '')).join(', ')}.`;
    $('person').hidden = false;
    $('person-h').setAttribute('tabindex', '-1');
    $('person-h').focus();
  } catch (e) {
    showError(box, e);
  }
}

// ---- Activity report ------------------------------------------------------

async function report(ev) {
  if (ev) ev.preventDefault();
  const box = $('report-error');
  clearError(box);
  const subjectId = $('report-subject').value.trim();
  if (!subjectId) return localError(box, $('report-subject'), 'enter a subject id');
  await busy($('report-form'), async () => {
    try {
      const r = await api('crm.audit.v1.Audit/SubjectReport', { subjectId });
      const { names } = await usersOrNothing();
      const out = $('report-out');
      out.textContent = '';
      const entries = r.entries || [];
      out.append(el('p', {
        text: `${entries.length} event${entries.length === 1 ? '' : 's'}; generated ${when(r.generatedAt)}.`,
      }));
      if (entries.length > 0) {
        out.append(table('Events, oldest first', [
          ['Time', (x) => when(x.event && x.event.time)],
          ['Service', (x) => x.event && x.event.service],
          ['Action', (x) => el('code', { text: (x.event && x.event.action) || '' })],
          ['By', (x) => {
            const a = (x.event && x.event.actor) || {};
            return a.userId ? (names.get(a.userId) || `user ${a.userId}`) : (a.serviceIdentity || '');
          }],
          ['Outcome', (x) => enumText(x.event && x.event.outcome, 'OUTCOME_')],
          ['Details', (x) => x.redacted ? `(${x.redacted})`
            : ((x.event && x.event.details) || []).map((d) => `${d.key}=${d.value}`).join(', ')],
        ], entries));
      }
    } catch (e) {
      showError(box, e);
    }
  });
}

// ---- Erasure --------------------------------------------------------------

let pollTimer = 0;
let following = '';

function stopPolling() {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = 0;
  following = '';
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function submitErasure(ev) {
  ev.preventDefault();
  const box = $('erasure-error');
  clearError(box);
  const subjectId = $('erasure-subject').value.trim();
  if (!subjectId) return localError(box, $('erasure-subject'), 'enter the subject id');
  if (!$('erasure-confirm').checked) {
    return localError(box, $('erasure-confirm'), 'confirm that the data is to be erased');
  }
  await busy(ev.target, async () => {
    try {
      const r = await api('crm.erasure.v1.Erasure/SubmitErasure',
        { subjectId, reason: $('erasure-reason').value });
      $('erasure-confirm').checked = false;
      notice(r.created ? 'The erasure request was opened.'
        : 'An erasure of this subject is already open: following it.');
      follow(r.request.requestId, r.request);
    } catch (e) {
      showError(box, e);
    }
  });
}

function followById(ev) {
  ev.preventDefault();
  const box = $('erasure-error');
  clearError(box);
  const id = $('follow-id').value.trim();
  if (!UUID.test(id)) return localError(box, $('follow-id'), 'a request id is a UUID');
  follow(id, null);
}

// Shows the request and polls it every second until it ends.
function follow(requestId, first) {
  stopPolling();
  following = requestId;
  $('certificate').hidden = true;
  $('request').hidden = false;
  const tick = async () => {
    if (following !== requestId) return;
    let req = first;
    first = null;
    if (!req) {
      try {
        req = (await api('crm.erasure.v1.Erasure/GetErasure', { requestId })).request;
      } catch (e) {
        showError($('erasure-error'), e);
        if (e instanceof ApiError && (e.status === 401 || e.status === 404 || e.status === 403)) return;
      }
    }
    if (following !== requestId) return;
    if (req) renderRequest(req);
    if (req && TERMINAL.has(req.state)) {
      pollTimer = 0;
      if (req.state === 'STATE_COMPLETED' || req.state === 'STATE_COMPLETED_WITH_RETENTION') {
        await showCertificate(requestId);
      }
      return;
    }
    pollTimer = setTimeout(tick, POLL_MS);
  };
  tick();
}

function categories(list) {
  return (list || []).map((c) => `${c.category} (${c.recordCount || 0})`).join(', ');
}

function renderRequest(r) {
  $('request-h').textContent = `Erasure request ${r.requestId}`;
  const dl = $('request-fields');
  dl.textContent = '';
  for (const [k, v] of [
    ['Subject id', r.subjectId],
    ['Reason', enumText(r.reason, 'ERASURE_REASON_')],
    ['Received', when(r.receivedAt)],
    ['Due', when(r.dueAt)],
    ['Completed', when(r.completedAt)],
    ['Rounds', String(r.rounds || 0)],
    ['Needs attention because', r.attention],
  ]) {
    if (v) dl.append(el('dt', { text: k }), el('dd', { text: v }));
  }
  const state = $('request-state');
  state.textContent = '';
  state.dataset.state = r.state || '';
  state.append('State: ', el('strong', { text: enumText(r.state, 'STATE_') }),
    TERMINAL.has(r.state) ? '' : ' (updating every second)');
  const t = $('request-targets');
  t.textContent = '';
  t.append(table('Each service', [
    ['Service', (x) => x.service],
    ['State', (x) => el('span', { class: 'target-state', text: enumText(x.state, 'TARGET_STATE_') })],
    ['Planned', (x) => categories(x.planned)],
    ['Erased', (x) => categories(x.erased)],
    ['Retained', (x) => (x.retained || []).map((c) =>
      `${c.category}${c.retentionBasis ? `: ${c.retentionBasis}` : ''}${c.purgeAfter ? `, until ${when(c.purgeAfter)}` : ''}`)
      .join('; ')],
    ['Failures', (x) => (x.failures ? `${x.failures}: ${x.lastError || ''}` : '')],
  ], r.targets || []));
}

function decodeBase64(b64) {
  const bin = atob(b64 || '');
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

async function showCertificate(requestId) {
  try {
    const r = await api('crm.erasure.v1.Erasure/GetCertificate', { requestId });
    let text = decodeBase64(r.certificate);
    try {
      text = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // shown as it is
    }
    $('certificate-json').textContent = text;
    $('certificate-signature').textContent = r.signature || '';
    $('certificate').hidden = false;
  } catch (e) {
    showError($('erasure-error'), e);
  }
}

// ---- Grants and lockouts --------------------------------------------------

// user id -> username, from Identity/ListUsers (identity.admin); empty
// without that permission (ids are shown then).
async function usernames() {
  const names = new Map();
  const locked = [];
  let pageToken = '';
  for (let i = 0; i < 20; i++) {
    const r = await api('crm.identity.v1.Identity/ListUsers', { page: { pageSize: 500, pageToken } });
    for (const u of r.users || []) {
      names.set(u.userId, u.username);
      if (u.lockedPermanently || (u.lockedUntil && new Date(u.lockedUntil) > new Date())) locked.push(u);
    }
    pageToken = (r.page && r.page.nextPageToken) || '';
    if (!pageToken) break;
  }
  return { names, locked };
}

async function usersOrNothing() {
  try {
    return await usernames();
  } catch {
    return { names: new Map(), locked: null };
  }
}

async function grants(ev) {
  if (ev) ev.preventDefault();
  const box = $('grants-error');
  clearError(box);
  await busy($('grants-form'), async () => {
    try {
      const r = await api('crm.identity.v1.Identity/ListExpiringGrants',
        { within: $('grants-within').value, page: { pageSize: 500 } });
      const { names } = await usersOrNothing();
      const out = $('grants-out');
      out.textContent = '';
      const list = r.grants || [];
      if (list.length === 0) {
        out.append(el('p', { class: 'empty', text: 'No grant expires in that time.' }));
        return;
      }
      out.append(table('Grants expiring soon, soonest first', [
        ['User', (g) => names.get(g.userId) || g.userId],
        ['Role', (g) => g.role],
        ['Ends', (g) => when(g.notAfter)],
        ['Justification', (g) => g.justification],
      ], list.sort((a, b) => String(a.notAfter).localeCompare(String(b.notAfter)))));
    } catch (e) {
      showError(box, e);
    }
  });
}

async function lockouts(ev) {
  if (ev) ev.preventDefault();
  const box = $('lockouts-error');
  clearError(box);
  await busy($('lockouts-form'), async () => {
    try {
      const days = Number($('lockouts-days').value);
      const start = new Date(Date.now() - days * 86400e3).toISOString();
      const rows = [];
      let pageToken = '';
      for (let i = 0; i < 10; i++) {
        const r = await api('crm.audit.v1.Audit/LoginReport',
          { range: { start }, page: { pageSize: 1000, pageToken } });
        for (const row of r.rows || []) if (row.result === 'lockout') rows.push(row);
        pageToken = (r.page && r.page.nextPageToken) || '';
        if (!pageToken) break;
      }
      const { names, locked } = await usersOrNothing();
      const out = $('lockouts-out');
      out.textContent = '';
      if (locked !== null) {
        if (locked.length === 0) {
          out.append(el('p', { class: 'empty', text: 'No account is locked now.' }));
        } else {
          out.append(table('Locked now', [
            ['User', (u) => u.username],
            ['Locked until', (u) => (u.lockedPermanently ? 'an administrator unlocks it' : when(u.lockedUntil))],
          ], locked));
        }
      }
      if (rows.length === 0) {
        out.append(el('p', { class: 'empty', text: 'No lockout in that time.' }));
      } else {
        out.append(table('Lockouts, newest first', [
          ['Time', (x) => when(x.time)],
          ['User', (x) => names.get(x.userId) || x.userId],
        ], rows.sort((a, b) => String(b.time).localeCompare(String(a.time)))));
      }
    } catch (e) {
      showError(box, e);
    }
  });
}

// ---- Wiring ---------------------------------------------------------------

function start() {
  $('signin-form').addEventListener('submit', signIn);
  $('password-form').addEventListener('submit', changePassword);
  $('signout').addEventListener('click', signOut);
  $('lookup-form').addEventListener('submit', lookup);
  $('list-persons').addEventListener('click', listPersons);
  $('report-form').addEventListener('submit', report);
  $('erasure-form').addEventListener('submit', submitErasure);
  $('follow-form').addEventListener('submit', followById);
  $('grants-form').addEventListener('submit', grants);
  $('lockouts-form').addEventListener('submit', lockouts);
  $('person-report').addEventListener('click', () => {
    $('report-subject').value = currentSubject;
    location.hash = '#report';
    report();
  });
  $('person-erase').addEventListener('click', () => {
    $('erasure-subject').value = currentSubject;
    location.hash = '#erasure';
    $('erasure-reason').focus();
  });
  window.addEventListener('hashchange', route);
  if (session()) showPage(location.hash.slice(1) || 'contacts', false);
  else showSignIn();
}

start();

// The privacy portal: a data subject proves their e-mail address with a
// mailed code (identity's Start/ConfirmSubjectVerification), then, with the
// short-lived token they get, asks for a copy or the erasure of their data,
// follows their requests, downloads the copy or the certificate, and changes
// their consents. Every call is the gateway's JSON API; the services decide
// what the token may do. No framework, no build step, no inline script (the
// gateway's Content-Security-Policy forbids it).
'use strict';

(() => {
  const TEXT = {
    en: {
      brand: 'Privacy portal', language: 'Language',
      signInTitle: 'See and manage your data',
      signInIntro: 'Enter the e-mail address we know you by. We will send a code to it, to make sure it is yours.',
      emailLabel: 'E-mail address', sendCode: 'Send me a code',
      codeTitle: 'Enter the code',
      codeIntro: 'We sent a 6-digit code to your address. It is valid for 15 minutes.',
      codeLabel: 'Code', confirm: 'Confirm', otherAddress: 'Use another address',
      noneTitle: 'We hold no data about this address',
      noneText: 'No customer record is linked to this e-mail address, so there is nothing to show, copy or erase.',
      severalText: 'More than one customer record has this address. Please write to our data-protection officer, who will answer your request by hand.',
      dataTitle: 'Your data and your requests',
      askAccess: 'Get a copy of my data', askErasure: 'Erase my data', signOut: 'Sign out',
      erasureWarning: 'Erasing removes your customer record, your consents and your subscriptions from every system. What the law obliges us to keep (for example invoices) is kept until its period ends. You can cancel within the first hour.',
      erasureSure: 'I understand, erase my data', erasureGo: 'Erase', back: 'Back',
      requestsTitle: 'Your requests', noRequests: 'You have made no requests yet.',
      consentsTitle: 'Your consents',
      consentsIntro: 'What you allowed us to do with your data. You can change it at any time; a withdrawal counts from now on.',
      kindAccess: 'Copy of your data', kindErasure: 'Erasure of your data',
      received: 'Received', due: 'Answer due by', completed: 'Completed', availableUntil: 'Available until',
      download: 'Download the copy', certificate: 'Download the certificate', cancel: 'Cancel this request',
      refresh: 'Refresh',
      state: {
        STATE_RECEIVED: 'Received', STATE_PLANNED: 'In progress', STATE_ERASING: 'In progress',
        STATE_VERIFYING: 'Being checked', STATE_EXPORTING: 'Being prepared',
        STATE_COMPLETED: 'Done', STATE_COMPLETED_WITH_RETENTION: 'Done (some data is kept by law)',
        STATE_NEEDS_ATTENTION: 'Our staff are handling it', STATE_CANCELLED: 'Cancelled',
        STATE_EXPIRED: 'The copy has expired',
      },
      allowed: 'Allowed', notAllowed: 'Not allowed', objected: 'You objected',
      restricted: 'Processing restricted', basisOther: 'Not based on consent',
      grant: 'Allow', withdraw: 'Withdraw', object: 'Object',
      sending: 'Sending…', codeSent: 'We sent a code. Check your mailbox.',
      signedIn: 'You are signed in for 15 minutes.', signedOut: 'You are signed out.',
      accessAsked: 'We received your request for a copy. You will also get an e-mail when it is ready.',
      erasureAsked: 'We received your erasure request.',
      cancelled: 'The request is cancelled.', consentSaved: 'Your choice is saved.',
      expired: 'Your session has ended. Please sign in again.',
      failed: 'Something went wrong. Please try again in a moment.',
      tooMany: 'Too many attempts. Please wait and try again later.',
      detailsTitle: 'Your details',
      detailsIntro: 'This is what we hold about you. If something is wrong, correct it here.',
      givenName: 'Given name', familyName: 'Family name', phone: 'Phone',
      emailsHeld: 'E-mail addresses',
      emailHint: 'To change your e-mail address, write to our data-protection officer.',
      saveDetails: 'Save corrections', detailsSaved: 'Your details are corrected.',
    },
    pl: {
      brand: 'Portal prywatności', language: 'Język',
      signInTitle: 'Zobacz swoje dane i zarządzaj nimi',
      signInIntro: 'Podaj adres e-mail, pod którym nas znasz. Wyślemy na niego kod, aby upewnić się, że należy do Ciebie.',
      emailLabel: 'Adres e-mail', sendCode: 'Wyślij mi kod',
      codeTitle: 'Wpisz kod',
      codeIntro: 'Wysłaliśmy 6-cyfrowy kod na Twój adres. Jest ważny przez 15 minut.',
      codeLabel: 'Kod', confirm: 'Potwierdź', otherAddress: 'Użyj innego adresu',
      noneTitle: 'Nie mamy danych związanych z tym adresem',
      noneText: 'Z tym adresem e-mail nie jest powiązany żaden rekord klienta, więc nie ma czego pokazać, skopiować ani usunąć.',
      severalText: 'Ten adres ma więcej niż jeden rekord klienta. Napisz do naszego inspektora ochrony danych, który obsłuży Twoje żądanie ręcznie.',
      dataTitle: 'Twoje dane i Twoje żądania',
      askAccess: 'Pobierz kopię moich danych', askErasure: 'Usuń moje dane', signOut: 'Wyloguj',
      erasureWarning: 'Usunięcie kasuje Twój rekord klienta, zgody i subskrypcje we wszystkich systemach. To, co prawo każe nam przechowywać (na przykład faktury), zostaje do końca okresu przechowywania. Możesz anulować żądanie w ciągu pierwszej godziny.',
      erasureSure: 'Rozumiem, usuń moje dane', erasureGo: 'Usuń', back: 'Wróć',
      requestsTitle: 'Twoje żądania', noRequests: 'Nie złożono jeszcze żadnych żądań.',
      consentsTitle: 'Twoje zgody',
      consentsIntro: 'Na co pozwoliłeś nam w sprawie Twoich danych. Możesz to zmienić w każdej chwili; wycofanie działa od teraz.',
      kindAccess: 'Kopia Twoich danych', kindErasure: 'Usunięcie Twoich danych',
      received: 'Otrzymane', due: 'Odpowiedź do', completed: 'Zakończone', availableUntil: 'Dostępna do',
      download: 'Pobierz kopię', certificate: 'Pobierz certyfikat', cancel: 'Anuluj to żądanie',
      refresh: 'Odśwież',
      state: {
        STATE_RECEIVED: 'Otrzymane', STATE_PLANNED: 'W toku', STATE_ERASING: 'W toku',
        STATE_VERIFYING: 'Sprawdzane', STATE_EXPORTING: 'Przygotowywane',
        STATE_COMPLETED: 'Gotowe', STATE_COMPLETED_WITH_RETENTION: 'Gotowe (część danych przechowujemy z mocy prawa)',
        STATE_NEEDS_ATTENTION: 'Zajmują się tym nasi pracownicy', STATE_CANCELLED: 'Anulowane',
        STATE_EXPIRED: 'Kopia wygasła',
      },
      allowed: 'Zgoda udzielona', notAllowed: 'Brak zgody', objected: 'Wniesiono sprzeciw',
      restricted: 'Przetwarzanie ograniczone', basisOther: 'Podstawą nie jest zgoda',
      grant: 'Zezwól', withdraw: 'Wycofaj', object: 'Sprzeciw',
      sending: 'Wysyłanie…', codeSent: 'Wysłaliśmy kod. Sprawdź skrzynkę.',
      signedIn: 'Jesteś zalogowany przez 15 minut.', signedOut: 'Wylogowano.',
      accessAsked: 'Otrzymaliśmy żądanie kopii. Dostaniesz też e-mail, gdy będzie gotowa.',
      erasureAsked: 'Otrzymaliśmy żądanie usunięcia danych.',
      cancelled: 'Żądanie anulowano.', consentSaved: 'Zapisano Twój wybór.',
      expired: 'Sesja wygasła. Zaloguj się ponownie.',
      failed: 'Coś poszło nie tak. Spróbuj ponownie za chwilę.',
      tooMany: 'Zbyt wiele prób. Odczekaj i spróbuj później.',
      detailsTitle: 'Twoje dane',
      detailsIntro: 'Tak wyglądają dane, które o Tobie przechowujemy. Jeśli coś się nie zgadza, popraw to tutaj.',
      givenName: 'Imię', familyName: 'Nazwisko', phone: 'Telefon',
      emailsHeld: 'Adresy e-mail',
      emailHint: 'Aby zmienić adres e-mail, napisz do naszego inspektora ochrony danych.',
      saveDetails: 'Zapisz poprawki', detailsSaved: 'Twoje dane zostały poprawione.',
    },
  };

  const $ = (id) => document.getElementById(id);
  const session = window.sessionStorage;
  let lang = session.getItem('portal.lang') ||
      ((navigator.language || 'en').toLowerCase().startsWith('pl') ? 'pl' : 'en');
  let verificationId = '';
  let polling = 0;

  const t = (key) => TEXT[lang][key] || TEXT.en[key] || key;

  function applyLanguage() {
    document.documentElement.lang = lang;
    document.title = t('brand');
    for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
    for (const el of document.querySelectorAll('[data-t-label]')) {
      el.setAttribute('aria-label', t(el.dataset.tLabel));
    }
    for (const b of document.querySelectorAll('[data-lang]')) {
      b.setAttribute('aria-pressed', String(b.dataset.lang === lang));
    }
    if (token()) render();
  }

  const token = () => {
    const expires = Number(session.getItem('portal.expires') || 0);
    if (!session.getItem('portal.token') || Date.now() > expires) return '';
    return session.getItem('portal.token');
  };

  function say(message) {
    $('problem').hidden = true;
    $('status').textContent = message;
  }

  function problem(message) {
    $('status').textContent = '';
    $('problem').textContent = message;
    $('problem').hidden = false;
  }

  // POST /api/v1/<method>; resolves to the answer's JSON, rejects with
  // {status, code, message, field}.
  async function call(method, body, { auth = true, raw = false } = {}) {
    const headers = { 'Content-Type': 'application/json' };
    if (auth) headers.Authorization = `Bearer ${token()}`;
    const r = await fetch(`/api/v1/${method}`, {
      method: 'POST', headers, body: JSON.stringify(body || {}), credentials: 'omit',
    });
    if (r.ok) return raw ? r.blob() : r.json();
    let error = { code: 'UNKNOWN', message: '' };
    try { error = (await r.json()).error || error; } catch (_) { /* not JSON */ }
    throw Object.assign({ status: r.status }, error);
  }

  // Shows a failure: under the field it names, or for the whole page.
  function fail(e, fieldErrors = {}) {
    if (e.status === 401) {
      signOut(t('expired'));
      return;
    }
    const slot = fieldErrors[e.field];
    const message = e.status === 429 ? t('tooMany') : (e.status >= 500 || !e.message) ? t('failed') : e.message;
    if (slot) {
      slot.textContent = message;
      slot.hidden = false;
      slot.previousElementSibling.setAttribute('aria-invalid', 'true');
      slot.previousElementSibling.focus();
      $('status').textContent = '';
    } else {
      problem(message);
    }
  }

  function clearFieldErrors() {
    for (const el of document.querySelectorAll('.field-error')) {
      el.hidden = true;
      el.textContent = '';
    }
    for (const el of document.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  }

  function show(step) {
    for (const id of ['step-email', 'step-code', 'step-none', 'step-signed-in']) $(id).hidden = id !== step;
    const heading = $(step).querySelector('h1');
    heading.tabIndex = -1;
    heading.focus();
  }

  function signOut(message) {
    // Ends the token's session at identity too (best effort: it expires soon
    // anyway), then forgets it.
    if (token()) call('crm.identity.v1.Identity/Logout', {}).catch(() => {});
    for (const k of ['portal.token', 'portal.subject', 'portal.expires']) session.removeItem(k);
    window.clearTimeout(polling);
    $('form-email').reset();
    $('form-code').reset();
    show('step-email');
    say(message || t('signedOut'));
  }

  const date = (ts) => ts ? new Date(ts).toLocaleString(lang === 'pl' ? 'pl-PL' : 'en-GB',
      { dateStyle: 'medium', timeStyle: 'short' }) : '';

  function button(label, handler, cls) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    if (cls) b.className = cls;
    b.addEventListener('click', handler);
    return b;
  }

  function line(term, value) {
    const p = document.createElement('p');
    const strong = document.createElement('strong');
    strong.textContent = `${term}: `;
    p.append(strong, value);
    return p;
  }

  async function save(blobPromise, name) {
    const blob = await blobPromise;
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  async function renderRequests() {
    const { requests = [] } = await call('crm.erasure.v1.Erasure/ListErasures', {});
    const list = $('requests');
    list.replaceChildren();
    $('no-requests').hidden = requests.length > 0;
    let open = false;
    for (const r of requests.sort((a, b) => (b.receivedAt || '').localeCompare(a.receivedAt || ''))) {
      const li = document.createElement('li');
      li.className = 'card';
      li.dataset.requestId = r.requestId;
      const h = document.createElement('h3');
      h.textContent = r.kind === 'KIND_ACCESS' ? t('kindAccess') : t('kindErasure');
      const state = document.createElement('p');
      state.className = 'state';
      state.textContent = TEXT[lang].state[r.state] || r.state;
      li.append(h, state, line(t('received'), date(r.receivedAt)));
      if (r.completedAt) {
        li.append(line(t('completed'), date(r.completedAt)));
      } else {
        li.append(line(t('due'), date(r.dueAt)));
      }
      const actions = document.createElement('div');
      actions.className = 'actions';
      const done = r.state === 'STATE_COMPLETED' || r.state === 'STATE_COMPLETED_WITH_RETENTION';
      if (r.kind === 'KIND_ACCESS' && r.state === 'STATE_COMPLETED') {
        if (r.expiresAt) li.append(line(t('availableUntil'), date(r.expiresAt)));
        actions.append(button(t('download'), () => save(
            call('crm.erasure.v1.Erasure/GetAccessExport', { requestId: r.requestId }, { raw: true }),
            `my-data-${r.requestId}.json`).catch(fail)));
      } else if (r.kind !== 'KIND_ACCESS' && done) {
        actions.append(button(t('certificate'), async () => {
          try {
            const c = await call('crm.erasure.v1.Erasure/GetCertificate', { requestId: r.requestId });
            await save(Promise.resolve(new Blob([JSON.stringify(c, null, 2)], { type: 'application/json' })),
                `erasure-certificate-${r.requestId}.json`);
          } catch (e) { fail(e); }
        }));
      }
      if (r.state === 'STATE_RECEIVED') {
        actions.append(button(t('cancel'), async () => {
          try {
            await call('crm.erasure.v1.Erasure/CancelErasure', { requestId: r.requestId });
            say(t('cancelled'));
            await renderRequests();
          } catch (e) { fail(e); }
        }, 'secondary'));
      }
      if (actions.childElementCount) li.append(actions);
      list.append(li);
      open = open || !(done || ['STATE_CANCELLED', 'STATE_EXPIRED', 'STATE_NEEDS_ATTENTION'].includes(r.state));
    }
    // Follow open requests while the page is open.
    window.clearTimeout(polling);
    if (open) polling = window.setTimeout(() => renderRequests().catch(fail), 3000);
  }

  async function renderConsents() {
    const subjectId = session.getItem('portal.subject');
    const { purposes = [] } = await call('crm.consent.v1.Consent/ListPurposes', {});
    const list = $('consents');
    list.replaceChildren();
    for (const p of purposes) {
      const { decision = {} } = await call('crm.consent.v1.Consent/Check', { subjectId, purposeId: p.purposeId });
      const li = document.createElement('li');
      li.className = 'card';
      const h = document.createElement('h3');
      h.textContent = p.description || p.purposeId;
      const state = document.createElement('p');
      state.className = 'state';
      const reason = decision.reason;
      state.textContent = reason === 'REASON_RESTRICTED' ? t('restricted')
          : reason === 'REASON_OBJECTED' ? t('objected')
          : reason === 'REASON_BASIS_NOT_CONSENT' ? t('basisOther')
          : decision.allowed ? t('allowed') : t('notAllowed');
      li.append(h, state);
      const statement = { subjectId, purposeId: p.purposeId, method: 'METHOD_WEB_FORM', source: 'portal' };
      const record = (rpc, extra) => async () => {
        try {
          await call(`crm.consent.v1.Consent/${rpc}`, { statement: Object.assign({}, statement, extra) });
          say(t('consentSaved'));
          await renderConsents();
        } catch (e) { fail(e); }
      };
      const actions = document.createElement('div');
      actions.className = 'actions';
      if (p.basis === 'LAWFUL_BASIS_CONSENT') {
        const versions = p.currentNoticeVersions || {};
        const noticeLang = versions[lang] ? lang : 'en';
        if (decision.allowed) {
          actions.append(button(t('withdraw'), record('Withdraw', {}), 'secondary'));
        } else if (versions[noticeLang] && reason !== 'REASON_RESTRICTED') {
          actions.append(button(t('grant'), record('Grant', { noticeVersion: versions[noticeLang], language: noticeLang })));
        }
      }
      if ((p.directMarketing || p.basis === 'LAWFUL_BASIS_LEGITIMATE_INTEREST') && reason !== 'REASON_OBJECTED') {
        actions.append(button(t('object'), record('Object', {}), 'secondary'));
      }
      if (actions.childElementCount) li.append(actions);
      list.append(li);
    }
  }

  let person = null;  // as last read, for its version and the fields not shown

  async function renderDetails() {
    ({ person } = await call('crm.contacts.v1.Contacts/GetPerson',
        { subjectId: session.getItem('portal.subject') }));
    $('given-name').value = person.givenName || '';
    $('family-name').value = person.familyName || '';
    const phones = person.phones || [];
    $('phone').value = phones.length ? (phones.find((p) => p.primary) || phones[0]).number : '';
    $('emails-held').textContent = (person.emails || []).map((e) => e.address).join(', ');
  }

  async function saveDetails() {
    const phones = (person.phones || []).map((p) => Object.assign({}, p));
    const number = $('phone').value.trim();
    const primary = phones.findIndex((p) => p.primary);
    const at = primary >= 0 ? primary : 0;
    if (number && phones.length) phones[at].number = number;
    else if (number) phones.push({ number, primary: true });
    else if (phones.length) phones.splice(at, 1);
    await call('crm.contacts.v1.Contacts/UpdatePerson', {
      subjectId: person.subjectId,
      person: { givenName: $('given-name').value.trim(), familyName: $('family-name').value.trim(), phones },
      updateMask: 'givenName,familyName,phones',
      expectedVersion: person.version,
    });
    say(t('detailsSaved'));
    await renderDetails();
  }

  async function render() {
    try {
      await Promise.all([renderDetails(), renderRequests(), renderConsents()]);
    } catch (e) { fail(e); }
  }

  async function submit(rpc, message) {
    try {
      await call(`crm.erasure.v1.Erasure/${rpc}`, { subjectId: session.getItem('portal.subject') });
      say(message);
      await renderRequests();
    } catch (e) { fail(e); }
  }

  function wire() {
    for (const b of document.querySelectorAll('[data-lang]')) {
      b.addEventListener('click', () => {
        lang = b.dataset.lang;
        session.setItem('portal.lang', lang);
        applyLanguage();
      });
    }
    $('form-email').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearFieldErrors();
      say(t('sending'));
      try {
        const r = await call('crm.identity.v1.Identity/StartSubjectVerification',
            { email: $('email').value.trim() }, { auth: false });
        verificationId = r.verificationId;
        show('step-code');
        say(t('codeSent'));
      } catch (e) { fail(e, { email: $('email-error') }); }
    });
    $('form-code').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearFieldErrors();
      try {
        const r = await call('crm.identity.v1.Identity/ConfirmSubjectVerification',
            { verificationId, code: $('code').value.trim() }, { auth: false });
        if (r.match !== 'SUBJECT_MATCH_ONE') {
          $('none-text').textContent = r.match === 'SUBJECT_MATCH_SEVERAL' ? t('severalText') : t('noneText');
          show('step-none');
          say('');
          return;
        }
        session.setItem('portal.token', r.accessToken);
        session.setItem('portal.subject', r.subjectId);
        session.setItem('portal.expires', String(Date.parse(r.expiresAt)));
        show('step-signed-in');
        say(t('signedIn'));
        await render();
      } catch (e) {
        if (e.status === 404) {  // used, expired or out of tries: start again
          show('step-email');
        }
        fail(e, { code: $('code-error') });
      }
    });
    for (const b of [$('restart'), ...document.querySelectorAll('[data-action="restart"]')]) {
      b.addEventListener('click', () => { show('step-email'); say(''); });
    }
    $('sign-out').addEventListener('click', () => signOut());
    $('form-details').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearFieldErrors();
      try {
        await saveDetails();
      } catch (e) {
        // person.given_name, person.phones[0].number, ...
        const f = String(e.field || '');
        const slot = f.includes('given_name') ? 'given-name-error'
            : f.includes('family_name') ? 'family-name-error' : f.includes('phones') ? 'phone-error' : '';
        fail(Object.assign({}, e, { field: slot }), slot ? { [slot]: $(slot) } : {});
      }
    });
    $('ask-access').addEventListener('click', () => submit('SubmitAccess', t('accessAsked')));
    $('ask-erasure').addEventListener('click', () => {
      $('erasure-confirm').hidden = false;
      $('erasure-sure').focus();
    });
    $('erasure-back').addEventListener('click', () => { $('erasure-confirm').hidden = true; });
    $('erasure-go').addEventListener('click', async () => {
      if (!$('erasure-sure').checked) {
        $('erasure-sure').focus();
        return;
      }
      $('erasure-confirm').hidden = true;
      await submit('SubmitErasure', t('erasureAsked'));
    });
  }

  wire();
  applyLanguage();
  if (token()) {
    show('step-signed-in');
  }
})();

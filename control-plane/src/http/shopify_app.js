// The embedded admin page: reads the App Bridge session token
// (https://shopify.dev/docs/api/app-bridge-library/apis/id-token) and shows the
// overview the control plane computes; no data is kept in the page.
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  function text(id, value) { $(id).textContent = value; }

  function idToken() {
    if (window.shopify && typeof window.shopify.idToken === 'function') return window.shopify.idToken();
    return Promise.reject(new Error('Open Samplit from your Shopify admin (Apps → Samplit).'));
  }

  function call(method, path, body) {
    return idToken().then(function (token) {
      return fetch(path, {
        method: method,
        headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
        body: body ? JSON.stringify(body) : undefined
      });
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (json) {
        if (!res.ok) throw new Error(json.detail || ('HTTP ' + res.status));
        return json;
      });
    });
  }

  function money(v, currency) {
    try { return new Intl.NumberFormat(undefined, { style: 'currency', currency: currency || 'USD' }).format(v); }
    catch (e) { return v.toFixed(2) + ' ' + (currency || ''); }
  }

  function cell(row, value, numeric) {
    var td = document.createElement('td');
    td.textContent = value;
    if (numeric) td.className = 'n';
    row.appendChild(td);
  }

  function render(o) {
    text('site-name', o.site.name);
    text('site-key', o.site.site_key);
    text('site-currency', o.site.currency || 'not fixed yet');
    text('site-domains', o.site.domains.join(', ') || 'none');
    $('site').hidden = false;
    var rows = $('experiment-rows');
    rows.textContent = '';
    o.experiments.forEach(function (e) {
      e.arms.forEach(function (a, i) {
        var tr = document.createElement('tr');
        cell(tr, i === 0 ? e.name : '');
        cell(tr, i === 0 ? e.status : '');
        cell(tr, a.name + (a.is_control ? ' (control)' : ''));
        cell(tr, String(a.visitors), true);
        cell(tr, String(a.conversions), true);
        cell(tr, money(a.revenue, e.currency), true);
        rows.appendChild(tr);
      });
    });
    $('experiments').hidden = o.experiments.length === 0;
    $('link').hidden = o.linked;
    text('status', o.experiments.length ? '' : 'No experiment has started yet: create one in the Samplit console.');
  }

  function load() {
    call('GET', '/shopify/api/overview').then(render).catch(function (e) {
      $('status').className = 'error';
      text('status', e.message);
    });
  }

  function json(method, path, body, bearer) {
    var headers = { 'Content-Type': 'application/json' };
    if (bearer) headers.Authorization = 'Bearer ' + bearer;
    return fetch(path, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined })
      .then(function (res) {
        if (res.status === 204) return { res: res, body: {} };
        return res.json().catch(function () { return {}; }).then(function (b) { return { res: res, body: b }; });
      });
  }

  // Accepting answers a session in the store's organisation; this page has no use for it
  // (the merchant signs in to the console), so it is ended at once.
  function endSession(tokens) {
    return tokens && tokens.access_token ? json('POST', '/api/v1/auth/logout', null, tokens.access_token) : Promise.resolve();
  }

  function fail(r) { throw new Error(r.body.detail || ('HTTP ' + r.res.status)); }

  // An existing Samplit login (409 login_required on accept): signs in with the email and
  // password typed here, accepts as that login, and ends that session again.
  function acceptAsExisting(inv, password) {
    return json('POST', '/api/v1/auth/login', { email: inv.email, password: password }).then(function (login) {
      if (!login.res.ok) fail(login);
      var bearer = login.body.access_token;
      return json('POST', '/api/v1/invitations/accept', { token: inv.token }, bearer).then(function (acc) {
        if (!acc.res.ok) fail(acc);
        return Promise.all([endSession(acc.body), json('POST', '/api/v1/auth/logout', null, bearer)]);
      });
    }).then(function () {
      return 'Done: your Samplit login ' + inv.email + ' now manages this store; sign in to the Samplit console.';
    });
  }

  $('link-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var f = ev.target;
    var password = f.password.value;
    call('POST', '/shopify/api/invitation', { email: f.email.value }).then(function (inv) {
      return json('POST', '/api/v1/invitations/accept', { token: inv.token, name: f.name.value, password: password })
        .then(function (r) {
          if (r.res.status === 409 && r.body.code === 'login_required') return acceptAsExisting(inv, password);
          if (!r.res.ok) fail(r);
          return endSession(r.body).then(function () {
            return 'Done: sign in to the Samplit console with ' + inv.email + '.';
          });
        });
    }).then(function (msg) { text('link-result', msg); load(); })
      .catch(function (e) { text('link-result', e.message); });
  });

  load();
})();

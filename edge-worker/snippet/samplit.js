/*! Samplit site snippet. In <head>, before other scripts, without async:
 *   <script src="https://EDGE/v1/samplit.js?site=KEY" data-site-key="KEY"></script>
 * 1. hides only the elements this site's experiments change — the selectors the edge put
 *    in front of this script (?site=KEY), and those remembered from the last visit — with
 *    a <style> tag, for at most 1 s, so not even a first visit paints the original;
 * 2. asks the edge for this visitor's assignments (with the page's URL and referrer;
 *    cookie credentials, text/plain so no CORS preflight), keeps hidden only what the
 *    answer changes, applies each change once
 *    the DOM is ready — checked again by the engine's rules, mirrored in `allowed`, on
 *    each element it matches (never a <script>, <style>, …; form actions and redirects
 *    on the site's hosts) — runs custom CSS/JS as <style>/<script> elements, then
 *    un-hides;
 * 3. exposes samplit.track(goal, value) (sendBeacon to /v1/events), sends a pageview, and
 *    watches the click goals a response carries as `goals: [{goal, kind: "click",
 *    selector}]` (URL goals fire at the edge itself, when the page asks for assignments);
 * 4. once the edge names the visitor (never an excluded one), sets samplit.visitor and
 *    fires `samplit:visitor` on window (detail: {visitor_id}); with
 *    data-first-party-cookie="NAME" on the tag, also keeps the id in the cookie NAME on
 *    the page's own origin (for readers that only see cookies, e.g. a Shopify web pixel). */
(function (w, d) {
  'use strict';
  var script = d.currentScript;
  if (!script || w.samplit) return;
  var site = w.__samplit_site || {};
  var key = script.getAttribute('data-site-key') || site.key;
  var base = new URL(script.src, location.href).origin;
  var storeKey = 'samplit:' + key;
  var visitor = null;
  var pending = [];
  var cookieName = script.getAttribute('data-first-party-cookie');
  if (cookieName !== null && !/^[A-Za-z0-9_-]{1,64}$/.test(cookieName)) {
    if (w.console) w.console.warn('samplit: data-first-party-cookie must match [A-Za-z0-9_-]{1,64}; no cookie set');
    cookieName = null;
  }

  // The id a server already gave this visitor in that cookie (the WordPress plugin's
  // samplit_variant()), used when this browser remembers none, so the page and the
  // server agree on the visitor from the first page view.
  function cookieVisitor() {
    if (!cookieName) return undefined;
    try {
      var m = d.cookie.match(new RegExp('(?:^|;\\s*)' + cookieName + '=([^;]*)'));
      var id = m ? decodeURIComponent(m[1]) : '';
      return /^[A-Za-z0-9_.:-]{1,128}$/.test(id) ? id : undefined;
    } catch (e) { return undefined; }
  }

  function load() {
    try { return JSON.parse(w.localStorage.getItem(storeKey)) || {}; } catch (e) { return {}; }
  }
  function save(v) {
    try { w.localStorage.setItem(storeKey, JSON.stringify(v)); } catch (e) { /* private mode */ }
  }
  function uid() {
    var b = new Uint8Array(16);
    w.crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
  }

  // -- anti-flicker: hide only the targeted elements, never the whole page --------------
  var style = d.createElement('style');
  var timer;
  function validSelectors(list) {
    return (list || []).filter(function (s) {
      try { d.querySelector(s); return true; } catch (e) { return false; }
    });
  }
  function hide(selectors) {
    selectors = validSelectors(selectors);
    style.textContent = selectors.length ? selectors.join(',') + '{visibility:hidden!important}' : '';
  }
  function unhide() {
    clearTimeout(timer);
    if (style.parentNode) style.parentNode.removeChild(style);
  }
  var remembered = load();
  hide((site.hide || []).concat(remembered.hide || []));
  (d.head || d.documentElement).appendChild(style);
  timer = setTimeout(unhide, 1000);

  // -- changes ---------------------------------------------------------------------------
  // The engine's rule book (shared-engine/src/changes.rs `check`), mirrored: the edge
  // parsed these changes through it already; here they are checked again on the elements
  // they actually match, and against the site's hosts.
  var FORBIDDEN = ['script', 'style', 'base', 'link', 'meta', 'iframe', 'frame', 'frameset', 'object',
    'embed', 'applet', 'param', 'template', 'noscript', 'animate', 'set', 'animatemotion',
    'animatetransform', 'animatecolor', 'foreignobject', 'handler'];
  var URL_ATTRS = ['href', 'src', 'srcset', 'imagesrcset', 'action', 'formaction', 'xlink:href', 'xml:base',
    'data', 'poster', 'background', 'cite', 'ping', 'manifest', 'codebase', 'classid', 'archive', 'longdesc',
    'lowsrc', 'dynsrc', 'profile', 'usemap', 'icon'];
  var hosts = (site.hosts || [new URL(location.href).hostname]).map(function (h) { return String(h).toLowerCase(); });
  function forbiddenTag(el) {
    var tag = String(el.tagName || '').toLowerCase().split(/[:|]/).pop();
    return FORBIDDEN.indexOf(tag) >= 0;
  }
  // null: relative; a host: absolute http(s); false: refused.
  function urlHost(u) {
    u = String(u);
    if (/[\u0000-\u001f\u007f-\u009f]/.test(u) || /^\s|\s$/.test(u) || /&#|&colon|&tab|&newline/i.test(u)) return false;
    var m = /^([a-z][a-z0-9+.-]*):/i.exec(u);
    if (!m) return /^[\/\\][\/\\]/.test(u) ? false : null;
    var scheme = m[1].toLowerCase();
    var rest = u.slice(m[0].length);
    if ((scheme !== 'http' && scheme !== 'https') || rest.slice(0, 2) !== '//') return false;
    var auth = rest.slice(2).split(/[\/?#\\]/)[0];
    if (/[@\s]/.test(auth)) return false;
    var host = (auth.charAt(0) === '[' ? auth.slice(0, auth.indexOf(']') + 1) : auth.split(':')[0]).toLowerCase().replace(/\.+$/, '');
    return host || false;
  }
  function onSite(host) {
    return host === null || hosts.some(function (h) { return h.split(':')[0].replace(/\.+$/, '') === host; });
  }
  function styleOk(v, declarations) {
    v = String(v);
    return !(/[{}<>\\\u0000-\u001f\u007f-\u009f]/.test(v) || (!declarations && v.indexOf(';') >= 0) ||
      /expression\(|javascript:|vbscript:|@import|-moz-binding|\/\*|(^|[^-])behavior/i.test(v));
  }
  // Whether change `c` may be applied (to `el`, when given).
  function allowed(c, el) {
    var a = c.action || {};
    if (a.type === 'custom_css' || a.type === 'custom_js') return typeof a.code === 'string';
    if (el && forbiddenTag(el)) return false;
    if (a.type === 'set_attribute') {
      var n = String(a.name).toLowerCase();
      var v = String(a.value);
      if (!/^[a-z_:][a-z0-9_:.-]*$/i.test(n) || n.indexOf('on') === 0 || n === 'srcdoc' || n === 'http-equiv') return false;
      if (n === 'srcset' || n === 'imagesrcset') {
        return !/[\u0000-\u001f\u007f-\u009f]/.test(v) && v.split(',').every(function (cand) {
          var u = cand.replace(/^ +| +$/g, '').split(' ')[0];
          return !u || urlHost(u) !== false;
        });
      }
      if (n === 'ping') return v.split(/[\t\n\f\r ]+/).every(function (u) { return !u || urlHost(u) !== false; });
      if (URL_ATTRS.indexOf(n) >= 0) {
        var host = urlHost(v);
        if (host === false || ((n === 'action' || n === 'formaction') && !onSite(host))) return false;
      }
      if (n === 'style') return styleOk(v, true);
    }
    if (a.type === 'set_style') {
      var p = String(a.property).toLowerCase();
      return /^-{0,2}[a-z][a-z0-9-]*$/.test(p) && p !== 'behavior' && p !== '-moz-binding' && styleOk(a.value, false);
    }
    if (a.type === 'redirect') {
      var target = urlHost(a.url);
      return target !== false && onSite(target);
    }
    return true;
  }
  function each(c, fn) {
    var nodes;
    try { nodes = d.querySelectorAll(c.selector); } catch (e) { return; }
    Array.prototype.forEach.call(nodes, function (el) { if (allowed(c, el)) fn(el); });
  }
  function addCode(tag, code, parent) {
    var el = d.createElement(tag);
    el.setAttribute('data-samplit-custom', '');
    el.textContent = code;
    (parent || d.documentElement).appendChild(el);
  }
  // A page the edge rendered already carries its custom code.
  var edgeCode = false;
  var POSITIONS = { before: 'beforebegin', after: 'afterend', prepend: 'afterbegin', append: 'beforeend' };
  // One change: {selector, action: {type, ...}} as the engine's changes::Change.
  function apply(c) {
    var a = c.action || {};
    if (!allowed(c)) return;
    switch (a.type) {
      case 'set_text': each(c, function (el) { el.textContent = a.text; }); break;
      case 'set_html': each(c, function (el) { el.innerHTML = a.html; }); break;
      case 'set_attribute': each(c, function (el) { el.setAttribute(a.name, a.value); }); break;
      case 'set_style': each(c, function (el) { el.style.setProperty(a.property, a.value); }); break;
      case 'hide': each(c, function (el) { el.style.setProperty('display', 'none', 'important'); }); break;
      case 'insert': each(c, function (el) { el.insertAdjacentHTML(POSITIONS[a.position] || 'beforeend', a.html); }); break;
      case 'custom_css': if (!edgeCode) addCode('style', a.code, d.head); break;
      case 'custom_js': if (!edgeCode) addCode('script', a.code, d.body); break;
      case 'redirect':
        var target = new URL(a.url, location.href);
        if (target.href !== location.href) location.replace(target.href);
        break;
    }
  }
  function whenReady(fn) {
    if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', fn); else fn();
  }

  // -- events ----------------------------------------------------------------------------
  function send(events) {
    var body = JSON.stringify({ site_key: key, visitor_id: visitor, events: events });
    var url = base + '/v1/events';
    if (!(w.navigator.sendBeacon && w.navigator.sendBeacon(url, body))) {
      fetch(url, { method: 'POST', body: body, credentials: 'include', keepalive: true }).catch(function () {});
    }
  }
  function track(goal, value) {
    var e = { type: 'conversion', goal: String(goal), id: uid() };
    if (typeof value === 'number' && isFinite(value)) e.value = value;
    if (visitor) send([e]); else pending.push(e);
  }
  function goals(list) {
    (list || []).forEach(function (g) {
      if (g.kind === 'click' && g.selector) {
        d.addEventListener('click', function (ev) {
          var t = ev.target;
          try { if (t && t.closest && t.closest(g.selector)) track(g.goal); } catch (e) { /* bad selector */ }
        }, true);
      }
    });
  }

  // The visitor id, for the page's other scripts: a property, the cookie the tag asked
  // for (a year, the whole site), then an event.
  function announce(id) {
    w.samplit.visitor = id;
    if (cookieName) {
      d.cookie = cookieName + '=' + encodeURIComponent(id) + '; path=/; max-age=31536000; SameSite=Lax' +
        (location.protocol === 'https:' ? '; Secure' : '');
    }
    try { w.dispatchEvent(new CustomEvent('samplit:visitor', { detail: { visitor_id: id } })); } catch (e) { /* no DOM events */ }
  }

  w.samplit = { track: track, assignments: [] };

  fetch(base + '/v1/assign', {
    method: 'POST',
    credentials: 'include',
    headers: { 'Content-Type': 'text/plain' },
    body: JSON.stringify({ site_key: key, visitor_id: remembered.vid || cookieVisitor(), url: location.href, referrer: d.referrer, sticky: remembered.arms })
  }).then(function (r) { return r.ok ? r.json() : null; }).then(function (res) {
    if (!res) return unhide();
    var list = res.assignments || [];
    var selectors = [];
    // Sticky tokens the edge minted (`<arm>.<mac>`): kept as given and sent back next
    // time; the edge ignores anything it did not mint for this visitor.
    var arms = remembered.arms || {};
    var tokens = res.sticky || {};
    Object.keys(tokens).forEach(function (k) { arms[k] = tokens[k]; });
    list.forEach(function (a) {
      (a.changes || []).forEach(function (c) {
        if (c.selector && c.action && c.action.type !== 'redirect') selectors.push(c.selector);
      });
    });
    hide(selectors);
    visitor = res.visitor_id || null;
    if (!res.excluded) save({ vid: visitor, arms: arms, hide: selectors });
    w.samplit.assignments = list;
    if (visitor && !res.excluded) announce(visitor);
    whenReady(function () {
      try { edgeCode = !!d.querySelector('[data-samplit-custom]'); } catch (e) { /* no DOM */ }
      list.forEach(function (a) { (a.changes || []).forEach(apply); });
      unhide();
      if (visitor) {
        send(pending.concat([{ type: 'pageview', url: location.href, id: uid() }]));
        pending = [];
        goals(res.goals);
      }
    });
  }).catch(unhide);
})(window, document);

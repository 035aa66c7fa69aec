/*! Samplit site snippet. In <head>, before other scripts, without async:
 *   <script src="https://EDGE/v1/samplit.js?site=KEY" data-site-key="KEY"></script>
 * 1. hides only the elements this site's experiments change — the selectors the edge put
 *    in front of this script (?site=KEY), and those remembered from the last visit — with
 *    a <style> tag, for at most 1 s, so not even a first visit paints the original;
 * 2. asks the edge for this visitor's assignments (cookie credentials, text/plain so no
 *    CORS preflight), keeps hidden only what the answer changes, applies each change once
 *    the DOM is ready, then un-hides;
 * 3. exposes samplit.track(goal, value) (sendBeacon to /v1/events), sends a pageview, and
 *    watches the click goals a response carries as `goals: [{goal, kind: "click",
 *    selector}]` (URL goals fire at the edge itself, when the page asks for assignments). */
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
  function each(selector, fn) {
    var nodes;
    try { nodes = d.querySelectorAll(selector); } catch (e) { return; }
    Array.prototype.forEach.call(nodes, fn);
  }
  var POSITIONS = { before: 'beforebegin', after: 'afterend', prepend: 'afterbegin', append: 'beforeend' };
  // One change: {selector, action: {type, ...}} as the engine's changes::Change.
  function apply(c) {
    var a = c.action || {};
    switch (a.type) {
      case 'set_text': each(c.selector, function (el) { el.textContent = a.text; }); break;
      case 'set_html': each(c.selector, function (el) { el.innerHTML = a.html; }); break;
      case 'set_attribute': each(c.selector, function (el) { el.setAttribute(a.name, a.value); }); break;
      case 'set_style': each(c.selector, function (el) { el.style.setProperty(a.property, a.value); }); break;
      case 'hide': each(c.selector, function (el) { el.style.setProperty('display', 'none', 'important'); }); break;
      case 'insert': each(c.selector, function (el) { el.insertAdjacentHTML(POSITIONS[a.position] || 'beforeend', a.html); }); break;
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

  w.samplit = { track: track, assignments: [] };

  fetch(base + '/v1/assign', {
    method: 'POST',
    credentials: 'include',
    headers: { 'Content-Type': 'text/plain' },
    body: JSON.stringify({ site_key: key, visitor_id: remembered.vid, url: location.href, sticky: remembered.arms })
  }).then(function (r) { return r.ok ? r.json() : null; }).then(function (res) {
    if (!res) return unhide();
    var list = res.assignments || [];
    var selectors = [];
    var arms = remembered.arms || {};
    list.forEach(function (a) {
      arms[a.sticky_key || a.experiment_id] = a.arm_id;
      (a.changes || []).forEach(function (c) {
        if (c.selector && c.action && c.action.type !== 'redirect') selectors.push(c.selector);
      });
    });
    hide(selectors);
    visitor = res.visitor_id || null;
    if (!res.excluded) save({ vid: visitor, arms: arms, hide: selectors });
    w.samplit.assignments = list;
    whenReady(function () {
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

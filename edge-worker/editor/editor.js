/*! Samplit visual editor, injected by the edge's editor proxy (GET /v1/editor).
 * - highlights the element under the pointer; a click selects it and sends the admin
 *   page {type: "samplit:select", selector, tag, text} — the selector is stable (id, then
 *   classes/attributes, then an nth-of-type path) and verified to match only that element;
 * - applies a live preview of changes the admin page sends ({type: "samplit:preview",
 *   changes: [...]} in the engine's Change format), reverting the previous preview first;
 * - talks only to the admin origin named in the editor token (data-admin-origin):
 *   postMessage goes to that origin only, and messages from any other origin are ignored.
 * Selectors stay within what the edge's rewriter (lol_html) matches: type, #id, .class,
 * [attr="v"], :nth-of-type(n), descendant " " and child " > " combinators. */
(function (w, d) {
  'use strict';
  var script = d.currentScript;
  if (!script || w.__samplitEditor) return;
  var cfg = {
    adminOrigin: script.getAttribute('data-admin-origin'),
    pageUrl: script.getAttribute('data-page-url'),
  };
  var api = (w.__samplitEditor = { selectorFor: null, apply: null, log: [] });
  var selecting = true;
  var OVERLAY = 'samplit-editor-overlay'; // a custom tag: never counted by div:nth-of-type

  function send(msg) {
    msg.source = 'samplit-editor';
    api.log.push(msg);
    // Only the admin origin may receive it; with no parent (opened directly) it is a no-op.
    if (w.parent && w.parent !== w && cfg.adminOrigin) w.parent.postMessage(msg, cfg.adminOrigin);
  }

  // -- selectors -------------------------------------------------------------------------
  var esc = (w.CSS && w.CSS.escape) || function (s) {
    return String(s).replace(/[^a-zA-Z0-9_-]/g, function (c) { return '\\' + c; }).replace(/^(\d)/, '\\3$1 ');
  };
  function unique(sel, el) {
    var found;
    try { found = d.querySelectorAll(sel); } catch (e) { return false; }
    return found.length === 1 && found[0] === el;
  }
  function tag(el) { return el.tagName.toLowerCase(); }
  // Generated-looking class names (hashes, state) make brittle selectors.
  function stableClass(c) { return /^[a-zA-Z][\w-]{0,40}$/.test(c) && !/\d{3,}|^(is|has)-|active|hover|focus|open|selected/.test(c); }
  var ATTRS = ['data-testid', 'data-test', 'data-id', 'name', 'aria-label', 'role', 'type', 'href', 'alt', 'title'];
  function simple(el) {
    if (el.id && /^[A-Za-z][\w-]*$/.test(el.id)) {
      var byId = '#' + esc(el.id);
      if (unique(byId, el)) return byId;
    }
    var t = tag(el);
    var classes = Array.prototype.filter.call(el.classList || [], stableClass).slice(0, 3);
    if (classes.length) {
      var byClass = t + classes.map(function (c) { return '.' + esc(c); }).join('');
      if (unique(byClass, el)) return byClass;
    }
    for (var i = 0; i < ATTRS.length; i++) {
      var v = el.getAttribute(ATTRS[i]);
      if (v && v.length <= 80 && !/["\\\n]/.test(v)) {
        var byAttr = t + '[' + ATTRS[i] + '="' + v + '"]';
        if (unique(byAttr, el)) return byAttr;
      }
    }
    return null;
  }
  function nth(el) {
    var n = 1;
    for (var s = el.previousElementSibling; s; s = s.previousElementSibling) if (s.tagName === el.tagName) n++;
    return tag(el) + ':nth-of-type(' + n + ')';
  }
  /** A selector matching only `el`: its own id/classes/attributes, else a path of
   *  nth-of-type steps up to the nearest ancestor with a unique id (or html). */
  function selectorFor(el) {
    if (!el || el.nodeType !== 1) return null;
    var own = simple(el);
    if (own) return own;
    var parts = [];
    for (var cur = el; cur && cur.nodeType === 1; cur = cur.parentElement) {
      if (cur !== el && cur.id && /^[A-Za-z][\w-]*$/.test(cur.id) && unique('#' + esc(cur.id), cur)) {
        parts.unshift('#' + esc(cur.id));
        break;
      }
      parts.unshift(cur === d.documentElement ? 'html' : nth(cur));
      var candidate = parts.join(' > ');
      if (unique(candidate, el)) return candidate;
    }
    var path = parts.join(' > ');
    return unique(path, el) ? path : null;
  }
  api.selectorFor = selectorFor;

  // -- highlight and select --------------------------------------------------------------
  var box = d.createElement(OVERLAY);
  box.setAttribute('style', 'position:fixed;pointer-events:none;z-index:2147483647;border:2px solid #7c3aed;background:rgba(124,58,237,.12);display:none;box-sizing:border-box');
  function mountOverlay() { if (!box.parentNode) d.documentElement.appendChild(box); }
  function inOverlay(el) { return el === box; }
  function highlight(el) {
    if (!el || inOverlay(el) || !selecting) { box.style.display = 'none'; return; }
    var r = el.getBoundingClientRect();
    box.style.display = 'block';
    box.style.left = r.left + 'px';
    box.style.top = r.top + 'px';
    box.style.width = r.width + 'px';
    box.style.height = r.height + 'px';
  }
  d.addEventListener('mouseover', function (e) { highlight(e.target); }, true);
  d.addEventListener('click', function (e) {
    if (!selecting || inOverlay(e.target)) return;
    e.preventDefault();
    e.stopPropagation();
    var el = e.target;
    send({
      type: 'samplit:select',
      selector: selectorFor(el),
      tag: tag(el),
      text: (el.textContent || '').trim().slice(0, 200),
      html: (el.outerHTML || '').slice(0, 2000),
    });
  }, true);

  // -- live preview ----------------------------------------------------------------------
  var original = null; // body HTML before the first preview, to revert to
  var POSITIONS = { before: 'beforebegin', after: 'afterend', prepend: 'afterbegin', append: 'beforeend' };
  function applyOne(c) {
    var a = c.action || {};
    var nodes;
    try { nodes = d.querySelectorAll(c.selector); } catch (e) { return 0; }
    Array.prototype.forEach.call(nodes, function (el) {
      switch (a.type) {
        case 'set_text': el.textContent = a.text; break;
        case 'set_html': el.innerHTML = a.html; break;
        case 'set_attribute': if (!/^on/i.test(a.name) && a.name.toLowerCase() !== 'srcdoc') el.setAttribute(a.name, a.value); break;
        case 'set_style': el.style.setProperty(a.property, a.value); break;
        case 'hide': el.style.setProperty('display', 'none', 'important'); break;
        case 'insert': el.insertAdjacentHTML(POSITIONS[a.position] || 'beforeend', a.html); break;
        default: break; // redirect: nothing to preview in place
      }
    });
    return nodes.length;
  }
  function revert() {
    if (original !== null) { d.body.innerHTML = original; mountOverlay(); }
  }
  function preview(changes) {
    if (original === null) original = d.body.innerHTML;
    else revert();
    return (changes || []).map(applyOne);
  }
  api.apply = preview;

  w.addEventListener('message', function (e) {
    if (e.origin !== cfg.adminOrigin) return; // only the admin application may drive us
    var m = e.data;
    if (!m || typeof m !== 'object') return;
    if (m.type === 'samplit:preview') {
      send({ type: 'samplit:previewed', matched: preview(m.changes) });
    } else if (m.type === 'samplit:revert') {
      revert();
      send({ type: 'samplit:reverted' });
    } else if (m.type === 'samplit:mode') {
      selecting = m.mode !== 'browse';
      highlight(null);
      send({ type: 'samplit:mode', mode: selecting ? 'select' : 'browse' });
    } else if (m.type === 'samplit:ping') {
      send({ type: 'samplit:ready', url: cfg.pageUrl });
    }
  });

  function ready() { mountOverlay(); send({ type: 'samplit:ready', url: cfg.pageUrl }); }
  if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', ready);
  else ready();
})(window, document);

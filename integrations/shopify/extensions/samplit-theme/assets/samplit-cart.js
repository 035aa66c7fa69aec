/*
 * Samplit cart attribution (theme app extension asset, loaded with defer).
 *
 * Once the Samplit snippet knows the visitor id, copy it into the cart
 * attribute `_samplit_vid` so that it reaches the order (orders/create
 * webhook, note_attributes) and the order can be credited to the variant the
 * shopper saw. The snippet announces the id in two ways, and this file may
 * load before or after it:
 *   - window.samplit.visitor            (already known when we load)
 *   - 'samplit:visitor' CustomEvent     (known later; detail.visitor_id)
 *
 * At most one cart read and one cart update per page view; every failure is
 * swallowed so that nothing is ever thrown into the storefront.
 * Cart Ajax API: https://shopify.dev/docs/api/ajax/reference/cart
 */
(function () {
  'use strict';

  var ATTRIBUTE = '_samplit_vid';
  var started = false;

  // Locale-aware root ("/", "/fr/", ...), as the Ajax API asks for.
  function cartRoot() {
    var shopify = window.Shopify;
    var root = shopify && shopify.routes && shopify.routes.root;
    if (typeof root !== 'string' || root.charAt(0) !== '/') root = '/';
    return root.charAt(root.length - 1) === '/' ? root : root + '/';
  }

  function sync(id) {
    if (started || typeof id !== 'string' || !id || id.length > 128) return;
    if (typeof window.fetch !== 'function') return;
    started = true;
    try {
      var root = cartRoot();
      window.fetch(root + 'cart.js', {
        credentials: 'same-origin',
        headers: { accept: 'application/json' }
      })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (cart) {
          if (!cart) return null;
          if (cart.attributes && cart.attributes[ATTRIBUTE] === id) return null;
          var attributes = {};
          attributes[ATTRIBUTE] = id;
          return window.fetch(root + 'cart/update.js', {
            method: 'POST',
            credentials: 'same-origin',
            headers: { 'content-type': 'application/json', accept: 'application/json' },
            body: JSON.stringify({ attributes: attributes })
          });
        })
        .catch(function () {});
    } catch (ignored) {
      // Never let attribution break the page.
    }
  }

  try {
    window.addEventListener('samplit:visitor', function (event) {
      sync(event && event.detail && event.detail.visitor_id);
    });
    var samplit = window.samplit;
    if (samplit && samplit.visitor) sync(samplit.visitor);
  } catch (ignored) {
    // Same: attribution is best effort.
  }
})();

// Samplit web pixel (strict sandbox: a web worker with no DOM and no
// window.document; only the `analytics`, `browser`, `init` and `settings` APIs
// that Shopify hands to register(), plus standard worker globals like fetch).
//
// On checkout_completed it sends one "purchase" conversion to the Samplit
// edge. The event id is shopify-order:<order id>, the same id the
// orders/create webhook uses, so the edge/control plane counts the purchase
// once whichever of the two arrives first (the webhook is authoritative).
//
// https://shopify.dev/docs/api/web-pixels-api
// https://shopify.dev/docs/api/web-pixels-api/standard-events/checkout_completed
import { register } from '@shopify/web-pixels-extension';

const VISITOR_COOKIE = '_samplit_vid';

// 'gid://shopify/Order/123' -> '123', 'gid://shopify/OrderIdentity/123' -> '123',
// '123' -> '123'. Anything without trailing digits -> '' (nothing is sent).
function orderDigits(id) {
  const match = /(\d+)$/.exec(String(id == null ? '' : id).trim());
  return match ? match[1] : '';
}

// https:// only (or a local development edge on http://127.0.0.1:<port>), without
// trailing slashes.
function edgeBase(url) {
  const value = String(url == null ? '' : url).trim().replace(/\/+$/, '');
  return /^(https:\/\/[^/?#\s]+|http:\/\/127\.0\.0\.1:\d+)/i.test(value) ? value : '';
}

register(({ analytics, browser, settings }) => {
  const base = edgeBase(settings && settings.edgeUrl);
  const siteKey = String((settings && settings.siteKey) || '').trim();
  if (!base || !siteKey) return;

  analytics.subscribe('checkout_completed', async (event) => {
    try {
      const checkout = (event && event.data && event.data.checkout) || {};
      const order = checkout.order || {};
      const digits = orderDigits(order.id);
      const total = checkout.totalPrice || {};
      const value = Number(total.amount);
      const currency = String(total.currencyCode || checkout.currencyCode || '').toUpperCase();
      if (!digits || !Number.isFinite(value) || value < 0 || !/^[A-Z]{3}$/.test(currency)) return;

      let visitor = '';
      try {
        visitor = String((await browser.cookie.get(VISITOR_COOKIE)) || '').trim();
      } catch (cookieError) {
        visitor = '';
      }
      if (!visitor || visitor.length > 128) return;

      const body = JSON.stringify({
        site_key: siteKey,
        visitor_id: visitor,
        events: [
          {
            type: 'conversion',
            goal: 'purchase',
            value,
            currency,
            id: `shopify-order:${digits}`,
          },
        ],
      });

      // text/plain keeps this a CORS "simple" request (no preflight);
      // keepalive lets it finish if the thank-you page is left at once.
      await fetch(`${base}/v1/events`, {
        method: 'POST',
        keepalive: true,
        credentials: 'omit',
        headers: { 'content-type': 'text/plain' },
        body,
      });
    } catch (sendError) {
      // Best effort: the orders/create webhook still records the purchase.
    }
  });
});

// What `wrangler dev` cannot send: Cloudflare's `request.cf` (the verified-bot flag)
// and https request URLs; and chunked bodies cut short at the size cap, which wrangler's
// local proxy turns into a 503 for the *next* request ("worker restarted mid-request")
// although the Worker itself is fine. Miniflare's dispatchFetch does all three, on the
// same build and the same workerd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.mjs';

const SITE = 'sk_test_cf';
let mf;

const assign = (init = {}) => mf.dispatchFetch('https://edge.example.com/v1/assign', {
  method: 'POST',
  body: JSON.stringify({ site_key: SITE, url: 'https://shop.example.com/' }),
  headers: { 'content-type': 'text/plain', 'user-agent': h.BROWSER_UA },
  ...init,
});

before(async () => {
  mf = await h.startMiniflare();
  const res = await mf.dispatchFetch(`https://edge.example.com/v1/internal/snapshots/${SITE}`, {
    method: 'PUT',
    body: JSON.stringify(h.signSnapshot(h.testSnapshot({ siteKey: SITE }))),
  });
  assert.equal(res.status, 200, await res.text());
});
after(async () => { await mf?.dispose(); });

test('Cloudflare\'s verified-bot flag excludes a visitor even with a browser user agent', { timeout: 30000 }, async () => {
  const res = await assign({ cf: { botManagement: { verifiedBot: true, score: 1 } } });
  const body = await res.json();
  assert.equal(body.excluded, 'bot');
  assert.deepEqual(body.assignments, []);
  assert.deepEqual(res.headers.getSetCookie(), []);

  const human = await assign({ cf: { botManagement: { verifiedBot: false, score: 99 } } });
  const humanBody = await human.json();
  assert.equal(humanBody.excluded, null);
  assert.equal(humanBody.assignments.length, 1);
});

test('on https the visitor, sticky and history cookies are Secure', { timeout: 30000 }, async () => {
  const res = await assign();
  const lines = res.headers.getSetCookie();
  assert.deepEqual(lines.map((l) => l.split('=')[0]), ['samplit_vid', 'samplit_arms', 'samplit_hist'], lines.join('\n'));
  for (const line of lines) {
    assert.match(line, /; Secure$/);
    assert.match(line, /SameSite=Lax/);
    assert.match(line, /HttpOnly/);
  }
});

test('a chunked body (no Content-Length) is streamed, and cut off with 413 past 64 KB', { timeout: 30000 }, async () => {
  const chunked = (text) => assign({
    body: new ReadableStream({
      start(c) {
        for (let i = 0; i < text.length; i += 8192) c.enqueue(new TextEncoder().encode(text.slice(i, i + 8192)));
        c.close();
      },
    }),
    duplex: 'half',
  });
  // The Worker answers 413 as soon as the cap is passed, possibly before the client has
  // finished uploading; the client may then see the closed connection instead of the
  // answer. The body is only a little over the cap (~70 KB), so the upload is nearly done
  // when the answer comes. Bounded retries: at least one attempt must read the 413 itself.
  let big = null;
  for (let attempt = 0; attempt < 10 && big === null; attempt += 1) {
    try {
      big = await chunked(JSON.stringify({ site_key: SITE, url: 'https://shop.example.com/', pad: 'x'.repeat(70000) }));
    } catch (e) {
      assert.match(String(e.cause ?? e), /closed|reset|terminated|socket|fetch failed|other side/i, 'only a connection closed early is tolerated');
    }
  }
  assert.ok(big, 'one of ten attempts read the answer');
  assert.equal(big.status, 413);
  assert.equal((await big.json()).error.code, 'payload_too_large');
  const small = await chunked(JSON.stringify({ site_key: SITE, url: 'https://shop.example.com/', visitor_id: 'chunked-visitor', pad: 'y'.repeat(20000) }));
  assert.equal(small.status, 200, 'a chunked body under the cap is read whole, over several chunks');
  assert.equal((await small.json()).visitor_id, 'chunked-visitor');
});

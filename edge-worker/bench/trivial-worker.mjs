// Benchmark (b)'s baseline: the least a Worker can do — fixed JSON, no bindings used.
export default {
  async fetch() {
    return new Response('{"site_key":"sk_bench","visitor_id":"v","snapshot_version":1,"excluded":null,"assignments":[]}', {
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    });
  },
};

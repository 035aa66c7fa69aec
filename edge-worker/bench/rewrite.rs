//! Streaming rewrite overhead per 100 KB page vs passing it through, in the same run.
//!
//! `cargo bench -p samplit-edge --bench rewrite` (native, release). Each case streams the
//! same ~100 KB HTML page in 16 KB chunks (a typical network read size) and collects the
//! output, as the Worker does:
//! - `passthrough`: chunks copied to the output (what an un-rewritten page costs);
//! - `parse only`: `lol_html` with no handlers matching (the rewriter's floor);
//! - `variant (7 changes)`: every change type on selectors that match;
//! - `editor mode`: links/forms rewritten, `<base>`, the editor script.
//!
//! Prints the median and p90 of 200 runs per case and the overhead over passthrough.
//! The Worker runs the same code compiled to wasm: `rewrite-latency.mjs` measures it
//! end to end through local workerd.

use std::hint::black_box;
use std::time::{Duration, Instant};

use samplit_edge::render::{EditorMode, Plan, Rewriter};
use samplit_engine::changes::{Change, ChangeAction, InsertPosition};

const CHUNK: usize = 16 * 1024;
const RUNS: usize = 200;

fn page() -> String {
    let mut s = String::from(
        "<!doctype html><html><head><title>Shop</title><link rel=stylesheet href=/a.css></head><body>\
         <header><nav><a href=/>Home</a><a href=/pricing>Pricing</a></nav></header>\
         <h1 id=\"headline\" class=\"hero\">Original headline</h1><main>",
    );
    let mut i = 0;
    while s.len() < 100 * 1024 {
        s.push_str(&format!(
            "<section class=\"card\" data-i=\"{i}\"><h2>Product {i}</h2><p class=\"lead\">Lorem ipsum dolor sit amet, \
             consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore.</p>\
             <a class=\"buy\" href=\"/p/{i}?ref=list\">Buy</a><img src=\"/img/{i}.jpg\" alt=\"\"></section>"
        ));
        i += 1;
    }
    s.push_str("</main><div id=\"banner\">Sale</div><ul id=\"list\"><li>a</li></ul><form action=/search><input name=q></form></body></html>");
    s
}

fn changes() -> Vec<Change> {
    let c = |s: &str, a| Change::new(s, a).expect("valid change");
    vec![
        c(
            "#headline",
            ChangeAction::SetText {
                text: "Variant".into(),
            },
        ),
        c(
            "p.lead",
            ChangeAction::SetHtml {
                html: "<b>New</b>".into(),
            },
        ),
        c(
            "a.buy",
            ChangeAction::SetAttribute {
                name: "href".into(),
                value: "/cart".into(),
            },
        ),
        c(
            "a.buy",
            ChangeAction::SetStyle {
                property: "color".into(),
                value: "red".into(),
            },
        ),
        c("#banner", ChangeAction::Hide),
        c(
            "#list",
            ChangeAction::Insert {
                position: InsertPosition::Append,
                html: "<li>b</li>".into(),
            },
        ),
        c(
            "#list",
            ChangeAction::Insert {
                position: InsertPosition::Before,
                html: "<hr>".into(),
            },
        ),
    ]
}

fn stream(plan: Option<&Plan>, html: &[u8]) -> usize {
    let mut out = Vec::with_capacity(html.len() + 4096);
    match plan {
        None => {
            for chunk in html.chunks(CHUNK) {
                out.extend_from_slice(black_box(chunk));
            }
        }
        Some(plan) => {
            let mut r = Rewriter::new(plan).expect("rewriter");
            for chunk in html.chunks(CHUNK) {
                out.extend(r.write(chunk).expect("write"));
            }
            out.extend(r.end().expect("end"));
        }
    }
    black_box(out.len())
}

fn measure(plan: Option<&Plan>, html: &[u8]) -> (Duration, Duration, usize) {
    for _ in 0..20 {
        stream(plan, html);
    }
    let mut times = Vec::with_capacity(RUNS);
    let mut len = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        len = stream(plan, html);
        times.push(t.elapsed());
    }
    times.sort();
    (times[RUNS / 2], times[RUNS * 9 / 10], len)
}

fn main() {
    let html = page();
    let bytes = html.as_bytes();
    let variant = Plan {
        changes: changes(),
        editor: None,
        site_hosts: vec!["shop.example.com".into()],
    };
    let parse_only = Plan {
        changes: vec![Change::new("#does-not-exist", ChangeAction::Hide).expect("valid")],
        editor: None,
        site_hosts: vec!["shop.example.com".into()],
    };
    let editor = Plan {
        changes: vec![],
        editor: Some(EditorMode {
            page_url: url::Url::parse("https://shop.example.com/").expect("url"),
            edge_origin: "https://edge.example".into(),
            token: "x".repeat(300),
            admin_origin: "https://admin.example".into(),
        }),
        site_hosts: vec!["shop.example.com".into()],
    };
    println!(
        "page: {} bytes, {} KB chunks, {RUNS} runs per case (median / p90)",
        bytes.len(),
        CHUNK / 1024
    );
    let (base, base90, _) = measure(None, bytes);
    println!(
        "passthrough            {:>9.1} µs / {:>9.1} µs",
        us(base),
        us(base90)
    );
    for (name, plan) in [
        ("parse only (no match)", &parse_only),
        ("variant (7 changes)", &variant),
        ("editor mode", &editor),
    ] {
        let (med, p90, out) = measure(Some(plan), bytes);
        println!(
            "{name:<22} {:>9.1} µs / {:>9.1} µs   overhead {:>8.1} µs per 100 KB page, {:>6.0} MB/s, output {out} bytes",
            us(med),
            us(p90),
            us(med.saturating_sub(base)),
            bytes.len() as f64 / med.as_secs_f64() / 1e6,
        );
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

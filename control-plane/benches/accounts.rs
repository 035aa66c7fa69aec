//! CPU costs behind the accounts endpoints: argon2id (default parameters, what register
//! and login pay per call), the audit chain hash (what `/audit/verify` pays per entry),
//! and building a 10,000-row audit export as CSV and XLSX.
//!
//! Run: `cargo bench -p samplit-control-plane --bench accounts`.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use samplit_control_plane::audit::chain_hash;
use samplit_control_plane::export::{Cell, Table};
use std::hint::black_box;

fn argon2id(c: &mut Criterion) {
    let salt = argon2::password_hash::SaltString::encode_b64(&[7u8; 16]).expect("valid salt");
    let hash = Argon2::default()
        .hash_password(b"correct horse battery staple", &salt)
        .expect("hashes")
        .to_string();
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(20);
    group.bench_function("hash (register)", |b| {
        b.iter(|| {
            Argon2::default().hash_password(black_box(b"correct horse battery staple"), &salt)
        })
    });
    group.bench_function("verify (login)", |b| {
        let parsed = PasswordHash::new(&hash).expect("parses");
        b.iter(|| {
            Argon2::default()
                .verify_password(black_box(b"correct horse battery staple"), &parsed)
                .is_ok()
        })
    });
    group.finish();
}

fn audit_chain(c: &mut Criterion) {
    let entry = r#"{"org_id":"6f1c0c1e-8a55-4c6e-9a57-1f0f3b2b9d11","seq":42,"at":"2026-11-28T00:00:00.123456Z","actor_user_id":"0b3d3f4e-4a37-4a8e-9d3b-2a1c5e7f9a10","actor_api_key_id":null,"actor_label":"ada@example.com","action":"member.role_changed","target_type":"user","target_id":"3c2b1a09-8f7e-4d6c-b5a4-938271605f4e","before":{"role":"viewer"},"after":{"role":"editor"}}"#;
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("chain_hash per entry", |b| {
        let prev = [0u8; 32];
        b.iter(|| chain_hash(black_box(&prev), black_box(entry)))
    });
    group.finish();
}

fn exports(c: &mut Criterion) {
    let rows = 10_000;
    let mut table = Table::new(
        "Audit trail",
        ["seq", "at", "actor", "action", "target_id", "after", "hash"],
    );
    for i in 0..rows {
        table
            .push_row(vec![
                Cell::Int(i),
                "2026-11-28T00:00:00.123456Z".into(),
                "ada@example.com".into(),
                "api_key.created".into(),
                "3c2b1a09-8f7e-4d6c-b5a4-938271605f4e".into(),
                format!("{{\"name\":\"key {i}, \\\"quoted\\\"\",\"role\":\"viewer\"}}").into(),
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            ])
            .expect("seven cells");
    }
    let mut group = c.benchmark_group("export 10k rows");
    group.sample_size(10);
    group.throughput(Throughput::Elements(10_000));
    for format in ["csv", "xlsx"] {
        group.bench_with_input(BenchmarkId::from_parameter(format), &format, |b, f| {
            b.iter(|| match *f {
                "csv" => table.to_csv().expect("csv").len(),
                _ => table.to_xlsx().expect("xlsx").len(),
            })
        });
    }
    group.finish();
}

criterion_group!(benches, argon2id, audit_chain, exports);
criterion_main!(benches);

//! The audit endpoints: listing with filters and pages, chain verification (and the
//! exact first broken link after tampering with SQL), and CSV/XLSX exports.

use axum::http::StatusCode;
use samplit_control_plane::auth::Role;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{Member, TestApp, create_api_key, new_org, new_team};

/// An org whose audit trail has `n` entries (one API key created per entry).
async fn org_with_entries(app: &TestApp, n: usize) -> Member {
    let owner = new_org(app).await;
    for i in 0..n {
        create_api_key(app, &owner.token, &format!("key {i}"), Role::Viewer).await;
    }
    owner
}

async fn verify(app: &TestApp, token: &str) -> Value {
    let resp = app.get("/api/v1/audit/verify", Some(token)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    resp.json()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_trail_lists_newest_first_with_filters_and_pages(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = org_with_entries(&app, 5).await;
    let first = app
        .get("/api/v1/audit?limit=2", Some(&owner.token))
        .await
        .json();
    let seqs: Vec<i64> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [5, 4]);
    assert_eq!(first["next_before_seq"], 4);
    assert_eq!(first["items"][0]["actor_label"], owner.email);
    assert_eq!(first["items"][0]["after"]["name"], "key 4");
    assert_eq!(first["items"][0]["hash"].as_str().unwrap().len(), 64);
    let rest = app
        .get("/api/v1/audit?limit=10&before_seq=4", Some(&owner.token))
        .await
        .json();
    let seqs: Vec<i64> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 2, 1]);
    assert!(rest["next_before_seq"].is_null());

    let target = first["items"][1]["target_id"].as_str().unwrap();
    let by_target = app
        .get(
            &format!("/api/v1/audit?target_id={target}"),
            Some(&owner.token),
        )
        .await
        .json();
    assert_eq!(by_target["items"].as_array().unwrap().len(), 1);
    assert_eq!(by_target["items"][0]["seq"], 4);
    let none = app
        .get("/api/v1/audit?action=member.removed", Some(&owner.token))
        .await
        .json();
    assert_eq!(none["items"].as_array().unwrap().len(), 0);

    for (query, status, code) in [
        (
            "limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "limit=201",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        ("limit=ten", StatusCode::BAD_REQUEST, "bad_request"),
        (
            "target_id=not-a-uuid",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ] {
        app.get(&format!("/api/v1/audit?{query}"), Some(&owner.token))
            .await
            .assert_problem(status, code);
    }
    // Another organisation sees only its own trail.
    let stranger = new_org(&app).await;
    let theirs = app.get("/api/v1/audit", Some(&stranger.token)).await.json();
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
    assert_eq!(verify(&app, &stranger.token).await["checked"], 0);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn verify_passes_on_an_untouched_chain(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = org_with_entries(&app, 4).await;
    let report = verify(&app, &owner.token).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checked"], 4);
    assert_eq!(report["head_seq"], 4);
    assert!(report.get("first_broken_seq").is_none());
    let page = app
        .get("/api/v1/audit?limit=1", Some(&owner.token))
        .await
        .json();
    assert_eq!(report["head_hash"], page["items"][0]["hash"]);
}

/// Each tampering, done with SQL on a fresh org with 5 entries, and the first broken
/// link that verification must name.
#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn verify_names_the_first_broken_link_after_tampering(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let cases: [(&str, &str, i64, &str); 6] = [
        (
            "entry text edited",
            "UPDATE audit_log SET entry = replace(entry, 'key 2', 'key X') WHERE org_id = $1 AND seq = 3",
            3,
            "hash does not match the entry text",
        ),
        (
            "a row deleted",
            "DELETE FROM audit_log WHERE org_id = $1 AND seq = 2",
            2,
            "entry 2 is missing",
        ),
        (
            "a queryable column changed",
            "UPDATE audit_log SET action = 'api_key.revoked' WHERE org_id = $1 AND seq = 4",
            4,
            "column action differs",
        ),
        (
            "the actor column rewritten",
            "UPDATE audit_log SET actor_user_id = gen_random_uuid() WHERE org_id = $1 AND seq = 1",
            1,
            "column actor_user_id differs",
        ),
        (
            "text edited and its hash recomputed",
            "UPDATE audit_log SET entry = replace(entry, 'key 1', 'key Y'),
                    hash = sha256(prev_hash || convert_to(replace(entry, 'key 1', 'key Y'), 'UTF8'))
              WHERE org_id = $1 AND seq = 2",
            3,
            "prev_hash is not the previous entry's hash",
        ),
        (
            "the last row's timestamp moved",
            "UPDATE audit_log SET at = at - interval '1 day' WHERE org_id = $1 AND seq = 5",
            5,
            "column at differs",
        ),
    ];
    for (why, sql, broken_seq, reason) in cases {
        let owner = org_with_entries(&app, 5).await;
        assert_eq!(
            verify(&app, &owner.token).await["ok"],
            true,
            "{why}: before tampering"
        );
        let changed = sqlx::query(sql)
            .bind(owner.org_id)
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(
            changed.rows_affected(),
            1,
            "{why}: the tampering touched one row"
        );
        let report = verify(&app, &owner.token).await;
        assert_eq!(report["ok"], false, "{why}: {report}");
        assert_eq!(report["first_broken_seq"], broken_seq, "{why}: {report}");
        assert!(
            report["reason"].as_str().unwrap().contains(reason),
            "{why}: {report}"
        );
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_csv_export_quotes_per_rfc_4180_and_neutralises_formulas(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let evil = "=HYPERLINK(\"https://evil.example\",\"click\")";
    create_api_key(&app, &team.owner.token, evil, Role::Viewer).await;
    create_api_key(&app, &team.owner.token, "plain, with comma", Role::Editor).await;
    let resp = app
        .get("/api/v1/audit/export?format=csv", Some(&team.admin.token))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.headers["content-type"], "text/csv; charset=utf-8");
    let disposition = resp.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"audit-") && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    assert_eq!(resp.headers["cache-control"], "no-store");
    let text = resp.text();
    assert!(text.starts_with("seq,at,actor,actor_user_id,"), "{text}");
    assert!(text.contains("\r\n"), "CRLF line ends");

    let mut reader = csv::ReaderBuilder::new().from_reader(resp.body.as_slice());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(headers.len(), 11);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    // Newest first, like the list; `after` is JSON text, with quotes doubled on the wire.
    assert_eq!(&rows[0][0], "2");
    assert_eq!(&rows[0][5], "api_key.created");
    let after: Value = serde_json::from_str(&rows[0][9]).unwrap();
    assert_eq!(after["name"], "plain, with comma");
    assert!(
        text.contains("\"{\"\"name\"\":\"\"plain, with comma\"\""),
        "{text}"
    );
    // A formula inside JSON text does not start its cell, so it is left alone (the
    // spreadsheet sees a string starting with `{`); numbers stay unquoted digits.
    let created: Value = serde_json::from_str(&rows[1][9]).unwrap();
    assert_eq!(created["name"], evil);
    assert!(text.contains("\r\n2,") && text.contains("\r\n1,"), "{text}");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn exported_cells_whose_first_non_blank_character_starts_a_formula_are_neutralised(
    pool: PgPool,
) {
    let app = TestApp::new(pool.clone());
    let owner = new_org(&app).await;
    // Spreadsheets skip leading blanks before reading a formula (OWASP).
    sqlx::query("UPDATE users SET email = E' \\n=cmd@example.com' WHERE id = $1")
        .bind(owner.user_id)
        .execute(&pool)
        .await
        .unwrap();
    create_api_key(&app, &owner.token, "plain", Role::Viewer).await;
    let csv_text = app
        .get("/api/v1/audit/export?format=csv", Some(&owner.token))
        .await
        .text();
    let mut reader = csv::ReaderBuilder::new().from_reader(csv_text.as_bytes());
    let row = reader.records().next().unwrap().unwrap();
    assert_eq!(&row[2], "' \n=cmd@example.com", "{csv_text}");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn exported_cells_that_start_a_formula_are_neutralised(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let owner = new_org(&app).await;
    // An actor label is the user's email or `api-key:<name>`; make a user whose label
    // begins with `=`, as an attacker-controlled value would, by renaming with SQL.
    sqlx::query("UPDATE users SET email = '=cmd@example.com' WHERE id = $1")
        .bind(owner.user_id)
        .execute(&pool)
        .await
        .unwrap();
    create_api_key(&app, &owner.token, "-2+3", Role::Viewer).await;
    let csv_text = app
        .get("/api/v1/audit/export?format=csv", Some(&owner.token))
        .await
        .text();
    let mut reader = csv::ReaderBuilder::new().from_reader(csv_text.as_bytes());
    let row = reader.records().next().unwrap().unwrap();
    assert_eq!(&row[2], "'=cmd@example.com", "{csv_text}");
    assert_eq!(&row[0], "1", "a number is not touched");

    let xlsx = app
        .get("/api/v1/audit/export?format=xlsx", Some(&owner.token))
        .await;
    assert_eq!(xlsx.status, StatusCode::OK);
    assert_eq!(
        xlsx.headers["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(
        xlsx.headers["content-disposition"]
            .to_str()
            .unwrap()
            .ends_with(".xlsx\"")
    );
    assert_eq!(
        &xlsx.body[..4],
        b"PK\x03\x04",
        "an xlsx file is a zip archive"
    );
    use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(xlsx.body.clone())).unwrap();
    let range = book.worksheet_range("Audit trail").unwrap();
    let rows: Vec<Vec<Data>> = range.rows().map(<[Data]>::to_vec).collect();
    assert_eq!(rows.len(), 2, "header and one entry");
    assert_eq!(rows[0][0], Data::String("seq".into()));
    assert_eq!(rows[0][10], Data::String("hash".into()));
    assert_eq!(rows[1][0], Data::Float(1.0), "seq is a number");
    assert_eq!(rows[1][2], Data::String("'=cmd@example.com".into()));
    assert_eq!(rows[1][5], Data::String("api_key.created".into()));
    let after: Value = match &rows[1][9] {
        Data::String(s) => serde_json::from_str(s).unwrap(),
        other => panic!("after is text, got {other:?}"),
    };
    assert_eq!(after["name"], "-2+3");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn exports_need_a_known_format_and_an_admin(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    for query in ["", "?format=pdf", "?format=CSV&x=1"] {
        app.get(
            &format!("/api/v1/audit/export{query}"),
            Some(&team.admin.token),
        )
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    for token in [&team.viewer.token, &team.editor.token] {
        app.get("/api/v1/audit/export?format=xlsx", Some(token))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
}

//! `samplit serve` runs the API (applying migrations unless `SAMPLIT_MIGRATE=false`);
//! `samplit migrate` applies `migrations/` and exits; `samplit openapi` prints the API's
//! OpenAPI document (no configuration needed). Configuration comes from the environment
//! and an optional `.env` (see `.env.example`).

use std::process::ExitCode;

use samplit_control_plane::{config, connect, migrate, serve, telemetry};

/// mimalloc instead of glibc's malloc: ingestion allocates per item (parsed JSON, ids,
/// column arrays), and glibc's allocator took ~10 % of the CPU of an ingestion run;
/// with mimalloc the process uses ~10 % less CPU per ingestion run (docs/benchmarks.md,
/// "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env is normal; the environment alone is enough.
    let _ = dotenvy::dotenv();
    telemetry::init_logging();
    let command = std::env::args().nth(1).unwrap_or_default();
    if command == "openapi" {
        return match samplit_control_plane::http::openapi().to_pretty_json() {
            Ok(doc) => {
                println!("{doc}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("samplit: cannot serialise the OpenAPI document: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("samplit: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match command.as_str() {
        "serve" => serve(config, shutdown_signal()).await,
        "migrate" => match connect(&config).await {
            Ok(pool) => migrate(&pool).await,
            Err(e) => Err(e),
        },
        _ => {
            eprintln!("usage: samplit <serve|migrate|openapi>");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "samplit {command} failed");
            eprintln!("samplit: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

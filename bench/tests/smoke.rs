//! The benchmark suite on a small stream: every runner (the engine and the CLI, each with and
//! without a horizon, the components on the emulated Golem, DuckDB with 1 and all threads, the CLI
//! and DuckDB over the same events as Parquet) must give every
//! key of every query (every group and function of an aggregate) the same answer, or the bench
//! exits with an error naming the key.

use std::process::Command;

#[test]
fn every_runner_agrees_on_every_query() {
    let out = std::env::temp_dir().join(format!("timeline-bench-smoke-{}", std::process::id()));
    // `--report` writes the results into a page between its markers: here, a page of its own.
    std::fs::create_dir_all(&out).unwrap();
    let page = out.join("benchmarks.md");
    std::fs::write(
        &page,
        "# Benchmarks\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\n## Method\n",
    )
    .unwrap();
    let result = Command::new(env!("CARGO_BIN_EXE_timeline-bench"))
        .args(["--keys", "100", "--events-per-key", "80", "--out"])
        .arg(&out)
        .arg("--report-to")
        .arg(&page)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("the bench runs");
    let report = std::fs::read_to_string(&page).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&out);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    for query in [
        "CIRR",
        "CIRR over live players",
        "Card swiped",
        "Risky time",
        "iPhone player",
        "CIRR per current CDN",
        "buffering per CDN",
    ] {
        assert!(stdout.contains(query), "{query} missing:\n{stdout}");
    }
    // Twelve runs per query: native twice, the CLI three times (all threads, one thread, a
    // horizon), the components twice (16 384 and 65 536 events a call), DuckDB twice, and over
    // Parquet the CLI and DuckDB twice; an aggregate adds the native engine with its aggregate
    // kept as events come (thirteen); the aggregate read at one instant has no retention runs
    // (a horizon forgets that instant): eleven.
    assert_eq!(
        stdout.matches("answers: equal across all 12 runs").count(),
        5,
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("answers: equal across all 13 runs").count(),
        1,
        "{stdout}"
    );
    assert!(
        stdout.contains("components, 65536 events a call"),
        "{stdout}"
    );
    assert!(stdout.contains("native engine, aggregate kept"), "{stdout}");
    assert!(stdout.contains("timeline CLI over Parquet"), "{stdout}");
    assert!(
        stdout.contains("timeline CLI over CSV, 1 thread"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("answers: equal across all 11 runs").count(),
        1,
        "{stdout}"
    );
    // The page holds this run: a table per query, every runner a row, the rest kept.
    assert!(!report.contains("\nold\n"), "{report}");
    assert!(
        report.ends_with("<!-- results:end -->\n\n## Method\n"),
        "{report}"
    );
    assert_eq!(
        report.matches("| runner | events/s |").count(),
        7,
        "{report}"
    );
    assert!(report.contains("| native engine |"), "{report}");
    assert!(
        report.contains("Written by `scripts/bench --report`"),
        "{report}"
    );
}

/// A batch size that is not a positive count within the engine's batch limit is refused before
/// anything runs (0 would hand over empty batches forever).
#[test]
fn a_bad_components_batch_size_is_refused() {
    for bad in ["0", "-1", "lots", "", "99999999999999999999999", "2000000"] {
        let result = Command::new(env!("CARGO_BIN_EXE_timeline-bench"))
            .args(["--child", "components", "cirr", "10", "10"])
            .env("TIMELINE_BENCH_BATCH", bad)
            .output()
            .expect("the bench runs");
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(
            stderr.contains("TIMELINE_BENCH_BATCH is") && stderr.contains("from 1 to"),
            "{bad:?}: {stderr}"
        );
    }
}

//! `--format html`: a self-contained page, opened in a real browser (headless Chromium), that
//! draws every node of the plan (and each aggregate function) with no error.

mod common;

use common::*;
use std::process::Command;

/// Debian's Chromium, which `.ci/run` installs when it is missing.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Opens `page` in headless Chromium and returns the DOM once its scripts ran.
fn open(page: &std::path::Path) -> Option<String> {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("TIMELINE_SKIP_BROWSER").is_some(),
            "the browser test needs Chromium: apt-get install chromium (or set TIMELINE_SKIP_BROWSER=1)"
        );
        return None;
    };
    let out = Command::new("timeout")
        .args([
            "120",
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

fn render(query_file: &str, extra: &[&str]) -> (std::path::PathBuf, String) {
    let page = temp_file(&format!("{}.html", query_file.replace('/', "-")), "");
    let mut args = vec![
        "eval",
        "--query-file",
        query_file,
        "--events",
        "examples/player.csv",
        "--key",
        "sessionId",
        "--format",
        "html",
        "--out",
        page.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    assert_eq!(stdout(&timeline(&args, None)), "");
    let html = std::fs::read_to_string(&page).unwrap();
    (page, html)
}

#[test]
fn the_page_draws_every_node_in_a_real_browser() {
    for (query, charts) in [
        // CIRR: 11 nodes.
        ("examples/cirr.tl", 11),
        // The per-key nodes of CIRR by CDN (8), then sum and avg per group.
        ("examples/cirr-by-cdn.tl", 10),
    ] {
        let (page, html) = render(query, &[]);
        // Self-contained: nothing loaded from elsewhere.
        for attr in ["src=\"http", "href=\"http", "src='http", "@import"] {
            assert!(!html.contains(attr), "{query}: the page loads `{attr}`");
        }
        let Some(dom) = open(&page) else { return };
        assert!(
            dom.contains(&format!("data-drawn=\"{charts}\"")),
            "{query}: {}",
            &dom[..dom.len().min(400)]
        );
        assert!(!dom.contains("data-error"), "{query}: a script error");
        assert_eq!(
            dom.matches("<canvas").count(),
            charts,
            "{query}: one canvas per chart"
        );
    }
    // Chosen keys; an unknown one is refused.
    let (page, _) = render("examples/cirr.tl", &["--show-key", "s2"]);
    if let Some(dom) = open(&page) {
        assert!(
            dom.contains("keys shown: \"s2\"") || dom.contains("keys shown: &quot;s2&quot;"),
            "{}",
            &dom[..dom.len().min(600)]
        );
    }
    let o = eval_cirr(&[
        "--format",
        "html",
        "--out",
        "/tmp/x.html",
        "--show-key",
        "nobody",
    ]);
    bad_input(&o, "not keys of the events");
}

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

/// Runs headless Chromium on `page` with `args` once its scripts ran; its standard output.
fn headless(browser: &str, page: &std::path::Path, args: &[String]) -> Vec<u8> {
    let out = Command::new("timeout")
        .args([
            "120",
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args([
            "--disable-background-networking",
            "--virtual-time-budget=5000",
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    out.stdout
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
    let out = headless(browser, page, &["--dump-dom".to_string()]);
    Some(String::from_utf8(out).unwrap())
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

/// A screenshot of `page` (PNG bytes), taken by headless Chromium.
fn screenshot(page: &std::path::Path, height: u32) -> Option<Vec<u8>> {
    let browser = chromium()?;
    let png = page.with_extension("png");
    headless(
        browser,
        page,
        &[
            format!("--window-size=1060,{height}"),
            format!("--screenshot={}", png.display()),
        ],
    );
    Some(std::fs::read(&png).unwrap())
}

/// The guide's picture of CIRR's nodes is this page's screenshot; `TIMELINE_DOCS_BLESS=1`
/// takes it anew.
#[test]
fn the_guide_picture_is_a_screenshot_of_the_page() {
    let (page, _) = render("examples/cirr.tl", &[]);
    let Some(png) = screenshot(&page, 2000) else {
        return;
    };
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    // A blank page compresses to a few kilobytes; eleven charts of bands and lines do not.
    assert!(
        png.len() > 40_000,
        "a blank screenshot? {} bytes",
        png.len()
    );
    let picture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src/cirr-nodes.png");
    if std::env::var_os("TIMELINE_DOCS_BLESS").is_some() {
        std::fs::write(&picture, &png).unwrap();
    }
    assert!(picture.exists());
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
        // Booleans and strings as state bands, durations and sums as lines.
        let bands = dom.matches("data-kind=\"bands\"").count();
        let lines = dom.matches("data-kind=\"lines\"").count();
        assert_eq!(bands + lines, charts, "{query}");
        let expected_lines = if query.contains("by-cdn") { 3 } else { 1 };
        assert_eq!(lines, expected_lines, "{query}: the durations and sums");
        assert!(
            dom.contains("data-labels=\"buffer|init|pause|play\""),
            "{query}: the player's states, each labelled"
        );
        assert!(!dom.contains("levels:"), "{query}: no level numbers");
    }
    // Chosen keys; an unknown one is refused.
    let (page, _) = render("examples/cirr.tl", &["--show-key", "s2"]);
    if let Some(dom) = open(&page) {
        assert!(
            dom.contains("keys shown: s2<"),
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

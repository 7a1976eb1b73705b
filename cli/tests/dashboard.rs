//! The dashboard of `timeline serve`, in a real browser (Debian's Chromium, headless, driven
//! over the DevTools protocol): a job's plan and keys, a key's bands updating live as events
//! are ingested, search among 10 000 keys, a node opened from the plan, a value read under the
//! cursor; and its API refusing hostile requests without changing anything.

mod common;

use common::{stdout, temp_file, timeline, Server};
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use std::process::Command;
use std::time::{Duration, Instant};

/// Debian's Chromium, which `.ci/run` installs when it is missing.
fn chromium() -> Option<std::path::PathBuf> {
    let found = ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("TIMELINE_SKIP_BROWSER").is_some(),
            "the browser test needs Chromium: apt-get install chromium (or set TIMELINE_SKIP_BROWSER=1)"
        );
    }
    let which = Command::new("which").arg(found?).output().ok()?;
    Some(String::from_utf8(which.stdout).ok()?.trim().into())
}

/// `timeline golem --url URL ARGS…`, which must succeed; its standard output.
fn golem(url: &str, args: &[&str]) -> String {
    let mut all = vec!["golem", "--url", url];
    all.extend_from_slice(args);
    let o = timeline(&all, None);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

/// A GET of the dashboard's API: the status and the JSON body.
fn get(url: &str) -> (u16, serde_json::Value) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (code.parse().unwrap_or(0), json)
}

/// `serve` on a fresh data directory `name`, with the driver worker set up; its URL.
fn started(name: &str) -> (Server, String) {
    let data = temp_file(name, "");
    let _ = std::fs::remove_file(&data);
    let server = Server::start(&data);
    let url = server.url.clone();
    golem(&url, &["setup"]);
    (server, url)
}

/// Evaluates `js` in the page; its value as JSON.
fn eval(tab: &Tab, js: &str) -> serde_json::Value {
    tab.evaluate(js, false)
        .unwrap_or_else(|e| panic!("{js}: {e}"))
        .value
        .unwrap_or(serde_json::Value::Null)
}

/// Waits up to `within` for `js` to be `true` in the page; how long it took.
fn wait_for(tab: &Tab, js: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if eval(tab, js) == serde_json::Value::Bool(true) {
            return start.elapsed();
        }
        if start.elapsed() > within {
            let error = eval(tab, "document.getElementById('error').textContent");
            let status = eval(tab, "document.getElementById('status').textContent");
            panic!("not within {within:?}: {js} (page error: {error}, status: {status})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

type MouseEvent = headless_chrome::protocol::cdp::Input::DispatchMouseEventTypeOption;

/// A left-button mouse event at `at` (`clicks`: 2 for the events of a double click).
fn mouse(
    kind: MouseEvent,
    at: (f64, f64),
    clicks: u32,
) -> headless_chrome::protocol::cdp::Input::DispatchMouseEvent {
    headless_chrome::protocol::cdp::Input::DispatchMouseEvent {
        Type: kind,
        x: at.0,
        y: at.1,
        modifiers: None,
        timestamp: None,
        button: Some(headless_chrome::protocol::cdp::Input::MouseButton::Left),
        buttons: Some(1),
        click_count: Some(clicks),
        force: None,
        tangential_pressure: None,
        tilt_x: None,
        tilt_y: None,
        twist: None,
        delta_x: None,
        delta_y: None,
        pointer_Type: None,
    }
}

/// Drags the mouse from `from` to `to` with the left button down, as a user selects a range.
fn drag(tab: &Tab, from: (f64, f64), to: (f64, f64)) {
    tab.call_method(mouse(MouseEvent::MousePressed, from, 1))
        .unwrap();
    for i in 1..=10 {
        let f = i as f64 / 10.0;
        let at = (from.0 + (to.0 - from.0) * f, from.1 + (to.1 - from.1) * f);
        tab.call_method(mouse(MouseEvent::MouseMoved, at, 1))
            .unwrap();
    }
    tab.call_method(mouse(MouseEvent::MouseReleased, to, 1))
        .unwrap();
}

/// The value now of the band of node `expression` (the last span's), as the page draws it.
fn band_now(expression: &str) -> String {
    format!(
        "Array.from(document.querySelectorAll('#charts .chart')).filter(c => c.querySelector('h2').textContent.endsWith('] ' + {expression:?})).map(c => c.dataset.last).join(',')"
    )
}

#[test]
fn the_dashboard_shows_a_job_live_in_a_real_browser() {
    let Some(browser_path) = chromium() else {
        return;
    };
    let (server, url) = started("dashboard-data");
    let query = temp_file(
        "dashboard-cirr.tl",
        &std::fs::read_to_string(common::repo().join("examples/cirr.tl")).unwrap(),
    );
    golem(
        &url,
        &[
            "run",
            "--job",
            "live",
            "--query-file",
            query.to_str().unwrap(),
            "--key",
            "sessionId",
            "--shards",
            "2",
        ],
    );
    let header = "time,sessionId,playerStateChange,cdnChange,userAction\n";
    let first = temp_file(
        "dashboard-1.csv",
        &format!("{header}1,k1,init,CDN1,\n3,k1,play,,\n4,k2,play,CDN1,\n"),
    );
    golem(
        &url,
        &[
            "ingest",
            "--job",
            "live",
            "--events",
            first.to_str().unwrap(),
        ],
    );

    let browser = Browser::new(
        LaunchOptions::default_builder()
            .path(Some(browser_path))
            .sandbox(false)
            .headless(true)
            .window_size(Some((1400, 1300)))
            .idle_browser_timeout(Duration::from_secs(300))
            .build()
            .unwrap(),
    )
    .expect("Chromium starts");
    let tab = browser.new_tab().unwrap();
    tab.set_default_timeout(Duration::from_secs(30));
    tab.navigate_to(&format!("{url}/#job=live&key=s:k1"))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    let state = band_now("latest_event_to_state(playerStateChange)");
    wait_for(
        &tab,
        &format!("{state} === 'play'"),
        Duration::from_secs(20),
    );
    // The job, its plan (11 nodes), its keys.
    assert_eq!(
        eval(&tab, "document.querySelectorAll('#plan .node').length"),
        11
    );
    assert_eq!(
        eval(
            &tab,
            "document.querySelector('.job.selected .name').textContent"
        ),
        "live"
    );
    assert_eq!(
        eval(&tab, "Array.from(document.querySelectorAll('#key-list li')).map(l => l.textContent).join(',')"),
        "k1,k2"
    );
    assert!(eval(&tab, "document.body.dataset.error === undefined") == true);

    // Live: a second ingest turns k1's band from play to buffer within 2 s, without a reload
    // (a mark left on the window survives), keeping the zoom the user chose.
    eval(&tab, "window.notReloaded = true");
    let full = eval(&tab, "document.getElementById('charts').dataset.range");
    let chart = tab.find_element("#charts .chart .u-over").unwrap();
    let b = chart.get_box_model().unwrap().content;
    let y = b.most_top() + b.height() / 2.0;
    drag(
        &tab,
        (b.most_left() + b.width() * 0.2, y),
        (b.most_left() + b.width() * 0.6, y),
    );
    let zoom = eval(&tab, "document.getElementById('charts').dataset.range");
    assert_ne!(zoom, full, "the drag zoomed");
    let second = temp_file("dashboard-2.csv", &format!("{header}9,k1,buffer,,\n"));
    golem(
        &url,
        &[
            "ingest",
            "--job",
            "live",
            "--events",
            second.to_str().unwrap(),
        ],
    );
    let took = wait_for(
        &tab,
        &format!("{state} === 'buffer'"),
        Duration::from_secs(2),
    );
    eprintln!("the band changed {took:?} after the ingest returned");
    assert_eq!(eval(&tab, "window.notReloaded === true"), true);
    assert_eq!(
        eval(&tab, "document.getElementById('charts').dataset.range"),
        zoom,
        "the redrawn charts keep the zoom"
    );
    // A double click zooms out, to what is there now (the ingest moved the end).
    let chart = tab.find_element("#charts .chart .u-over").unwrap();
    let b = chart.get_box_model().unwrap().content;
    let at = (b.most_left() + 10.0, b.most_top() + 10.0);
    for clicks in [1, 2] {
        tab.call_method(mouse(MouseEvent::MousePressed, at, clicks))
            .unwrap();
        tab.call_method(mouse(MouseEvent::MouseReleased, at, clicks))
            .unwrap();
    }
    wait_for(
        &tab,
        "document.getElementById('charts').dataset.range === '0,11'",
        Duration::from_secs(5),
    );

    // A value under the cursor: the mouse over the first chart, near its right end, reads
    // every node's value there.
    let chart = tab.find_element("#charts .chart .u-over").unwrap();
    let b = chart.get_box_model().unwrap();
    let (x, y) = (
        b.content.most_right() - 5.0,
        b.content.most_top() + b.content.height() / 2.0,
    );
    tab.move_mouse_to_point(headless_chrome::browser::tab::point::Point { x, y })
        .unwrap();
    wait_for(
        &tab,
        "document.getElementById('readout').textContent.startsWith('at ')",
        Duration::from_secs(5),
    );
    let readout = eval(&tab, "document.getElementById('readout').textContent");
    let readout = readout.as_str().unwrap();
    assert!(
        readout.contains("latest_event_to_state(playerStateChange): k1 = buffer"),
        "{readout}"
    );
    assert!(
        readout.contains("has_existed(playerStateChange == \"play\"): k1 = true"),
        "{readout}"
    );

    // The guide's picture, taken now (k1 buffering, the cursor on its charts).
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    assert!(
        png.len() > 40_000,
        "a blank screenshot? {} bytes",
        png.len()
    );
    let picture = common::repo().join("docs/src/dashboard.png");
    if std::env::var_os("TIMELINE_DOCS_BLESS").is_some() {
        std::fs::write(&picture, &png).unwrap();
    }
    assert!(picture.exists());

    // A node opened from the plan: its chart is marked and its workers listed.
    let node = eval(
        &tab,
        "document.querySelectorAll('#plan .node.leaf')[0].dataset.node",
    );
    let node = node.as_str().unwrap().to_string();
    tab.find_element(&format!("#plan .node[data-node='{node}'] rect"))
        .unwrap()
        .click()
        .unwrap();
    wait_for(
        &tab,
        &format!("document.querySelector('#charts .chart.selected')?.dataset.node === '{node}'"),
        Duration::from_secs(5),
    );
    let detail = eval(&tab, "document.getElementById('node-detail').textContent");
    assert!(
        detail.as_str().unwrap().contains("workers: tl-"),
        "{detail}"
    );

    // Search among 10 000 keys: the page holds one page of them, and finds a key by part of it.
    let mut many = String::from(header);
    for i in 0..10_000 {
        many.push_str(&format!("{},user-{i:05},play,CDN2,\n", 20 + i % 7));
    }
    let many_file = temp_file("dashboard-many.csv", &many);
    golem(
        &url,
        &[
            "ingest",
            "--job",
            "live",
            "--events",
            many_file.to_str().unwrap(),
        ],
    );
    wait_for(
        &tab,
        "document.getElementById('key-list').dataset.matching === '10002'",
        Duration::from_secs(20),
    );
    assert_eq!(
        eval(&tab, "document.querySelectorAll('#key-list li').length"),
        50
    );
    tab.find_element("#search").unwrap().click().unwrap();
    tab.type_str("USER-0777").unwrap();
    wait_for(
        &tab,
        "document.getElementById('key-list').dataset.matching === '10'",
        Duration::from_secs(10),
    );
    let found = eval(
        &tab,
        "Array.from(document.querySelectorAll('#key-list li')).map(l => l.textContent).join(',')",
    );
    let want: Vec<String> = (7770..7780).map(|i| format!("user-{i:05}")).collect();
    assert_eq!(found, want.join(","));
    // Opening one of them draws its bands.
    tab.find_element("#key-list li:nth-child(3)")
        .unwrap()
        .click()
        .unwrap();
    wait_for(
        &tab,
        &format!("document.getElementById('charts').dataset.key === 's:user-07772' && {state} === 'play'"),
        Duration::from_secs(10),
    );
    assert_eq!(
        eval(&tab, "document.body.dataset.error === undefined"),
        true
    );
    drop(tab);
    drop(browser);
    server.stop();
}

#[test]
fn the_dashboard_api_refuses_hostile_requests_and_changes_nothing() {
    let (server, url) = started("dashboard-hostile-data");
    let data = std::env::temp_dir()
        .join(format!("timeline-cli-test-{}", std::process::id()))
        .join("dashboard-hostile-data");
    golem(
        &url,
        &[
            "run",
            "--job",
            "h",
            "--query",
            "latest_event_to_state(state)",
            "--key",
            "id",
        ],
    );
    let events = temp_file("dashboard-hostile.csv", "time,id,state\n1,a,on\n2,b,off\n");
    golem(
        &url,
        &["ingest", "--job", "h", "--events", events.to_str().unwrap()],
    );
    let (status, before) = get(&format!("{url}/dashboard/jobs"));
    assert_eq!(status, 200);
    assert_eq!(before["jobs"][0]["events"], 2);
    assert_eq!(before["jobs"][0]["keys"], 2);
    assert_eq!(before["jobs"][0]["lastTime"], 2);
    let long = "x".repeat(2000);
    for (path, status, needle) in [
        (
            "/dashboard/jobs/nobody/keys",
            404,
            "no job named \"nobody\"; jobs: [h]",
        ),
        (
            "/dashboard/jobs/nobody/timelines?key=s:a",
            404,
            "no job named",
        ),
        (
            "/dashboard/jobs/h/keys?limit=99999999999999999999",
            400,
            "is not a number of keys",
        ),
        (
            "/dashboard/jobs/h/keys?limit=1001",
            400,
            "more than the limit of 1000",
        ),
        (
            "/dashboard/jobs/h/keys?limit=-1",
            400,
            "is not a number of keys",
        ),
        (
            "/dashboard/jobs/h/keys?after=garbage",
            400,
            "malformed key \"garbage\"",
        ),
        ("/dashboard/jobs/h/keys?after=i:1e999", 400, "malformed key"),
        ("/dashboard/jobs/h/keys?after=f:NaN", 400, "malformed key"),
        (
            &format!("/dashboard/jobs/h/keys?search={long}"),
            400,
            "key search of more than 1024 bytes",
        ),
        ("/dashboard/jobs/h/timelines?key=zz", 400, "malformed key"),
        (
            "/dashboard/jobs/h/timelines?key=s:nobody",
            404,
            "no events have arrived for key \"nobody\"",
        ),
    ] {
        let (got, body) = get(&format!("{url}{path}"));
        assert_eq!(got, status, "{path}: {body}");
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: {body}"));
        assert!(error.contains(needle), "{path}: {error}");
    }
    // Paging past the end is an empty page, not an error.
    let (status, page) = get(&format!(
        "{url}/dashboard/jobs/h/keys?after=s:zzzz&limit=1000"
    ));
    assert_eq!(status, 200);
    assert_eq!(page["keys"].as_array().unwrap().len(), 0);
    assert_eq!(page["matching"], 2);
    assert_eq!(page["next"], serde_json::Value::Null);
    // A search is a substring, not a pattern.
    let (_, page) = get(&format!("{url}/dashboard/jobs/h/keys?search=.%2A"));
    assert_eq!(page["matching"], 0);
    let (_, after) = get(&format!("{url}/dashboard/jobs"));
    assert_eq!(
        before["jobs"], after["jobs"],
        "the refusals changed nothing"
    );
    assert_eq!(before["version"], after["version"]);
    // Watching reads the node workers through readers, and the job list once per change: a
    // round of reads adds to no log but the readers' (after the first, whose reader attaches).
    let watch = || {
        for _ in 0..10 {
            for path in ["jobs", "jobs/h/keys", "jobs/h/timelines?key=s:a"] {
                assert_eq!(get(&format!("{url}/dashboard/{path}")).0, 200, "{path}");
            }
        }
    };
    watch();
    let logged = node_log_entries(&data);
    watch();
    watch();
    assert_eq!(
        node_log_entries(&data),
        logged,
        "reads grew a node worker's log"
    );
    server.stop();
}

/// The entries of every worker log under `data` but the readers'.
fn node_log_entries(data: &std::path::Path) -> usize {
    let mut entries = 0;
    let mut dirs = vec![data.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".jsonl")
                && !name.contains("-reader-")
                && name != "idempotency-keys.jsonl"
            {
                entries += std::fs::read_to_string(&path).unwrap().lines().count();
            }
        }
    }
    entries
}

#[test]
fn an_aggregate_job_shows_a_line_per_group_with_its_members() {
    let (server, url) = started("dashboard-aggregate-data");
    let query = common::repo().join("examples/cirr-by-cdn.tl");
    let events = common::repo().join("examples/player.csv");
    golem(
        &url,
        &[
            "run",
            "--job",
            "by-cdn",
            "--query-file",
            query.to_str().unwrap(),
            "--key",
            "sessionId",
            "--shards",
            "2",
        ],
    );
    golem(
        &url,
        &[
            "ingest",
            "--job",
            "by-cdn",
            "--events",
            events.to_str().unwrap(),
        ],
    );
    let (status, jobs) = get(&format!("{url}/dashboard/jobs"));
    assert_eq!(status, 200);
    assert_eq!(jobs["jobs"][0]["aggregate"], true);
    // The keys are the sessions, listed from the per-key node the aggregate reads.
    let (_, keys) = get(&format!("{url}/dashboard/jobs/by-cdn/keys"));
    assert_eq!(keys["matching"], 2, "{keys}");
    // Without a key: the functions per group; both sessions end on CDN2.
    let (status, page) = get(&format!("{url}/dashboard/jobs/by-cdn/timelines"));
    assert_eq!(status, 200, "{page}");
    let titles: Vec<&str> = page["charts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "[aggregate, the result] avg per group",
            "[aggregate, the result] sum per group"
        ]
    );
    let labels: Vec<&str> = page["charts"][1]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert!(labels.contains(&"CDN2 (2 members)"), "{labels:?}");
    // The sum per group at the end is what `timeline eval` answers.
    let sum = page["charts"][1]["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == "CDN2 (2 members)")
        .unwrap()["values"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|v| !v.is_null())
        .cloned()
        .unwrap();
    let end = page["end"].as_u64().unwrap().to_string();
    let eval = common::eval_at(&query, &events, "sessionId", &end);
    let row = eval
        .lines()
        .find(|l| l.contains("CDN2"))
        .unwrap_or_else(|| panic!("{eval}"));
    let row: serde_json::Value = serde_json::from_str(row).unwrap();
    assert_eq!(row["sum"].as_f64(), sum.as_f64(), "{row} vs {sum}");
    // With a key: its nine per-key nodes (the group column's among them) too.
    let (_, page) = get(&format!("{url}/dashboard/jobs/by-cdn/timelines?key=s:s1"));
    assert_eq!(page["charts"].as_array().unwrap().len(), 11, "{page}");
    server.stop();
}

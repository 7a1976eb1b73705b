//! `--report`: one run's results written into the guide's benchmark page, between the markers
//! `<!-- results:start -->` and `<!-- results:end -->`, so that the page always holds the
//! results of one whole run, with the machine, the date and the versions it ran with.

use crate::workload::Workload;
use crate::Measurement;
use std::fmt::Write as _;
use std::path::Path;

/// The page `--report` writes (relative to the repository's root, where `scripts/bench` runs).
pub const PAGE: &str = "docs/src/benchmarks.md";
const START: &str = "<!-- results:start -->";
const END: &str = "<!-- results:end -->";

/// What the run ran on.
pub struct Run {
    date: String,
    machine: String,
    rustc: String,
    duckdb: String,
    events: usize,
}

impl Run {
    /// This machine, today, and the versions in use.
    pub fn now(events: usize, duckdb: &str) -> Run {
        Run {
            date: today(),
            machine: machine(),
            rustc: command_line("rustc", &["--version"]).unwrap_or_else(|| "rustc".into()),
            duckdb: duckdb.to_string(),
            events,
        }
    }
}

/// One workload's table.
pub struct Table {
    title: String,
    query: String,
    events_per_key: usize,
    keys: usize,
    rows: Vec<Row>,
}

struct Row {
    runner: String,
    events_per_second: f64,
    seconds: f64,
    peak_rss_mib: Option<f64>,
    bytes_per_key: Option<f64>,
    vs_duckdb_one: Option<f64>,
    vs_duckdb_all: Option<f64>,
}

impl Table {
    pub fn new(w: &Workload, results: &[Measurement], keys: usize, events_per_key: usize) -> Table {
        let rows = results
            .iter()
            .map(|m| {
                let (duck_one, duck_all) = crate::duckdb_times(results, m);
                Row {
                    runner: m.runner.clone(),
                    events_per_second: m.events as f64 / m.seconds,
                    seconds: m.seconds,
                    peak_rss_mib: m.peak_rss_kb.map(|k| k as f64 / 1024.0),
                    bytes_per_key: m.bytes_per_key,
                    vs_duckdb_one: duck_one.map(|d| d / m.seconds),
                    vs_duckdb_all: duck_all.map(|d| d / m.seconds),
                }
            })
            .collect();
        let query = match &w.aggregate {
            Some(q) => q.to_string(),
            None => w.query.to_string(),
        };
        Table {
            title: w.title.to_string(),
            query,
            events_per_key,
            keys,
            rows,
        }
    }
}

/// The results section: the run, the targets met and missed, then a table per workload.
pub fn render(run: &Run, targets: &str, tables: &[Table]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Written by `scripts/bench --report` from one run of {} events a query, on {}, \
         {}, {}, DuckDB {} (PyPI). Every runner's answers were checked equal before the times \
         below were taken. × DuckDB: DuckDB's time over the runner's, on the same file, with 1 \
         and with all threads (above 1: faster than DuckDB).",
        millions(run.events as f64),
        run.date,
        run.machine,
        run.rustc,
        run.duckdb
    );
    let _ = writeln!(
        out,
        "\n### Targets\n\nEach target against its worst workload in this run, and by how much \
         that one falls short where it does (the factor still needed).\n\n{targets}"
    );
    for t in tables {
        let _ = writeln!(out, "\n### {}\n", t.title);
        let _ = writeln!(
            out,
            "{} keys × {} events. `{}`\n",
            t.keys, t.events_per_key, t.query
        );
        out.push_str(
            "| runner | events/s | wall s | peak RSS | bytes/key | × DuckDB 1 thread | × DuckDB all threads |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for r in &t.rows {
            let ratio = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}×"));
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | {} | {} | {} | {} |",
                r.runner,
                millions(r.events_per_second),
                r.seconds,
                r.peak_rss_mib.map_or("-".into(), |m| format!("{m:.0} MiB")),
                r.bytes_per_key.map_or("-".into(), |b| format!("{b:.0} B")),
                ratio(r.vs_duckdb_one),
                ratio(r.vs_duckdb_all),
            );
        }
    }
    out
}

/// Replaces the results section of `page` with this run's.
pub fn write(page: &Path, run: &Run, targets: &str, tables: &[Table]) -> Result<(), String> {
    let text = std::fs::read_to_string(page)
        .map_err(|e| format!("--report: cannot read {}: {e}", page.display()))?;
    let updated = replace_section(&text, &render(run, targets, tables)).ok_or_else(|| {
        format!(
            "--report: {} has no {START} … {END} section",
            page.display()
        )
    })?;
    std::fs::write(page, updated).map_err(|e| format!("--report: {}: {e}", page.display()))
}

/// `text` with what lies between the markers replaced by `section`.
fn replace_section(text: &str, section: &str) -> Option<String> {
    let start = text.find(START)? + START.len();
    let end = start + text[start..].find(END)?;
    Some(format!("{}\n{}{}", &text[..start], section, &text[end..]))
}

fn millions(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else {
        format!("{:.0}k", x / 1e3)
    }
}

/// The output of a command, first line, or `None`.
fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.lines().next()?.trim().to_string()).filter(|s| !s.is_empty())
}

/// The processor's model, the cores and the memory, from `/proc` (Linux).
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = crate::available_threads();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let kb: f64 = t.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!(", {:.0} GiB", kb / 1048576.0))
        })
        .unwrap_or_default();
    format!("{cpu} ({cores} cores{memory})")
}

/// Today's date (UTC), as YYYY-MM-DD.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date of a day counted from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_429), (2025, 12, 7));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn the_section_between_the_markers_is_replaced() {
        let page = format!("# B\n\n{START}\nold\n{END}\n\n## Method\n");
        let new = replace_section(&page, "new\n").unwrap();
        assert_eq!(new, format!("# B\n\n{START}\nnew\n{END}\n\n## Method\n"));
        assert_eq!(replace_section("no markers", "x"), None);
    }

    #[test]
    fn a_table_per_workload() {
        let run = Run {
            date: "2026-12-07".into(),
            machine: "cpu (2 cores)".into(),
            rustc: "rustc 1.95.0".into(),
            duckdb: "2.0.1".into(),
            events: 10_000_000,
        };
        let table = Table {
            title: "CIRR".into(),
            query: "duration_where(a)".into(),
            events_per_key: 1000,
            keys: 10_000,
            rows: vec![Row {
                runner: "native engine".into(),
                events_per_second: 11.5e6,
                seconds: 0.87,
                peak_rss_mib: Some(100.0),
                bytes_per_key: Some(624.0),
                vs_duckdb_one: Some(4.07),
                vs_duckdb_all: None,
            }],
        };
        let text = render(&run, "| target |\n", &[table]);
        assert!(
            text.contains("10.00M events a query, on 2026-12-07"),
            "{text}"
        );
        assert!(text.contains("### Targets\n"), "{text}");
        assert!(
            text.contains("| native engine | 11.50M | 0.870 | 100 MiB | 624 B | 4.07× | - |"),
            "{text}"
        );
    }
}

//! The performance targets, checked against one run's measurements: each target's worst
//! measurement over the workloads it covers, and whether it is met or by how much it falls
//! short. Printed after every run and written into the benchmark page by `--report`.

use crate::Measurement;
use std::fmt::Write as _;

/// What a target asks of its worst measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Goal {
    /// A ratio to DuckDB of at least this.
    TimesDuckDb(f64),
    /// At least this many events a second.
    EventsPerSecond(f64),
    /// At most this many bytes a key.
    BytesPerKey(f64),
}

impl Goal {
    fn met(self, x: f64) -> bool {
        match self {
            Goal::TimesDuckDb(g) | Goal::EventsPerSecond(g) => x >= g,
            Goal::BytesPerKey(g) => x <= g,
        }
    }

    /// Of two measurements, the one further from the goal.
    fn worse(self, a: f64, b: f64) -> bool {
        match self {
            Goal::TimesDuckDb(_) | Goal::EventsPerSecond(_) => a < b,
            Goal::BytesPerKey(_) => a > b,
        }
    }

    fn show(self, x: f64) -> String {
        match self {
            Goal::TimesDuckDb(_) => format!("{x:.2}×"),
            Goal::EventsPerSecond(_) => format!("{:.2}M events/s", x / 1e6),
            Goal::BytesPerKey(_) => format!("{x:.0} B"),
        }
    }

    fn target(self) -> String {
        match self {
            Goal::TimesDuckDb(g) => format!("≥ {g}×"),
            Goal::EventsPerSecond(g) => format!("≥ {}M events/s", g / 1e6),
            Goal::BytesPerKey(g) => format!("≤ {g} B"),
        }
    }

    /// How far `x` is from the goal, as the factor still needed.
    fn short_by(self, x: f64) -> f64 {
        match self {
            Goal::TimesDuckDb(g) | Goal::EventsPerSecond(g) => g / x,
            Goal::BytesPerKey(g) => x / g,
        }
    }
}

/// Which of a workload's measurements a target reads, and what of it.
struct Target {
    what: &'static str,
    goal: Goal,
    /// The workloads it covers (`None`: all of them).
    workloads: Option<&'static [&'static str]>,
    /// The runner it reads, as the tables name it.
    runner: &'static str,
}

/// The four per-key problem statements.
const PER_KEY: &[&str] = &["cirr", "card-swipes", "machine-risk", "ad-stall"];

const TARGETS: &[Target] = &[
    Target {
        what: "CLI over CSV, 1 thread, × DuckDB on 1 thread",
        goal: Goal::TimesDuckDb(3.0),
        workloads: None,
        runner: "timeline CLI over CSV, 1 thread",
    },
    Target {
        what: "CLI over CSV, all threads, × DuckDB on all threads",
        goal: Goal::TimesDuckDb(3.0),
        workloads: None,
        runner: "timeline CLI over CSV",
    },
    Target {
        what: "CLI over Parquet, all threads, × DuckDB over Parquet on all threads",
        goal: Goal::TimesDuckDb(3.0),
        workloads: None,
        runner: "timeline CLI over Parquet",
    },
    Target {
        what: "native engine on CIRR, one core",
        goal: Goal::EventsPerSecond(20e6),
        workloads: Some(&["cirr"]),
        runner: "native engine",
    },
    Target {
        what: "native engine, × DuckDB on 1 thread, the four per-key queries",
        goal: Goal::TimesDuckDb(8.0),
        workloads: Some(PER_KEY),
        runner: "native engine",
    },
    Target {
        what: "native engine, aggregate kept as events come",
        goal: Goal::EventsPerSecond(5e6),
        workloads: None,
        runner: "native engine, aggregate kept",
    },
    Target {
        what: "components through the driver, 16 384 events a call",
        goal: Goal::EventsPerSecond(1e6),
        workloads: None,
        runner: "components (emulated Golem)",
    },
    Target {
        what: "components through the driver, 65 536 events a call",
        goal: Goal::EventsPerSecond(2e6),
        workloads: None,
        runner: "components, 65536 events a call",
    },
    Target {
        what: "bytes a key kept, 60 s horizon",
        goal: Goal::BytesPerKey(1024.0),
        workloads: None,
        runner: "native engine, retain 60",
    },
];

/// One target against one run.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    what: &'static str,
    goal: Goal,
    /// The worst measurement and its workload, and how many of the workloads measured met it.
    worst: Option<(f64, &'static str)>,
    met: usize,
    measured: usize,
}

/// Every target against `results`, each workload's measurements under its name.
pub fn check(results: &[(&'static str, &[Measurement])]) -> Vec<Outcome> {
    TARGETS
        .iter()
        .map(|t| {
            let mut outcome = Outcome {
                what: t.what,
                goal: t.goal,
                worst: None,
                met: 0,
                measured: 0,
            };
            for &(workload, ms) in results {
                if t.workloads.is_some_and(|ws| !ws.contains(&workload)) {
                    continue;
                }
                for m in ms.iter().filter(|m| m.runner == t.runner) {
                    let Some(x) = measure(t.goal, ms, m) else {
                        continue;
                    };
                    outcome.measured += 1;
                    outcome.met += usize::from(t.goal.met(x));
                    if outcome.worst.is_none_or(|(w, _)| t.goal.worse(x, w)) {
                        outcome.worst = Some((x, workload));
                    }
                }
            }
            outcome
        })
        .collect()
}

/// What `goal` reads of `m`: its ratio to the DuckDB run with as many threads (one for a
/// runner on one thread or the native engine, which runs on one core; all otherwise), its
/// events a second, or its bytes a key.
fn measure(goal: Goal, results: &[Measurement], m: &Measurement) -> Option<f64> {
    match goal {
        Goal::TimesDuckDb(_) => {
            let (one, all) = crate::duckdb_times(results, m);
            let single = m.runner.ends_with("1 thread") || m.runner.starts_with("native");
            let duck = if single { one } else { all };
            duck.map(|d| d / m.seconds)
        }
        Goal::EventsPerSecond(_) => Some(m.events as f64 / m.seconds),
        Goal::BytesPerKey(_) => m.bytes_per_key,
    }
}

/// The targets as a Markdown table.
pub fn render(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "| target | goal | worst measured | met |\n\
         |---|---|---|---|\n",
    );
    for o in outcomes {
        let (worst, met) = match o.worst {
            None => ("not measured in this run".to_string(), "-".to_string()),
            Some((x, workload)) => {
                let met = if o.met == o.measured {
                    format!("yes ({} of {})", o.met, o.measured)
                } else {
                    format!(
                        "no ({} of {}); the worst is {:.2}× short",
                        o.met,
                        o.measured,
                        o.goal.short_by(x)
                    )
                };
                (format!("{} ({workload})", o.goal.show(x)), met)
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {worst} | {met} |",
            o.what,
            o.goal.target()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(runner: &str, seconds: f64, bytes_per_key: Option<f64>) -> Measurement {
        Measurement {
            runner: runner.into(),
            seconds,
            events: 10_000_000,
            peak_rss_kb: None,
            bytes_per_key,
            note: None,
            answers: Default::default(),
        }
    }

    fn row<'a>(outcomes: &'a [Outcome], what: &str) -> &'a Outcome {
        outcomes.iter().find(|o| o.what == what).unwrap()
    }

    #[test]
    fn each_target_reads_its_worst_workload_against_duckdb_with_as_many_threads() {
        let cirr = vec![
            m("native engine", 0.5, Some(18_000.0)),
            m("native engine, retain 60", 0.5, Some(600.0)),
            m("timeline CLI over CSV", 1.0, None),
            m("timeline CLI over CSV, 1 thread", 1.0, None),
            m("DuckDB, 1 thread", 4.0, None),
            m("DuckDB, 2 threads", 2.5, None),
        ];
        let live = vec![
            m("native engine, retain 60", 1.0, Some(1500.0)),
            m("timeline CLI over CSV", 1.0, None),
            m("timeline CLI over CSV, 1 thread", 2.0, None),
            m("DuckDB, 1 thread", 3.0, None),
            m("DuckDB, 2 threads", 2.0, None),
        ];
        let outcomes = check(&[("cirr", &cirr), ("cirr-live", &live)]);
        let one = row(&outcomes, "CLI over CSV, 1 thread, × DuckDB on 1 thread");
        assert_eq!(
            (one.worst, one.met, one.measured),
            (Some((1.5, "cirr-live")), 1, 2)
        );
        let all = row(
            &outcomes,
            "CLI over CSV, all threads, × DuckDB on all threads",
        );
        assert_eq!((all.worst, all.met), (Some((2.0, "cirr-live")), 0));
        let engine = row(&outcomes, "native engine on CIRR, one core");
        assert_eq!(engine.worst, Some((20e6, "cirr")));
        assert_eq!(engine.met, 1);
        // The native engine is measured against DuckDB on one thread, and cirr-live is not one
        // of the four per-key queries.
        let times = row(
            &outcomes,
            "native engine, × DuckDB on 1 thread, the four per-key queries",
        );
        assert_eq!((times.worst, times.met), (Some((8.0, "cirr")), 1));
        let bytes = row(&outcomes, "bytes a key kept, 60 s horizon");
        assert_eq!(
            (bytes.worst, bytes.met, bytes.measured),
            (Some((1500.0, "cirr-live")), 1, 2)
        );
        let parquet = row(
            &outcomes,
            "CLI over Parquet, all threads, × DuckDB over Parquet on all threads",
        );
        assert_eq!((parquet.worst, parquet.measured), (None, 0));

        let table = render(&outcomes);
        assert!(
            table.contains("| CLI over CSV, 1 thread, × DuckDB on 1 thread | ≥ 3× | 1.50× (cirr-live) | no (1 of 2); the worst is 2.00× short |"),
            "{table}"
        );
        assert!(
            table.contains("| native engine on CIRR, one core | ≥ 20M events/s | 20.00M events/s (cirr) | yes (1 of 1) |"),
            "{table}"
        );
        assert!(
            table.contains("| bytes a key kept, 60 s horizon | ≤ 1024 B | 1500 B (cirr-live) | no (1 of 2); the worst is 1.46× short |"),
            "{table}"
        );
        assert!(
            table.contains("| not measured in this run | - |"),
            "{table}"
        );
    }
}

//! Command-line arguments: the `eval` and `explain` contracts, parsed by hand so that every
//! mistake gets a message saying what to write instead.

use std::fmt;
use timeline_cli::time::{parse_time, TimeSpec, TimeUnit};

pub const USAGE: &str = "\
timeline: answer timeline queries over event files

USAGE:
    timeline eval (--query TEXT | --query-file PATH) --events (PATH | DIR | GLOB | -)... [OPTIONS]
    timeline explain (QUERY | --query-file PATH)
    timeline serve [--addr 127.0.0.1:9881] [--data DIR] [-v]
    timeline golem [--url URL] [--driver W] setup | jobs | plan --job J
    timeline golem [--url URL] [--driver W] run --job J (--query TEXT | --query-file PATH) [--key COL]
                   [--shards N] [--retain H]
    timeline golem [--url URL] [--driver W] ingest --job J --events FILE [--batch N]
    timeline golem [--url URL] [--driver W] result --job J [--key K] (--at T)... [--range T1..T2]
    timeline run --runtime wasm|native (--query TEXT | --query-file PATH) --events (PATH | -)
                 [--key COL] [--shards N]

EVAL OPTIONS:
    --key COL          evaluate per partition key (the value of column COL)
    --at T             the value at time T (repeatable); `--at end`: each key's value at its
                       own last event (its final answer, e.g. CIRR per session). Asked only
                       for --at T times, events after the last T are checked, not ingested
    --range T1..T2     the segments covering [T1, T2)
    --timeline         every change point (the default when no --at or --range is given)
    --format json|table|csv|parquet  output format (default: json, one JSON object per line;
                       csv: a header line, then the same columns; parquet: the same columns,
                       typed, in the file given with --out PATH; html: a page drawing every node
                       of the plan for the keys given with --show-key K, or the first three)
    --time-column COL  the CSV column holding event times (default: time)
    --time-unit U      s, ms, us or ns (default s): integer times are in U; RFC 3339 timestamps
                       (in files, --at and --range: 2026-11-29T12:00:00Z) convert to U, and
                       the query's duration literals (5s, 5m, 2h, 1d) too
    --retain H         keep H time units of history per key; older events are refused
    --threads N        with --key, split the keys over N threads (default: the number of cores)

AGGREGATES:
    A query ending in `| aggregate(group_by(COL), count, sum, avg, min, max)` answers per group
    of keys (SPEC §6). `--at T` prints one line per group with a member at T, unknown group
    (null) first: {\"group\": G, \"at\": T, \"count\": 3, \"sum\": 12, ...} with the functions asked
    for; `--at end` is the latest event time of any key. `--timeline` and `--range` print
    {\"group\": G, \"agg\": \"sum\", \"from\": T1, \"to\": T2, \"value\": V, \"slope\": S} per segment.
    With --threads, each thread aggregates its keys and the partial aggregates are merged.
    Asked only for --at times (no `end`, --range, --timeline or --retain), events after the
    last of them are not ingested, and Parquet row groups whose times all lie after it not read.

SERVE:
    Golem 1.1's worker API over HTTP (invoke-and-await, invoke, components, workers) on the four
    components, emulated in-process: the README's curl calls and `timeline golem` work against
    it as against a Golem server. Worker state lives in --data (default ./timeline-data), so a
    restart keeps every job. One log line per request on stderr (-v: the full URI). Ctrl-C stops.

GOLEM:
    A client of the components on any Golem 1.1 endpoint (--url, default $TIMELINE_GOLEM_URL or
    http://127.0.0.1:9881, where `timeline serve` listens): `setup` creates the driver worker
    (--driver, default timeline-driver) with the other components' ids (found by name), or
    re-creates it if it failed; `run` submits a job; `ingest` sends an event file
    (JSON Lines or CSV) in packed batches of --batch events (default 16384), retrying a timeout;
    `result` reads the job's result worker directly and prints as `eval` does (the job's plan
    from a local cache, $TIMELINE_GOLEM_CACHE or ~/.cache/timeline/golem, so that polling does
    not call the driver).

RUN:
    Runs the query as a job of node workers and prints the plan (which worker computes which
    node) and every worker's result. `wasm` runs the four Golem components on the in-process
    Golem emulation (build them first: see README); `native` runs the same nodes in-process.

EVENTS:
    --events may be repeated, a directory (every file below it) or a pattern ('data/*.csv'):
    the files are read in order, each key's events in file order. gzip and zstd files are
    decompressed as they are read. Each file is JSON Lines, either
    {\"time\": 5, \"event\": {\"col\": \"value\"}} or
    {\"time\": 5, \"event\": [[\"col\", {\"string-value\": \"x\"}]]}, or CSV with a `time` column
    (an empty cell means the column is absent; cells are read as int, float, bool or string).
    The format is recognised from the first line. `-` reads standard input.
";

#[derive(Debug, PartialEq)]
pub enum Command {
    Eval(EvalArgs),
    Explain(QuerySource),
    Run(RunArgs),
    Serve(ServeArgs),
    Golem(GolemArgs),
    Help,
    Version,
}

#[derive(Debug, PartialEq)]
pub enum QuerySource {
    Text(String),
    File(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    Json,
    Table,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Runtime {
    Wasm,
    Native,
}

#[derive(Debug, PartialEq)]
pub struct RunArgs {
    pub runtime: Runtime,
    pub query: QuerySource,
    pub events: String,
    pub key: Option<String>,
    pub shards: u32,
}

/// `timeline serve`: where to listen, where worker state lives, how much to log.
#[derive(Debug, PartialEq)]
pub struct ServeArgs {
    pub addr: String,
    pub data: std::path::PathBuf,
    pub verbose: bool,
}

/// `timeline golem …`: a client of a Golem 1.1 endpoint.
#[derive(Debug, PartialEq)]
pub struct GolemArgs {
    pub url: String,
    /// The driver worker to talk to (`--driver`, default `timeline-driver`).
    pub driver: String,
    pub command: GolemCommand,
}

#[derive(Debug, PartialEq)]
pub enum GolemCommand {
    Setup,
    Run {
        job: String,
        query: String,
        key: Option<String>,
        shards: u32,
        retain: Option<u64>,
    },
    Ingest {
        job: String,
        events: String,
        batch: usize,
    },
    Result {
        job: String,
        key: Option<String>,
        at: Vec<u64>,
        range: Option<(u64, u64)>,
        format: Format,
    },
    Plan {
        job: String,
    },
    Jobs,
}

/// The endpoint when `--url` is not given: `$TIMELINE_GOLEM_URL`, else `timeline serve`'s default.
pub const DEFAULT_GOLEM_URL: &str = "http://127.0.0.1:9881";
/// The driver worker `timeline golem` talks to unless `--driver` names another.
pub const DEFAULT_DRIVER_WORKER: &str = "timeline-driver";

/// What [`is_worker_name`] takes, in words.
pub const WORKER_NAME_RULE: &str =
    "a worker name is 1 to 256 letters, digits, '-', '_' and '.', not starting with '.'";

/// Whether `name` is a worker name `serve` takes (and one that goes into a URL path as it is):
/// 1 to 256 letters, digits, `-`, `_` and `.`, not starting with `.`.
pub fn is_worker_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Events per packed batch `timeline golem ingest` sends (see README: the HTTP path).
pub const DEFAULT_BATCH: usize = 16_384;

/// A time asked for with `--at`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum At {
    Time(u64),
    /// Each key's own last event time.
    End,
}

#[derive(Debug, PartialEq)]
pub struct EvalArgs {
    pub query: QuerySource,
    /// The event files, in order (paths, directories or patterns; see `input::expand_paths`).
    pub events: Vec<String>,
    pub key: Option<String>,
    pub at: Vec<At>,
    pub range: Option<(u64, u64)>,
    pub timeline: bool,
    pub format: Format,
    pub retain: Option<u64>,
    /// Threads to split the keys over (`None`: one per core).
    pub threads: Option<usize>,
    /// How event times are read (`--time-column`, `--time-unit`).
    pub time: TimeSpec,
    /// `--format csv`: the rows as CSV.
    pub csv: bool,
    /// `--format parquet --out PATH`: the rows as a Parquet file at PATH.
    pub out: Option<String>,
    /// `--format html --out PATH`: a page drawing the timelines.
    pub html: bool,
    /// `--show-key K` (repeatable): the keys the page draws (default: the first three).
    pub show_keys: Vec<String>,
}

/// A usage mistake.
#[derive(Debug, PartialEq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n\nRun `timeline --help` for usage.", self.0)
    }
}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

fn time(flag: &str, text: &str) -> Result<u64, UsageError> {
    text.parse().map_err(|_| {
        usage(format!(
            "{flag} expects a time (a non-negative integer), found `{text}`"
        ))
    })
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let Some(cmd) = args.first() else {
        return Err(usage(
            "no command given: use `timeline eval` or `timeline explain`",
        ));
    };
    let rest = &args[1..];
    // `timeline COMMAND --help` (or `-h`) anywhere among a command's arguments: the usage.
    let asks_help = rest.iter().any(|a| a == "-h" || a == "--help");
    match cmd.as_str() {
        "-h" | "--help" | "help" => Ok(Command::Help),
        "eval" | "run" | "serve" | "golem" | "explain" if asks_help => Ok(Command::Help),
        "-V" | "--version" => Ok(Command::Version),
        "eval" => parse_eval(rest).map(Command::Eval),
        "run" => parse_run(rest).map(Command::Run),
        "serve" => parse_serve(rest).map(Command::Serve),
        "golem" => parse_golem(rest).map(Command::Golem),
        "explain" => match rest {
            [flag, path] if flag == "--query-file" => {
                Ok(Command::Explain(QuerySource::File(path.clone())))
            }
            [q] if !q.starts_with("--") => Ok(Command::Explain(QuerySource::Text(q.clone()))),
            _ => Err(usage(
                "`explain` takes one query (quote it), or --query-file PATH",
            )),
        },
        other => Err(usage(format!(
            "unknown command `{other}`: use `eval` or `explain`"
        ))),
    }
}

fn parse_golem(args: &[String]) -> Result<GolemArgs, UsageError> {
    let mut url = std::env::var("TIMELINE_GOLEM_URL").unwrap_or_else(|_| DEFAULT_GOLEM_URL.into());
    let mut driver = DEFAULT_DRIVER_WORKER.to_string();
    let mut rest = args;
    while let [flag, value, tail @ ..] = rest {
        match flag.as_str() {
            "--url" => url = value.clone(),
            "--driver" if is_worker_name(value) => driver = value.clone(),
            "--driver" => return Err(usage(format!("--driver {value:?}: {WORKER_NAME_RULE}"))),
            _ => break,
        }
        rest = tail;
    }
    let Some((sub, flags)) = rest.split_first() else {
        return Err(usage(
            "`golem` needs a command: setup, run, ingest, result, plan or jobs",
        ));
    };
    let mut values: std::collections::HashMap<&str, Vec<String>> = Default::default();
    let known: &[&str] = match sub.as_str() {
        "setup" | "jobs" => &[],
        "run" => &[
            "--job",
            "--query",
            "--query-file",
            "--key",
            "--shards",
            "--retain",
        ],
        "ingest" => &["--job", "--events", "--batch"],
        "result" => &["--job", "--key", "--at", "--range", "--format"],
        "plan" => &["--job"],
        other => {
            return Err(usage(format!(
                "unknown `golem` command `{other}`: setup, run, ingest, result, plan or jobs"
            )))
        }
    };
    let mut i = 0;
    while i < flags.len() {
        let flag = flags[i].as_str();
        if !known.contains(&flag) {
            return Err(usage(format!("unknown option `{flag}` for `golem {sub}`")));
        }
        let value = flags
            .get(i + 1)
            .ok_or_else(|| usage(format!("{flag} expects a value")))?;
        values.entry(flag).or_default().push(value.clone());
        i += 2;
    }
    let one = |flag: &str| values.get(flag).and_then(|v| v.last().cloned());
    let need = |flag: &str| one(flag).ok_or_else(|| usage(format!("`golem {sub}` needs {flag}")));
    let number = |flag: &str| -> Result<Option<u64>, UsageError> {
        one(flag)
            .map(|v| {
                v.parse()
                    .map_err(|_| usage(format!("{flag} expects a number, found `{v}`")))
            })
            .transpose()
    };
    let command = match sub.as_str() {
        "setup" => GolemCommand::Setup,
        "jobs" => GolemCommand::Jobs,
        "plan" => GolemCommand::Plan {
            job: need("--job")?,
        },
        "run" => GolemCommand::Run {
            job: need("--job")?,
            query: match (one("--query"), one("--query-file")) {
                (Some(q), None) => q,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .map_err(|e| usage(format!("--query-file {path}: {e}")))?,
                _ => return Err(usage("`golem run` needs --query TEXT or --query-file PATH")),
            },
            key: one("--key"),
            shards: number("--shards")?.unwrap_or(1).max(1) as u32,
            retain: number("--retain")?,
        },
        "ingest" => GolemCommand::Ingest {
            job: need("--job")?,
            events: need("--events")?,
            batch: number("--batch")?.map_or(DEFAULT_BATCH, |b| b.max(1) as usize),
        },
        _ => {
            let mut at = Vec::new();
            for v in values.get("--at").cloned().unwrap_or_default() {
                at.push(time("--at", &v)?);
            }
            let range = match one("--range") {
                None => None,
                Some(v) => {
                    let (a, b) = v
                        .split_once("..")
                        .ok_or_else(|| usage(format!("--range expects T1..T2, found `{v}`")))?;
                    Some((time("--range", a)?, time("--range", b)?))
                }
            };
            if at.is_empty() && range.is_none() {
                return Err(usage("`golem result` needs --at T or --range T1..T2"));
            }
            GolemCommand::Result {
                job: need("--job")?,
                key: one("--key"),
                at,
                range,
                format: match one("--format").as_deref() {
                    None | Some("json") => Format::Json,
                    Some("table") => Format::Table,
                    Some(f) => {
                        return Err(usage(format!(
                            "--format expects json or table, found `{f}`"
                        )))
                    }
                },
            }
        }
    };
    Ok(GolemArgs {
        url,
        driver,
        command,
    })
}

fn parse_serve(args: &[String]) -> Result<ServeArgs, UsageError> {
    let mut out = ServeArgs {
        addr: "127.0.0.1:9881".into(),
        data: "timeline-data".into(),
        verbose: false,
    };
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-v" | "--verbose" => {
                out.verbose = true;
                i += 1;
                continue;
            }
            flag @ ("--addr" | "--data") => {
                let value = args
                    .get(i + 1)
                    .ok_or_else(|| usage(format!("{flag} expects a value")))?;
                if flag == "--addr" {
                    out.addr = value.clone();
                } else {
                    out.data = value.into();
                }
            }
            other => return Err(usage(format!("unknown option `{other}` for `serve`"))),
        }
        i += 2;
    }
    Ok(out)
}

fn parse_run(args: &[String]) -> Result<RunArgs, UsageError> {
    let (mut runtime, mut query, mut events, mut key, mut shards) = (None, None, None, None, 1);
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let value = args
            .get(i + 1)
            .cloned()
            .ok_or_else(|| usage(format!("{flag} expects a value")))?;
        match flag {
            "--runtime" => {
                runtime = Some(match value.as_str() {
                    "wasm" => Runtime::Wasm,
                    "native" => Runtime::Native,
                    r => {
                        return Err(usage(format!(
                            "--runtime expects wasm or native, found `{r}`"
                        )))
                    }
                })
            }
            "--query" => query = Some(QuerySource::Text(value)),
            "--query-file" => query = Some(QuerySource::File(value)),
            "--events" => events = Some(value),
            "--key" => key = Some(value),
            "--shards" => {
                shards = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    usage(format!(
                        "--shards expects a number greater than 0, found `{value}`"
                    ))
                })?
            }
            other => return Err(usage(format!("unknown option `{other}` for `run`"))),
        }
        i += 2;
    }
    Ok(RunArgs {
        runtime: runtime.ok_or_else(|| usage("`run` needs --runtime wasm or --runtime native"))?,
        query: query.ok_or_else(|| usage("`run` needs --query TEXT or --query-file PATH"))?,
        events: events.ok_or_else(|| usage("`run` needs --events PATH (or `-`)"))?,
        key,
        shards,
    })
}

fn parse_eval(args: &[String]) -> Result<EvalArgs, UsageError> {
    let mut query = None;
    let mut events: Vec<String> = Vec::new();
    let mut out = EvalArgs {
        query: QuerySource::Text(String::new()),
        events: Vec::new(),
        key: None,
        at: Vec::new(),
        range: None,
        timeline: false,
        format: Format::Json,
        retain: None,
        threads: None,
        time: TimeSpec::default(),
        csv: false,
        out: None,
        html: false,
        show_keys: Vec::new(),
    };
    let mut parquet = false;
    // Times are read once the unit is known (it may come after them).
    let mut at_raw: Vec<String> = Vec::new();
    let mut range_raw: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        if flag == "--timeline" {
            out.timeline = true;
            i += 1;
            continue;
        }
        let value = || {
            args.get(i + 1)
                .cloned()
                .ok_or_else(|| usage(format!("{flag} expects a value")))
        };
        match flag {
            "--query" | "--query-file" => {
                if query.is_some() {
                    return Err(usage(
                        "give the query once: --query TEXT or --query-file PATH",
                    ));
                }
                let v = value()?;
                query = Some(if flag == "--query" {
                    QuerySource::Text(v)
                } else {
                    QuerySource::File(v)
                });
            }
            "--events" => events.push(value()?),
            "--key" => out.key = Some(value()?),
            "--at" => at_raw.push(value()?),
            "--range" => range_raw = Some(value()?),
            "--time-column" => out.time.column = value()?,
            "--out" => out.out = Some(value()?),
            "--show-key" => out.show_keys.push(value()?),
            "--time-unit" => {
                let v = value()?;
                out.time.unit = TimeUnit::parse(&v).ok_or_else(|| {
                    usage(format!("--time-unit expects s, ms, us or ns, found `{v}`"))
                })?;
            }
            "--format" => {
                out.format = match value()?.as_str() {
                    "json" => Format::Json,
                    "table" => Format::Table,
                    "csv" => {
                        out.csv = true;
                        Format::Json
                    }
                    "parquet" => {
                        parquet = true;
                        Format::Json
                    }
                    "html" => {
                        out.html = true;
                        Format::Json
                    }
                    f => {
                        return Err(usage(format!(
                            "--format expects json, table, csv, parquet or html, found `{f}`"
                        )))
                    }
                }
            }
            "--retain" => {
                let h = time("--retain", &value()?)?;
                if h == 0 {
                    return Err(usage("--retain expects a horizon greater than 0"));
                }
                out.retain = Some(h);
            }
            "--threads" => {
                let v = value()?;
                match v.parse::<usize>() {
                    Ok(n) if n > 0 => out.threads = Some(n),
                    _ => {
                        return Err(usage(format!(
                            "--threads expects a number of threads greater than 0, found `{v}`"
                        )))
                    }
                }
            }
            other => return Err(usage(format!("unknown option `{other}` for `eval`"))),
        }
        i += 2;
    }
    let unit = out.time.unit;
    let when =
        |flag: &str, text: &str| parse_time(text, unit).map_err(|m| usage(format!("{flag}: {m}")));
    for t in at_raw {
        out.at.push(match t.as_str() {
            "end" => At::End,
            t => At::Time(when("--at", t)?),
        });
    }
    if let Some(v) = range_raw {
        let (a, b) = v
            .split_once("..")
            .ok_or_else(|| usage(format!("--range expects T1..T2, found `{v}`")))?;
        let (a, b) = (when("--range", a)?, when("--range", b)?);
        if b <= a {
            return Err(usage(format!(
                "--range {v} is empty: T2 must be greater than T1"
            )));
        }
        out.range = Some((a, b));
    }
    match (parquet || out.html, &out.out) {
        (true, None) => return Err(usage("--format parquet and html need --out PATH")),
        (false, Some(_)) => return Err(usage("--out goes with --format parquet or html")),
        _ => {}
    }
    if (out.csv || parquet) && !out.at.is_empty() && (out.range.is_some() || out.timeline) {
        return Err(usage(
            "--format csv and parquet take points (--at) or segments (--range, --timeline), not both: they have other columns",
        ));
    }
    out.query = query.ok_or_else(|| usage("`eval` needs --query TEXT or --query-file PATH"))?;
    if events.is_empty() {
        return Err(usage(
            "`eval` needs --events PATH (or `-` for standard input)",
        ));
    }
    out.events = events;
    if out.at.is_empty() && out.range.is_none() {
        out.timeline = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn eval_reads_every_option() {
        let cmd = parse(&args("eval --query q --events e.csv --key sid --at 5 --at 7 --range 1..9 --format table --retain 60 --threads 3")).unwrap();
        assert_eq!(
            cmd,
            Command::Eval(EvalArgs {
                query: QuerySource::Text("q".into()),
                events: vec!["e.csv".into()],
                key: Some("sid".into()),
                at: vec![At::Time(5), At::Time(7)],
                range: Some((1, 9)),
                timeline: false,
                format: Format::Table,
                retain: Some(60),
                threads: Some(3),
                time: TimeSpec::default(),
                csv: false,
                out: None,
                html: false,
                show_keys: Vec::new(),
            })
        );
        let Command::Eval(e) = parse(&args("eval --query-file q.tl --events -")).unwrap() else {
            panic!()
        };
        assert!(e.timeline, "the whole timeline is the default");
    }

    #[test]
    fn golem_takes_url_and_driver_in_either_order() {
        for line in [
            "golem --url http://h:1 --driver d2 jobs",
            "golem --driver d2 --url http://h:1 jobs",
        ] {
            let Command::Golem(g) = parse(&args(line)).unwrap() else {
                panic!("{line}")
            };
            assert_eq!((g.url.as_str(), g.driver.as_str()), ("http://h:1", "d2"));
            assert_eq!(g.command, GolemCommand::Jobs);
        }
        let Command::Golem(g) = parse(&args("golem jobs")).unwrap() else {
            panic!()
        };
        assert_eq!(g.driver, DEFAULT_DRIVER_WORKER);
        for bad in ["../x", "", ".hidden", "a/b", "a b"] {
            let line = vec![
                "golem".to_string(),
                "--driver".into(),
                bad.into(),
                "jobs".into(),
            ];
            assert!(parse(&line).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_command_answers_help() {
        for line in [
            "--help",
            "eval --help",
            "eval --query q -h",
            "run --help",
            "serve --help",
            "golem --help",
            "golem result --job j --help",
            "explain -h",
        ] {
            assert_eq!(parse(&args(line)).unwrap(), Command::Help, "{line}");
        }
    }

    #[test]
    fn mistakes_say_what_to_do() {
        for (line, needle) in [
            ("eval --events e", "needs --query"),
            ("eval --query q", "needs --events"),
            ("eval --query q --events e --at x", "--at: a time must be"),
            ("eval --query q --events e --time-unit m", "s, ms, us or ns"),
            ("eval --query q --events e --range 5..5", "is empty"),
            ("eval --query q --events e --range 5", "T1..T2"),
            ("eval --query q --events e --threads 0", "greater than 0"),
            (
                "eval --query q --events e --format xml",
                "json, table, csv, parquet or html",
            ),
            (
                "eval --query q --events e --format parquet",
                "need --out PATH",
            ),
            ("eval --query q --events e --format html", "need --out PATH"),
            (
                "eval --query q --events e --out x.parquet",
                "goes with --format",
            ),
            ("eval --query q --events e --bogus 1", "unknown option"),
            ("eval --query q --query-file f --events e", "once"),
            ("eval --query q --events e --retain 0", "greater than 0"),
            ("frobnicate", "unknown command"),
            ("explain", "one query"),
        ] {
            let err = parse(&args(line)).unwrap_err();
            assert!(err.0.contains(needle), "{line}: {err}");
        }
    }
}

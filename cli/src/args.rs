//! Command-line arguments, defined with clap: the commands and options (`timeline --help`, the
//! guide's command reference and the shell completions are generated from these definitions),
//! then checked and turned into the typed arguments the commands take. Every mistake is a
//! [`UsageError`] saying what to write instead (exit status 2).

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::fmt;
use timeline_formats::time::{parse_time, TimeSpec, TimeUnit};

/// `timeline`: the command line as clap reads it.
#[derive(Parser, Debug)]
#[command(
    name = "timeline",
    version,
    about = "Answer timeline queries over event files, and run them as Golem workers",
    long_about = "Answer timeline (time-state) queries over event files (CSV, JSON Lines, \
        Parquet), and run them as a job of durable workers on Golem 1.1 or on an in-process \
        emulation of it.",
    after_help = "Run `timeline COMMAND --help` for a command's options. The user guide: docs/src/SUMMARY.md.",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: CliCommand,
}

#[derive(Subcommand, Debug)]
enum CliCommand {
    /// Evaluate a query over event files and print the answers.
    Eval(EvalCli),
    /// Print a query's plan: one line per distinct sub-expression.
    Explain(ExplainCli),
    /// Run a query as a job of node workers over an event file and print every worker's result.
    Run(RunCli),
    /// Serve Golem 1.1's worker API over HTTP on the four components, emulated in-process, and a live
    /// dashboard of the jobs at /.
    Serve(ServeCli),
    /// A client of the components on any Golem 1.1 endpoint (a Golem server, or `timeline serve`).
    Golem(GolemCli),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print this help, or a command's.
    Help {
        #[arg(hide = true)]
        command: Vec<String>,
    },
}

/// The query, given once: as text or as a file (both optional here: checked after parsing, so
/// the message says what to write).
#[derive(Args, Debug)]
struct QueryCli {
    /// The query text (the timeline DSL).
    #[arg(long, value_name = "TEXT")]
    query: Vec<String>,
    /// A file holding the query.
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    query_file: Vec<String>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Events: JSON Lines ({\"time\": 5, \"event\": {\"col\": \"value\"}} or the WIT shape), CSV \
        with a time column (an empty cell: the column is absent), or Parquet; recognised from their \
        first bytes. gzip and zstd files are decompressed as they are read. `-` reads standard input.\n\n\
        Aggregates: a query ending in `| aggregate(group_by(COL), count, sum, avg, min, max)` answers per \
        group of keys: --at T prints a line per group with a member at T; --timeline and --range a \
        line per group, function and segment."
)]
struct EvalCli {
    #[command(flatten)]
    query: QueryCli,
    /// Event files: paths, directories (every file below) or patterns ('data/*.csv'); `-` reads
    /// standard input. Repeatable; read in order.
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::AnyPath)]
    events: Vec<String>,
    /// Evaluate per partition key: the value of column COL.
    #[arg(long, value_name = "COL")]
    key: Option<String>,
    /// The value at time T (repeatable); `end`: each key's value at its own last event.
    #[arg(long, value_name = "T|end")]
    at: Vec<String>,
    /// The segments covering [T1, T2).
    #[arg(long, value_name = "T1..T2")]
    range: Option<String>,
    /// Every change point (the default when no --at or --range is given).
    #[arg(long)]
    timeline: bool,
    /// Output format: json (one object per line), table, csv, parquet or html (the last two
    /// write the file given with --out).
    #[arg(long, value_name = "FORMAT", default_value = "json", value_parser = ["json", "table", "csv", "parquet", "html"], hide_possible_values = true)]
    format: String,
    /// The file --format parquet or html writes.
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    out: Option<String>,
    /// A key the html page draws (repeatable; default: the first three).
    #[arg(long, value_name = "K")]
    show_key: Vec<String>,
    /// Keep H time units of history per key; older events are refused.
    #[arg(long, value_name = "H")]
    retain: Option<String>,
    /// With --key, split the keys over N threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<String>,
    /// The CSV column holding event times.
    #[arg(long, value_name = "COL", default_value = "time")]
    time_column: String,
    /// The unit of integer times: s, ms, us or ns. RFC 3339 timestamps (in files, --at and
    /// --range) and the query's duration literals (5s, 5m, 2h, 1d) convert to it.
    #[arg(long, value_name = "UNIT", default_value = "s")]
    time_unit: String,
}

#[derive(Args, Debug)]
struct ExplainCli {
    /// The query text (quote it).
    #[arg(value_name = "QUERY")]
    query: Option<String>,
    /// A file holding the query.
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    query_file: Option<String>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "`wasm` runs the four Golem components (built by scripts/setup) on the in-process Golem \
        emulation; `native` runs the same nodes in-process."
)]
struct RunCli {
    /// Where the node workers run: wasm or native.
    #[arg(long, value_name = "wasm|native")]
    runtime: Option<String>,
    #[command(flatten)]
    query: QueryCli,
    /// The event file (`-`: standard input).
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    events: Option<String>,
    /// Evaluate per partition key: the value of column COL.
    #[arg(long, value_name = "COL")]
    key: Option<String>,
    /// Shards of the keys, each with workers of its own.
    #[arg(long, value_name = "N", default_value = "1")]
    shards: String,
}

#[derive(Args, Debug)]
#[command(
    after_help = "The calls of the guide's deployment page and `timeline golem` work against it as \
        against a Golem server. Worker state lives in --data, so a restart keeps every job. One log \
        line per request on stderr. Ctrl-C stops."
)]
struct ServeCli {
    /// The address to listen on (port 0: any free port, printed on start).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9881")]
    addr: String,
    /// Where worker state lives.
    #[arg(long, value_name = "DIR", default_value = "timeline-data", value_hint = clap::ValueHint::DirPath)]
    data: std::path::PathBuf,
    /// Log the full URI of every request.
    #[arg(short, long)]
    verbose: bool,
    /// The most invocations running at once; more are refused with HTTP 503 and `Retry-After`
    /// (which `timeline golem` honours), never queued without bound.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_in_flight: u32,
}

#[derive(Args, Debug)]
struct GolemCli {
    /// The Golem 1.1 endpoint.
    #[arg(long, value_name = "URL", env = "TIMELINE_GOLEM_URL", hide_env_values = true, default_value = DEFAULT_GOLEM_URL)]
    url: String,
    /// The driver worker to talk to.
    #[arg(long, value_name = "W", default_value = DEFAULT_DRIVER_WORKER)]
    driver: String,
    #[command(subcommand)]
    command: GolemCli2,
}

#[derive(Subcommand, Debug)]
#[command(args_override_self = true)]
enum GolemCli2 {
    /// Create the driver worker with the other components' ids (found by name), or re-create it
    /// if it failed.
    Setup,
    /// Submit a job.
    Run {
        /// The job's name.
        #[arg(long, value_name = "J")]
        job: Option<String>,
        /// The query text.
        #[arg(long, value_name = "TEXT")]
        query: Option<String>,
        /// A file holding the query.
        #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
        query_file: Option<String>,
        /// Partition key column.
        #[arg(long, value_name = "COL")]
        key: Option<String>,
        /// Shards of the keys.
        #[arg(long, value_name = "N")]
        shards: Option<String>,
        /// Retention horizon, in time units.
        #[arg(long, value_name = "H")]
        retain: Option<String>,
    },
    /// Send an event file (JSON Lines, CSV or Parquet), or a Kafka topic's records, in packed
    /// batches, retrying a timeout.
    Ingest {
        /// The job's name.
        #[arg(long, value_name = "J")]
        job: Option<String>,
        /// The event file.
        #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
        events: Option<String>,
        /// Events per batch (default 16384; from Kafka, records per partition's batch, default
        /// 1000).
        #[arg(long, value_name = "N")]
        batch: Option<String>,
        /// Consume a Kafka topic from these brokers (host:port,…) instead of a file, exactly
        /// once: a partition's offsets are committed only once the job has its events, and
        /// events sent again are applied once.
        #[arg(
            long,
            value_name = "BROKERS",
            conflicts_with = "events",
            requires = "topic"
        )]
        kafka: Option<String>,
        /// The topic to consume.
        #[arg(long, value_name = "TOPIC", requires = "kafka")]
        topic: Option<String>,
        /// The consumer group (default `timeline-JOB`): clients in one group share the
        /// partitions.
        #[arg(long, value_name = "G", requires = "kafka")]
        group: Option<String>,
        /// The records: json (an event a record, as a line of JSON Lines) or csv (a line a
        /// record, under the header --columns).
        #[arg(long, value_name = "FORMAT", requires = "kafka")]
        format: Option<String>,
        /// The CSV header of `--format csv` records (`time,sessionId,…`).
        #[arg(long, value_name = "COLS", requires = "kafka")]
        columns: Option<String>,
        /// Where a group that committed nothing starts: earliest (default) or latest.
        #[arg(long, value_name = "WHERE", requires = "kafka")]
        from: Option<String>,
        /// Keep consuming; without it, stop at the ends the partitions had at start.
        #[arg(long, requires = "kafka")]
        follow: bool,
        /// Send a partition's batch after this many milliseconds even if it is not full
        /// (default 200).
        #[arg(long, value_name = "MS", requires = "kafka")]
        linger: Option<String>,
        /// A record that is not an event (not JSON, a NaN, no key): stop (default), naming its
        /// partition and offset, or skip it, naming it on stderr.
        #[arg(long, value_name = "WHAT", requires = "kafka")]
        on_bad_record: Option<String>,
    },
    /// Read a job's answers from its result workers (the plan from a local cache), printed as
    /// `eval` prints them.
    Result {
        /// The job's name.
        #[arg(long, value_name = "J")]
        job: Option<String>,
        /// A key (for a per-key job; repeatable: the keys of one shard are read in one call).
        #[arg(long, value_name = "K", action = clap::ArgAction::Append)]
        key: Vec<String>,
        /// The value at time T (repeatable).
        #[arg(long, value_name = "T", action = clap::ArgAction::Append)]
        at: Vec<String>,
        /// The segments covering [T1, T2).
        #[arg(long, value_name = "T1..T2")]
        range: Option<String>,
        /// json or table.
        #[arg(long, value_name = "FORMAT")]
        format: Option<String>,
    },
    /// Print a job's plan, with every worker.
    Plan {
        /// The job's name.
        #[arg(long, value_name = "J")]
        job: Option<String>,
    },
    /// List the jobs the core knows.
    Jobs,
}

#[derive(Debug, PartialEq)]
pub enum Command {
    Eval(EvalArgs),
    Explain(QuerySource),
    Run(RunArgs),
    Serve(ServeArgs),
    Golem(GolemArgs),
    Help,
    Version,
    /// `timeline completions SHELL`: a completion script on standard output.
    Completions(clap_complete::Shell),
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
    pub max_in_flight: u32,
}

/// `timeline golem …`: a client of a Golem 1.1 endpoint.
#[derive(Debug, PartialEq)]
pub struct GolemArgs {
    pub url: String,
    /// The driver worker to talk to (`--driver`, default `timeline-driver`).
    pub driver: String,
    pub command: GolemCommand,
}

/// Where `timeline golem ingest` reads events.
#[derive(Debug, PartialEq)]
pub enum IngestSource {
    /// An event file.
    File(String),
    /// A Kafka topic.
    Kafka(KafkaSource),
}

/// `timeline golem ingest --kafka …`.
#[derive(Debug, PartialEq)]
pub struct KafkaSource {
    pub brokers: String,
    pub topic: String,
    pub group: Option<String>,
    /// `true`: CSV lines under `columns`; `false`: JSON.
    pub csv: bool,
    pub columns: Option<String>,
    pub earliest: bool,
    pub follow: bool,
    pub linger_ms: u64,
    pub skip_bad_records: bool,
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
        source: IngestSource,
        batch: usize,
    },
    Result {
        job: String,
        /// The keys asked for, in order (none for a job without a key column, or an aggregate).
        keys: Vec<String>,
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

/// Events per packed batch `timeline golem ingest` sends (the guide: the HTTP path).
pub const DEFAULT_BATCH: usize = 16_384;

/// A time asked for with `--at`.
pub use timeline_formats::answers::At;

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

/// The clap definition of the whole command line (for help, completions and the reference).
pub fn definition() -> clap::Command {
    Cli::command()
}

/// The help text `args` asks for (`timeline --help`, `timeline eval --help`, `timeline help
/// eval`, …).
pub fn help(args: &[String]) -> String {
    let mut command = definition();
    // `help COMMAND…`: that command's help.
    let path: Vec<&String> = match args.first().map(String::as_str) {
        Some("help") => args[1..].iter().collect(),
        _ => args.iter().take_while(|a| !a.starts_with('-')).collect(),
    };
    let mut names = vec!["timeline".to_string()];
    for name in path {
        match command.find_subcommand(name) {
            Some(sub) => {
                names.push(name.clone());
                command = sub.clone();
            }
            None => break,
        }
    }
    command = command.bin_name(names.join(" "));
    let long = args.iter().any(|a| a == "--help");
    let help = if long {
        command.render_long_help()
    } else {
        command.render_help()
    };
    help.to_string()
}

/// A clap error as a [`UsageError`], in this command line's words, with clap's suggestion.
fn from_clap(e: clap::Error, args: &[String]) -> UsageError {
    // clap lists suggestions from the least to the most likely.
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.last().cloned(),
        _ => None,
    };
    let tip = match context(ContextKind::SuggestedArg)
        .or_else(|| context(ContextKind::SuggestedSubcommand))
    {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    };
    let invalid = context(ContextKind::InvalidArg).unwrap_or_default();
    let invalid_flag = invalid.split([' ', '=']).next().unwrap_or("").to_string();
    match e.kind() {
        ErrorKind::UnknownArgument => usage(format!("unknown option `{invalid}`{tip}")),
        ErrorKind::InvalidSubcommand if args.first().is_some_and(|a| a == "golem") => {
            usage(format!(
                "unknown `golem` command `{}`{tip}: setup, run, ingest, result, plan or jobs",
                context(ContextKind::InvalidSubcommand).unwrap_or_default()
            ))
        }
        ErrorKind::InvalidSubcommand => usage(format!(
            "unknown command `{}`{tip}: use `eval`, `explain`, `run`, `serve`, `golem` or `completions`",
            context(ContextKind::InvalidSubcommand).unwrap_or_default()
        )),
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            usage("no command given: use `timeline eval` or `timeline explain`")
        }
        ErrorKind::InvalidValue if invalid_flag == "--format" => usage(format!(
            "--format expects json, table, csv, parquet or html, found `{}`",
            context(ContextKind::InvalidValue).unwrap_or_default()
        )),
        ErrorKind::InvalidValue
            if context(ContextKind::InvalidValue).is_some_and(|v| v.is_empty()) =>
        {
            usage(format!("{invalid_flag} expects a value"))
        }
        _ => {
            // clap's own wording, without its "error: " and usage lines (ours follow).
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("").trim_start_matches("error: ");
            usage(format!("{first}{tip}"))
        }
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    if args.is_empty() {
        return Err(usage(
            "no command given: use `timeline eval` or `timeline explain`",
        ));
    }
    let argv = std::iter::once("timeline".to_string()).chain(args.iter().cloned());
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            return match e.kind() {
                ErrorKind::DisplayHelp => Ok(Command::Help),
                ErrorKind::DisplayVersion => Ok(Command::Version),
                _ => Err(from_clap(e, args)),
            }
        }
    };
    match cli.command {
        CliCommand::Help { .. } => Ok(Command::Help),
        CliCommand::Completions { shell } => Ok(Command::Completions(shell)),
        CliCommand::Eval(e) => eval(e).map(Command::Eval),
        CliCommand::Explain(e) => match (e.query, e.query_file) {
            (None, Some(path)) => Ok(Command::Explain(QuerySource::File(path))),
            (Some(q), None) => Ok(Command::Explain(QuerySource::Text(q))),
            _ => Err(usage(
                "`explain` takes one query (quote it), or --query-file PATH",
            )),
        },
        CliCommand::Run(r) => run(r).map(Command::Run),
        CliCommand::Serve(s) => Ok(Command::Serve(ServeArgs {
            addr: s.addr,
            data: s.data,
            verbose: s.verbose,
            max_in_flight: s.max_in_flight,
        })),
        CliCommand::Golem(g) => golem(g).map(Command::Golem),
    }
}

/// The query given once, as text or as a file; `needs` names the command for the message.
fn query_source(q: QueryCli, needs: &str) -> Result<QuerySource, UsageError> {
    match (q.query.as_slice(), q.query_file.as_slice()) {
        ([text], []) => Ok(QuerySource::Text(text.clone())),
        ([], [path]) => Ok(QuerySource::File(path.clone())),
        ([], []) => Err(usage(format!(
            "`{needs}` needs --query TEXT or --query-file PATH"
        ))),
        _ => Err(usage(
            "give the query once: --query TEXT or --query-file PATH",
        )),
    }
}

fn golem(g: GolemCli) -> Result<GolemArgs, UsageError> {
    if !is_worker_name(&g.driver) {
        return Err(usage(format!(
            "--driver {:?}: {WORKER_NAME_RULE}",
            g.driver
        )));
    }
    let number = |flag: &str, v: Option<String>| -> Result<Option<u64>, UsageError> {
        v.map(|v| {
            v.parse()
                .map_err(|_| usage(format!("{flag} expects a number, found `{v}`")))
        })
        .transpose()
    };
    let need = |sub: &str, flag: &str, v: Option<String>| {
        v.ok_or_else(|| usage(format!("`golem {sub}` needs {flag}")))
    };
    let command = match g.command {
        GolemCli2::Setup => GolemCommand::Setup,
        GolemCli2::Jobs => GolemCommand::Jobs,
        GolemCli2::Plan { job } => GolemCommand::Plan {
            job: need("plan", "--job", job)?,
        },
        GolemCli2::Run {
            job,
            query,
            query_file,
            key,
            shards,
            retain,
        } => GolemCommand::Run {
            job: need("run", "--job", job)?,
            query: match (query, query_file) {
                (Some(q), None) => q,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .map_err(|e| usage(format!("--query-file {path}: {e}")))?,
                _ => return Err(usage("`golem run` needs --query TEXT or --query-file PATH")),
            },
            key,
            shards: number("--shards", shards)?.unwrap_or(1).max(1) as u32,
            retain: number("--retain", retain)?,
        },
        GolemCli2::Ingest {
            job,
            events,
            batch,
            kafka,
            topic,
            group,
            format,
            columns,
            from,
            follow,
            linger,
            on_bad_record,
        } => {
            let job = need("ingest", "--job", job)?;
            let batch = number("--batch", batch)?.map(|b| b.max(1) as usize);
            match kafka {
                None => GolemCommand::Ingest {
                    job,
                    source: IngestSource::File(need("ingest", "--events", events)?),
                    batch: batch.unwrap_or(DEFAULT_BATCH),
                },
                Some(brokers) => {
                    let csv = match format.as_deref() {
                        None | Some("json") => false,
                        Some("csv") => true,
                        Some(other) => {
                            return Err(usage(format!(
                                "--format {other:?}: the records are json or csv"
                            )))
                        }
                    };
                    if csv && columns.is_none() {
                        return Err(usage(
                            "--format csv needs --columns with the records' header (time,sessionId,…)",
                        ));
                    }
                    let earliest = match from.as_deref() {
                        None | Some("earliest") => true,
                        Some("latest") => false,
                        Some(other) => {
                            return Err(usage(format!("--from {other:?}: earliest or latest")))
                        }
                    };
                    let skip_bad_records = match on_bad_record.as_deref() {
                        None | Some("stop") => false,
                        Some("skip") => true,
                        Some(other) => {
                            return Err(usage(format!("--on-bad-record {other:?}: stop or skip")))
                        }
                    };
                    GolemCommand::Ingest {
                        job,
                        source: IngestSource::Kafka(KafkaSource {
                            brokers,
                            topic: topic.unwrap_or_default(),
                            group,
                            csv,
                            columns,
                            earliest,
                            follow,
                            linger_ms: number("--linger", linger)?.unwrap_or(200),
                            skip_bad_records,
                        }),
                        batch: batch.unwrap_or(1000),
                    }
                }
            }
        }
        GolemCli2::Result {
            job,
            key,
            at,
            range,
            format,
        } => {
            let at = at
                .iter()
                .map(|v| time("--at", v))
                .collect::<Result<Vec<_>, _>>()?;
            let range = match range {
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
                job: need("result", "--job", job)?,
                keys: key,
                at,
                range,
                format: match format.as_deref() {
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
        url: g.url,
        driver: g.driver,
        command,
    })
}

fn run(r: RunCli) -> Result<RunArgs, UsageError> {
    let runtime = match r.runtime.as_deref() {
        Some("wasm") => Runtime::Wasm,
        Some("native") => Runtime::Native,
        Some(other) => {
            return Err(usage(format!(
                "--runtime expects wasm or native, found `{other}`"
            )))
        }
        None => return Err(usage("`run` needs --runtime wasm or --runtime native")),
    };
    let shards = r.shards.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        usage(format!(
            "--shards expects a number greater than 0, found `{}`",
            r.shards
        ))
    })?;
    Ok(RunArgs {
        runtime,
        query: query_source(r.query, "run")?,
        events: r
            .events
            .ok_or_else(|| usage("`run` needs --events PATH (or `-`)"))?,
        key: r.key,
        shards,
    })
}

fn eval(e: EvalCli) -> Result<EvalArgs, UsageError> {
    let unit = TimeUnit::parse(&e.time_unit).ok_or_else(|| {
        usage(format!(
            "--time-unit expects s, ms, us or ns, found `{}`",
            e.time_unit
        ))
    })?;
    let (mut format, mut csv, mut parquet, mut html) = (Format::Json, false, false, false);
    match e.format.as_str() {
        "table" => format = Format::Table,
        "csv" => csv = true,
        "parquet" => parquet = true,
        "html" => html = true,
        _ => {}
    }
    let retain = match e.retain {
        None => None,
        Some(v) => match time("--retain", &v)? {
            0 => return Err(usage("--retain expects a horizon greater than 0")),
            h => Some(h),
        },
    };
    let threads = match e.threads {
        None => None,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(usage(format!(
                    "--threads expects a number of threads greater than 0, found `{v}`"
                )))
            }
        },
    };
    let when =
        |flag: &str, text: &str| parse_time(text, unit).map_err(|m| usage(format!("{flag}: {m}")));
    let mut at = Vec::new();
    for t in &e.at {
        at.push(match t.as_str() {
            "end" => At::End,
            t => At::Time(when("--at", t)?),
        });
    }
    let range = match e.range {
        None => None,
        Some(v) => {
            let (a, b) = v
                .split_once("..")
                .ok_or_else(|| usage(format!("--range expects T1..T2, found `{v}`")))?;
            let (a, b) = (when("--range", a)?, when("--range", b)?);
            if b <= a {
                return Err(usage(format!(
                    "--range {v} is empty: T2 must be greater than T1"
                )));
            }
            Some((a, b))
        }
    };
    match (parquet || html, &e.out) {
        (true, None) => return Err(usage("--format parquet and html need --out PATH")),
        (false, Some(_)) => return Err(usage("--out goes with --format parquet or html")),
        _ => {}
    }
    if (csv || parquet) && !at.is_empty() && (range.is_some() || e.timeline) {
        return Err(usage(
            "--format csv and parquet take points (--at) or segments (--range, --timeline), not both: they have other columns",
        ));
    }
    let query = query_source(e.query, "eval")?;
    if e.events.is_empty() {
        return Err(usage(
            "`eval` needs --events PATH (or `-` for standard input)",
        ));
    }
    let timeline = e.timeline || (at.is_empty() && range.is_none());
    Ok(EvalArgs {
        query,
        events: e.events,
        key: e.key,
        at,
        range,
        timeline,
        format,
        retain,
        threads,
        time: TimeSpec {
            column: e.time_column,
            unit,
        },
        csv,
        out: e.out,
        html,
        show_keys: e.show_key,
    })
}

#[cfg(test)]
/// The guide's command reference (docs/src/cli-reference.md), generated from the definitions
/// above: every command's usage and options, as `--help` prints them.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Command reference\n\n<!-- Generated from the CLI's definitions (cli/src/args.rs); a test \
         checks it. To regenerate: TIMELINE_DOCS_BLESS=1 cargo test -p timeline-cli --bin timeline reference -->\n\n\
         Every command, with the options `timeline COMMAND --help` prints. What the answers look like \
         is in [The `timeline` CLI](cli.md), what the files may hold in \
         [Data formats and times](data-formats.md).\n",
    );
    fn walk(out: &mut String, command: &clap::Command, path: &str) {
        let mut command = command.clone().bin_name(path).term_width(100);
        if command.is_hide_set() {
            return;
        }
        let level = if path.matches(' ').count() <= 1 {
            "##"
        } else {
            "###"
        };
        out.push_str(&format!("\n{level} `{path}`\n\n```text\n"));
        let help = command.render_long_help().to_string();
        for line in help.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str("```\n");
        for sub in command.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            walk(out, sub, &format!("{path} {}", sub.get_name()));
        }
    }
    walk(&mut out, &definition(), "timeline");
    out
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

    #[test]
    fn misspelt_options_and_commands_get_a_suggestion() {
        let err = parse(&args("eval --query-fle x --events e")).unwrap_err();
        assert!(err.0.contains("unknown option `--query-fle`"), "{err}");
        assert!(err.0.contains("did you mean `--query-file`?"), "{err}");
        let err = parse(&args("evl --query q")).unwrap_err();
        assert!(err.0.contains("unknown command `evl`"), "{err}");
        assert!(err.0.contains("did you mean `eval`?"), "{err}");
        let err = parse(&args("golem reslt --job j")).unwrap_err();
        assert!(err.0.contains("did you mean `result`?"), "{err}");
    }

    #[test]
    fn completions_for_each_shell() {
        for shell in ["bash", "zsh", "fish"] {
            assert!(matches!(
                parse(&args(&format!("completions {shell}"))).unwrap(),
                Command::Completions(_)
            ));
        }
        assert!(parse(&args("completions tcsh")).is_err());
    }

    #[test]
    fn help_is_the_commands_own() {
        assert!(help(&args("--help")).contains("completions"));
        let eval = help(&args("eval --help"));
        assert!(eval.contains("--query-file"), "{eval}");
        assert!(help(&args("help golem result")).contains("--range"));
        assert!(help(&args("golem run -h")).contains("--shards"));
    }

    #[test]
    fn definitions_are_consistent() {
        definition().debug_assert();
    }

    /// The guide's command reference is what the definitions print
    /// (`TIMELINE_DOCS_BLESS=1` writes it).
    #[test]
    fn reference_is_generated_from_the_definitions() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src/cli-reference.md");
        let want = reference_markdown();
        if std::env::var_os("TIMELINE_DOCS_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/src/cli-reference.md is not what the CLI's definitions print: run \
             TIMELINE_DOCS_BLESS=1 cargo test -p timeline-cli --bin timeline reference"
        );
    }
}

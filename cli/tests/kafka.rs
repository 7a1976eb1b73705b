//! `timeline golem ingest --kafka` against a real Kafka-compatible broker (tansu, started on a
//! free loopback port), into `serve`: a shuffled stream on a 4-partition topic read by two
//! clients of one group answers as `timeline eval` over the same events; so it does after a
//! rebalance that takes partitions from a client holding records not yet sent, and after a
//! client is killed mid-stream and started again; a poison record stops the stream naming its
//! partition and offset, or is left out with `--on-bad-record skip`. The broker going down and
//! up again mid-stream runs on librdkafka's mock cluster, which keeps its records while a
//! broker is down (tansu's memory storage does not survive a restart).

mod common;

use common::{temp_file, timeline_with_env, Server, Tansu};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use std::process::{Command, Stdio};
use std::time::Duration;

const SESSIONS: usize = 12;

/// A shuffled stream of player events (most arrive late), as JSON records, and the same as a
/// JSON Lines file for `timeline eval`.
fn stream(n: usize, seed: u64) -> Vec<(String, String)> {
    let mut seed = seed | 1;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let mut clock = [0u64; SESSIONS];
    let mut records = Vec::new();
    for _ in 0..n {
        let s = next(SESSIONS as u64) as usize;
        clock[s] += 1 + next(3);
        let field = match next(4) {
            0 => format!(
                r#""playerStateChange": "{}""#,
                ["init", "play", "buffer", "pause"][next(4) as usize]
            ),
            1 => format!(r#""cdnChange": "CDN{}""#, 1 + next(2)),
            2 => r#""userAction": "seek""#.to_string(),
            _ => r#""playerStateChange": "buffer""#.to_string(),
        };
        records.push((
            format!("s{s}"),
            format!(
                r#"{{"time": {}, "event": {{"sessionId": "s{s}", {field}}}}}"#,
                clock[s]
            ),
        ));
    }
    for i in (1..records.len()).rev() {
        records.swap(i, next(i as u64 + 1) as usize);
    }
    records
}

/// Counts the records the brokers did not take.
#[derive(Default)]
struct Deliveries(
    std::sync::atomic::AtomicUsize,
    std::sync::Mutex<Option<String>>,
);

impl rdkafka::ClientContext for Deliveries {}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *self.1.lock().unwrap() = Some(e.to_string());
        }
    }
}

/// Produces `records` (key, value) to `topic`, every one acknowledged.
fn produce(brokers: &str, topic: &str, records: &[(String, String)]) {
    let producer: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create_with_context(Deliveries::default())
        .unwrap();
    for (key, value) in records {
        let mut record = BaseRecord::to(topic).key(key).payload(value);
        while let Err((_, r)) = producer.send(record) {
            record = r;
            producer.poll(Duration::from_millis(10));
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let failed = producer
        .context()
        .0
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        failed,
        0,
        "records not delivered: {:?}",
        producer.context().1.lock().unwrap()
    );
}

/// `serve` with the driver set up and a CIRR job `job` over sessions; its URL and the plan
/// cache the clients share.
fn serve_with_job(name: &str, job: &str, options: &[&str]) -> (Server, String, String) {
    let data = temp_file(name, "");
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(&data);
    let server = Server::start_with(&data, options);
    let url = server.url.clone();
    let cache = format!("{}-plans", data.display());
    let _ = std::fs::remove_dir_all(&cache);
    let query = common::repo().join("examples/cirr.tl");
    for args in [
        vec!["setup"],
        vec![
            "run",
            "--job",
            job,
            "--query-file",
            query.to_str().unwrap(),
            "--key",
            "sessionId",
            "--shards",
            "2",
        ],
    ] {
        let mut all = vec!["golem", "--url", &url];
        all.extend(args);
        let o = timeline_with_env(&all, None, &[("TIMELINE_GOLEM_CACHE", &cache)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    (server, url, cache)
}

/// How many events the job's leaves have ingested (0 while the server is away).
fn events_ingested(url: &str, job: &str) -> u64 {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("{url}/dashboard/jobs"))
        .output();
    let Ok(out) = out else { return 0 };
    let Ok(jobs) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return 0;
    };
    jobs["jobs"]
        .as_array()
        .and_then(|js| js.iter().find(|j| j["name"] == job))
        .and_then(|j| j["events"].as_u64())
        .unwrap_or(0)
}

/// `timeline golem ingest --kafka …` as a child process.
fn client(
    url: &str,
    cache: &str,
    job: &str,
    brokers: &str,
    group: &str,
    extra: &[&str],
) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_timeline"));
    c.args(["golem", "--url", url, "ingest", "--job", job])
        .args(["--kafka", brokers, "--topic", "player", "--group", group])
        .args(["--batch", "7", "--linger", "50"])
        .args(extra)
        .env("TIMELINE_GOLEM_CACHE", cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Every session's answer at 1000 from the job (an error if one has no events yet), and
/// `timeline eval`'s over `records`, each sorted.
fn answers(
    url: &str,
    cache: &str,
    job: &str,
    records: &[(String, String)],
) -> (Result<Vec<String>, String>, Vec<String>) {
    let file = temp_file(
        &format!("{job}-events.jsonl"),
        &records
            .iter()
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let at = "1000";
    let keys: Vec<String> = (0..SESSIONS).map(|s| format!("s{s}")).collect();
    let mut args = vec!["golem", "--url", url, "result", "--job", job, "--at", at];
    for k in &keys {
        args.extend(["--key", k.as_str()]);
    }
    let sorted = |t: &str| {
        let mut l: Vec<String> = t.lines().map(String::from).collect();
        l.sort();
        l
    };
    let o = timeline_with_env(&args, None, &[("TIMELINE_GOLEM_CACHE", cache)]);
    let got = if o.status.success() {
        Ok(sorted(&String::from_utf8_lossy(&o.stdout)))
    } else {
        Err(String::from_utf8_lossy(&o.stderr).to_string())
    };
    let query = common::repo().join("examples/cirr.tl");
    let want = common::eval_at(&query, &file, "sessionId", at);
    (got, sorted(&want))
}

/// The standard error of a client that exited successfully (it fails the test otherwise).
fn succeeded(o: std::process::Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    err
}

/// Every session's answer from the job equals `timeline eval`'s over `records`.
fn assert_answers_equal_eval(url: &str, cache: &str, job: &str, records: &[(String, String)]) {
    let (got, want) = answers(url, cache, job, records);
    assert_eq!(got, Ok(want), "{job}");
}

/// Waits up to a minute for the job to answer as `timeline eval` over `records`.
fn wait_for_answers(url: &str, cache: &str, job: &str, records: &[(String, String)]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (got, want) = answers(url, cache, job, records);
        if got.as_ref() == Ok(&want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{job}: {got:?} vs {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_clients_of_one_group_read_a_shuffled_topic_exactly_once() {
    let broker = Tansu::start();
    broker.create_topic("player", 4);
    let brokers = broker.brokers.clone();
    let records = stream(600, 7);
    produce(&brokers, "player", &records);
    let (server, url, cache) = serve_with_job("kafka-two", "two", &[]);
    let clients: Vec<_> = (0..2)
        .map(|_| {
            client(&url, &cache, "two", &brokers, "g", &[])
                .spawn()
                .unwrap()
        })
        .collect();
    let mut sent = 0;
    for c in clients {
        let err = succeeded(c.wait_with_output().unwrap());
        let line = err.lines().last().unwrap_or_default();
        assert!(line.starts_with("sent "), "{err}");
        sent += line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<usize>()
            .unwrap();
    }
    // Together they read every record (a record read by both, in a rebalance, is applied once).
    assert!(sent >= records.len(), "{sent}");
    assert_answers_equal_eval(&url, &cache, "two", &records);
    // Read again from the start by a new group: the driver has every offset, nothing doubles.
    succeeded(
        client(&url, &cache, "two", &brokers, "again", &[])
            .output()
            .unwrap(),
    );
    assert_answers_equal_eval(&url, &cache, "two", &records);
    server.stop();
}

#[test]
fn a_client_killed_mid_stream_and_started_again_loses_and_doubles_nothing() {
    let broker = Tansu::start();
    broker.create_topic("player", 4);
    let brokers = broker.brokers.clone();
    let records = stream(2000, 11);
    produce(&brokers, "player", &records);
    let (server, url, cache) = serve_with_job("kafka-kill", "kill", &[]);
    for wait in [300, 700] {
        let mut c = client(&url, &cache, "kill", &brokers, "g", &["--batch", "3"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait));
        // SIGKILL: no goodbye to the group, no last commit.
        let _ = c.kill();
        let _ = c.wait();
    }
    succeeded(
        client(&url, &cache, "kill", &brokers, "g", &[])
            .output()
            .unwrap(),
    );
    assert_answers_equal_eval(&url, &cache, "kill", &records);
    server.stop();
}

#[test]
fn a_poison_record_stops_the_stream_or_is_left_out() {
    let broker = Tansu::start();
    broker.create_topic("player", 1);
    let brokers = broker.brokers.clone();
    let good = stream(40, 3);
    let mut records = good[..20].to_vec();
    records.push(("s1".into(), "not json".into()));
    records.push((
        "s1".into(),
        r#"{"time": 5, "event": {"playerStateChange": "play"}}"#.into(),
    ));
    records.extend_from_slice(&good[20..]);
    produce(&brokers, "player", &records);
    let (server, url, cache) = serve_with_job("kafka-poison", "poison", &[]);
    let o = client(&url, &cache, "poison", &brokers, "g", &["--batch", "100"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("topic player partition 0 offset 20: not a JSON object"),
        "{err}"
    );
    // With skip, both bad records are named and the stream goes on.
    let err = succeeded(
        client(
            &url,
            &cache,
            "poison",
            &brokers,
            "g",
            &["--batch", "100", "--on-bad-record", "skip"],
        )
        .output()
        .unwrap(),
    );
    assert!(
        err.contains("left out: topic player partition 0 offset 20"),
        "{err}"
    );
    assert!(
        err.contains("left out: topic player partition 0 offset 21: the event has no key column \"sessionId\""),
        "{err}"
    );
    assert!(err.contains("(2 records refused, named above)"), "{err}");
    assert_answers_equal_eval(&url, &cache, "poison", &good);
    server.stop();
}

#[test]
fn serve_and_the_broker_going_down_mid_stream_lose_and_double_nothing() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("player", 4, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let records = stream(3000, 13);
    produce(&brokers, "player", &records);
    // A fixed port, so that the server started again is where the client sends.
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let (first, url, cache) = serve_with_job("kafka-faults", "faults", &["--addr", &addr]);
    let data = std::env::temp_dir()
        .join(format!("timeline-cli-test-{}", std::process::id()))
        .join("kafka-faults");
    let c = client(
        &url,
        &cache,
        "faults",
        &brokers,
        "g",
        &["--batch", "5", "--linger", "20"],
    )
    .spawn()
    .unwrap();
    // Each fault once the client is well into the stream.
    let until_events = |more_than: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let n = events_ingested(&url, "faults");
            if n > more_than {
                return n;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no progress past {more_than} events"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let seen = until_events(0);
    first.crash();
    std::thread::sleep(Duration::from_millis(300));
    let server = Server::start_with(&data, &["--addr", &addr]);
    until_events(seen);
    cluster.broker_down(1).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    cluster.broker_up(1).unwrap();
    eprintln!("{}", succeeded(c.wait_with_output().unwrap()));
    assert_answers_equal_eval(&url, &cache, "faults", &records);
    server.stop();
}

#[test]
fn with_follow_records_produced_later_arrive_too() {
    let broker = Tansu::start();
    broker.create_topic("player", 2);
    let brokers = broker.brokers.clone();
    let records = stream(200, 17);
    produce(&brokers, "player", &records[..100]);
    let (server, url, cache) = serve_with_job("kafka-follow", "follow", &[]);
    let mut c = client(&url, &cache, "follow", &brokers, "g", &["--follow"])
        .spawn()
        .unwrap();
    wait_for_answers(&url, &cache, "follow", &records[..100]);
    produce(&brokers, "player", &records[100..]);
    wait_for_answers(&url, &cache, "follow", &records);
    // Still running: --follow does not stop at the end.
    assert!(c.try_wait().unwrap().is_none());
    let _ = c.kill();
    let _ = c.wait();
    assert_answers_equal_eval(&url, &cache, "follow", &records);
    server.stop();
}

#[test]
fn a_rebalance_while_batches_wait_to_be_sent_loses_and_doubles_nothing() {
    let broker = Tansu::start();
    broker.create_topic("player", 4);
    let brokers = broker.brokers.clone();
    let records = stream(800, 19);
    produce(&brokers, "player", &records);
    let (server, url, cache) = serve_with_job("kafka-rebalance", "rebalance", &[]);
    // The first client reads every partition and holds the records for 4 s before sending;
    // the second joins the group meanwhile and takes partitions from it.
    let slow = ["--batch", "100000", "--linger", "4000"];
    let first = client(&url, &cache, "rebalance", &brokers, "g", &slow)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let second = client(&url, &cache, "rebalance", &brokers, "g", &[])
        .spawn()
        .unwrap();
    let mut said = String::new();
    for c in [first, second] {
        said.push_str(&succeeded(c.wait_with_output().unwrap()));
    }
    // The rebalance happened with records read and not sent, and they were left to the other.
    assert!(
        said.contains("went to another client of the group before"),
        "{said}"
    );
    assert!(said.contains("records left to other clients"), "{said}");
    assert_answers_equal_eval(&url, &cache, "rebalance", &records);
    server.stop();
}

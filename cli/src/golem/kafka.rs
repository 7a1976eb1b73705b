//! `timeline golem ingest --kafka`: a Kafka topic's records into a job, exactly once.
//!
//! The client is a member of a consumer group (librdkafka, through `rdkafka`), so several
//! clients share a topic's partitions. Records are read as events by the same readers as
//! files, gathered per partition, and sent with the driver's `ingest-from`, which applies each
//! offset of each partition once however often it is sent; a partition's offset is committed
//! to Kafka only after the driver acknowledged every event before it. A client killed at any
//! point, a restarted `serve` or Golem server, or a rebalance that hands a partition to another
//! client re-sends at most what was not committed, and the driver skips what it has.

use super::{t, Golem};
use crate::args::KafkaSource;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use timeline_formats::input;
use timeline_formats::progress::Progress;

/// How long to wait for the brokers (metadata, watermarks, a first assignment).
const BROKER_TIMEOUT: Duration = Duration::from_secs(60);

/// The records of one partition read and not yet sent.
struct Pending {
    records: Vec<(i64, Vec<u8>)>,
    since: Instant,
}

/// What was done, for the last line.
#[derive(Default)]
struct Totals {
    records: u64,
    events: u64,
    refused: u64,
    /// Read, then left to another client of the group by a rebalance.
    left: u64,
}

pub(super) fn ingest(g: &Golem, job: &str, k: &KafkaSource, batch: usize) -> Result<(), String> {
    let driver = g.component("timeline:driver")?;
    let key_column = g.known_plan(job)?["key-column"].as_str().map(String::from);
    let group = k.group.clone().unwrap_or_else(|| format!("timeline-{job}"));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            if k.earliest { "earliest" } else { "latest" },
        )
        .set("session.timeout.ms", "10000")
        .create()
        .map_err(|e| format!("kafka {}: {e}", k.brokers))?;
    consumer
        .subscribe(&[&k.topic])
        .map_err(|e| format!("kafka topic {}: {e}", k.topic))?;
    let ends = if k.follow {
        None
    } else {
        Some(end_offsets(&consumer, &k.topic)?)
    };
    let sender = Sender {
        g,
        driver: &driver,
        job,
        k,
        key_column: key_column.as_deref(),
        consumer: &consumer,
    };
    let mut pending: BTreeMap<i32, Pending> = BTreeMap::new();
    // The next offset to read of each partition this client read from.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut totals = Totals::default();
    let mut ever_assigned = false;
    let (mut last_report, mut reported) = (Instant::now(), 0u64);
    let started = Instant::now();
    loop {
        let polled = consumer.poll(Duration::from_millis(100));
        // Whether the records fetched so far are all read: a broker may report a partition's
        // end short of its last record (tansu 0.6.0 reports its last batch's first offset + 1),
        // so a client stops only once nothing more came.
        let drained = polled.is_none();
        match polled {
            Some(Ok(m)) => {
                let p = m.partition();
                next.insert(p, m.offset() + 1);
                totals.records += 1;
                let part = pending.entry(p).or_insert_with(|| Pending {
                    records: Vec::new(),
                    since: Instant::now(),
                });
                part.records
                    .push((m.offset(), m.payload().unwrap_or_default().to_vec()));
                if part.records.len() >= batch {
                    let part = pending.remove(&p).expect("there");
                    sender.flush(p, part, &mut totals, &mut next)?;
                }
            }
            // The brokers' errors are passing (librdkafka reconnects); say so and go on.
            Some(Err(e)) => eprintln!("kafka: {e}"),
            None => {}
        }
        let lingered: Vec<i32> = pending
            .iter()
            .filter(|(_, part)| part.since.elapsed() >= Duration::from_millis(k.linger_ms))
            .map(|(p, _)| *p)
            .collect();
        for p in lingered {
            let part = pending.remove(&p).expect("there");
            sender.flush(p, part, &mut totals, &mut next)?;
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            let rate = (totals.records - reported) as f64 / last_report.elapsed().as_secs_f64();
            eprintln!(
                "kafka {}: {rate:.0} records/s; lag {}",
                k.topic,
                lag(&consumer, &k.topic, &next)
            );
            (last_report, reported) = (Instant::now(), totals.records);
        }
        if let Some(ends) = &ends {
            if drained
                && pending.is_empty()
                && done(&consumer, ends, &next, started, &mut ever_assigned)?
            {
                break;
            }
        }
    }
    let mut notes = Vec::new();
    if totals.refused > 0 {
        notes.push(format!("{} records refused, named above", totals.refused));
    }
    if totals.left > 0 {
        notes.push(format!("{} records left to other clients", totals.left));
    }
    eprintln!(
        "sent {} events from {} records of topic {} to job {job}{}",
        totals.events,
        totals.records - totals.left,
        k.topic,
        if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        }
    );
    Ok(())
}

/// Each partition's end now (its high watermark): where a client without `--follow` stops.
fn end_offsets(consumer: &BaseConsumer, topic: &str) -> Result<BTreeMap<i32, (i64, i64)>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), BROKER_TIMEOUT)
        .map_err(|e| format!("kafka topic {topic}: {e}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!(
            "kafka topic {topic} has no partitions: does it exist?"
        ));
    }
    partitions
        .into_iter()
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, BROKER_TIMEOUT)
                .map(|w| (p, w))
                .map_err(|e| format!("kafka topic {topic} partition {p}: {e}"))
        })
        .collect()
}

/// Whether every partition assigned to this client is read to its end (`ends`: low and high
/// watermarks at start), by this client or by the group before it (its committed offset).
fn done(
    consumer: &BaseConsumer,
    ends: &BTreeMap<i32, (i64, i64)>,
    next: &BTreeMap<i32, i64>,
    started: Instant,
    ever_assigned: &mut bool,
) -> Result<bool, String> {
    // The brokers may be away for a while: then it is not done yet.
    let Ok(assigned) = consumer.assignment() else {
        return Ok(false);
    };
    if assigned.count() == 0 {
        // Not a member yet, or more clients than partitions; a client that had partitions
        // and lost them (the brokers went away) waits to have them back.
        if !*ever_assigned && started.elapsed() > BROKER_TIMEOUT {
            eprintln!(
                "kafka: no partition was assigned to this client (more clients than partitions?)"
            );
            return Ok(true);
        }
        return Ok(false);
    }
    *ever_assigned = true;
    let Ok(committed) = consumer.committed_offsets(assigned.clone(), Duration::from_secs(5)) else {
        return Ok(false);
    };
    for e in assigned.elements() {
        let p = e.partition();
        let Some(&(low, high)) = ends.get(&p) else {
            continue;
        };
        let committed = committed
            .find_partition(e.topic(), p)
            .and_then(|c| match c.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        let reached = next.get(&p).copied().max(committed).unwrap_or(low);
        if reached < high {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Each partition's lag (its high watermark less what this client read), for the progress line.
fn lag(consumer: &BaseConsumer, topic: &str, next: &BTreeMap<i32, i64>) -> String {
    let lags: Vec<String> = next
        .iter()
        .filter_map(|(&p, &n)| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(1))
                .ok()?;
            Some(format!("p{p} {}", (high - n).max(0)))
        })
        .collect();
    if lags.is_empty() {
        "unknown".into()
    } else {
        lags.join(", ")
    }
}

/// What sends a partition's batch to the job and commits it.
struct Sender<'a> {
    g: &'a Golem,
    driver: &'a str,
    job: &'a str,
    k: &'a KafkaSource,
    key_column: Option<&'a str>,
    consumer: &'a BaseConsumer,
}

impl Sender<'_> {
    /// Sends a partition's batch, unless a rebalance gave the partition to another client of
    /// the group while the batch was gathered: then the batch is left to that client, which
    /// reads it again from the partition's committed offset, and this client forgets how far
    /// it had read (so a partition handed back to it is read from there too). Not committing a
    /// partition it no longer reads keeps the group's offset from moving back.
    fn flush(
        &self,
        partition: i32,
        part: Pending,
        totals: &mut Totals,
        next: &mut BTreeMap<i32, i64>,
    ) -> Result<(), String> {
        let owned = match self.consumer.assignment() {
            Ok(assigned) => assigned.find_partition(&self.k.topic, partition).is_some(),
            // Not known: send; the driver skips whatever another client sent.
            Err(_) => true,
        };
        if owned {
            return self.send(partition, part, totals);
        }
        eprintln!(
            "kafka: partition {partition} went to another client of the group before {} records from offset {} were sent: left to it",
            part.records.len(),
            part.records.first().map_or(0, |r| r.0)
        );
        next.remove(&partition);
        totals.left += part.records.len() as u64;
        Ok(())
    }

    /// Reads one partition's pending records as events, sends them with `ingest-from`, then
    /// commits the partition's offset past them. A record that is not an event stops everything
    /// (nothing of its batch is sent, nothing from it on committed), or with `--on-bad-record skip`
    /// is named on stderr and left out.
    fn send(&self, partition: i32, part: Pending, totals: &mut Totals) -> Result<(), String> {
        let Sender {
            g,
            driver,
            job,
            k,
            key_column,
            consumer,
        } = *self;
        let (Some(&(first, _)), Some(&(last, _))) = (part.records.first(), part.records.last())
        else {
            return Ok(());
        };
        let end = last + 1;
        let mut records = part.records;
        let events = loop {
            match events_of(&records, k, key_column) {
                Ok(events) => break events,
                Err((i, why)) => {
                    let at = format!(
                        "topic {} partition {partition} offset {}: {why}",
                        k.topic, records[i].0
                    );
                    if !k.skip_bad_records {
                        return Err(format!(
                        "{at}; the partition's records from offset {} on were not sent (--on-bad-record skip to leave such records out)",
                        records[0].0
                    ));
                    }
                    eprintln!("left out: {at}");
                    totals.refused += 1;
                    records.remove(i);
                }
            }
        };
        let offsets: Vec<u64> = records.iter().map(|(o, _)| *o as u64).collect();
        let source = format!("kafka:{}:{partition}", k.topic);
        g.invoke_keyed(
            driver,
            &g.driver,
            "timeline:driver/api.{ingest-from}",
            vec![
                (t("Str"), json!(job)),
                (t("Str"), json!(source)),
                (super::list(t("U64")), json!(offsets)),
                (t("U64"), json!(end)),
                (t("Str"), json!(timeline::wire::encode_events(&events))),
            ],
            Some(&format!("ingest-from-{job}-{source}-{first}-{end}")),
        )?;
        totals.events += events.len() as u64;
        let mut commit = TopicPartitionList::new();
        commit
            .add_partition_offset(&k.topic, partition, Offset::Offset(end))
            .map_err(|e| format!("kafka: {e}"))?;
        // A commit that fails (the partition moved to another client) loses nothing: whoever reads
        // the partition next sends these again, and the driver skips them.
        if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
            eprintln!("kafka: committing partition {partition} at {end}: {e}");
        }
        Ok(())
    }
}

/// The events of `records`, read as a file of them would be; an error names the record (its
/// index) and why.
fn events_of(
    records: &[(i64, Vec<u8>)],
    k: &KafkaSource,
    key_column: Option<&str>,
) -> Result<Vec<timeline::Event>, (usize, String)> {
    let mut text = String::new();
    if k.csv {
        text.push_str(k.columns.as_deref().unwrap_or_default());
        text.push('\n');
    }
    for (i, (_, bytes)) in records.iter().enumerate() {
        let record = std::str::from_utf8(bytes).map_err(|_| (i, "not UTF-8 text".to_string()))?;
        let record = record.trim();
        if record.is_empty() || record.contains('\n') {
            return Err((i, "an event is one line of text".into()));
        }
        if !k.csv && !record.starts_with('{') {
            return Err((i, "not a JSON object".into()));
        }
        text.push_str(record);
        text.push('\n');
    }
    let name = format!("{}.{}", k.topic, if k.csv { "csv" } else { "jsonl" });
    let header_lines = usize::from(k.csv);
    let events = input::parse_events(&name, &text, &mut Progress::new(0)).map_err(|e| {
        let i = e
            .line
            .saturating_sub(1 + header_lines)
            .min(records.len() - 1);
        (i, e.message)
    })?;
    if let Some(column) = key_column {
        if let Some(i) = events
            .iter()
            .position(|e| !e.fields.iter().any(|(c, _)| &**c == column))
        {
            return Err((i, format!("the event has no key column {column:?}")));
        }
    }
    Ok(events)
}

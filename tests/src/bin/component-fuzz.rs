//! Fuzzes the components' exported functions through the emulated Golem: random call sequences
//! with random arguments of the right types (strings drawn from queries, packed batches, worker
//! names, node ids and junk), against every worker of a running job and against strays.
//!
//! ```text
//! cargo run --release -p component-tests --bin component-fuzz -- [--calls N] [--seed S]
//! ```
//!
//! Every call must return (an `ok` or an `err`); a trap fails the run. Every 100 calls, every
//! worker must still answer `stats` (or the driver `jobs`). It prints the counts and exits 1 on
//! a trap. This is random (not coverage-guided) fuzzing: the components run as WebAssembly,
//! which AFL++ cannot see into; the library code they run is fuzzed with coverage by
//! `scripts/fuzz`.

use anyhow::{bail, Context, Result};
use golem_emulator::{components_dir, TimelineSystem, WorkerId};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use timeline::{Event, Value};
use wasmtime::component::{Type, Val};

const CIRR: &str = r#"duration_where(has_existed(playerStateChange == "play") && !has_existed_within(userAction == "seek", 5) && latest_event_to_state(playerStateChange) == "buffer" && latest_event_to_state(cdnChange) == "CDN1")"#;

fn main() {
    match fuzz() {
        Ok(0) => {}
        Ok(_) => std::process::exit(1),
        Err(e) => {
            eprintln!("component-fuzz: {e:#}");
            std::process::exit(2);
        }
    }
}

/// An exported function: its full name and its parameter types.
type Exported = (String, Vec<Type>);

/// Strings worth sending to a component, besides random ones.
struct Strings {
    pool: Vec<String>,
}

impl Strings {
    fn new(plan_names: Vec<String>) -> Strings {
        let mut pool: Vec<String> = [
            "",
            "x",
            "s1",
            "cirr",
            "sessionId",
            "k",
            "a",
            "timeline-driver",
            "timeline-core",
            CIRR,
            "has_existed(a == )",
            "count(a == 1)",
            "has_existed(a == 1) && !has_existed(a == 1)",
            "latest_event_to_state(a) == \"x\"",
            "frobnicate(a)",
            "e1",
            "e1 5 1 1:a i7",
            "e1 5 2 9:sessionId s2:s1 17:playerStateChange s6:buffer",
            "e1 99999999999999999999 0",
            "e1 5 1 1:a f",
            "e1 5 9999 1:a i1",
            "d1",
            "d1 s2:s1 1 2 3 1 4 x",
            "d1 s2:s1 1 9 0 2 0 vb0 6 g0",
            "d1 - 2 5 -",
            "e1 5 1 1:a s9:abc",
            "\u{0}",
            "é\u{301}🙂",
            "{\"time\": 1}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        pool.push("!".repeat(5_000) + "has_existed(a == 1)");
        pool.push("(".repeat(5_000));
        pool.push(format!("e1 1 1 1:a s70000:{}", "x".repeat(70_000)));
        pool.extend(plan_names);
        Strings { pool }
    }

    fn draw(&self, rng: &mut StdRng) -> String {
        match rng.random_range(0..10) {
            0 => (0..rng.random_range(0..40))
                .map(|_| char::from_u32(rng.random_range(0..0x800)).unwrap_or('?'))
                .collect(),
            1 => "y".repeat(rng.random_range(0..100_000)),
            _ => self.pool[rng.random_range(0..self.pool.len())].clone(),
        }
    }
}

/// A random value of type `ty`.
fn value(rng: &mut StdRng, ty: &Type, strings: &Strings, depth: u32) -> Val {
    let len = |rng: &mut StdRng| {
        if depth > 2 {
            0
        } else if rng.random_range(0..50) == 0 {
            rng.random_range(0..300)
        } else {
            rng.random_range(0..4)
        }
    };
    let edge_u64 = |rng: &mut StdRng| match rng.random_range(0..4) {
        0 => 0,
        1 => u64::MAX,
        2 => rng.random_range(0..50),
        _ => rng.random(),
    };
    match ty {
        Type::Bool => Val::Bool(rng.random()),
        Type::S8 => Val::S8(rng.random()),
        Type::U8 => Val::U8(rng.random()),
        Type::S16 => Val::S16(rng.random()),
        Type::U16 => Val::U16(rng.random()),
        Type::S32 => Val::S32(rng.random()),
        Type::U32 => Val::U32(match rng.random_range(0..4) {
            0 => 0,
            1 => u32::MAX,
            _ => rng.random_range(0..8),
        }),
        Type::S64 => Val::S64(match rng.random_range(0..3) {
            0 => i64::MIN,
            1 => rng.random_range(-5..5),
            _ => rng.random(),
        }),
        Type::U64 => Val::U64(edge_u64(rng)),
        Type::Float32 => Val::Float32(
            *[0.0, f32::NAN, f32::INFINITY, -1.5]
                .get(rng.random_range(0..4))
                .unwrap(),
        ),
        Type::Float64 => Val::Float64(
            *[0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 2.5, 1e300]
                .get(rng.random_range(0..6))
                .unwrap(),
        ),
        Type::Char => Val::Char(char::from_u32(rng.random_range(0..0x800)).unwrap_or('x')),
        Type::String => Val::String(strings.draw(rng)),
        Type::List(l) => {
            let n = len(rng);
            Val::List(
                (0..n)
                    .map(|_| value(rng, &l.ty(), strings, depth + 1))
                    .collect(),
            )
        }
        Type::Record(r) => Val::Record(
            r.fields()
                .map(|f| (f.name.to_string(), value(rng, &f.ty, strings, depth + 1)))
                .collect(),
        ),
        Type::Tuple(t) => Val::Tuple(
            t.types()
                .map(|t| value(rng, &t, strings, depth + 1))
                .collect(),
        ),
        Type::Variant(v) => {
            let cases: Vec<_> = v.cases().collect();
            let case = &cases[rng.random_range(0..cases.len())];
            Val::Variant(
                case.name.to_string(),
                case.ty
                    .as_ref()
                    .map(|t| Box::new(value(rng, t, strings, depth + 1))),
            )
        }
        Type::Enum(e) => {
            let names: Vec<_> = e.names().collect();
            Val::Enum(names[rng.random_range(0..names.len())].to_string())
        }
        Type::Option(o) => Val::Option(
            rng.random_range(0..2)
                .eq(&1)
                .then(|| Box::new(value(rng, &o.ty(), strings, depth + 1))),
        ),
        Type::Result(r) => {
            let payload = |t: Option<Type>, rng: &mut StdRng| {
                t.map(|t| Box::new(value(rng, &t, strings, depth + 1)))
            };
            Val::Result(if rng.random() {
                Ok(payload(r.ok(), rng))
            } else {
                Err(payload(r.err(), rng))
            })
        }
        Type::Flags(f) => Val::Flags(
            f.names()
                .filter(|_| rng.random())
                .map(String::from)
                .collect(),
        ),
        other => panic!("no generator for {other:?}"),
    }
}

fn fuzz() -> Result<u64> {
    let (mut calls, mut seed) = (2_000u64, 1u64);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v: u64 = it
            .next()
            .with_context(|| format!("{flag} needs a value"))?
            .parse()
            .with_context(|| format!("{flag}: not a number"))?;
        match flag.as_str() {
            "--calls" => calls = v,
            "--seed" => seed = v,
            _ => bail!("unknown flag {flag}; flags: --calls N, --seed S"),
        }
    }
    let dir = std::env::temp_dir().join(format!("component-fuzz-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sys = TimelineSystem::start(&components_dir(), &dir)?;
    let plan = sys.run("cirr", CIRR, Some("sessionId"), 2, Some(100))?;
    let events: Vec<Event> = (0..20)
        .map(|t| {
            Event::new(
                t,
                [
                    (
                        "sessionId",
                        Value::from(if t % 2 == 0 { "s1" } else { "s2" }),
                    ),
                    (
                        "playerStateChange",
                        Value::from(["play", "buffer"][t as usize % 2]),
                    ),
                ],
            )
        })
        .collect();
    sys.ingest("cirr", &events)?;

    let mut names: Vec<String> = plan.nodes.iter().map(|n| n.node_id.clone()).collect();
    names.extend(plan.nodes.iter().map(|n| n.expression.clone()));
    let strings = Strings::new(names);
    let mut targets: Vec<(WorkerId, &str)> = vec![(sys.driver.clone(), "driver")];
    targets.push((
        WorkerId {
            component_id: golem_emulator::component_id("core"),
            worker_name: "timeline-core".into(),
        },
        "core",
    ));
    for n in &plan.nodes {
        let component = if n.kind == "leaf" {
            "event-processor"
        } else {
            "timeline-processor"
        };
        targets.extend(n.workers.iter().map(|w| (w.clone(), component)));
    }
    for component in ["event-processor", "timeline-processor"] {
        targets.push((
            WorkerId {
                component_id: golem_emulator::component_id(component),
                worker_name: "stray".into(),
            },
            component,
        ));
    }
    let functions: Vec<(&str, Vec<Exported>)> =
        ["driver", "core", "event-processor", "timeline-processor"]
            .into_iter()
            .map(|c| (c, sys.golem.exported_functions(c)))
            .collect();
    let all_functions: usize = functions.iter().map(|(_, f)| f.len()).sum();

    let mut rng = StdRng::seed_from_u64(seed);
    let (mut ok, mut refused, mut traps) = (0u64, 0u64, 0u64);
    for n in 0..calls {
        let (worker, component) = &targets[rng.random_range(0..targets.len())];
        let exported = &functions
            .iter()
            .find(|(c, _)| c == component)
            .expect("listed")
            .1;
        let (function, params) = &exported[rng.random_range(0..exported.len())];
        let args: Vec<Val> = params
            .iter()
            .map(|t| value(&mut rng, t, &strings, 0))
            .collect();
        match sys.invoke(worker, function, &args) {
            Ok(out) if format!("{out:?}").starts_with("[Result(Err") => {
                if std::env::var_os("COMPONENT_FUZZ_VERBOSE").is_some() {
                    let text = format!("{out:?}");
                    eprintln!("err: {function}: {}", timeline::limits::clip(&text, 120));
                }
                refused += 1
            }
            Ok(_) => ok += 1,
            Err(e) => {
                let text = format!("{e:#}");
                if text.contains("trapped") {
                    traps += 1;
                    eprintln!(
                        "trap: {function} on {}: {}",
                        worker.worker_name,
                        timeline::limits::clip(&text, 600)
                    );
                } else {
                    if std::env::var_os("COMPONENT_FUZZ_VERBOSE").is_some() {
                        eprintln!(
                            "refused: {function}: {}",
                            timeline::limits::clip(&text, 120)
                        );
                    }
                    refused += 1;
                }
            }
        }
        if n % 100 == 99 {
            for (w, component) in &targets {
                let check = match *component {
                    "driver" => sys.invoke(w, "timeline:driver/api.{jobs}", &[]).map(|_| ()),
                    "core" => Ok(()),
                    _ if w.worker_name == "stray" => Ok(()),
                    _ => sys.stats(w).map(|_| ()),
                };
                if let Err(e) = check {
                    let text = format!("{e:#}");
                    if text.contains("trapped") {
                        traps += 1;
                        eprintln!("{} no longer answers: {text}", w.worker_name);
                    }
                }
            }
        }
    }
    println!(
        "component-fuzz: {calls} calls to {all_functions} exported functions on {} workers: {ok} answered, {refused} refused with an error, {traps} traps",
        targets.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(traps)
}

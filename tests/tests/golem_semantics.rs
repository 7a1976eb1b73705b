//! The emulator fails as Golem 1.1 does, and a failed driver loses no job: any driver worker
//! rebuilds its jobs from the core.

mod common;

use common::*;
use golem_emulator::{components_dir, TimelineSystem, WorkerId};
use timeline::{TimeLineOp, Value};
use wasmtime::component::Val;

const RESULT: &str = "timeline:driver/api.{result}";

/// The same system, reached through another driver worker.
fn through(sys: &TimelineSystem, driver: &str) -> TimelineSystem {
    TimelineSystem {
        golem: sys.golem.clone(),
        driver: WorkerId {
            component_id: sys.driver.component_id.clone(),
            worker_name: driver.into(),
        },
    }
}

#[test]
fn parameters_that_do_not_fit_fail_the_worker_for_good_until_it_is_deleted() {
    let (sys, dir) = system("mismatch");
    sys.run("j", "count(a == 1)", None, 1, None).unwrap();
    // One parameter where `result` takes four: Golem 1.1 answers 500 and fails the worker.
    let err = sys
        .invoke(&sys.driver, RESULT, &[Val::String("j".into())])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Parameter type mismatch: expected 4, got 1 parameters"),
        "{err}"
    );
    let err = sys.jobs().unwrap_err().to_string();
    assert!(err.contains("PreviousInvocationFailed"), "{err}");
    // A value of the wrong type does the same to another worker.
    let other = through(&sys, "another-driver");
    let err = other
        .invoke(
            &other.driver,
            RESULT,
            &[
                Val::String("j".into()),
                Val::U64(1),
                Val::Option(None),
                Val::U64(1),
            ],
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("Parameter type mismatch"), "{err}");
    assert!(other
        .jobs()
        .unwrap_err()
        .to_string()
        .contains("PreviousInvocationFailed"));
    // It stays failed across a restart of the server.
    drop((sys, other));
    let sys = TimelineSystem::start(&components_dir(), &dir).unwrap();
    assert!(sys
        .jobs()
        .unwrap_err()
        .to_string()
        .contains("PreviousInvocationFailed"));
    // Deleted and created again, it is a fresh worker.
    sys.golem.delete_worker(&sys.driver).unwrap();
    assert_eq!(sys.jobs().unwrap().len(), 1, "the core still knows the job");
}

#[test]
fn an_unknown_function_is_refused_and_changes_nothing() {
    let (sys, _dir) = system("unknown-function");
    sys.run("j", "count(a == 1)", Some("k"), 1, None).unwrap();
    let x = || ("k", Value::from("x"));
    sys.ingest("j", &[timeline::Event::new(1, [x(), ("a", Value::Int(1))])])
        .unwrap();
    let err = sys
        .invoke(&sys.driver, "timeline:driver/api.{no-such-function}", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("InvalidRequest"), "{err}");
    let err = sys
        .invoke(&sys.driver, "timeline:nope/api.{run}", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("InvalidRequest"), "{err}");
    assert_eq!(
        sys.result("j", None, Some(&Value::from("x")), 5)
            .unwrap()
            .instant_value(),
        Some(Value::Int(1))
    );
}

#[test]
fn a_failed_driver_loses_no_job() {
    let (sys, _dir) = system("driver-recovery");
    let query: TimeLineOp = CIRR.parse().unwrap();
    sys.run("cirr", CIRR, Some("sessionId"), 2, None).unwrap();
    sys.run(
        "count",
        "count(playerStateChange == \"buffer\")",
        Some("sessionId"),
        1,
        None,
    )
    .unwrap();
    let events = player_events();
    let (first, rest) = events.split_at(10);
    sys.ingest("cirr", first).unwrap();
    // A mistyped call fails the driver for good.
    let _ = sys.invoke(&sys.driver, RESULT, &[Val::String("cirr".into())]);
    assert!(sys
        .ingest("cirr", rest)
        .unwrap_err()
        .to_string()
        .contains("PreviousInvocationFailed"));
    // Delete it and create it again: it serves both jobs from the core, with all their data,
    // without `run` being sent again.
    sys.golem.delete_worker(&sys.driver).unwrap();
    sys.ingest("cirr", rest).unwrap();
    assert_same_results(
        &sys,
        "cirr",
        &oracle(&query, Some("sessionId"), &events),
        60,
    );
    let names: Vec<String> = sys
        .jobs()
        .unwrap()
        .into_iter()
        .map(|p| p.job_name)
        .collect();
    assert_eq!(names, ["cirr", "count"]);
    // Any other driver worker serves them too (say, one per job or per client).
    let second = through(&sys, "timeline-driver-cirr");
    assert_same_results(
        &second,
        "cirr",
        &oracle(&query, Some("sessionId"), &events),
        60,
    );
    second.ingest("count", &events).unwrap();
    let counting: TimeLineOp = "count(playerStateChange == \"buffer\")".parse().unwrap();
    assert_same_results(
        &second,
        "count",
        &oracle(&counting, Some("sessionId"), &events),
        60,
    );
    // Re-sending `run` is idempotent; another query under a taken name is refused by the core,
    // whichever driver worker it comes through.
    second
        .run("cirr", CIRR, Some("sessionId"), 2, None)
        .unwrap();
    let err = second
        .run("count", "count(a == 1)", Some("sessionId"), 1, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("already runs another query"), "{err}");
    let err = second.ingest("nope", &events).unwrap_err().to_string();
    assert!(err.contains("no job named \"nope\""), "{err}");
}

use golem_emulator::{components_dir, TimelineSystem};
use timeline::{Event, Value};

#[test]
fn smoke() {
    let dir = tempdir("smoke");
    let sys = TimelineSystem::start(&components_dir(), &dir).unwrap();
    let plan = sys.run("j", r#"count(a == 1)"#, None, 1, None).unwrap();
    println!("{plan:#?}");
    let n = sys
        .ingest(
            "j",
            &[
                Event::new(1, [("a", Value::Int(1))]),
                Event::new(3, [("a", Value::Int(1))]),
            ],
        )
        .unwrap();
    println!("calls {n}");
    println!("{:?}", sys.result("j", None, None, 5).unwrap());
    println!("{:?}", sys.golem.counters());
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("golem-emulator-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

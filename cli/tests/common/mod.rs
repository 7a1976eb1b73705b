//! What the CLI tests share: running the built binary, temporary files, checking refusals.
#![allow(dead_code)]

use std::io::Write;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn timeline(args: &[&str], stdin: Option<&str>) -> Output {
    timeline_with_env(args, stdin, &[])
}

/// [`timeline`], with environment variables set for the run.
pub fn timeline_with_env(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_timeline"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// `timeline eval` of CIRR per session over the example sessions, with `extra` arguments.
pub fn eval_cirr(extra: &[&str]) -> Output {
    let mut args = vec![
        "eval",
        "--query-file",
        "examples/cirr.tl",
        "--events",
        "examples/player.csv",
        "--key",
        "sessionId",
    ];
    args.extend_from_slice(extra);
    timeline(&args, None)
}

/// What `timeline eval` prints for `query_file` over `events`, keyed by `key`, at `at`.
pub fn eval_at(
    query_file: &std::path::Path,
    events: &std::path::Path,
    key: &str,
    at: &str,
) -> String {
    stdout(&timeline(
        &[
            "eval",
            "--query-file",
            query_file.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
            "--key",
            key,
            "--at",
            at,
        ],
        None,
    ))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Writes `content` to a fresh temporary file with the given extension.
pub fn temp_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("timeline-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

pub fn bad_input(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(
        o.stdout.is_empty(),
        "printed a result: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

/// A running `timeline serve` and its base URL; stopped (SIGTERM, as Ctrl-C) when dropped.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    pub fn start(data: &std::path::Path) -> Server {
        Server::start_with(data, &[])
    }

    /// [`Server::start`] with more options for `serve` (`--addr` among them: listen there
    /// instead of on a free port).
    pub fn start_with(data: &std::path::Path, options: &[&str]) -> Server {
        let addr: &[&str] = if options.contains(&"--addr") {
            &[]
        } else {
            &["--addr", "127.0.0.1:0"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_timeline"))
            .arg("serve")
            .args(addr)
            .arg("--data")
            .arg(data)
            .args(options)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("serve said: {first}"))
            .to_string();
        Server { child, url }
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "serve exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("serve did not stop within 20 s");
    }
}

impl Server {
    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tansu broker (Kafka-compatible, Apache-2.0; records kept in memory) on a free loopback
/// port, killed when dropped. The binary is `$TIMELINE_TANSU`, else `tansu` on the `PATH`;
/// `scripts/setup` installs it.
pub struct Tansu {
    child: Child,
    binary: String,
    /// `127.0.0.1:PORT`, for `--kafka`.
    pub brokers: String,
}

impl Tansu {
    pub fn start() -> Tansu {
        let binary = std::env::var("TIMELINE_TANSU").unwrap_or_else(|_| "tansu".to_string());
        // tansu advertises the port it is given, so it cannot be 0.
        let port = free_port();
        let brokers = format!("127.0.0.1:{port}");
        let url = format!("tcp://{brokers}");
        let child = Command::new(&binary)
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start the tansu broker `{binary}` ({e}): run scripts/setup, or set TIMELINE_TANSU to its path")
            });
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&brokers).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {brokers}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Tansu {
            child,
            binary,
            brokers,
        }
    }

    /// Creates `topic` with `partitions` partitions (`tansu topic create`).
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let o = Command::new(&self.binary)
            .args(["topic", "create", topic, "--partitions"])
            .arg(partitions.to_string())
            .args(["--broker", &format!("tcp://{}", self.brokers)])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "tansu topic create: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Idempotency keys, as Golem keeps them: an invocation sent again with the same
//! `Idempotency-Key` gets the first one's result without running again, also after the server
//! restarted (the answers are kept in the data directory), and two sent at once run once.

use golem_emulator::WorkerId;
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How many idempotency keys are remembered; past it, the oldest are forgotten. The file holds
/// at most twice as many lines before it is written anew.
const KEYS: usize = 100_000;

type Key = (WorkerId, String);

/// The answers of the invocations sent with an idempotency key.
pub struct Answers {
    done: Mutex<Kept>,
    /// Keys whose invocation is running: the same key again waits for it.
    running: Mutex<HashSet<Key>>,
    path: PathBuf,
}

#[derive(Default)]
struct Kept {
    answers: HashMap<Key, Json>,
    /// The keys in the order they were answered, oldest first.
    order: std::collections::VecDeque<Key>,
    /// Lines in the file.
    lines: usize,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Line {
    worker: WorkerId,
    key: String,
    answer: Json,
}

impl Answers {
    /// The answers kept in `dir` (none if it holds none; a last line cut short by a crash is
    /// left out).
    pub fn open(dir: &Path) -> Arc<Answers> {
        let path = dir.join("idempotency-keys.jsonl");
        let mut kept = Kept::default();
        if let Ok(bytes) = std::fs::read(&path) {
            // A line cut short by a crash is dropped from the file too, so that the next
            // answer starts a line of its own.
            let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if whole < bytes.len() {
                if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
                    let _ = f.set_len(whole as u64);
                }
            }
            for line in bytes[..whole].lines().map_while(Result::ok) {
                kept.lines += 1;
                if let Ok(l) = serde_json::from_str::<Line>(&line) {
                    kept.insert((l.worker, l.key), l.answer);
                }
            }
        }
        Arc::new(Answers {
            done: Mutex::new(kept),
            running: Mutex::default(),
            path,
        })
    }

    /// Waits until no invocation with this key runs, then claims it: the answer if it ran
    /// before, else a claim that [`Claim::answered`] fulfils (or that, dropped, lets the next
    /// one run it).
    pub async fn claim(self: &Arc<Self>, worker: &WorkerId, key: &str) -> Result<Claim, Json> {
        let id = (worker.clone(), key.to_string());
        loop {
            if let Some(answer) = self.done.lock().expect("lock").answers.get(&id) {
                return Err(answer.clone());
            }
            if self.running.lock().expect("lock").insert(id.clone()) {
                // It may have been answered between the two locks.
                if let Some(answer) = self.done.lock().expect("lock").answers.get(&id) {
                    self.running.lock().expect("lock").remove(&id);
                    return Err(answer.clone());
                }
                return Ok(Claim {
                    answers: self.clone(),
                    id,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

impl Kept {
    fn insert(&mut self, id: Key, answer: Json) {
        if self.answers.insert(id.clone(), answer).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > KEYS {
            if let Some(old) = self.order.pop_front() {
                self.answers.remove(&old);
            }
        }
    }
}

/// The right to run the invocation of one idempotency key.
pub struct Claim {
    answers: Arc<Answers>,
    id: Key,
}

impl Claim {
    /// Keeps the invocation's answer, on disk too (an error writing it is reported on stderr:
    /// the answer stands, but a restart would forget it).
    pub fn answered(self, answer: &Json) {
        let line = Line {
            worker: self.id.0.clone(),
            key: self.id.1.clone(),
            answer: answer.clone(),
        };
        let mut done = self.answers.done.lock().expect("lock");
        done.insert(self.id.clone(), answer.clone());
        let written = (|| -> std::io::Result<()> {
            // Past twice the limit, the file is written anew with what is kept.
            if done.lines >= 2 * KEYS {
                let mut all = String::new();
                for id in &done.order {
                    let l = Line {
                        worker: id.0.clone(),
                        key: id.1.clone(),
                        answer: done.answers[id].clone(),
                    };
                    all.push_str(&serde_json::to_string(&l)?);
                    all.push('\n');
                }
                done.lines = done.order.len();
                return std::fs::write(&self.answers.path, all);
            }
            done.lines += 1;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.answers.path)?;
            writeln!(file, "{}", serde_json::to_string(&line)?)
        })();
        if let Err(e) = written {
            eprintln!(
                "cannot keep an idempotency key in {}: {e}",
                self.answers.path.display()
            );
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.answers.running.lock().expect("lock").remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> WorkerId {
        WorkerId {
            component_id: "c".into(),
            worker_name: "w".into(),
        }
    }

    #[tokio::test]
    async fn an_answer_survives_a_restart_and_a_key_runs_once() {
        let dir = std::env::temp_dir().join(format!("idem-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let answers = Answers::open(&dir);
        let claim = answers.claim(&worker(), "k").await.ok().unwrap();
        // The same key while it runs waits; once answered, it gets the answer.
        let waiting = {
            let answers = answers.clone();
            tokio::spawn(async move { answers.claim(&worker(), "k").await.err() })
        };
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        assert!(!waiting.is_finished());
        claim.answered(&serde_json::json!({"n": 1}));
        assert_eq!(waiting.await.unwrap(), Some(serde_json::json!({"n": 1})));
        // A claim dropped without an answer lets the next one run.
        drop(answers.claim(&worker(), "other").await.ok().unwrap());
        assert!(answers.claim(&worker(), "other").await.is_ok());
        // A restart keeps the answer; a torn last line is left out.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("idempotency-keys.jsonl"))
            .unwrap();
        write!(f, "{{\"worker\":").unwrap();
        let again = Answers::open(&dir);
        assert_eq!(
            again.claim(&worker(), "k").await.err(),
            Some(serde_json::json!({"n": 1}))
        );
    }
}

//! The reader protocol, shared by the components and the clients: how readers are named, and
//! how they refuse what they no longer serve.
//!
//! On Golem 1.1 every invocation of a worker is logged and replayed when the worker recovers,
//! reads included. So clients read a node through readers: workers holding a copy of the node's
//! output, each serving at most [`READS_PER_READER`] reads, then handing its copy over to the
//! next generation, named after it (see the components for the workers themselves). A reader
//! that handed over refuses what it is sent with [`HANDED_OVER`] and its successor's name. A
//! client finds the newest generation by the workers that exist (their metadata, which is not
//! an invocation), and follows hand-overs from there.

use crate::limits::READS_PER_READER;

/// How a reader that handed over refuses reads and pushes: this, then the successor's name.
pub const HANDED_OVER: &str = "reader handed over to ";

/// The most hand-overs a client or a node's push follows in one go (readers that handed over
/// while nobody read or pushed, one after another).
pub const MAX_HOPS: usize = 1024;

/// The name of generation `generation` of the reader of node worker `node`.
pub fn reader_name(node: &str, generation: u32) -> String {
    format!("{node}-reader-{generation}")
}

/// The generation of a reader of `node` named `name`, if it is one.
pub fn reader_generation(node: &str, name: &str) -> Option<u32> {
    name.strip_prefix(node)?
        .strip_prefix("-reader-")?
        .parse()
        .ok()
}

/// The successor a [`HANDED_OVER`] refusal names, found in `error` (which may quote it).
pub fn handed_over_to(error: &str) -> Option<&str> {
    let at = error.find(HANDED_OVER)?;
    let name = error[at + HANDED_OVER.len()..].split_whitespace().next()?;
    Some(name)
}

/// The reader of node worker `node` to ask instead of `reader`, after `reader` answered
/// `error`: its successor if it handed over; its predecessor if it exists but was never set up
/// (a stray call created it before its predecessor handed over); `None` if its answer stands.
pub fn next_reader(node: &str, reader: &str, error: &str) -> Option<String> {
    if let Some(successor) = handed_over_to(error) {
        return Some(successor.to_string());
    }
    if error.contains("is not initialised") {
        let previous = reader_generation(node, reader)?.checked_sub(1)?;
        return Some(reader_name(node, previous));
    }
    None
}

/// A reader's count of the reads it served, and its successor once it handed over.
#[derive(Clone, Debug, Default)]
pub struct ReadCount {
    pub reads: u32,
    /// The successor's worker name.
    pub successor: Option<String>,
}

impl ReadCount {
    /// Counts one read, or refuses it with [`HANDED_OVER`] after a hand-over. `Ok(true)`: the
    /// reader served its [`READS_PER_READER`] reads and hands over after answering this one
    /// (again at every read until a hand-over succeeds).
    pub fn count(&mut self) -> Result<bool, String> {
        if let Some(next) = &self.successor {
            return Err(format!("{HANDED_OVER}{next}"));
        }
        self.reads = self.reads.saturating_add(1);
        Ok(self.reads >= READS_PER_READER)
    }

    /// Refuses a push after a hand-over (naming the successor, which the node tells instead).
    pub fn check_push(&self) -> Result<(), String> {
        match &self.successor {
            Some(next) => Err(format!("{HANDED_OVER}{next}")),
            None => Ok(()),
        }
    }
}

/// The newest generation `g` for which `exists(g)` holds, given that generation 0 exists and
/// that generations exist from 0 up to the newest: about 2 log2(g) asks.
pub fn newest_generation(mut exists: impl FnMut(u32) -> bool) -> u32 {
    let (mut low, mut high) = (0u32, 1u32);
    while exists(high) {
        low = high;
        match high.checked_mul(2) {
            Some(h) => high = h,
            None => return low,
        }
    }
    // exists(low), not exists(high)
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if exists(mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_names_carry_their_node_and_generation() {
        let name = reader_name("cirr-n3-s1", 12);
        assert_eq!(name, "cirr-n3-s1-reader-12");
        assert_eq!(reader_generation("cirr-n3-s1", &name), Some(12));
        assert_eq!(reader_generation("cirr-n3-s2", &name), None);
        assert_eq!(reader_generation("cirr-n3-s1", "cirr-n3-s1-reader-x"), None);
    }

    #[test]
    fn a_reader_hands_over_at_its_last_read_then_names_its_successor() {
        let mut count = ReadCount::default();
        for _ in 1..READS_PER_READER {
            assert_eq!(count.count(), Ok(false));
        }
        assert_eq!(count.count(), Ok(true));
        // A hand-over that failed is tried again at the next read.
        assert_eq!(count.count(), Ok(true));
        assert!(count.check_push().is_ok());
        count.successor = Some("n-reader-1".into());
        let refusal = count.count().unwrap_err();
        assert_eq!(handed_over_to(&refusal), Some("n-reader-1"));
        assert_eq!(
            handed_over_to(&count.check_push().unwrap_err()),
            Some("n-reader-1")
        );
        assert_eq!(handed_over_to("reader handed over to "), None);
    }

    #[test]
    fn a_refusal_names_the_reader_to_ask_instead() {
        let handed = format!("get-result: {HANDED_OVER}n-reader-4");
        assert_eq!(
            next_reader("n", "n-reader-3", &handed).as_deref(),
            Some("n-reader-4")
        );
        let unset = "worker n-reader-4 is not initialised: create it through a job";
        assert_eq!(
            next_reader("n", "n-reader-4", unset).as_deref(),
            Some("n-reader-3")
        );
        assert_eq!(next_reader("n", "n-reader-0", unset), None);
        assert_eq!(
            next_reader("n", "n-reader-2", "no events have arrived for key"),
            None
        );
        assert_eq!(next_reader("n", "n-reader-2", ""), None);
    }

    #[test]
    fn the_newest_generation_is_found_in_few_asks() {
        for newest in [0u32, 1, 2, 3, 7, 8, 99, 100, 1000, 65_537] {
            let mut asks = 0;
            let found = newest_generation(|g| {
                asks += 1;
                g <= newest
            });
            assert_eq!(found, newest);
            assert!(
                asks <= 2 * (33 - newest.leading_zeros()) + 2,
                "{newest}: {asks} asks"
            );
        }
    }
}

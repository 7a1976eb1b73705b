//! AFL++ target: `timeline_fuzz::events` (run by `scripts/fuzz`).
fn main() {
    afl::fuzz!(|data: &[u8]| timeline_fuzz::events(data));
}

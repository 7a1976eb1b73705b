//! AFL++ target: `timeline_fuzz::wire` (run by `scripts/fuzz`).
fn main() {
    afl::fuzz!(|data: &[u8]| timeline_fuzz::wire(data));
}

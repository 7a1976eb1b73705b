//! AFL++ target: `timeline_fuzz::flat` (run by `scripts/fuzz`).
fn main() {
    afl::fuzz!(|data: &[u8]| timeline_fuzz::flat(data));
}

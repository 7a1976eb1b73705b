//! AFL++ target: `timeline_fuzz::dsl` (run by `scripts/fuzz`).
fn main() {
    afl::fuzz!(|data: &[u8]| timeline_fuzz::dsl(data));
}

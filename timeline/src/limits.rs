//! The limits on what a user or a network peer can send.
//!
//! Everything that reads input (the DSL parser, flat op trees, the `wire` decoder, the event
//! readers, the components' exported functions) refuses input past these limits with an error
//! that names the limit, before any state changes. They keep hostile input from overflowing the
//! stack (every walk over a query recurses at most [`MAX_QUERY_DEPTH`] levels), from expanding
//! into more work than its size suggests (`let` bindings and flat trees that share nodes), and
//! from exhausting memory.
//!
//! The depth limit is fixed: the walks over a query are recursive, and the limit is what makes
//! them safe on a WebAssembly worker's 1 MiB stack. The others are generous defaults.

/// The most bytes of query text (`let` bindings, comments and all).
pub const MAX_QUERY_BYTES: usize = 1 << 20;

/// The deepest nesting of operators in a query, counting timeline operators, event-predicate
/// operators, calls and parentheses alike. A chain `a && b && c` nests one level per term, so a
/// chain of more than about this many terms must be grouped into balanced halves
/// (`(a && b) && (c && d)`), which nests only logarithmically.
pub const MAX_QUERY_DEPTH: usize = 256;

/// The most operators a query expands to, once `let` bindings are inlined (a binding used twice
/// counts twice) and predicates counted term by term. The plan shares equal sub-expressions, so
/// this bounds the work of planning, not the number of workers.
pub const MAX_QUERY_OPERATORS: usize = 10_000;

/// The most shards (workers per node) a job may ask for.
pub const MAX_SHARDS: u32 = 1024;

/// The most workers one job may create: its plan's nodes times its shards.
pub const MAX_JOB_WORKERS: usize = 10_000;

/// The most events in one batch sent to a worker (typed or packed).
pub const MAX_BATCH_EVENTS: usize = 1 << 20;

/// The most bytes of one packed batch (`wire`), between workers or from a client.
pub const MAX_PACKED_BYTES: usize = 64 << 20;

/// The most columns one event may carry.
pub const MAX_EVENT_COLUMNS: usize = 1024;

/// The longest string value or column name, in bytes.
pub const MAX_STRING_BYTES: usize = 1 << 16;

/// The most answers one batched read (`get-results`: keys × times) may ask of a node worker.
pub const MAX_READS_PER_CALL: usize = 10_000;

/// The most reads one reader worker serves before a successor takes its place. On Golem 1.1
/// every invocation of a worker is logged and replayed when it recovers, reads included, so a
/// worker serving reads without end would take ever longer to recover; a reader's log holds at
/// most this many reads (a batched read counts once). Clients read through readers.
pub const READS_PER_READER: u32 = 100;

/// The most keys one page of a node's keys (`keys` on a node worker, the dashboard's key list)
/// may hold.
pub const MAX_KEY_PAGE: u32 = 1000;

/// The longest key search text, in bytes.
pub const MAX_KEY_SEARCH_BYTES: usize = 1024;

/// Checks a batched read of `keys` keys at `times` times against [`MAX_READS_PER_CALL`].
pub fn check_reads(keys: usize, times: usize) -> Result<(), String> {
    match keys.checked_mul(times) {
        Some(n) if n <= MAX_READS_PER_CALL => Ok(()),
        _ => Err(format!(
            "{keys} keys at {times} times is more than {MAX_READS_PER_CALL} answers in one call: \
             ask in smaller batches"
        )),
    }
}

/// The widest excerpt of an input line that an error quotes, in characters; a longer line is
/// shown as a window around the column at fault, with `…` where it was cut.
pub const EXCERPT_CHARS: usize = 80;

/// A window of `line` around the 1-based character `column`, at most [`EXCERPT_CHARS`] wide,
/// with `…` where it was cut, and the 1-based column of the same character in the window.
///
/// ```
/// let line = "x".repeat(100_000) + "!";
/// let (window, column) = timeline::limits::excerpt(&line, 100_001);
/// assert!(window.chars().count() <= timeline::limits::EXCERPT_CHARS + 2);
/// assert_eq!(window.chars().nth(column - 1), Some('!'));
/// ```
pub fn excerpt(line: &str, column: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    let at = column.saturating_sub(1).min(chars.len());
    if chars.len() <= EXCERPT_CHARS {
        return (line.to_string(), at + 1);
    }
    let start = at.saturating_sub(EXCERPT_CHARS / 2);
    let end = (start + EXCERPT_CHARS).min(chars.len());
    let start = end.saturating_sub(EXCERPT_CHARS).min(start);
    let mut out = String::new();
    let mut column = at - start + 1;
    if start > 0 {
        out.push('…');
        column += 1;
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push('…');
    }
    (out, column)
}

/// `text` cut to at most `max` characters, with `…` where it was cut: for quoting a value of
/// unbounded size (a cell, a JSON value) in an error message.
///
/// ```
/// assert_eq!(timeline::limits::clip("abcdef", 3), "abc…");
/// assert_eq!(timeline::limits::clip("abc", 3), "abc");
/// ```
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Checks a batch of events against the limits on events per batch, columns per event and
/// string length; the error names the first event at fault.
pub fn check_batch(events: &[crate::Event]) -> Result<(), String> {
    if events.len() > MAX_BATCH_EVENTS {
        return Err(format!(
            "the batch has {} events; the limit is {MAX_BATCH_EVENTS}: split it",
            events.len()
        ));
    }
    for (i, e) in events.iter().enumerate() {
        let fail = |m: String| Err(format!("event {} (time {}): {m}", i + 1, e.time));
        if e.fields.len() > MAX_EVENT_COLUMNS {
            return fail(format!(
                "{} columns; the limit is {MAX_EVENT_COLUMNS}",
                e.fields.len()
            ));
        }
        for (column, value) in &e.fields {
            let long = |what: &str, len: usize| {
                fail(format!(
                    "{what} of {len} bytes; the limit is {MAX_STRING_BYTES}"
                ))
            };
            if column.len() > MAX_STRING_BYTES {
                return long("a column name", column.len());
            }
            if let crate::Value::Str(s) = value {
                if s.len() > MAX_STRING_BYTES {
                    return long(
                        &format!("column \"{}\": a string", clip(column, 40)),
                        s.len(),
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lines_are_quoted_whole() {
        assert_eq!(
            excerpt("has_existed(a == )", 18),
            ("has_existed(a == )".into(), 18)
        );
        assert_eq!(excerpt("", 1), (String::new(), 1));
    }

    #[test]
    fn long_lines_are_windowed_around_the_column() {
        let line: String = (0..1000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        for column in [1, 2, 40, 41, 500, 960, 999, 1000, 1001] {
            let (window, at) = excerpt(&line, column);
            assert!(
                window.chars().count() <= EXCERPT_CHARS + 2,
                "{column}: {window}"
            );
            assert_eq!(
                window.chars().nth(at - 1),
                line.chars().nth(column - 1),
                "{column}: {window} at {at}"
            );
            assert_eq!(
                window.starts_with('…'),
                column > EXCERPT_CHARS / 2 + 1,
                "{column}"
            );
        }
    }

    #[test]
    fn clipping_counts_characters_not_bytes() {
        assert_eq!(clip("ééééé", 2), "éé…");
        assert_eq!(clip("", 0), "");
    }
}

//! The incremental operators: each node keeps its output timeline for one key, and on a change
//! from time `T` on recomputes only the suffix of its output from `T`.
//!
//! A leaf keeps the events it needs (projected to the columns it reads); a derived node reads its
//! inputs' timelines. Both rebuild their output after `T` from what they hold at `T`, so a late
//! event costs work proportional to the history after it, not to all history.

use crate::keys::KeyMap;
use crate::op::{kleene_and, kleene_or, CmpOp, Predicate, TimeLineOp};
use crate::packed::{PackedValue, ValueView};
use crate::timeline::{partition_point_from_end, Reader, Timeline};
use crate::value::{State, Value, ValueKey};
use smallvec::SmallVec;
use std::sync::Arc;

/// What a leaf computes.
#[derive(Clone, Debug)]
enum LeafKind {
    Latest,
    HasExisted,
    HasExistedWithin(u64),
    Count,
    CountWithin(u64),
    DistinctWithin(u64),
}

/// The per-query (not per-key) description of a leaf.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    kind: LeafKind,
    /// The columns the leaf reads; rows hold values in this order.
    columns: Vec<Arc<str>>,
    predicate: Option<Predicate>,
    /// Whether an event with none of `columns` still matters (`!(a == 1)` matches it).
    needs_every_event: bool,
    /// Whether rows that cleanly fail the predicate are dropped rather than kept: true for a
    /// counting leaf (`has_existed`, `count`, their windowed forms) whose predicate reads one
    /// column and needs that column, so that such a row can never count and a later value at the
    /// same time replaces it whole. Most events of a stream fail most predicates.
    drops_false_rows: bool,
}

/// The per-query description of a derived node.
#[derive(Clone, Debug)]
pub enum DerivedKind {
    Compare(CmpOp, Value),
    And,
    Or,
    Not,
    DurationWhere,
    DurationInCurState,
}

impl DerivedKind {
    /// Whether the output depends on the key's origin (first event), not only on the inputs.
    pub fn uses_origin(&self) -> bool {
        matches!(
            self,
            DerivedKind::DurationWhere | DerivedKind::DurationInCurState
        )
    }
}

/// How to compute one node, for every key.
#[derive(Clone, Debug)]
pub enum NodeSpec {
    Leaf(LeafSpec),
    Derived(DerivedKind),
}

impl NodeSpec {
    /// The spec of the operator at the top of `op` (its inputs are other nodes).
    pub fn new(op: &TimeLineOp) -> NodeSpec {
        let leaf = |kind, columns: Vec<Arc<str>>, predicate: Option<Predicate>| {
            let needs_every_event = predicate
                .as_ref()
                .is_some_and(|p| p.eval(&|_| None) == Some(true));
            let drops_false_rows = predicate.is_some()
                && columns.len() == 1
                && !needs_every_event
                && matches!(
                    kind,
                    LeafKind::HasExisted
                        | LeafKind::HasExistedWithin(_)
                        | LeafKind::Count
                        | LeafKind::CountWithin(_)
                );
            NodeSpec::Leaf(LeafSpec {
                kind,
                columns,
                predicate,
                needs_every_event,
                drops_false_rows,
            })
        };
        let pred = |p: &Predicate| (p.columns(), Some(p.clone()));
        match op {
            TimeLineOp::LatestEventToState { column } => {
                leaf(LeafKind::Latest, vec![column.clone()], None)
            }
            TimeLineOp::DistinctWithin { column, within } => leaf(
                LeafKind::DistinctWithin(*within),
                vec![column.clone()],
                None,
            ),
            TimeLineOp::HasExisted { predicate } => {
                let (c, p) = pred(predicate);
                leaf(LeafKind::HasExisted, c, p)
            }
            TimeLineOp::HasExistedWithin { predicate, within } => {
                let (c, p) = pred(predicate);
                leaf(LeafKind::HasExistedWithin(*within), c, p)
            }
            TimeLineOp::Count { predicate } => {
                let (c, p) = pred(predicate);
                leaf(LeafKind::Count, c, p)
            }
            TimeLineOp::CountWithin { predicate, within } => {
                let (c, p) = pred(predicate);
                leaf(LeafKind::CountWithin(*within), c, p)
            }
            TimeLineOp::Compare { op, value, .. } => {
                NodeSpec::Derived(DerivedKind::Compare(*op, value.clone()))
            }
            TimeLineOp::And(..) => NodeSpec::Derived(DerivedKind::And),
            TimeLineOp::Or(..) => NodeSpec::Derived(DerivedKind::Or),
            TimeLineOp::Not(_) => NodeSpec::Derived(DerivedKind::Not),
            TimeLineOp::DurationWhere(_) => NodeSpec::Derived(DerivedKind::DurationWhere),
            TimeLineOp::DurationInCurState(_) => NodeSpec::Derived(DerivedKind::DurationInCurState),
        }
    }
}

impl LeafSpec {
    /// The window of a windowed leaf (0 otherwise): how far before a change its events matter.
    pub fn window(&self) -> u64 {
        match self.kind {
            LeafKind::HasExistedWithin(d)
            | LeafKind::CountWithin(d)
            | LeafKind::DistinctWithin(d) => d,
            _ => 0,
        }
    }

    /// Whether the leaf's value at any time follows from its rows near that time (the latest
    /// value, or a window's), so that its timeline can be rebuilt from any time on without
    /// being kept ([`LeafRows::rebuild_into`]). `has_existed` and `count` depend on the whole
    /// history before.
    pub fn is_local(&self) -> bool {
        !matches!(self.kind, LeafKind::HasExisted | LeafKind::Count)
    }

    /// Whether a leaf whose timeline has value `at_horizon` at the retention horizon keeps that
    /// value ever after, whatever events arrive (none can arrive before the horizon):
    /// `has_existed` once true. Its rows can then change nothing, and need not be kept.
    pub fn settled_by(&self, at_horizon: &State) -> bool {
        matches!(self.kind, LeafKind::HasExisted) && at_horizon.as_bool() == Some(true)
    }

    /// Whether the leaf reads `column`.
    pub fn reads(&self, column: &str) -> bool {
        self.columns.iter().any(|c| &**c == column)
    }

    /// The columns the leaf reads.
    pub fn columns(&self) -> &[Arc<str>] {
        &self.columns
    }

    /// Whether the leaf must see events that have none of its columns.
    pub fn needs_every_event(&self) -> bool {
        self.needs_every_event
    }
}

/// The rows one leaf keeps for one key: what its timeline is computed from. The engine keeps
/// them apart from the timeline (a leaf whose timeline is rebuilt when read keeps only these);
/// a leaf worker keeps both in a [`LeafState`].
#[derive(Clone, Debug, Default)]
pub struct LeafRows {
    /// The leaf's rows, in increasing time. A row is the events the leaf has seen at one time,
    /// merged: for the same time and column, the value ingested last wins. Row `i` is
    /// `cells[i * width..(i + 1) * width]`, `width` being the number of columns: each cell the
    /// row's time and one column's value, projected to the leaf's columns. Nearly every leaf
    /// reads one column, so a row is one cell, its time beside its value in one vector (a row
    /// of a leaf of several columns repeats its time). Whether a row counts (its predicate
    /// holds, or without one its column is present) is evaluated when it is read, rather than
    /// stored: a flag would take as much room as the time (alignment). A cell is 16 bytes, its
    /// value [packed](PackedValue) in 8.
    cells: Vec<Cell>,
}

/// One column of one row: the row's time and the column's value, if the row has it.
#[derive(Clone, Debug)]
struct Cell {
    time: u64,
    value: PackedValue,
}

impl Cell {
    fn empty(time: u64) -> Cell {
        Cell {
            time,
            value: PackedValue::NONE,
        }
    }
}

/// One leaf's state for one key: its rows and its timeline.
#[derive(Clone, Debug)]
pub struct LeafState {
    pub rows: LeafRows,
    pub output: Timeline,
    /// Events whose predicate was unknown because of a type mismatch.
    pub mismatches: u64,
}

impl LeafState {
    pub fn new(initial: State) -> LeafState {
        LeafState {
            rows: LeafRows::default(),
            output: Timeline::new(initial),
            mismatches: 0,
        }
    }

    /// Records an event; returns the time from which the output must be recomputed, or `None`
    /// if the event changes nothing this leaf reads.
    pub fn insert(
        &mut self,
        spec: &LeafSpec,
        time: u64,
        fields: &[(Arc<str>, Value)],
    ) -> Option<u64> {
        self.rows.insert(spec, time, fields, &mut self.mismatches)
    }

    /// Rebuilds the output from `from` on.
    pub fn recompute(&mut self, spec: &LeafSpec, from: u64) {
        self.rows.recompute(spec, &mut self.output, from);
    }

    /// Drops rows that can no longer affect the output at or after `keep_from` (all of them
    /// once the leaf is [settled](LeafSpec::settled_by)), and collapses the output before it.
    pub fn forget_before(&mut self, spec: &LeafSpec, keep_from: u64) {
        self.rows.forget_before(spec, keep_from, Some(&self.output));
        self.output.collapse_before(keep_from);
    }

    /// The number of stored event rows.
    pub fn rows(&self, spec: &LeafSpec) -> usize {
        self.rows.count(spec)
    }

    /// Bytes held (an estimate for memory statistics).
    pub fn heap_bytes(&self) -> usize {
        self.rows.heap_bytes() + self.output.heap_bytes()
    }
}

impl LeafSpec {
    fn width(&self) -> usize {
        self.columns.len()
    }

    /// The position of `column` among the leaf's columns (names are shared `Arc`s, so the
    /// pointer test usually decides).
    pub fn column_index(&self, column: &Arc<str>) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| Arc::ptr_eq(c, column) || **c == **column)
    }
}

impl LeafRows {
    /// Records an event; returns the time from which the leaf's timeline must be recomputed, or
    /// `None` if the event changes nothing this leaf reads. A predicate that meets a type
    /// mismatch adds one to `mismatches`.
    pub fn insert(
        &mut self,
        spec: &LeafSpec,
        time: u64,
        fields: &[(Arc<str>, Value)],
        mismatches: &mut u64,
    ) -> Option<u64> {
        let mut values: Vec<(usize, &Value)> = Vec::new();
        for (c, v) in fields {
            if let Some(j) = spec.column_index(c) {
                values.push((j, v));
            }
        }
        self.insert_values(spec, time, &values, mismatches)
    }

    /// [`LeafRows::insert`] with the event's fields already resolved: `(column index, value)`
    /// for each field the leaf reads, in the event's order (a later one wins).
    pub fn insert_values(
        &mut self,
        spec: &LeafSpec,
        time: u64,
        values: &[(usize, &Value)],
        mismatches: &mut u64,
    ) -> Option<u64> {
        if values.is_empty() && !spec.needs_every_event {
            return None;
        }
        let width = spec.width();
        // In-order arrival appends (one probe of the last row); a late event gallops back.
        let i = self.first_row(width, |t| t < time);
        let slots = i * width..(i + 1) * width;
        let existed = self.cells.get(slots.start).map(|c| c.time) == Some(time);
        // The verdict on a new row of one column, when it is known before the row is stored.
        let mut verdict_of_new = None;
        if existed {
            let mut changed = false;
            for &(j, v) in values {
                let slot = &mut self.cells[slots.start + j].value;
                if !slot.get().is_some_and(|old| same_exactly(&old, v)) {
                    *slot = PackedValue::new(Some(v));
                    changed = true;
                }
            }
            if !changed {
                return None;
            }
        } else {
            if spec.drops_false_rows {
                // One column: the new row would hold the event's last value for it. A row that
                // can never count is not stored at all (nor its value's count touched).
                let value = values.last().map(|&(_, v)| v);
                let verdict = evaluate(spec, |_| value);
                if verdict == Some(false) {
                    return None;
                }
                verdict_of_new = Some(verdict);
            }
            let appended = slots.start == self.cells.len();
            if width == 1 && appended {
                // In order, one column (nearly every leaf): the row is its one cell, holding
                // the event's last value for the column.
                let value = PackedValue::new(values.last().map(|&(_, v)| v));
                self.cells.push(Cell { time, value });
            } else {
                if appended {
                    self.cells.resize(slots.end, Cell::empty(time));
                } else {
                    self.cells.splice(
                        slots.start..slots.start,
                        std::iter::repeat_n(Cell::empty(time), width),
                    );
                }
                for &(j, v) in values {
                    self.cells[slots.start + j].value = PackedValue::new(Some(v));
                }
            }
        }
        let verdict =
            verdict_of_new.unwrap_or_else(|| evaluate_row(spec, &self.cells[slots.clone()]));
        if verdict.is_none() {
            *mismatches += 1;
        }
        if spec.drops_false_rows && verdict == Some(false) {
            // The row can never count, and the next value of its only column replaces it whole.
            self.cells.drain(slots);
            return existed.then_some(time);
        }
        Some(time)
    }

    /// The number of rows.
    fn row_count(&self, width: usize) -> usize {
        self.cells.len() / width
    }

    /// The time of row `i`.
    fn time(&self, width: usize, i: usize) -> u64 {
        self.cells[i * width].time
    }

    /// The first row whose time fails `before` (which holds for a prefix of the rows), searched
    /// from the end. Every cell of a row carries its time, so the cell found starts a row.
    fn first_row(&self, width: usize, before: impl Fn(u64) -> bool) -> usize {
        partition_point_from_end(&self.cells, |c| before(c.time)) / width
    }

    /// The value of column `j` in row `i`.
    fn value(&self, width: usize, i: usize, j: usize) -> Option<ValueView<'_>> {
        self.cells[i * width + j].value.get()
    }

    /// Whether row `i` counts: its predicate holds (or, without one, its column is present).
    fn matched(&self, spec: &LeafSpec, i: usize) -> bool {
        let width = spec.width();
        if spec.predicate.is_none() {
            // Without a predicate, a row counts when it holds its one column: no value read.
            return self.cells[i * width].value.is_some();
        }
        evaluate_row(spec, &self.cells[i * width..(i + 1) * width]) == Some(true)
    }

    /// Rebuilds the leaf's timeline `out` from `from` on.
    pub fn recompute(&self, spec: &LeafSpec, out: &mut Timeline, from: u64) {
        let before = if from == 0 {
            out.initial().clone()
        } else {
            out.value_at(from - 1)
        };
        out.truncate_from(from);
        self.extend(spec, from, &before, out);
    }

    /// Makes `out` a timeline that is exact from `from` on and holds nothing before (its
    /// initial value stands in for all earlier times), from the rows alone: for a
    /// [local](LeafSpec::is_local) leaf whose timeline is not kept between batches, only built
    /// for its readers when they are evaluated from `from` (into a buffer the engine lends).
    pub fn rebuild_into(&self, spec: &LeafSpec, from: u64, out: &mut Timeline) {
        debug_assert!(spec.is_local());
        out.truncate_from(0);
        if matches!(spec.kind, LeafKind::Latest) && from > 0 {
            // The value in force at `from`, unless a row at `from` replaces it.
            let before = self.first_row(spec.width(), |t| t < from);
            let last = (0..before)
                .rev()
                .find_map(|i| self.value(spec.width(), i, 0));
            if let Some(v) = last {
                out.push(from, State::Value(v.clone()));
            }
        }
        self.extend(spec, from, &State::Unknown, out);
    }

    /// Appends the output from `from` on (`before`: the value just before `from`, which
    /// `has_existed` and `count` continue from).
    fn extend(&self, spec: &LeafSpec, from: u64, before: &State, out: &mut Timeline) {
        let width = spec.width();
        let rows = self.row_count(width);
        let time = |i: usize| self.time(width, i);
        let matched = |i: usize| self.matched(spec, i);
        let first = self.first_row(width, |t| t < from);
        match spec.kind {
            LeafKind::Latest => {
                debug_assert_eq!(width, 1, "latest_event_to_state reads one column");
                for cell in &self.cells[first..] {
                    if let Some(v) = cell.value.get() {
                        out.push(cell.time, State::Value((*v).clone()));
                    }
                }
            }
            LeafKind::HasExisted => {
                if before.as_bool() != Some(true) {
                    if let Some(i) = (first..rows).find(|&i| matched(i)) {
                        out.push(time(i), State::bool(true));
                    }
                }
            }
            LeafKind::Count => {
                let mut n = instant_int(before);
                for i in (first..rows).filter(|&i| matched(i)) {
                    n += 1;
                    out.push(time(i), State::int(n));
                }
            }
            LeafKind::HasExistedWithin(d) => {
                // The union of [m, m + d) over matches m, from `from` on.
                out.push(from, State::bool(false));
                let start = self.first_row(width, |t| t.saturating_add(d) <= from);
                let mut open: Option<(u64, u64)> = None;
                for i in (start..rows).filter(|&i| matched(i)) {
                    let (s, e) = (time(i).max(from), time(i).saturating_add(d));
                    match &mut open {
                        Some((_, end)) if s <= *end => *end = (*end).max(e),
                        _ => {
                            if let Some((os, oe)) = open.take() {
                                out.push(os, State::bool(true));
                                out.push(oe, State::bool(false));
                            }
                            open = Some((s, e));
                        }
                    }
                }
                if let Some((os, oe)) = open {
                    out.push(os, State::bool(true));
                    out.push(oe, State::bool(false));
                }
            }
            LeafKind::CountWithin(d) | LeafKind::DistinctWithin(d) => {
                let distinct = matches!(spec.kind, LeafKind::DistinctWithin(_));
                let mut window = Window {
                    distinct,
                    count: 0,
                    seen: Distinct::Few(SmallVec::new()),
                };
                let key = |i: usize| self.value(width, i, 0);
                // Events in (from - d, from] are in the window at `from`.
                let mut leave = self.first_row(width, |t| t.saturating_add(d) <= from);
                let mut enter = leave;
                while enter < rows && time(enter) <= from {
                    window.add(matched(enter), key(enter).as_deref());
                    enter += 1;
                }
                out.push(from, window.state());
                loop {
                    let next_in = (enter < rows).then(|| time(enter));
                    let next_out = (leave < rows).then(|| time(leave).saturating_add(d));
                    let t = match (next_in, next_out) {
                        (None, None) => break,
                        (Some(a), Some(b)) => a.min(b),
                        (a, b) => a.or(b).expect("one is some"),
                    };
                    if t == u64::MAX && next_in != Some(t) {
                        break; // the window closes only after the end of time
                    }
                    while leave < enter && time(leave).saturating_add(d) == t {
                        window.remove(matched(leave), key(leave).as_deref());
                        leave += 1;
                    }
                    while enter < rows && time(enter) == t {
                        window.add(matched(enter), key(enter).as_deref());
                        enter += 1;
                    }
                    out.push(t, window.state());
                }
            }
        }
    }

    /// Drops rows that can no longer affect the output at or after `keep_from`: those before
    /// the window, except, for `latest_event_to_state`, the last one (its value is still in
    /// force at `keep_from`, and a leaf that keeps no timeline reads it from there); all of
    /// them once the leaf's timeline (`output`, where it is kept) shows it
    /// [settled](LeafSpec::settled_by).
    pub fn forget_before(&mut self, spec: &LeafSpec, keep_from: u64, output: Option<&Timeline>) {
        if output.is_some_and(|tl| spec.settled_by(&tl.value_at(keep_from))) {
            self.cells = Vec::new(); // the room too
            return;
        }
        let keep_rows_from = keep_from.saturating_sub(spec.window());
        let width = spec.width();
        let mut n = self.cells.partition_point(|c| c.time < keep_rows_from) / width;
        match spec.kind {
            LeafKind::Latest => n = n.saturating_sub(1),
            // Rows before `keep_from` can no longer change (later events only), and of those in
            // the window, the last that counts keeps the leaf true the longest: the others can
            // no longer decide anything at or after `keep_from`.
            LeafKind::HasExistedWithin(_) => {
                let before = self.cells.partition_point(|c| c.time < keep_from) / width;
                n = (n..before)
                    .rev()
                    .find(|&i| self.matched(spec, i))
                    .unwrap_or(before);
            }
            _ => {}
        }
        self.cells.drain(..n * width);
        crate::timeline::shrink(&mut self.cells);
    }

    /// Asks the CPU to load the last row, where in-order events go.
    pub fn prefetch_tail(&self) {
        crate::event::prefetch_last(&self.cells);
    }

    /// The number of stored event rows.
    pub fn count(&self, spec: &LeafSpec) -> usize {
        self.row_count(spec.width())
    }

    /// Bytes held (an estimate for memory statistics).
    pub fn heap_bytes(&self) -> usize {
        self.cells.capacity() * std::mem::size_of::<Cell>()
    }
}

/// The matching events inside a sliding window: how many, or how many distinct values.
struct Window {
    distinct: bool,
    count: i64,
    /// Per distinct value, how many matching events in the window hold it.
    seen: Distinct,
}

/// Counts per distinct value: a short list searched in order while the values are few (a
/// card's suburbs, a session's CDNs), where hashing every event's value took a tenth of a
/// `distinct_within` query's time; a hash map (fast and seeded) past [`FEW_DISTINCT`] values.
/// The list holds its first few values in place: a window is built for each recomputation
/// (each in-order event of a key), and a list of its own was an allocation each time.
enum Distinct {
    Few(SmallVec<[(ValueKey, u32); 4]>),
    Many(KeyMap<ValueKey, u32>),
}

const FEW_DISTINCT: usize = 16;

impl Distinct {
    /// Counts `value` once more; only a value new to the window is copied into a key.
    fn add(&mut self, value: &Value) {
        match self {
            Distinct::Few(few) => match few.iter().position(|(k, _)| k.is_key_of(value)) {
                Some(i) => few[i].1 += 1,
                None if few.len() < FEW_DISTINCT => few.push((ValueKey::from(value), 1)),
                None => {
                    let mut many: KeyMap<ValueKey, u32> = few.drain(..).collect();
                    many.insert(ValueKey::from(value), 1);
                    *self = Distinct::Many(many);
                }
            },
            Distinct::Many(many) => *many.entry(ValueKey::from(value)).or_insert(0) += 1,
        }
    }

    fn remove(&mut self, value: &Value) {
        match self {
            Distinct::Few(few) => {
                if let Some(i) = few.iter().position(|(k, _)| k.is_key_of(value)) {
                    few[i].1 -= 1;
                    if few[i].1 == 0 {
                        few.swap_remove(i);
                    }
                }
            }
            Distinct::Many(many) => {
                let key = ValueKey::from(value);
                if let Some(n) = many.get_mut(&key) {
                    *n -= 1;
                    if *n == 0 {
                        many.remove(&key);
                    }
                }
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Distinct::Few(few) => few.len(),
            Distinct::Many(many) => many.len(),
        }
    }
}

impl Window {
    fn add(&mut self, matched: bool, value: Option<&Value>) {
        if !matched {
            return;
        }
        self.count += 1;
        if self.distinct {
            self.seen.add(value.expect("matched rows hold the column"));
        }
    }

    fn remove(&mut self, matched: bool, value: Option<&Value>) {
        if !matched {
            return;
        }
        self.count -= 1;
        if self.distinct {
            self.seen
                .remove(value.expect("matched rows hold the column"));
        }
    }

    fn state(&self) -> State {
        State::int(if self.distinct {
            self.seen.len() as i64
        } else {
            self.count
        })
    }
}

/// [`evaluate`] over one row's cells.
fn evaluate_row(spec: &LeafSpec, row: &[Cell]) -> Option<bool> {
    match row {
        [cell] => {
            let value = cell.value.get();
            evaluate(spec, |_| value.as_deref())
        }
        [a, b] => {
            let values = [a.value.get(), b.value.get()];
            evaluate(spec, |j| values[j].as_deref())
        }
        _ => {
            let values: Vec<Option<ValueView>> = row.iter().map(|c| c.value.get()).collect();
            evaluate(spec, |j| values[j].as_deref())
        }
    }
}

/// Whether a row counts for the leaf: its predicate holds or, without one, its column is there;
/// `None` when a type mismatch leaves the predicate unknown (such a row does not count).
fn evaluate<'a>(spec: &LeafSpec, row: impl Fn(usize) -> Option<&'a Value>) -> Option<bool> {
    match &spec.predicate {
        None => Some(row(0).is_some()),
        Some(p) => {
            // The leaf's columns are the predicate's own `Arc`s: the address usually decides.
            let get = |c: &str| {
                let i = spec
                    .columns
                    .iter()
                    .position(|x| std::ptr::eq(x.as_ptr(), c.as_ptr()) || &**x == c)?;
                row(i)
            };
            p.eval(&get)
        }
    }
}

/// Same value and same type (`2` then `2.0` is a change of the stored value, even though the
/// timeline state does not change).
fn same_exactly(a: &Value, b: &Value) -> bool {
    a.type_name() == b.type_name() && a.same(b)
}

fn instant_int(s: &State) -> i64 {
    match s.instant_value() {
        Some(Value::Int(i)) => i,
        _ => 0,
    }
}

/// A derived node's state for one key: its output (its inputs live in other nodes).
#[derive(Clone, Debug)]
pub struct DerivedState {
    pub output: Timeline,
    /// Instants (change points) at which a comparison met a type mismatch.
    pub mismatches: u64,
}

impl DerivedState {
    pub fn new(initial: State) -> DerivedState {
        DerivedState {
            output: Timeline::new(initial),
            mismatches: 0,
        }
    }

    /// Rebuilds the output from `from` on, given the inputs (complete timelines) and the key's
    /// origin (its first event).
    pub fn recompute(
        &mut self,
        kind: &DerivedKind,
        inputs: &[&Timeline],
        from: u64,
        origin: Option<u64>,
    ) {
        kind.recompute(&mut self.output, inputs, from, origin, &mut self.mismatches);
    }

    /// Bytes held (an estimate for memory statistics).
    pub fn heap_bytes(&self) -> usize {
        self.output.heap_bytes()
    }
}

impl DerivedKind {
    /// Rebuilds `out` from `from` on, given the inputs (complete timelines) and the key's origin
    /// (its first event). Instants at which a comparison meets a type mismatch are added to
    /// `mismatches`.
    pub fn recompute(
        &self,
        out: &mut Timeline,
        inputs: &[&Timeline],
        from: u64,
        origin: Option<u64>,
        mismatches: &mut u64,
    ) {
        match self {
            DerivedKind::DurationWhere => duration_where(out, inputs[0], from, origin),
            DerivedKind::DurationInCurState => duration_in_cur_state(out, inputs[0], from, origin),
            _ => pointwise(self, out, inputs, from, mismatches),
        }
    }
}

fn pointwise(
    kind: &DerivedKind,
    out: &mut Timeline,
    inputs: &[&Timeline],
    from: u64,
    mismatches: &mut u64,
) {
    out.truncate_from(from);
    let mut times = change_times(inputs, from);
    let mut readers = [
        Reader::new(inputs[0], from),
        Reader::new(inputs.get(1).unwrap_or(&inputs[0]), from),
    ];
    while let Some(t) = times.next() {
        let next = times.peek().copied();
        match kind {
            DerivedKind::Not => {
                out.push(t, opt_bool(readers[0].bool_at(t).map(|b| !b)));
            }
            DerivedKind::And | DerivedKind::Or => {
                let (a, b) = (readers[0].bool_at(t), readers[1].bool_at(t));
                let v = if matches!(kind, DerivedKind::And) {
                    kleene_and(a, b)
                } else {
                    kleene_or(a, b)
                };
                out.push(t, opt_bool(v));
            }
            DerivedKind::Compare(op, c) => {
                // Read in place: cloning the state would touch a string's reference count.
                let (x, dt) = readers[0].state_at(t);
                let int_value;
                // A growing duration's value at `t`.
                let mut growing = None;
                let v = match x {
                    State::Unknown => {
                        out.push(t, State::Unknown);
                        continue;
                    }
                    State::Value(v) => v,
                    State::Duration(_) | State::Growing(_) => {
                        let now = instant_int(&x.advanced(dt));
                        if x.slope() == 1 {
                            growing = Some(now);
                        }
                        int_value = Value::Int(now);
                        &int_value
                    }
                };
                let Some(holds) = op.apply(v, c) else {
                    *mismatches += 1;
                    out.push(t, State::Unknown);
                    continue;
                };
                out.push(t, State::bool(holds));
                if let (Some(value), Value::Int(_) | Value::Float(_)) = (growing, c) {
                    // A growing duration crosses the constant at most at two integer instants.
                    for cross in crossings(value, c) {
                        let at = t as i128 + (cross - value as i128);
                        if at > t as i128
                            && next.is_none_or(|n| at < n as i128)
                            && at <= u64::MAX as i128
                        {
                            let holds = op.apply(&Value::Int(cross as i64), c).unwrap_or(false);
                            out.push(at as u64, State::bool(holds));
                        }
                    }
                }
            }
            DerivedKind::DurationWhere | DerivedKind::DurationInCurState => {
                unreachable!("not pointwise")
            }
        }
    }
}

fn duration_where(out: &mut Timeline, b: &Timeline, from: u64, origin: Option<u64>) {
    let Some(origin) = origin else {
        out.truncate_from(from);
        return;
    };
    let start = from.max(origin);
    let mut value = if start == origin {
        0
    } else {
        instant_int(&out.value_at(start))
    };
    out.truncate_from(from);
    let mut times = change_times(&[b], start);
    let mut reader = Reader::new(b, start);
    while let Some(t) = times.next() {
        let slope = u8::from(reader.bool_at(t) == Some(true));
        out.push(t, State::duration(value, slope));
        if let Some(&next) = times.peek() {
            value = value.saturating_add(i64::from(slope) * (next - t).min(i64::MAX as u64) as i64);
        }
    }
}

fn duration_in_cur_state(out: &mut Timeline, x: &Timeline, from: u64, origin: Option<u64>) {
    let Some(origin) = origin else {
        out.truncate_from(from);
        return;
    };
    let start = from.max(origin);
    // `run` is the start of the current run of equal values of x (never before the origin).
    let mut run = if start == origin {
        origin
    } else if !x.value_at(start).same_instant(&x.value_at(start - 1)) {
        start
    } else {
        match out.value_at(start - 1) {
            State::Duration(value) | State::Growing(value) => start - 1 - value as u64,
            _ => start,
        }
    };
    out.truncate_from(from);
    let mut times = change_times(&[x], start);
    // Two readers, at `t` and at `t - 1`: x's states are read in place, not cloned (a string's
    // reference count touched twice per change).
    let mut at_t = Reader::new(x, start);
    let mut before_t = Reader::new(x, start.saturating_sub(1));
    while let Some(t) = times.next() {
        let next = times.peek().copied();
        let (here, held) = at_t.state_at(t);
        if t > start && !same_instant_after(here, held, before_t.state_at(t - 1)) {
            run = t;
        }
        if matches!(here, State::Unknown) {
            out.push(t, State::Unknown);
            continue;
        }
        if here.slope() == 0 {
            out.push(t, State::Growing((t - run) as i64));
        } else {
            // x changes at every instant of a growing segment: each instant starts a new run.
            out.push(t, State::Duration((t - run) as i64));
            if next.is_none_or(|n| n > t + 1) {
                out.push(t + 1, State::Duration(0));
            }
            if let Some(n) = next {
                if n > t + 1 {
                    run = n - 1;
                }
            }
        }
    }
}

/// Whether `a`, in force for `held` instants, has the same instant value as `b.0` in force for
/// `b.1` (as `a.advanced(held).same_instant(&b.0.advanced(b.1))`, cloning nothing that does
/// not grow).
fn same_instant_after(a: &State, held: u64, (b, b_held): (&State, u64)) -> bool {
    if a.slope() == 0 && b.slope() == 0 {
        a.same_instant(b)
    } else {
        a.advanced(held).same_instant(&b.advanced(b_held))
    }
}

fn opt_bool(b: Option<bool>) -> State {
    b.map_or(State::Unknown, State::bool)
}

/// The integer values at which `x op c` can change truth, for a numeric constant `c`:
/// `ceil(c)` and `floor(c) + 1` (equal unless `c` is a whole number).
/// On the stack: this runs at every change of a growing duration compared with a constant.
fn crossings(current: i64, c: &Value) -> SmallVec<[i128; 2]> {
    let (lo, hi) = match *c {
        Value::Int(i) => (i as i128, i as i128 + 1),
        Value::Float(f) => (clamp(f.ceil()), clamp(f.floor()) + 1),
        _ => return SmallVec::new(),
    };
    let mut v: SmallVec<[i128; 2]> = [lo, hi]
        .into_iter()
        .filter(|&x| x > current as i128)
        .collect();
    v.dedup();
    v
}

fn clamp(f: f64) -> i128 {
    f.clamp(-1e30, 1e30) as i128
}

/// `from`, then every time after `from` at which an input (at most two) has a change point,
/// ascending and without repeats; `peek` gives the end of the current piece.
fn change_times<'a>(inputs: &[&'a Timeline], from: u64) -> std::iter::Peekable<ChangeTimes<'a>> {
    debug_assert!(
        inputs.len() <= 2,
        "derived operators have at most two inputs"
    );
    let after = |i: usize| {
        inputs.get(i).map_or(&[][..], |tl| {
            let pts = tl.points();
            &pts[partition_point_from_end(pts, |(t, _)| *t <= from)..]
        })
    };
    ChangeTimes {
        first: Some(from),
        a: after(0),
        b: after(1),
    }
    .peekable()
}

/// The merge of two inputs' change times (see [`change_times`]), without allocating.
struct ChangeTimes<'a> {
    first: Option<u64>,
    a: &'a [(u64, State)],
    b: &'a [(u64, State)],
}

impl Iterator for ChangeTimes<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if let Some(t) = self.first.take() {
            return Some(t);
        }
        let t = match (self.a.first(), self.b.first()) {
            (None, None) => return None,
            (Some(x), None) => x.0,
            (None, Some(y)) => y.0,
            (Some(x), Some(y)) => x.0.min(y.0),
        };
        if self.a.first().is_some_and(|x| x.0 == t) {
            self.a = &self.a[1..];
        }
        if self.b.first().is_some_and(|y| y.0 == t) {
            self.b = &self.b[1..];
        }
        Some(t)
    }
}

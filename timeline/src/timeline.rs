//! A timeline: change points in canonical form, point and range queries, and deltas.

use crate::value::State;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// A function of time, stored as change points `(t_i, s_i)`: `s_i` holds on `[t_i, t_{i+1})`
/// (advancing along its slope for a duration). Before the first point the timeline has its
/// initial value.
///
/// The points are always in canonical form: strictly increasing times, and no point that merely
/// continues the one before it. Two timelines are equal iff they are the same function.
#[derive(Clone, Debug)]
pub struct Timeline {
    initial: State,
    points: Vec<(u64, State)>,
    /// History before this time has been collapsed by retention; it can no longer be queried.
    /// 0 when nothing was (there is nothing before time 0 to collapse): a plain `u64` rather
    /// than an `Option` keeps a timeline at 48 bytes, and every key holds several.
    horizon: u64,
}

/// A piece of a timeline: `state` holds from `from` until `to` (exclusive; `None`: forever).
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub from: u64,
    pub to: Option<u64>,
    pub state: State,
}

impl Serialize for Segment {
    /// `{"from": T1, "to": T2 | null, "value": V | null, "slope": 0 | 1}`, where `value` is the
    /// value at `from` (`null` when unknown).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Segment", 4)?;
        st.serialize_field("from", &self.from)?;
        st.serialize_field("to", &self.to)?;
        st.serialize_field("value", &self.state)?;
        st.serialize_field("slope", &self.state.slope())?;
        st.end()
    }
}

/// Reads a timeline at non-decreasing times, each read in amortised constant time (a point
/// query is a binary search; operators walking forward through change points use this instead).
pub struct Reader<'a> {
    timeline: &'a Timeline,
    /// The index of the first point after the last time read.
    next: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at `t`.
    pub fn new(timeline: &'a Timeline, t: u64) -> Reader<'a> {
        Reader {
            timeline,
            next: timeline.first_at_or_after(t.saturating_add(1)),
        }
    }

    /// The point holding at `t` (`None`: the initial value) and how long it has held. `t` must
    /// not be before the previous read.
    fn seek(&mut self, t: u64) -> Option<&'a (u64, State)> {
        let points = &self.timeline.points;
        while self.next < points.len() && points[self.next].0 <= t {
            self.next += 1;
        }
        self.next.checked_sub(1).map(|i| &points[i])
    }

    /// The state in force at `t`, in place, and how long it has been in force (a duration's
    /// value at `t` is `state.advanced(dt)`).
    pub fn state_at(&mut self, t: u64) -> (&'a State, u64) {
        match self.seek(t) {
            None => (&self.timeline.initial, 0),
            Some((pt, s)) => (s, t - pt),
        }
    }

    /// The value at `t`, as [`Timeline::value_at`].
    pub fn at(&mut self, t: u64) -> State {
        match self.seek(t) {
            None => self.timeline.initial.clone(),
            Some((pt, s)) => s.advanced(t - pt),
        }
    }

    /// The value at `t` as a boolean (`None` if it is not one).
    pub fn bool_at(&mut self, t: u64) -> Option<bool> {
        match self.seek(t) {
            None => self.timeline.initial.as_bool(),
            Some((_, s)) => s.as_bool(),
        }
    }
}

/// What changed in a timeline: from time `from` on, it continues its earlier history up to the
/// first of `points`, then follows `points`. Applying a delta to a copy of the timeline before the
/// change gives the timeline after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Delta {
    pub from: u64,
    pub points: Vec<(u64, State)>,
}

impl Timeline {
    /// An empty timeline: `initial` everywhere.
    pub fn new(initial: State) -> Timeline {
        Timeline {
            initial,
            points: Vec::new(),
            horizon: 0,
        }
    }

    /// The value before the first change point.
    pub fn initial(&self) -> &State {
        &self.initial
    }

    /// The change points, in canonical form.
    pub fn points(&self) -> &[(u64, State)] {
        &self.points
    }

    /// The earliest time that can still be queried, when retention has collapsed history.
    pub fn horizon(&self) -> Option<u64> {
        (self.horizon > 0).then_some(self.horizon)
    }

    /// The index of the first point at or after `t`.
    fn first_at_or_after(&self, t: u64) -> usize {
        partition_point_from_end(&self.points, |(pt, _)| *pt < t)
    }

    /// The value at instant `t` (including a change at `t`); a duration reads as its value at `t`
    /// with its slope.
    pub fn value_at(&self, t: u64) -> State {
        let i = self.first_at_or_after(t.saturating_add(1));
        match i {
            0 => self.initial.clone(),
            i => {
                let (pt, s) = &self.points[i - 1];
                s.advanced(t - pt)
            }
        }
    }

    /// The segments covering `[t1, t2)`, the first starting at `t1`.
    pub fn range(&self, t1: u64, t2: u64) -> Vec<Segment> {
        if t2 <= t1 {
            return Vec::new();
        }
        let mut out = vec![Segment {
            from: t1,
            to: None,
            state: self.value_at(t1),
        }];
        let start = self.first_at_or_after(t1 + 1);
        for (t, s) in self.points[start..].iter().take_while(|(t, _)| *t < t2) {
            out.last_mut().expect("non-empty").to = Some(*t);
            out.push(Segment {
                from: *t,
                to: None,
                state: s.clone(),
            });
        }
        out.last_mut().expect("non-empty").to = Some(t2);
        out
    }

    /// The whole timeline as segments from time 0 (or from the retention horizon) on: the initial
    /// value up to the first change point, then one segment per change point, the last one
    /// open-ended.
    pub fn segments(&self) -> Vec<Segment> {
        let start = self.horizon;
        let mut out = Vec::with_capacity(self.points.len() + 1);
        if self.points.first().is_none_or(|(t, _)| *t > start) {
            out.push(Segment {
                from: start,
                to: self.points.first().map(|(t, _)| *t),
                state: self.initial.clone(),
            });
        }
        out.extend(self.points.iter().enumerate().map(|(i, (t, s))| Segment {
            from: *t,
            to: self.points.get(i + 1).map(|(t, _)| *t),
            state: s.clone(),
        }));
        out
    }

    /// Removes every change point at or after `t` and returns them.
    pub fn split_off_from(&mut self, t: u64) -> Vec<(u64, State)> {
        let i = self.first_at_or_after(t);
        self.points.split_off(i)
    }

    /// As [`split_off_from`](Self::split_off_from), into `into` (cleared first, its room reused).
    pub fn split_off_into(&mut self, t: u64, into: &mut Vec<(u64, State)>) {
        let i = self.first_at_or_after(t);
        into.clear();
        into.extend(self.points.drain(i..));
    }

    /// Removes every change point at or after `t`.
    pub fn truncate_from(&mut self, t: u64) {
        let i = self.first_at_or_after(t);
        self.points.truncate(i);
    }

    /// Appends a change point at `t` (not before the last one; at the same time it replaces it),
    /// keeping canonical form: a point that continues the current value is dropped.
    pub fn push(&mut self, t: u64, state: State) {
        if let Some((last, _)) = self.points.last() {
            debug_assert!(*last <= t, "change points must be appended in time order");
            if *last == t {
                self.points.pop();
            }
        }
        let continues = match self.points.last() {
            Some((pt, s)) => s.continues_as(t - pt, &state),
            // The initial value holds still (a growing one after a collapse is anchored by a
            // point at the horizon, which stays).
            None => state.slope() == 0 && self.initial.same(&state),
        };
        if !continues {
            self.points.push((t, state));
        }
    }

    /// The change from `from` on, to send to a copy of this timeline.
    pub fn delta_from(&self, from: u64) -> Delta {
        let i = self.first_at_or_after(from);
        let mut points = Vec::with_capacity(self.points.len() - i + 1);
        // A collapsed timeline's value at its horizon may be its initial value, which a copy
        // does not share: it travels as a point.
        if self.horizon > 0
            && from <= self.horizon
            && self.points.first().is_none_or(|p| p.0 > self.horizon)
        {
            points.push((self.horizon, self.initial.clone()));
        }
        points.extend_from_slice(&self.points[i..]);
        Delta { from, points }
    }

    /// Applies a delta made by [`Timeline::delta_from`] on the original.
    pub fn apply(&mut self, delta: &Delta) {
        self.truncate_from(delta.from);
        for (t, s) in &delta.points {
            self.push(*t, s.clone());
        }
    }

    /// The first time at which `self` and `other` differ as functions (`None` if they are the
    /// same from `from` on). Both must agree before `from`.
    pub fn first_difference_from(&self, other_points: &[(u64, State)], from: u64) -> Option<u64> {
        let mine = &self.points[self.first_at_or_after(from)..];
        let i = partition_point_from_end(other_points, |(t, _)| *t < from);
        let theirs = &other_points[i..];
        for (k, a) in mine.iter().enumerate() {
            match theirs.get(k) {
                Some(b) if a.0 == b.0 && a.1.same(&b.1) => continue,
                Some(b) => return Some(a.0.min(b.0)),
                None => return Some(a.0),
            }
        }
        theirs.get(mine.len()).map(|(t, _)| *t)
    }

    /// Forgets history before `t`: the value at `t` becomes the initial value, and earlier
    /// points are dropped. A value growing at `t` (a duration) also stays a change point at
    /// `t`, where its growth is counted from. Queries before `t` are then refused by the
    /// engine. Collapsing before 0 (or before an earlier horizon) changes nothing.
    pub fn collapse_before(&mut self, t: u64) {
        if self.horizon >= t {
            return;
        }
        let at_t = self.value_at(t);
        // The points up to `t` (before it, and one at it): the value at `t` stands for them.
        let i = self.first_at_or_after(t.saturating_add(1));
        self.points.drain(..i);
        if at_t.slope() != 0 {
            self.points.insert(0, (t, at_t.clone()));
        }
        self.initial = at_t;
        shrink(&mut self.points);
        self.horizon = t;
    }

    /// Asks the CPU to load the last change point, where appends and recomputations start.
    pub fn prefetch_tail(&self) {
        crate::event::prefetch_last(&self.points);
    }

    /// Bytes held by the change points (an estimate for memory statistics).
    pub fn heap_bytes(&self) -> usize {
        self.points.capacity() * std::mem::size_of::<(u64, State)>()
    }
}

/// `items.partition_point(pred)`, searched from the end: changes and queries happen mostly near
/// the end of a timeline, and a search that gallops back from there reads only the tail, in
/// `O(log k)` for an answer `k` places from the end, instead of touching cold memory all over
/// a long history.
pub(crate) fn partition_point_from_end<T>(items: &[T], pred: impl Fn(&T) -> bool) -> usize {
    // Invariant: `pred` fails for every item at or after `hi`.
    let mut hi = items.len();
    let mut step = 1;
    while hi > 0 {
        let probe = hi.saturating_sub(step);
        if pred(&items[probe]) {
            return probe + 1 + items[probe + 1..hi].partition_point(&pred);
        }
        hi = probe;
        step *= 2;
    }
    0
}

/// Gives back spare capacity after history was dropped, so that a key's memory follows what it
/// holds rather than its peak. A short vector (under a retention horizon, most hold one to five
/// entries) is shrunk to fit: one spare entry would be a fifth to a half of it.
pub(crate) fn shrink<T>(v: &mut Vec<T>) {
    if v.capacity() > v.len() + v.len() / 4 {
        v.shrink_to(v.len() + v.len() / 4);
    }
}

impl PartialEq for Timeline {
    fn eq(&self, other: &Timeline) -> bool {
        self.initial.same(&other.initial)
            && self.points.len() == other.points.len()
            && self
                .points
                .iter()
                .zip(&other.points)
                .all(|(a, b)| a.0 == b.0 && a.1.same(&b.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(value: i64, slope: u8) -> State {
        State::duration(value, slope)
    }

    #[test]
    fn partition_point_from_end_agrees_with_partition_point() {
        for n in 0..40 {
            let items: Vec<u64> = (0..n).map(|i| i * 2).collect();
            for t in 0..(2 * n + 2) {
                assert_eq!(
                    partition_point_from_end(&items, |x| *x < t),
                    items.partition_point(|x| *x < t),
                    "n={n} t={t}"
                );
            }
        }
    }

    #[test]
    fn push_keeps_canonical_form() {
        let mut tl = Timeline::new(State::bool(false));
        tl.push(1, State::bool(false));
        tl.push(2, State::bool(true));
        tl.push(3, State::bool(true));
        tl.push(5, State::bool(false));
        tl.push(5, State::bool(true)); // same time: replaces, then merges with [2, ..)
        assert_eq!(tl.points(), &[(2, State::bool(true))]);

        let mut dur = Timeline::new(d(0, 0));
        dur.push(6, d(0, 1));
        dur.push(7, d(1, 1)); // continues the slope
        dur.push(9, d(3, 0));
        assert_eq!(dur.points(), &[(6, d(0, 1)), (9, d(3, 0))]);
        assert_eq!(dur.value_at(8), d(2, 1));
        assert_eq!(dur.value_at(100), d(3, 0));
        assert_eq!(dur.value_at(0), d(0, 0));
    }

    #[test]
    fn ints_and_floats_merge() {
        let mut tl = Timeline::new(State::Unknown);
        tl.push(1, State::int(2));
        tl.push(2, State::Value(crate::Value::Float(2.0)));
        assert_eq!(tl.points().len(), 1);
    }

    #[test]
    fn segments_start_with_the_initial_value() {
        let mut tl = Timeline::new(State::bool(false));
        assert_eq!(
            tl.segments(),
            vec![Segment {
                from: 0,
                to: None,
                state: State::bool(false)
            }]
        );
        tl.push(4, State::bool(true));
        assert_eq!(
            tl.segments(),
            vec![
                Segment {
                    from: 0,
                    to: Some(4),
                    state: State::bool(false)
                },
                Segment {
                    from: 4,
                    to: None,
                    state: State::bool(true)
                },
            ]
        );
    }

    #[test]
    fn ranges_start_at_t1_and_end_at_t2() {
        let mut tl = Timeline::new(State::int(0));
        tl.push(3, State::int(1));
        tl.push(6, State::int(2));
        let r = tl.range(2, 6);
        assert_eq!(
            r,
            vec![
                Segment {
                    from: 2,
                    to: Some(3),
                    state: State::int(0)
                },
                Segment {
                    from: 3,
                    to: Some(6),
                    state: State::int(1)
                },
            ]
        );
        assert!(tl.range(5, 5).is_empty());
    }

    #[test]
    fn deltas_bring_a_copy_up_to_date() {
        let mut a = Timeline::new(State::int(0));
        for t in [1, 4, 8] {
            a.push(t, State::int(t as i64));
        }
        let mut copy = a.clone();
        a.truncate_from(4);
        a.push(5, State::int(9));
        copy.apply(&a.delta_from(4));
        assert_eq!(copy, a);
    }

    #[test]
    fn collapse_keeps_the_value_at_the_horizon() {
        let mut dur = Timeline::new(d(0, 0));
        dur.push(2, d(0, 1));
        dur.push(10, d(8, 0));
        dur.collapse_before(5);
        // Growing at 5: the point anchors the growth.
        assert_eq!(dur.points(), &[(5, d(3, 1)), (10, d(8, 0))]);
        assert_eq!(dur.value_at(7), d(5, 1));
        assert_eq!(dur.horizon(), Some(5));
        // Constant at 12: the initial value holds it, and a copy is sent it as a point.
        dur.collapse_before(12);
        assert_eq!(dur.points(), &[]);
        assert_eq!(dur.initial(), &d(8, 0));
        assert_eq!(dur.value_at(20), d(8, 0));
        let mut copy = Timeline::new(d(0, 0));
        copy.apply(&dur.delta_from(0));
        assert_eq!(copy.value_at(12), d(8, 0));
        assert_eq!(dur.segments()[0].from, 12);
        // An earlier or equal horizon changes nothing.
        let before = dur.clone();
        dur.collapse_before(3);
        dur.collapse_before(12);
        assert_eq!(dur, before);
        assert_eq!(dur.horizon(), Some(12));
    }

    #[test]
    fn collapsing_before_zero_forgets_nothing() {
        let mut tl = Timeline::new(d(0, 0));
        tl.push(0, d(4, 0));
        tl.push(3, d(1, 1));
        let before = tl.clone();
        tl.collapse_before(0);
        assert_eq!(tl, before);
        assert_eq!(tl.points(), before.points());
        assert_eq!(tl.horizon(), None);
        assert_eq!(tl.segments(), before.segments());
    }
}

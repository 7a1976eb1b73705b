//! One group's aggregate at an instant ([`Partial`]), what each function reads from it, and the
//! canonical timeline of a function over a group's partials.
//!
//! A partial holds, for the members of a group, sums and extremes in a form that stays constant
//! between the times a member enters, leaves or changes: a growing duration `v + (t - p)` is held
//! as its intercept `v - p`, so the sum of the members is `int_sum + growing * t` at any `t`, and
//! the least growing member is the one with the least intercept. A group's aggregate is then a
//! step function of partials; partials of disjoint sets of keys (threads, shards) combine exactly.

use super::exact::ExactSum;
use super::AggFn;
use crate::value::{cmp_int_float, Value};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A number in an aggregate: an exact integer or a float.
#[derive(Clone, Copy, Debug)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    /// Numeric order (`2 == 2.0`).
    pub fn numeric_cmp(&self, other: &Num) -> Ordering {
        match (*self, *other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (Num::Float(a), Num::Float(b)) => a.total_cmp(&b),
            (Num::Int(a), Num::Float(b)) => cmp_int_float(a, b),
            (Num::Float(a), Num::Int(b)) => cmp_int_float(b, a).reverse(),
        }
    }

    /// A total order: numeric, and an integer before an equal float (so that the least and the
    /// greatest of a set do not depend on the order it was built in).
    pub fn total_cmp(&self, other: &Num) -> Ordering {
        self.numeric_cmp(other).then_with(|| {
            let rank = |n: &Num| matches!(n, Num::Float(_)) as u8;
            rank(self).cmp(&rank(other))
        })
    }

    /// The number as an event value.
    pub fn to_value(self) -> Value {
        match self {
            Num::Int(i) => Value::Int(i),
            Num::Float(f) => Value::Float(f),
        }
    }

    /// As a float (rounded for large integers).
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn from_i128(i: i128) -> Num {
        i64::try_from(i).map_or(Num::Float(i as f64), Num::Int)
    }
}

impl PartialEq for Num {
    /// Numeric equality.
    fn eq(&self, other: &Num) -> bool {
        self.numeric_cmp(other) == Ordering::Equal
    }
}

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Num::Int(i) => s.serialize_i64(i),
            Num::Float(f) => s.serialize_f64(f),
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    /// An integer as `Int`, anything else numeric as `Float` (what [`Serialize`] writes).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Num;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E>(self, i: i64) -> Result<Num, E> {
                Ok(Num::Int(i))
            }
            fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Num, E> {
                i64::try_from(u)
                    .map(Num::Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Num, E> {
                if f.is_finite() {
                    Ok(Num::Float(f))
                } else {
                    Err(E::custom("not a finite number"))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// [`Num`] in its total order, as a map key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NumKey(pub Num);

impl PartialEq for NumKey {
    fn eq(&self, other: &NumKey) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for NumKey {}
impl PartialOrd for NumKey {
    fn partial_cmp(&self, other: &NumKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for NumKey {
    fn cmp(&self, other: &NumKey) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// What one member adds to its group while its value stays the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Contrib {
    /// A member whose value is unknown: counted as a member only.
    Unknown,
    /// A known value that is not a number (a string): counted by `count` only.
    Other,
    /// An integer, a bool (1 or 0) or a duration that holds still.
    Int(i64),
    /// A float.
    Float(NumKey),
    /// A growing duration worth `intercept + t` at time `t`.
    Grow(i128),
}

impl Contrib {
    /// The least contribution, for range bounds.
    pub(crate) const FIRST: Contrib = Contrib::Unknown;
}

/// The least and the greatest member of a group, in the form that holds between changes: the
/// extreme value among the members that hold still, and the extreme intercept among the growing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Extreme {
    pub constant: Option<Num>,
    pub growing: Option<i128>,
}

/// A group's aggregate state between two changes of its members (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// Members: keys in the group that have started.
    pub members: u64,
    /// Members with a known value (what `count` counts).
    pub known: u64,
    /// Members with a numeric value (what `sum`, `avg`, `min` and `max` read).
    pub numeric: u64,
    /// The integers and the growing intercepts, summed.
    pub int_sum: i128,
    /// The number of growing members (the slope of the sum).
    pub growing: i64,
    /// The floats, summed exactly.
    pub float_sum: ExactSum,
    /// The number of float members.
    pub floats: u64,
    pub min: Extreme,
    pub max: Extreme,
}

/// One piece of a function's timeline: `value` at `from`, changing by `slope` per time unit
/// until `to` (exclusive; `None`: on). `value` is `None` where the function is unknown.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AggSegment {
    pub from: u64,
    pub to: Option<u64>,
    pub value: Option<Num>,
    pub slope: Num,
}

impl Partial {
    /// Whether every number in it is finite (what a partial from another worker must be).
    pub fn is_well_formed(&self) -> bool {
        let finite = |n: &Option<Num>| !matches!(n, Some(Num::Float(f)) if !f.is_finite());
        self.float_sum.is_finite() && finite(&self.min.constant) && finite(&self.max.constant)
    }

    /// Adds the members of another partial (of other keys) to this one.
    pub fn combine(&mut self, other: &Partial) {
        self.members += other.members;
        self.known += other.known;
        self.numeric += other.numeric;
        self.int_sum += other.int_sum;
        self.growing += other.growing;
        self.float_sum.add_sum(&other.float_sum);
        self.floats += other.floats;
        let pick = |a: Option<Num>, b: Option<Num>, keep: Ordering| match (a, b) {
            (Some(x), Some(y)) => Some(if y.total_cmp(&x) == keep { y } else { x }),
            (x, y) => x.or(y),
        };
        self.min.constant = pick(self.min.constant, other.min.constant, Ordering::Less);
        self.max.constant = pick(self.max.constant, other.max.constant, Ordering::Greater);
        self.min.growing = opt_fold(self.min.growing, other.min.growing, i128::min);
        self.max.growing = opt_fold(self.max.growing, other.max.growing, i128::max);
    }

    /// The value of `f` at `t` (`None`: unknown) and its slope there.
    pub fn eval(&self, f: AggFn, t: u64) -> (Option<Num>, Num) {
        match f {
            AggFn::Count => (Some(Num::Int(self.known as i64)), Num::Int(0)),
            AggFn::Sum => (self.sum_at(t), Num::Int(self.growing)),
            AggFn::Avg => match (self.numeric, self.sum_at(t)) {
                (0, _) | (_, None) => (None, Num::Int(0)),
                (n, Some(sum)) => (
                    Some(Num::Float(sum.as_f64() / n as f64)),
                    Num::Float(self.growing as f64 / n as f64),
                ),
            },
            AggFn::Min => extreme_at(&self.min, t, Ordering::Less),
            AggFn::Max => extreme_at(&self.max, t, Ordering::Greater),
        }
    }

    /// The sum of the numeric members at `t` (`None` once a float sum overflowed).
    fn sum_at(&self, t: u64) -> Option<Num> {
        let ints = self.int_sum + self.growing as i128 * t as i128;
        if self.floats == 0 {
            return Some(Num::from_i128(ints));
        }
        let mut s = self.float_sum.clone();
        s.add_int(ints);
        s.value().map(Num::Float)
    }

    /// The first time after `t` at which `f` changes course with no member changing: where a
    /// growing member overtakes one that holds still, for `min` and `max`.
    pub fn crossing_after(&self, f: AggFn, t: u64) -> Option<u64> {
        let (ext, ord) = match f {
            AggFn::Min => (&self.min, Ordering::Less),
            AggFn::Max => (&self.max, Ordering::Greater),
            _ => return None,
        };
        let (Some(c), Some(b)) = (ext.constant, ext.growing) else {
            return None;
        };
        // While the growing member is below the still one it is the least (min) or not the
        // greatest (max); either changes once it reaches the least integer `x >= c`.
        let _ = ord;
        let x: i128 = match c {
            Num::Int(c) => c as i128,
            Num::Float(c) if c.abs() >= 9.2e18 => return None,
            Num::Float(c) => c.ceil() as i128,
        };
        let at = x - b;
        (at > t as i128 && at <= u64::MAX as i128).then_some(at as u64)
    }
}

fn opt_fold(a: Option<i128>, b: Option<i128>, f: fn(i128, i128) -> i128) -> Option<i128> {
    match (a, b) {
        (Some(x), Some(y)) => Some(f(x, y)),
        (x, y) => x.or(y),
    }
}

/// The extreme at `t` and its slope: the growing candidate wins where it is strictly beyond the
/// one that holds still (`keep`: `Less` for min).
fn extreme_at(ext: &Extreme, t: u64, keep: Ordering) -> (Option<Num>, Num) {
    let grown = ext.growing.map(|b| Num::Int(saturate(b + t as i128)));
    match (ext.constant, grown) {
        (None, None) => (None, Num::Int(0)),
        (Some(c), None) => (Some(c), Num::Int(0)),
        (None, Some(g)) => (Some(g), Num::Int(1)),
        // On a tie the one that wins from then on: the still one for min, the growing for max.
        (Some(c), Some(g)) if g.numeric_cmp(&c) == keep => (Some(g), Num::Int(1)),
        (Some(c), Some(g)) if keep == Ordering::Greater && g == c => (Some(g), Num::Int(1)),
        (Some(c), Some(_)) => (Some(c), Num::Int(0)),
    }
}

fn saturate(i: i128) -> i64 {
    i.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// A running partial with the multisets its extremes come from, changed one contribution at a
/// time (either way: a change is undone by applying it with the opposite count).
#[derive(Clone, Debug, Default)]
pub(crate) struct Accumulator {
    sums: Partial,
    constants: BTreeMap<NumKey, u64>,
    growing: BTreeMap<i128, u64>,
    /// Keeps no multisets (for functions other than `min` and `max`): the partials it makes
    /// have no extremes.
    pub(crate) no_extremes: bool,
}

impl Accumulator {
    /// Applies `n` members contributing `c` (`n < 0` removes them).
    pub(crate) fn apply(&mut self, c: &Contrib, n: i64) {
        let s = &mut self.sums;
        s.members = s.members.wrapping_add_signed(n);
        match *c {
            Contrib::Unknown => {}
            Contrib::Other => s.known = s.known.wrapping_add_signed(n),
            Contrib::Int(v) => {
                s.known = s.known.wrapping_add_signed(n);
                s.numeric = s.numeric.wrapping_add_signed(n);
                s.int_sum += v as i128 * n as i128;
                if !self.no_extremes {
                    bump(&mut self.constants, NumKey(Num::Int(v)), n);
                }
            }
            Contrib::Float(NumKey(x)) => {
                s.known = s.known.wrapping_add_signed(n);
                s.numeric = s.numeric.wrapping_add_signed(n);
                s.floats = s.floats.wrapping_add_signed(n);
                let f = x.as_f64();
                for _ in 0..n.unsigned_abs() {
                    s.float_sum.add(if n > 0 { f } else { -f });
                }
                if !self.no_extremes {
                    bump(&mut self.constants, NumKey(x), n);
                }
            }
            Contrib::Grow(b) => {
                s.known = s.known.wrapping_add_signed(n);
                s.numeric = s.numeric.wrapping_add_signed(n);
                s.int_sum += b * n as i128;
                s.growing += n;
                if !self.no_extremes {
                    bump(&mut self.growing, b, n);
                }
            }
        }
    }

    /// The partial these members make.
    pub(crate) fn snapshot(&self) -> Partial {
        let mut p = self.sums.clone();
        let first = self.constants.keys().next().map(|k| k.0);
        let last = self.constants.keys().next_back().map(|k| k.0);
        p.min = Extreme {
            constant: first,
            growing: self.growing.keys().next().copied(),
        };
        p.max = Extreme {
            constant: last,
            growing: self.growing.keys().next_back().copied(),
        };
        // A float sum of no floats is exactly zero, whatever the parts say.
        if p.floats == 0 {
            p.float_sum = ExactSum::default();
        }
        p
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.sums.float_sum.heap_bytes() + (self.constants.len() + self.growing.len()) * 40
    }
}

fn bump<K: Ord + Copy>(map: &mut BTreeMap<K, u64>, k: K, n: i64) {
    let count = map.entry(k).or_insert(0);
    *count = count.wrapping_add_signed(n);
    if *count == 0 {
        map.remove(&k);
    }
}

/// Folds a step function's points before `h` into one point at `h` (retention).
pub fn collapse_points(points: &mut Vec<(u64, Partial)>, h: u64) {
    let i = points.partition_point(|(t, _)| *t <= h);
    if i > 0 && points[i - 1].0 < h {
        points[i - 1].0 = h;
    }
    points.drain(..i.saturating_sub(1));
}

/// The partial in force at `t` in a step function of partials.
pub fn partial_at(points: &[(u64, Partial)], t: u64) -> Option<&Partial> {
    let i = points.partition_point(|(pt, _)| *pt <= t);
    i.checked_sub(1).map(|i| &points[i].1)
}

/// The canonical timeline of `f` over `[t1, t2)` (`t2: None`: on), from a group's step function
/// of partials (before its first point, the group has no members).
pub fn segments(points: &[(u64, Partial)], f: AggFn, t1: u64, t2: Option<u64>) -> Vec<AggSegment> {
    let empty = Partial::default();
    let before = |t: u64| t2.is_none_or(|end| t < end);
    let mut out: Vec<AggSegment> = Vec::new();
    if !before(t1) {
        return out;
    }
    let first = points.partition_point(|(pt, _)| *pt <= t1);
    let mut pieces: Vec<(u64, &Partial)> = vec![(t1, partial_at(points, t1).unwrap_or(&empty))];
    pieces.extend(
        points[first..]
            .iter()
            .take_while(|(t, _)| before(*t))
            .map(|(t, p)| (*t, p)),
    );
    let mut previous: Option<&Partial> = None;
    for (k, &(start, p)) in pieces.iter().enumerate() {
        let end = pieces.get(k + 1).map(|(t, _)| *t).or(t2);
        let (value, slope) = p.eval(f, start);
        // Does the last segment, continued, give this piece's value and slope? Min and max
        // segments continue exactly by their integer slope; the others as their partial says
        // (an average's float slope would round).
        let continues = previous.is_some_and(|q| {
            let (v, s) = match (f, out.last()) {
                (AggFn::Min | AggFn::Max, Some(last)) => (continued(last, start), last.slope),
                _ => q.eval(f, start),
            };
            same(v, value) && s == slope
        });
        if !continues {
            push(&mut out, start, value, slope);
        }
        previous = Some(p);
        // Within a piece, min and max change course where a growing member crosses.
        let mut t = start;
        while let Some(c) = p.crossing_after(f, t) {
            if end.is_some_and(|e| c >= e) {
                break;
            }
            let (value, slope) = p.eval(f, c);
            push(&mut out, c, value, slope);
            t = c;
        }
    }
    if let Some(last) = out.last_mut() {
        last.to = t2;
    }
    out
}

/// A min or max segment's value at `t`: it holds still or grows by one (saturating like the
/// durations it follows).
fn continued(s: &AggSegment, t: u64) -> Option<Num> {
    match (s.value, s.slope) {
        (Some(Num::Int(v)), Num::Int(1)) => {
            Some(Num::Int(saturate(v as i128 + (t - s.from) as i128)))
        }
        (v, _) => v,
    }
}

fn same(a: Option<Num>, b: Option<Num>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn push(out: &mut Vec<AggSegment>, from: u64, value: Option<Num>, slope: Num) {
    if let Some(last) = out.last_mut() {
        last.to = Some(from);
    }
    out.push(AggSegment {
        from,
        to: None,
        value,
        slope,
    });
}

/// The step function of partials of the union of disjoint sets of keys, from each set's.
pub fn merge_points(inputs: &[&[(u64, Partial)]]) -> Vec<(u64, Partial)> {
    let mut out = Vec::new();
    merge_points_from(inputs, 0, &mut out);
    out
}

/// Recomputes `out`, the merge of `inputs`, from time `from` on (its points before `from` stay):
/// what a merge costs when the inputs changed from `from` on.
pub fn merge_points_from(inputs: &[&[(u64, Partial)]], from: u64, out: &mut Vec<(u64, Partial)>) {
    out.truncate(out.partition_point(|(t, _)| *t < from));
    let mut times: Vec<u64> = inputs
        .iter()
        .flat_map(|p| {
            p[p.partition_point(|(t, _)| *t < from)..]
                .iter()
                .map(|(t, _)| *t)
        })
        .chain([from])
        .collect();
    times.sort_unstable();
    times.dedup();
    let mut next: Vec<usize> = inputs
        .iter()
        .map(|p| p.partition_point(|(t, _)| *t < from))
        .collect();
    for t in times {
        let mut sum = Partial::default();
        for (input, i) in inputs.iter().zip(next.iter_mut()) {
            while *i < input.len() && input[*i].0 <= t {
                *i += 1;
            }
            if let Some(i) = i.checked_sub(1) {
                sum.combine(&input[i].1);
            }
        }
        if sum.floats == 0 {
            sum.float_sum = ExactSum::default();
        }
        if out
            .last()
            .map_or(sum != Partial::default(), |(_, last)| *last != sum)
        {
            out.push((t, sum));
        }
    }
}

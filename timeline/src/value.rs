//! Event values and timeline states.
//!
//! [`Value`] is what an event carries in a column; [`State`] is what a timeline holds at an
//! instant: a value, *unknown*, or a piecewise-linear duration.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// A shared, immutable string: one pointer wide (where `Arc<str>` is two), so that a [`Value`]
/// takes 16 bytes and a timeline's change point 24, and one allocation holding the count, the
/// length and the bytes, so that reading it costs one load from memory, not two. Cloning shares
/// it. It compares, hashes and prints as the `str` it holds.
///
/// ```
/// use timeline::value::Str;
/// let s = Str::from("CDN1");
/// assert_eq!(&*s, "CDN1");
/// assert!(Str::ptr_eq(&s, &s.clone()));
/// ```
#[derive(Clone)]
pub struct Str(triomphe::ThinArc<(), u8>);

impl Str {
    /// Whether `a` and `b` share one allocation (then they are equal without reading them).
    pub fn ptr_eq(a: &Str, b: &Str) -> bool {
        a.0.ptr() == b.0.ptr()
    }

    /// The address of the shared allocation: the same for every clone.
    pub fn addr(&self) -> usize {
        self.0.ptr() as usize
    }

    /// The allocation's address, its count kept (for [`crate::packed`], which stores it).
    pub(crate) fn into_raw(self) -> *const std::ffi::c_void {
        self.0.into_raw()
    }

    /// The string back from [`Str::into_raw`].
    ///
    /// # Safety
    /// `address` came from `into_raw`, and the count it kept is given back once (by dropping
    /// the result once, or never dropping it, as a copy that borrows a live one).
    pub(crate) unsafe fn from_raw(address: *const std::ffi::c_void) -> Str {
        Str(triomphe::ThinArc::from_raw(address))
    }

    /// How many `Str`s share the allocation.
    #[cfg(test)]
    pub(crate) fn strong_count(&self) -> usize {
        triomphe::ThinArc::strong_count(&self.0)
    }
}

impl Deref for Str {
    type Target = str;

    fn deref(&self) -> &str {
        // SAFETY: a `Str` is only made from a `str` (`From` below), whose bytes are UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0.slice) }
    }
}

impl Borrow<str> for Str {
    fn borrow(&self) -> &str {
        self
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Str) -> bool {
        Str::ptr_eq(self, other) || **self == **other
    }
}

impl Eq for Str {}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Str) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Str) -> Ordering {
        (**self).cmp(&**other)
    }
}

impl Hash for Str {
    /// As the `str`, so that a map keyed by `Str` can be searched with a `&str`.
    fn hash<H: Hasher>(&self, h: &mut H) {
        (**self).hash(h)
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Str {
        Str(triomphe::ThinArc::from_header_and_slice((), s.as_bytes()))
    }
}

impl From<String> for Str {
    fn from(s: String) -> Str {
        Str::from(s.as_str())
    }
}

/// A value carried by an event column, or a constant in a query.
///
/// `Int` and `Float` compare numerically (`5 == 5.0`). A string or bool never compares with a
/// number: such a comparison is a *type mismatch* (see [`Value::compare`]).
#[derive(Clone, Debug)]
pub enum Value {
    Str(Str),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::Str(Str::from(s))
    }

    /// A float value, rejecting NaN and infinities (they have no place in a timeline).
    pub fn float(f: f64) -> Result<Value, String> {
        if f.is_finite() {
            Ok(Value::Float(f))
        } else {
            Err(format!(
                "{f} is not a finite number; NaN and infinities are rejected"
            ))
        }
    }

    /// The name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bool(_) => "bool",
        }
    }

    fn as_number(&self) -> Option<Number> {
        match *self {
            Value::Int(i) => Some(Number::Int(i)),
            Value::Float(f) => Some(Number::Float(f)),
            _ => None,
        }
    }

    /// Orders two values, or `None` on a type mismatch (string or bool against anything else).
    /// Numbers compare numerically and exactly, even for large `i64`s against floats.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            _ => Some(self.as_number()?.cmp(other.as_number()?)),
        }
    }

    /// Numeric-aware equality: `Int(2)` equals `Float(2.0)`; different kinds are not equal.
    pub fn same(&self, other: &Value) -> bool {
        // The pairs of one type first: every change point pushed asks this of its neighbour.
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            _ => self.compare(other) == Some(Ordering::Equal),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.same(other)
    }
}

impl fmt::Display for Value {
    /// Prints the value as a DSL literal: strings quoted and escaped, floats always with a
    /// fraction or exponent so they read back as floats.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        '\t' => f.write_str("\\t")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::str(s)
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(Str::from(s))
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Value {
        Value::Int(i.into())
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

/// A number for exact int/float comparison.
#[derive(Clone, Copy)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn cmp(self, other: Number) -> Ordering {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a.cmp(&b),
            (Number::Float(a), Number::Float(b)) => a.total_cmp(&b),
            (Number::Int(a), Number::Float(b)) => cmp_int_float(a, b),
            (Number::Float(a), Number::Int(b)) => cmp_int_float(b, a).reverse(),
        }
    }
}

/// Compares an `i64` with a finite `f64` exactly (a plain `as f64` cast rounds above 2^53).
pub(crate) fn cmp_int_float(i: i64, f: f64) -> Ordering {
    if f >= 9_223_372_036_854_775_808.0 {
        return Ordering::Less;
    }
    if f < -9_223_372_036_854_775_808.0 {
        return Ordering::Greater;
    }
    let floor = f.floor();
    let fi = floor as i64; // exact: floor is integral and in range
    match i.cmp(&fi) {
        Ordering::Equal if f > floor => Ordering::Less,
        o => o,
    }
}

/// A key for grouping and for distinct counting: equal values (`2` and `2.0`) give equal keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueKey {
    Bool(bool),
    Int(i64),
    /// A float that is not an integer in `i64` range, by its bits (NaN is never a value).
    Float(u64),
    Str(Str),
}

impl ValueKey {
    /// Whether `v` has this key (`ValueKey::from(v) == *self`), without building a key for it
    /// (for a string, a reference count raised and dropped again).
    pub fn is_key_of(&self, v: &Value) -> bool {
        match (self, v) {
            (ValueKey::Str(a), Value::Str(b)) => a == b,
            (ValueKey::Int(a), Value::Int(b)) => a == b,
            (ValueKey::Bool(a), Value::Bool(b)) => a == b,
            (_, Value::Float(_)) => *self == ValueKey::from(v),
            _ => false,
        }
    }
}

impl From<&Value> for ValueKey {
    fn from(v: &Value) -> ValueKey {
        match v {
            Value::Str(s) => ValueKey::Str(s.clone()),
            Value::Int(i) => ValueKey::Int(*i),
            Value::Bool(b) => ValueKey::Bool(*b),
            Value::Float(f) => {
                let i = *f as i64;
                if f.fract() == 0.0 && cmp_int_float(i, *f) == Ordering::Equal {
                    ValueKey::Int(i)
                } else {
                    // +0.0 and -0.0 are both integral, so they never reach here.
                    ValueKey::Float(f.to_bits())
                }
            }
        }
    }
}

/// The state of a timeline at an instant.
#[derive(Clone, Debug)]
pub enum State {
    /// No information yet (e.g. `latest_event_to_state` before its column appears), or a type
    /// mismatch.
    Unknown,
    /// A plain value.
    Value(Value),
    /// A duration that holds still (slope 0): its value from the change point on.
    Duration(i64),
    /// A duration that grows by one per time unit (slope 1): its value at the change point.
    /// (Two variants rather than a slope field keep a state at 16 bytes.)
    Growing(i64),
}

impl State {
    /// A duration worth `value` at the change point, growing by `slope` (0 or 1) per time unit.
    pub fn duration(value: i64, slope: u8) -> State {
        if slope == 0 {
            State::Duration(value)
        } else {
            State::Growing(value)
        }
    }

    /// A duration's value at the change point and its slope; `None` for other states.
    pub fn as_duration(&self) -> Option<(i64, u8)> {
        match *self {
            State::Duration(v) => Some((v, 0)),
            State::Growing(v) => Some((v, 1)),
            _ => None,
        }
    }

    pub fn bool(b: bool) -> State {
        State::Value(Value::Bool(b))
    }

    pub fn int(i: i64) -> State {
        State::Value(Value::Int(i))
    }

    /// The boolean, if this is a bool state; anything else reads as unknown in Kleene logic.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            State::Value(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// The slope: 1 for a growing duration, else 0.
    pub fn slope(&self) -> u8 {
        match self {
            State::Growing(_) => 1,
            _ => 0,
        }
    }

    /// The state `dt` time units after a change point carrying `self`.
    pub fn advanced(&self, dt: u64) -> State {
        match self {
            State::Growing(value) => {
                State::Growing(value.saturating_add(dt.min(i64::MAX as u64) as i64))
            }
            s => s.clone(),
        }
    }

    /// The instantaneous value as a [`Value`] (a duration reads as an `Int`), or `None` if unknown.
    pub fn instant_value(&self) -> Option<Value> {
        match self {
            State::Unknown => None,
            State::Value(v) => Some(v.clone()),
            State::Duration(value) | State::Growing(value) => Some(Value::Int(*value)),
        }
    }

    /// Whether two states hold the same value at the instant (numbers numerically, unknown equals
    /// unknown), ignoring slope.
    pub fn same_instant(&self, other: &State) -> bool {
        match (self, other) {
            (State::Unknown, State::Unknown) => true,
            (State::Unknown, _) | (_, State::Unknown) => false,
            // No clones: this runs for every change point pushed.
            (State::Value(a), State::Value(b)) => a.same(b),
            (State::Duration(a) | State::Growing(a), State::Duration(b) | State::Growing(b)) => {
                a == b
            }
            (State::Value(a), State::Duration(value) | State::Growing(value))
            | (State::Duration(value) | State::Growing(value), State::Value(a)) => {
                a.same(&Value::Int(*value))
            }
        }
    }

    /// Whether `self`, having held for `dt` instants, continues as `next`: what canonical form
    /// drops (the same as `self.advanced(dt).same(next)`, without building the advanced state).
    pub fn continues_as(&self, dt: u64, next: &State) -> bool {
        match (self, next) {
            (State::Growing(value), State::Growing(n)) => {
                value.saturating_add(dt.min(i64::MAX as u64) as i64) == *n
            }
            (State::Growing(_), _) => false,
            _ => self.same(next),
        }
    }

    /// Whether two states describe the same function from this instant on: same instant value
    /// and same slope. Canonical form merges consecutive change points for which this holds.
    pub fn same(&self, other: &State) -> bool {
        self.same_instant(other) && self.slope() == other.slope()
    }
}

impl PartialEq for State {
    fn eq(&self, other: &State) -> bool {
        self.same(other)
    }
}

impl serde::Serialize for State {
    /// The value at the instant: `null` when unknown, a number for a duration (its slope is
    /// reported beside it by [`crate::Segment`]).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.instant_value() {
            None => s.serialize_none(),
            Some(v) => v.serialize(s),
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Unknown => f.write_str("unknown"),
            State::Value(v) => write!(f, "{v}"),
            State::Duration(value) => write!(f, "{value}"),
            State::Growing(value) => write!(f, "{value}↗"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_and_floats_compare_numerically() {
        assert!(Value::Int(5).same(&Value::Float(5.0)));
        assert_eq!(
            Value::Int(5).compare(&Value::Float(4.5)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            Value::Int(i64::MAX).compare(&Value::Float(9.3e18)),
            Some(Ordering::Less)
        );
        assert_eq!(
            Value::Int(-3).compare(&Value::Float(-3.5)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            Value::Int(3).compare(&Value::Float(3.5)),
            Some(Ordering::Less)
        );
    }

    #[test]
    fn mismatched_types_do_not_compare() {
        assert_eq!(Value::str("5").compare(&Value::Int(5)), None);
        assert_eq!(Value::Bool(true).compare(&Value::Int(1)), None);
        assert!(!Value::str("true").same(&Value::Bool(true)));
    }

    #[test]
    fn value_keys_unify_integral_floats() {
        assert_eq!(
            ValueKey::from(&Value::Float(2.0)),
            ValueKey::from(&Value::Int(2))
        );
        assert_ne!(
            ValueKey::from(&Value::Float(2.5)),
            ValueKey::from(&Value::Int(2))
        );
        assert_eq!(ValueKey::from(&Value::Float(-0.0)), ValueKey::Int(0));
    }

    /// A few values of every type, integral floats and their ints among them.
    fn sample_values() -> Vec<Value> {
        let mut values = vec![
            Value::str("a"),
            Value::str("b"),
            Value::str(""),
            Value::Bool(true),
            Value::Bool(false),
        ];
        for i in [-3i64, 0, 2, 1 << 53, i64::MAX] {
            values.push(Value::Int(i));
            values.push(Value::Float(i as f64));
            values.push(Value::Float(i as f64 + 0.5));
        }
        values.push(Value::Float(-0.0));
        values.push(Value::Float(9.3e18));
        values
    }

    #[test]
    fn a_key_matches_the_values_it_is_built_from() {
        let values = sample_values();
        for a in &values {
            for b in &values {
                let key = ValueKey::from(a);
                assert_eq!(
                    key.is_key_of(b),
                    key == ValueKey::from(b),
                    "{a:?} against {b:?}"
                );
            }
        }
    }

    #[test]
    fn same_and_compare_agree_with_numbers() {
        // The shortcuts for one type against itself decide as the general comparison does.
        let values = sample_values();
        for a in &values {
            for b in &values {
                let general = match (a.as_number(), b.as_number()) {
                    (Some(x), Some(y)) => Some(x.cmp(y)),
                    _ => match (a, b) {
                        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
                        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
                        _ => None,
                    },
                };
                assert_eq!(a.compare(b), general, "{a:?} against {b:?}");
                assert_eq!(a.same(b), general == Some(Ordering::Equal), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn values_and_states_are_16_bytes() {
        // What a change point and a leaf's stored cell cost (see `Str`, `State::Growing`).
        assert_eq!(std::mem::size_of::<Option<Value>>(), 16);
        assert_eq!(std::mem::size_of::<State>(), 16);
        assert_eq!(std::mem::size_of::<(u64, State)>(), 24);
    }

    #[test]
    fn non_finite_floats_are_rejected() {
        assert!(Value::float(f64::NAN).is_err());
        assert!(Value::float(f64::INFINITY).is_err());
        assert!(Value::float(1.5).is_ok());
    }
}

//! The TimeLineOp query tree: event predicates, timeline operators, a Rust builder, `Display`
//! that prints the text DSL back, and validation.
//!
//! ```
//! use timeline::op::*;
//!
//! let cirr = tl_duration_where(
//!     tl_has_existed(col("playerStateChange").equal_to("play"))
//!         .and(tl_has_existed_within(col("userAction").equal_to("seek"), 5).not())
//!         .and(tl_latest_event_to_state(col("playerStateChange")).equal_to("buffer"))
//!         .and(tl_latest_event_to_state(col("cdnChange")).equal_to("CDN1")),
//! );
//! assert!(cirr.validate().is_ok());
//! assert_eq!(cirr.to_string().parse::<TimeLineOp>().unwrap(), cirr);
//! ```

use crate::limits::{MAX_QUERY_DEPTH, MAX_QUERY_OPERATORS};
use crate::value::{State, Value};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The infix symbol, as in the DSL.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// Whether `ordering` (left compared with right) satisfies the operator.
    pub fn holds(self, ordering: Ordering) -> bool {
        match self {
            CmpOp::Eq => ordering == Ordering::Equal,
            CmpOp::Ne => ordering != Ordering::Equal,
            CmpOp::Lt => ordering == Ordering::Less,
            CmpOp::Le => ordering != Ordering::Greater,
            CmpOp::Gt => ordering == Ordering::Greater,
            CmpOp::Ge => ordering != Ordering::Less,
        }
    }

    /// Compares `left` with `right`: `None` (unknown) on a type mismatch.
    pub fn apply(self, left: &Value, right: &Value) -> Option<bool> {
        // Equality of strings needs no order: the same allocation, or unequal lengths (most
        // pairs of a column's states), decide without reading the bytes.
        if let (CmpOp::Eq | CmpOp::Ne, Value::Str(a), Value::Str(b)) = (self, left, right) {
            return Some((a == b) == (self == CmpOp::Eq));
        }
        left.compare(right).map(|o| self.holds(o))
    }

    pub const ALL: [CmpOp; 6] = [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ];
}

/// A condition on one event: comparisons of a column with a constant, combined with `&&`, `||`
/// and `!`. A missing column makes a comparison false; a type mismatch makes it unknown, and an
/// event matches only where the whole predicate is true (Kleene logic).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Predicate {
    Compare {
        column: Arc<str>,
        op: CmpOp,
        value: Value,
    },
    And(Box<Predicate>, Box<Predicate>),
    Or(Box<Predicate>, Box<Predicate>),
    Not(Box<Predicate>),
}

impl Predicate {
    pub fn and(self, other: Predicate) -> Predicate {
        Predicate::And(Box::new(self), Box::new(other))
    }

    pub fn or(self, other: Predicate) -> Predicate {
        Predicate::Or(Box::new(self), Box::new(other))
    }

    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Predicate {
        Predicate::Not(Box::new(self))
    }

    /// The distinct columns the predicate reads, in first-use order.
    pub fn columns(&self) -> Vec<Arc<str>> {
        let mut out = Vec::new();
        self.visit_columns(&mut |c| {
            if !out.iter().any(|x: &Arc<str>| **x == **c) {
                out.push(c.clone())
            }
        });
        out
    }

    fn visit_columns(&self, f: &mut impl FnMut(&Arc<str>)) {
        match self {
            Predicate::Compare { column, .. } => f(column),
            Predicate::And(a, b) | Predicate::Or(a, b) => {
                a.visit_columns(f);
                b.visit_columns(f);
            }
            Predicate::Not(a) => a.visit_columns(f),
        }
    }

    /// Evaluates the predicate in Kleene logic, looking columns up with `get`.
    /// Returns `None` for unknown (a type mismatch somewhere decided the result).
    pub fn eval<'a>(&self, get: &impl Fn(&str) -> Option<&'a Value>) -> Option<bool> {
        match self {
            Predicate::Compare { column, op, value } => match get(column) {
                None => Some(false),
                Some(v) => op.apply(v, value),
            },
            Predicate::And(a, b) => kleene_and(a.eval(get), b.eval(get)),
            Predicate::Or(a, b) => kleene_or(a.eval(get), b.eval(get)),
            Predicate::Not(a) => a.eval(get).map(|x| !x),
        }
    }

    /// The nesting depth and the number of terms, as [`TimeLineOp::shape`] counts them.
    pub fn shape(&self) -> (usize, usize) {
        measure(Part::Predicate(self))
    }

    fn precedence(&self) -> u8 {
        match self {
            Predicate::Or(..) => 1,
            Predicate::And(..) => 2,
            Predicate::Compare { .. } => 3,
            Predicate::Not(_) => 4,
        }
    }
}

/// Kleene `&&`: false wins over unknown.
pub fn kleene_and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// Kleene `||`: true wins over unknown.
pub fn kleene_or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// A column reference, the start of an event predicate: `col("userAction").equal_to("seek")`.
#[derive(Clone, Debug, PartialEq)]
pub struct Column(pub Arc<str>);

/// Names a column.
pub fn col(name: &str) -> Column {
    Column(Arc::from(name))
}

macro_rules! comparisons {
    ($($method:ident => $op:expr),* $(,)?) => {
        impl Column {
            $(
                #[doc = concat!("The event predicate `column ", stringify!($method), " value`.")]
                pub fn $method(&self, value: impl Into<Value>) -> Predicate {
                    Predicate::Compare { column: self.0.clone(), op: $op, value: value.into() }
                }
            )*
        }
        impl TimeLineOp {
            $(
                #[doc = concat!("The timeline comparing `self` with a constant at every instant (`", stringify!($method), "`).")]
                pub fn $method(self, value: impl Into<Value>) -> TimeLineOp {
                    TimeLineOp::Compare { input: Box::new(self), op: $op, value: value.into() }
                }
            )*
        }
    };
}

comparisons! {
    equal_to => CmpOp::Eq,
    not_equal_to => CmpOp::Ne,
    less_than => CmpOp::Lt,
    less_than_or_equal_to => CmpOp::Le,
    greater_than => CmpOp::Gt,
    greater_than_or_equal_to => CmpOp::Ge,
}

impl From<f64> for Value {
    /// Wraps a float; the builder has no error path, so a non-finite float is caught by
    /// [`TimeLineOp::validate`].
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

/// A timeline query: a tree of operators (SPEC §3). Leaves read events; the others read timelines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeLineOp {
    /// The value of `column` in the latest event (by time) that has it; unknown before.
    LatestEventToState {
        column: Arc<str>,
    },
    /// True from the first event matching `predicate` on.
    HasExisted {
        predicate: Predicate,
    },
    /// True on `[e.time, e.time + within)` for every matching event `e`.
    HasExistedWithin {
        predicate: Predicate,
        within: u64,
    },
    /// The number of matching events with `time <= t`.
    Count {
        predicate: Predicate,
    },
    /// The number of matching events with `t - within < time <= t`.
    CountWithin {
        predicate: Predicate,
        within: u64,
    },
    /// The number of distinct values of `column` among events with `t - within < time <= t`.
    DistinctWithin {
        column: Arc<str>,
        within: u64,
    },
    /// `input op value` at every instant; unknown where `input` is unknown or types mismatch.
    Compare {
        input: Box<TimeLineOp>,
        op: CmpOp,
        value: Value,
    },
    And(Box<TimeLineOp>, Box<TimeLineOp>),
    Or(Box<TimeLineOp>, Box<TimeLineOp>),
    Not(Box<TimeLineOp>),
    /// The total time from the key's first event during which the input was true.
    DurationWhere(Box<TimeLineOp>),
    /// The time since the input last changed value (not counting before the key's first event).
    DurationInCurState(Box<TimeLineOp>),
}

/// `latest_event_to_state(column)`.
pub fn tl_latest_event_to_state(column: Column) -> TimeLineOp {
    TimeLineOp::LatestEventToState { column: column.0 }
}
/// `has_existed(predicate)`.
pub fn tl_has_existed(predicate: Predicate) -> TimeLineOp {
    TimeLineOp::HasExisted { predicate }
}
/// `has_existed_within(predicate, within)`.
pub fn tl_has_existed_within(predicate: Predicate, within: u64) -> TimeLineOp {
    TimeLineOp::HasExistedWithin { predicate, within }
}
/// `count(predicate)`.
pub fn tl_count(predicate: Predicate) -> TimeLineOp {
    TimeLineOp::Count { predicate }
}
/// `count_within(predicate, within)`.
pub fn tl_count_within(predicate: Predicate, within: u64) -> TimeLineOp {
    TimeLineOp::CountWithin { predicate, within }
}
/// `distinct_within(column, within)`.
pub fn tl_distinct_within(column: Column, within: u64) -> TimeLineOp {
    TimeLineOp::DistinctWithin {
        column: column.0,
        within,
    }
}
/// `duration_where(input)`.
pub fn tl_duration_where(input: TimeLineOp) -> TimeLineOp {
    TimeLineOp::DurationWhere(Box::new(input))
}
/// `duration_in_cur_state(input)`.
pub fn tl_duration_in_cur_state(input: TimeLineOp) -> TimeLineOp {
    TimeLineOp::DurationInCurState(Box::new(input))
}
/// `!input`.
pub fn tl_not(input: TimeLineOp) -> TimeLineOp {
    TimeLineOp::Not(Box::new(input))
}

impl TimeLineOp {
    pub fn and(self, other: TimeLineOp) -> TimeLineOp {
        TimeLineOp::And(Box::new(self), Box::new(other))
    }

    pub fn or(self, other: TimeLineOp) -> TimeLineOp {
        TimeLineOp::Or(Box::new(self), Box::new(other))
    }

    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> TimeLineOp {
        TimeLineOp::Not(Box::new(self))
    }

    /// The operator's name in the DSL.
    pub fn name(&self) -> &'static str {
        match self {
            TimeLineOp::LatestEventToState { .. } => "latest_event_to_state",
            TimeLineOp::HasExisted { .. } => "has_existed",
            TimeLineOp::HasExistedWithin { .. } => "has_existed_within",
            TimeLineOp::Count { .. } => "count",
            TimeLineOp::CountWithin { .. } => "count_within",
            TimeLineOp::DistinctWithin { .. } => "distinct_within",
            TimeLineOp::Compare { op, .. } => match op {
                CmpOp::Eq => "equal_to",
                CmpOp::Ne => "not_equal_to",
                CmpOp::Lt => "less_than",
                CmpOp::Le => "less_than_or_equal_to",
                CmpOp::Gt => "greater_than",
                CmpOp::Ge => "greater_than_or_equal_to",
            },
            TimeLineOp::And(..) => "and",
            TimeLineOp::Or(..) => "or",
            TimeLineOp::Not(_) => "not",
            TimeLineOp::DurationWhere(_) => "duration_where",
            TimeLineOp::DurationInCurState(_) => "duration_in_cur_state",
        }
    }

    /// Whether the operator reads events (a leaf) rather than other timelines.
    pub fn is_leaf(&self) -> bool {
        self.children().is_empty()
    }

    /// The operator's input timelines, in order.
    pub fn children(&self) -> Vec<&TimeLineOp> {
        match self {
            TimeLineOp::Compare { input: a, .. }
            | TimeLineOp::Not(a)
            | TimeLineOp::DurationWhere(a)
            | TimeLineOp::DurationInCurState(a) => vec![a],
            TimeLineOp::And(a, b) | TimeLineOp::Or(a, b) => vec![a, b],
            _ => vec![],
        }
    }

    /// The operator's value before the key's first event, and before anything happens.
    pub fn initial_state(&self) -> State {
        match self {
            TimeLineOp::LatestEventToState { .. } | TimeLineOp::DurationInCurState(_) => {
                State::Unknown
            }
            TimeLineOp::HasExisted { .. } | TimeLineOp::HasExistedWithin { .. } => {
                State::bool(false)
            }
            TimeLineOp::Count { .. }
            | TimeLineOp::CountWithin { .. }
            | TimeLineOp::DistinctWithin { .. } => State::int(0),
            TimeLineOp::DurationWhere(_) => State::Duration(0),
            // Pointwise operators start from their inputs' initial values.
            TimeLineOp::Compare { input, op, value } => match input.initial_state().instant_value()
            {
                Some(v) => op.apply(&v, value).map_or(State::Unknown, State::bool),
                None => State::Unknown,
            },
            TimeLineOp::And(a, b) => opt_bool(kleene_and(
                a.initial_state().as_bool(),
                b.initial_state().as_bool(),
            )),
            TimeLineOp::Or(a, b) => opt_bool(kleene_or(
                a.initial_state().as_bool(),
                b.initial_state().as_bool(),
            )),
            TimeLineOp::Not(a) => opt_bool(a.initial_state().as_bool().map(|b| !b)),
        }
    }

    /// The static type of the output timeline.
    pub fn output_type(&self) -> Type {
        match self {
            TimeLineOp::LatestEventToState { .. } => Type::Any,
            TimeLineOp::HasExisted { .. }
            | TimeLineOp::HasExistedWithin { .. }
            | TimeLineOp::Compare { .. }
            | TimeLineOp::And(..)
            | TimeLineOp::Or(..)
            | TimeLineOp::Not(_) => Type::Bool,
            TimeLineOp::Count { .. }
            | TimeLineOp::CountWithin { .. }
            | TimeLineOp::DistinctWithin { .. } => Type::Int,
            TimeLineOp::DurationWhere(_) | TimeLineOp::DurationInCurState(_) => Type::Duration,
        }
    }

    /// Checks what can be checked before any event: windows are > 0, constants are finite, and
    /// types fit where they are known (a column's type is not known until events arrive, so
    /// `latest_event_to_state(col) == "x"` is always accepted).
    ///
    /// A tree past the depth or size limits of [`crate::limits`] is refused first, without
    /// walking it recursively.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let (depth, size) = self.shape();
        if depth > MAX_QUERY_DEPTH || size > MAX_QUERY_OPERATORS {
            return Err(ValidationError {
                operator: self.name().to_string(),
                message: format!(
                    "the query nests {depth} levels deep and has {size} operators and predicate terms; the limits are {MAX_QUERY_DEPTH} levels and {MAX_QUERY_OPERATORS} operators (group a long `&&` or `||` chain into balanced halves)"
                ),
            });
        }
        self.validate_within_limits()
    }

    fn validate_within_limits(&self) -> Result<(), ValidationError> {
        let fail = |message: String| {
            Err(ValidationError {
                operator: self.to_string(),
                message,
            })
        };
        for child in self.children() {
            child.validate_within_limits()?;
        }
        match self {
            TimeLineOp::HasExisted { predicate } | TimeLineOp::Count { predicate } => {
                validate_predicate(predicate).or_else(fail)
            }
            TimeLineOp::HasExistedWithin { predicate, within }
            | TimeLineOp::CountWithin { predicate, within } => {
                validate_predicate(predicate).or_else(fail)?;
                validate_within(*within).or_else(fail)
            }
            TimeLineOp::DistinctWithin { within, .. } => validate_within(*within).or_else(fail),
            TimeLineOp::LatestEventToState { .. } => Ok(()),
            TimeLineOp::Compare { input, op, value } => {
                validate_constant(value).or_else(fail)?;
                let t = input.output_type();
                if !t.compares_with(value) {
                    return fail(format!(
                        "cannot compare a {t} timeline with the {} {value}",
                        value.type_name()
                    ));
                }
                if t == Type::Bool && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    return fail(format!(
                        "`{}` is not defined for a bool timeline; use == or !=",
                        op.symbol()
                    ));
                }
                Ok(())
            }
            TimeLineOp::And(a, b) | TimeLineOp::Or(a, b) => {
                for x in [a, b] {
                    need_bool(x).or_else(fail)?;
                }
                Ok(())
            }
            TimeLineOp::Not(a) | TimeLineOp::DurationWhere(a) => need_bool(a).or_else(fail),
            TimeLineOp::DurationInCurState(_) => Ok(()),
        }
    }

    fn precedence(&self) -> u8 {
        match self {
            TimeLineOp::Or(..) => 1,
            TimeLineOp::And(..) => 2,
            TimeLineOp::Compare { .. } => 3,
            TimeLineOp::Not(_) => 4,
            _ => 5,
        }
    }

    /// The nesting depth of the tree and its number of operators, event-predicate terms
    /// included, found without recursion (so that a tree of any depth can be measured safely).
    /// Counting stops a little past the limits of [`crate::limits`].
    pub fn shape(&self) -> (usize, usize) {
        measure(Part::Op(self))
    }

    /// The event predicate of a leaf that has one.
    pub fn predicate(&self) -> Option<&Predicate> {
        match self {
            TimeLineOp::HasExisted { predicate }
            | TimeLineOp::HasExistedWithin { predicate, .. }
            | TimeLineOp::Count { predicate }
            | TimeLineOp::CountWithin { predicate, .. } => Some(predicate),
            _ => None,
        }
    }
}

enum Part<'a> {
    Op(&'a TimeLineOp),
    Predicate(&'a Predicate),
}

/// The depth and size of a tree, walked with a stack of its own instead of recursion; counting
/// stops a little past the limits.
fn measure(root: Part<'_>) -> (usize, usize) {
    let (mut depth, mut size) = (0, 0);
    let mut stack = vec![(root, 1)];
    while let Some((part, d)) = stack.pop() {
        depth = depth.max(d);
        size += 1;
        if size > MAX_QUERY_OPERATORS || depth > MAX_QUERY_DEPTH {
            break;
        }
        match part {
            Part::Op(op) => {
                stack.extend(op.children().into_iter().map(|c| (Part::Op(c), d + 1)));
                if let Some(p) = op.predicate() {
                    stack.push((Part::Predicate(p), d + 1));
                }
            }
            Part::Predicate(Predicate::Compare { .. }) => {}
            Part::Predicate(Predicate::Not(a)) => stack.push((Part::Predicate(a), d + 1)),
            Part::Predicate(Predicate::And(a, b) | Predicate::Or(a, b)) => {
                stack.push((Part::Predicate(a), d + 1));
                stack.push((Part::Predicate(b), d + 1));
            }
        }
    }
    (depth, size)
}

fn opt_bool(b: Option<bool>) -> State {
    b.map_or(State::Unknown, State::bool)
}

fn need_bool(x: &TimeLineOp) -> Result<(), String> {
    match x.output_type() {
        Type::Bool | Type::Any => Ok(()),
        t => Err(format!(
            "expects a bool timeline, but `{x}` is a {t} timeline (compare it with a constant first)"
        )),
    }
}

fn validate_within(within: u64) -> Result<(), String> {
    if within == 0 {
        Err("the window must be greater than 0".into())
    } else if within > i64::MAX as u64 {
        Err(format!("the window {within} is too large"))
    } else {
        Ok(())
    }
}

fn validate_constant(v: &Value) -> Result<(), String> {
    match v {
        Value::Float(f) if !f.is_finite() => Err(format!(
            "the constant {f} is not a finite number; NaN and infinities are rejected"
        )),
        _ => Ok(()),
    }
}

fn validate_predicate(p: &Predicate) -> Result<(), String> {
    match p {
        Predicate::Compare { value, .. } => validate_constant(value),
        Predicate::And(a, b) | Predicate::Or(a, b) => {
            validate_predicate(a)?;
            validate_predicate(b)
        }
        Predicate::Not(a) => validate_predicate(a),
    }
}

/// The static type of a timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Bool,
    Int,
    /// A piecewise-linear duration (a number).
    Duration,
    /// Not known before events arrive (the type of a column).
    Any,
}

impl Type {
    fn compares_with(self, v: &Value) -> bool {
        matches!(
            (self, v),
            (Type::Any, _)
                | (Type::Bool, Value::Bool(_))
                | (Type::Int | Type::Duration, Value::Int(_) | Value::Float(_))
        )
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Bool => "bool",
            Type::Int => "int",
            Type::Duration => "duration",
            Type::Any => "value",
        })
    }
}

/// A query that is well-formed but meaningless: a zero window, a type error, a NaN constant.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidationError {
    /// The operator (as DSL text) at fault.
    pub operator: String,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in `{}`: {}", self.operator, self.message)
    }
}

impl std::error::Error for ValidationError {}

/// Whether `name` can be printed as a bare identifier and read back as the same column.
pub(crate) fn is_bare_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(name, "true" | "false" | "let" | "col")
}

pub(crate) struct ColumnName<'a>(pub(crate) &'a str);

impl fmt::Display for ColumnName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_bare_identifier(self.0) {
            f.write_str(self.0)
        } else {
            write!(f, "col({})", Value::str(self.0))
        }
    }
}

/// Writes `x`, in parentheses if it binds more loosely than `min` requires.
fn write_grouped(
    f: &mut fmt::Formatter<'_>,
    x: &dyn fmt::Display,
    prec: u8,
    min: u8,
) -> fmt::Result {
    if prec < min {
        write!(f, "({x})")
    } else {
        write!(f, "{x}")
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.precedence();
        match self {
            Predicate::Compare { column, op, value } => {
                write!(f, "{} {} {value}", ColumnName(column), op.symbol())
            }
            Predicate::And(a, b) | Predicate::Or(a, b) => {
                let sym = if p == 2 { " && " } else { " || " };
                write_grouped(f, a, a.precedence(), p)?;
                f.write_str(sym)?;
                write_grouped(f, b, b.precedence(), p + 1)
            }
            Predicate::Not(a) => {
                f.write_str("!")?;
                write_grouped(f, a, a.precedence(), 4)
            }
        }
    }
}

impl fmt::Display for TimeLineOp {
    /// Prints the operator in the text DSL; the text parses back to an equal tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.precedence();
        match self {
            TimeLineOp::LatestEventToState { column } => {
                write!(f, "latest_event_to_state({})", ColumnName(column))
            }
            TimeLineOp::HasExisted { predicate } | TimeLineOp::Count { predicate } => {
                write!(f, "{}({predicate})", self.name())
            }
            TimeLineOp::HasExistedWithin { predicate, within }
            | TimeLineOp::CountWithin { predicate, within } => {
                write!(f, "{}({predicate}, {within})", self.name())
            }
            TimeLineOp::DistinctWithin { column, within } => {
                write!(f, "distinct_within({}, {within})", ColumnName(column))
            }
            TimeLineOp::Compare { input, op, value } => {
                // Comparisons do not chain, so a comparison operand is always grouped.
                write_grouped(f, input, input.precedence(), 4)?;
                write!(f, " {} {value}", op.symbol())
            }
            TimeLineOp::And(a, b) | TimeLineOp::Or(a, b) => {
                let sym = if p == 2 { " && " } else { " || " };
                write_grouped(f, a, a.precedence(), p)?;
                f.write_str(sym)?;
                write_grouped(f, b, b.precedence(), p + 1)
            }
            TimeLineOp::Not(a) => {
                f.write_str("!")?;
                write_grouped(f, a, a.precedence(), 4)
            }
            TimeLineOp::DurationWhere(a) | TimeLineOp::DurationInCurState(a) => {
                write!(f, "{}({a})", self.name())
            }
        }
    }
}

impl std::ops::Not for TimeLineOp {
    type Output = TimeLineOp;
    fn not(self) -> TimeLineOp {
        TimeLineOp::Not(Box::new(self))
    }
}
impl std::ops::BitAnd for TimeLineOp {
    type Output = TimeLineOp;
    fn bitand(self, rhs: TimeLineOp) -> TimeLineOp {
        self.and(rhs)
    }
}
impl std::ops::BitOr for TimeLineOp {
    type Output = TimeLineOp;
    fn bitor(self, rhs: TimeLineOp) -> TimeLineOp {
        self.or(rhs)
    }
}
impl std::ops::Not for Predicate {
    type Output = Predicate;
    fn not(self) -> Predicate {
        Predicate::Not(Box::new(self))
    }
}
impl std::ops::BitAnd for Predicate {
    type Output = Predicate;
    fn bitand(self, rhs: Predicate) -> Predicate {
        self.and(rhs)
    }
}
impl std::ops::BitOr for Predicate {
    type Output = Predicate;
    fn bitor(self, rhs: Predicate) -> Predicate {
        self.or(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_prints_the_dsl() {
        let q = tl_has_existed(col("a").equal_to("x").and(col("b").greater_than(2)).not());
        assert_eq!(q.to_string(), r#"has_existed(!(a == "x" && b > 2))"#);
        let q = tl_latest_event_to_state(col("weird col")).equal_to(2.0);
        assert_eq!(
            q.to_string(),
            r#"latest_event_to_state(col("weird col")) == 2.0"#
        );
        let q = tl_not(tl_has_existed(col("a").equal_to(1))).equal_to(true);
        assert_eq!(q.to_string(), "!has_existed(a == 1) == true");
    }

    #[test]
    fn validation_catches_type_errors_and_zero_windows() {
        let bad = [
            tl_has_existed_within(col("a").equal_to(1), 0),
            tl_count(col("a").equal_to(1)).equal_to("x"),
            tl_duration_where(tl_count(col("a").equal_to(1))),
            tl_count(col("a").equal_to(1)).and(tl_has_existed(col("a").equal_to(1))),
            tl_has_existed(col("a").equal_to(1)).less_than(true),
            tl_has_existed(col("a").equal_to(f64::NAN)),
            tl_latest_event_to_state(col("a")).equal_to(f64::INFINITY),
        ];
        for q in bad {
            assert!(q.validate().is_err(), "{q} should be rejected");
        }
        let good = tl_duration_where(tl_latest_event_to_state(col("a")))
            .greater_than(5)
            .and(tl_has_existed(col("b").equal_to("x")));
        good.validate().unwrap();
    }

    #[test]
    fn initial_states_follow_the_spec() {
        let he = tl_has_existed(col("a").equal_to(1));
        assert_eq!(he.initial_state(), State::bool(false));
        assert_eq!(tl_not(he.clone()).initial_state(), State::bool(true));
        let latest = tl_latest_event_to_state(col("a"));
        assert_eq!(latest.clone().equal_to(1).initial_state(), State::Unknown);
        assert_eq!(latest.and(he.clone()).initial_state(), State::bool(false));
        assert_eq!(
            tl_count(col("a").equal_to(1)).less_than(1).initial_state(),
            State::bool(true)
        );
    }

    #[test]
    fn ops_round_trip_through_json() {
        let q = tl_duration_where(
            tl_has_existed(col("a").equal_to(1.5))
                .and(tl_latest_event_to_state(col("b")).equal_to("x")),
        );
        let json = serde_json::to_string(&q).unwrap();
        let back: TimeLineOp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, q);
    }
}

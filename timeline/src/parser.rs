//! The text DSL (SPEC §4): `let` bindings, infix and call forms, error positions.
//!
//! Parsing runs in two steps: a context-free parse into an untyped tree, then a conversion that
//! knows where a timeline, an event predicate or a column is expected. That is how
//! `has_existed(a == 1)` reads `a == 1` as an event predicate while `x == 1` at the top level
//! compares a timeline.

use crate::aggregate::{AggFn, Aggregation, Query};
use crate::limits::{MAX_QUERY_BYTES, MAX_QUERY_DEPTH, MAX_QUERY_OPERATORS};
use crate::op::{CmpOp, Predicate, TimeLineOp};
use crate::value::Value;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A syntax or meaning error in a query, with its 1-based line and column.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses a query (with optional `let` bindings) and validates it.
///
/// ```
/// let q = timeline::parse_query(r#"
///     let seeking = has_existed_within(userAction == "seek", 5);
///     duration_where(!seeking && latest_event_to_state(cdn) == "CDN1")
/// "#).unwrap();
/// assert_eq!(q.name(), "duration_where");
///
/// let err = timeline::parse_query("has_existed(a == )").unwrap_err();
/// assert_eq!((err.line, err.column), (1, 18));
/// ```
pub fn parse_query(text: &str) -> Result<TimeLineOp, ParseError> {
    let (query, pipe) = parse_with_pipe(text, 1)?;
    match (query.aggregate, pipe) {
        (Some(_), Some(pos)) => Err(pos.error(
            "this query aggregates across keys (`| aggregate(…)`); it is not a per-key query",
        )),
        _ => Ok(query.op),
    }
}

/// Parses a query that may end in `| aggregate(group_by(col), f, …)` (SPEC §6) and validates it.
///
/// ```
/// let q = timeline::parser::parse(r#"
///     let buffering = latest_event_to_state(state) == "buffer";
///     duration_where(buffering) | aggregate(group_by(cdn), sum, avg)
/// "#).unwrap();
/// assert_eq!(q.aggregate.unwrap().functions.len(), 2);
///
/// let err = timeline::parser::parse("count(a == 1) | aggregate(sum, sum)").unwrap_err();
/// assert_eq!((err.line, err.column), (1, 32));
/// ```
pub fn parse(text: &str) -> Result<Query, ParseError> {
    parse_with_pipe(text, 1).map(|(q, _)| q)
}

/// Parses a query as [`parse`] does, with duration literals (`5s`, `5m`, `5h`, `5d`) in a time
/// unit of `units_per_second` per second (1 for seconds, 1 000 for milliseconds, …).
///
/// ```
/// let q = timeline::parser::parse_in_units("has_existed_within(a == 1, 5m)", 1_000).unwrap();
/// assert_eq!(q.op.to_string(), "has_existed_within(a == 1, 300000)");
/// ```
pub fn parse_in_units(text: &str, units_per_second: u64) -> Result<Query, ParseError> {
    parse_with_pipe(text, units_per_second).map(|(q, _)| q)
}

fn parse_with_pipe(text: &str, units_per_second: u64) -> Result<(Query, Option<Pos>), ParseError> {
    let mut p = Parser::new(text, units_per_second)?;
    let mut env: HashMap<String, (Pos, Expr)> = HashMap::new();
    while p.peek_is_ident("let") {
        p.i += 1;
        let (name, pos) = p.ident("a name after `let`")?;
        if let Some((first, _)) = env.get(&name) {
            return Err(pos.error(format!(
                "`{name}` is already bound (at line {}, column {})",
                first.line, first.column
            )));
        }
        p.expect(&Tok::Assign, "`=`")?;
        let expr = p.expr()?.expand(&env)?;
        if p.peek() == &Tok::Pipe {
            return Err(p
                .pos()
                .error("`| aggregate(…)` can only end the query, not a `let` binding"));
        }
        p.expect(&Tok::Semi, "`;` after the binding")?;
        env.insert(name, (pos, expr));
    }
    let result = p.expr()?.expand(&env)?;
    let mut pipe = None;
    let mut aggregate = None;
    if p.peek() == &Tok::Pipe {
        pipe = Some(p.pos());
        p.i += 1;
        let call = p.unary()?;
        aggregate = Some(call.to_aggregation()?);
        if p.peek() == &Tok::Pipe {
            return Err(p
                .pos()
                .error("a query ends with one `| aggregate(…)`; nothing can follow it"));
        }
    }
    if p.peek() == &Tok::Semi {
        p.i += 1;
    }
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected(if aggregate.is_some() {
            "the end of the query after `aggregate(…)`"
        } else {
            "an operator or the end of the query"
        }));
    }
    let op = result.to_op()?;
    op.validate().map_err(|e| result.pos.error(e.to_string()))?;
    Ok((Query { op, aggregate }, pipe))
}

/// Parses an event predicate on its own, such as `userAction == "seek" && !(cdn == "CDN2")`.
pub fn parse_predicate(text: &str) -> Result<Predicate, ParseError> {
    let mut p = Parser::new(text, 1)?;
    let expr = p.expr()?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("an operator or the end of the predicate"));
    }
    expr.to_predicate()
}

impl FromStr for TimeLineOp {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<TimeLineOp, ParseError> {
        parse_query(s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    fn error(self, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    LParen,
    RParen,
    Comma,
    Semi,
    Assign,
    Cmp(CmpOp),
    AndAnd,
    OrOr,
    /// `|`, before `aggregate(…)`.
    Pipe,
    Bang,
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Str(s) => write!(f, "the string {}", Value::str(s)),
            Tok::Int(i) => write!(f, "the number {i}"),
            Tok::Float(x) => write!(f, "the number {x:?}"),
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
            Tok::Comma => f.write_str("`,`"),
            Tok::Semi => f.write_str("`;`"),
            Tok::Assign => f.write_str("`=`"),
            Tok::Cmp(op) => write!(f, "`{}`", op.symbol()),
            Tok::AndAnd => f.write_str("`&&`"),
            Tok::OrOr => f.write_str("`||`"),
            Tok::Pipe => f.write_str("`|`"),
            Tok::Bang => f.write_str("`!`"),
            Tok::Eof => f.write_str("the end of the query"),
        }
    }
}

/// Splits `text` into tokens; a duration literal (`5m`) becomes an integer of
/// `units_per_second` units per second.
fn lex(text: &str, units_per_second: u64) -> Result<Vec<(Tok, Pos)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0, 1, 1);
    let pos_of = |i: usize, line: &mut usize, col: &mut usize, upto: usize| {
        // Advances the line/column counters over chars[i..upto].
        for &c in &chars[i..upto] {
            if c == '\n' {
                *line += 1;
                *col = 1;
            } else {
                *col += 1;
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let start = Pos { line, column: col };
        let mut j = i + 1;
        let tok = match c {
            c if c.is_whitespace() => {
                pos_of(i, &mut line, &mut col, j);
                i = j;
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'/') => {
                while j < chars.len() && chars[j] != '\n' {
                    j += 1;
                }
                pos_of(i, &mut line, &mut col, j);
                i = j;
                continue;
            }
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            ';' => Tok::Semi,
            '=' | '!' | '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                if eq {
                    j += 1;
                }
                match (c, eq) {
                    ('=', true) => Tok::Cmp(CmpOp::Eq),
                    ('=', false) => Tok::Assign,
                    ('!', true) => Tok::Cmp(CmpOp::Ne),
                    ('!', false) => Tok::Bang,
                    ('<', true) => Tok::Cmp(CmpOp::Le),
                    ('<', false) => Tok::Cmp(CmpOp::Lt),
                    ('>', true) => Tok::Cmp(CmpOp::Ge),
                    _ => Tok::Cmp(CmpOp::Gt),
                }
            }
            '|' if chars.get(i + 1) != Some(&'|') => Tok::Pipe,
            '&' | '|' => {
                if chars.get(i + 1) != Some(&c) {
                    return Err(start.error(format!("expected `{c}{c}`, found a single `{c}`")));
                }
                j += 1;
                if c == '&' {
                    Tok::AndAnd
                } else {
                    Tok::OrOr
                }
            }
            '"' | '\'' => {
                let mut s = String::new();
                loop {
                    match chars.get(j) {
                        None => return Err(start.error("unterminated string")),
                        Some(&q) if q == c => break,
                        Some('\\') => {
                            let esc = chars.get(j + 1).copied();
                            s.push(match esc {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some(e @ ('\\' | '"' | '\'')) => e,
                                _ => {
                                    let mut p = start;
                                    pos_of(i, &mut p.line, &mut p.column, j);
                                    return Err(
                                        p.error("unknown escape; use \\\", \\', \\\\, \\n or \\t")
                                    );
                                }
                            });
                            j += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            j += 1;
                        }
                    }
                }
                j += 1;
                Tok::Str(s)
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let mut is_float = false;
                while j < chars.len() {
                    let d = chars[j];
                    if d.is_ascii_digit() {
                        j += 1;
                    } else if d == '.'
                        && !is_float
                        && chars.get(j + 1).is_some_and(|d| d.is_ascii_digit())
                    {
                        is_float = true;
                        j += 1;
                    } else if (d == 'e' || d == 'E')
                        && (chars.get(j + 1).is_some_and(|d| d.is_ascii_digit())
                            || (matches!(chars.get(j + 1), Some('+' | '-'))
                                && chars.get(j + 2).is_some_and(|d| d.is_ascii_digit())))
                    {
                        is_float = true;
                        j += 2;
                    } else {
                        break;
                    }
                }
                let text: String = chars[i..j].iter().collect();
                if is_float {
                    match text.parse::<f64>() {
                        Ok(x) if x.is_finite() => Tok::Float(x),
                        _ => return Err(start.error(format!("{text} is not a finite number"))),
                    }
                } else {
                    let n: i64 = text.parse().map_err(|_| {
                        start.error(format!("{text} does not fit a 64-bit integer"))
                    })?;
                    // A duration: `5s`, `5m`, `5h`, `5d`, in the time unit of the events.
                    let unit = match chars.get(j) {
                        Some('s') => Some(1),
                        Some('m') => Some(60),
                        Some('h') => Some(3_600),
                        Some('d') => Some(86_400),
                        _ => None,
                    };
                    let ends = |k: usize| {
                        chars
                            .get(k)
                            .is_none_or(|c| !(c.is_alphanumeric() || *c == '_'))
                    };
                    match unit {
                        Some(seconds) if ends(j + 1) => {
                            j += 1;
                            let scaled = n
                                .checked_mul(seconds)
                                .and_then(|x| x.checked_mul(units_per_second as i64));
                            Tok::Int(scaled.ok_or_else(|| {
                                start.error(format!(
                                    "{text}{} does not fit a 64-bit integer in the time unit",
                                    chars[j - 1]
                                ))
                            })?)
                        }
                        _ => Tok::Int(n),
                    }
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                Tok::Ident(chars[i..j].iter().collect())
            }
            c => return Err(start.error(format!("unexpected character `{c}`"))),
        };
        out.push((tok, start));
        pos_of(i, &mut line, &mut col, j);
        i = j;
    }
    out.push((Tok::Eof, Pos { line, column: col }));
    Ok(out)
}

/// An untyped expression: what the text says, before we know what each part must be.
#[derive(Clone, Debug)]
struct Expr {
    pos: Pos,
    kind: ExprKind,
    /// The levels of nesting, this one included (a literal or a name is 1).
    depth: usize,
    /// The number of parts (calls, operators, names, literals), saturating.
    size: usize,
}

impl Expr {
    fn new(pos: Pos, kind: ExprKind) -> Expr {
        let shapes = |xs: &[&Expr]| shape_of(xs.iter().map(|c| (c.depth, c.size)));
        let (depth, size) = match &kind {
            ExprKind::Ident(_) | ExprKind::Literal(_) => (1, 1),
            ExprKind::Call(_, args) => shape_of(args.iter().map(|c| (c.depth, c.size))),
            ExprKind::Not(a) => shapes(&[a]),
            ExprKind::And(a, b) | ExprKind::Or(a, b) | ExprKind::Compare(a, _, b) => {
                shapes(&[a, b])
            }
        };
        Expr {
            pos,
            kind,
            depth,
            size,
        }
    }

    /// Refuses an expression past the depth or size limits, pointing at it.
    fn within_limits(self) -> Result<Expr, ParseError> {
        check_shape(self.pos, self.depth, self.size)?;
        Ok(self)
    }
}

/// The depth and size of a node with children of these shapes.
fn shape_of(children: impl Iterator<Item = (usize, usize)>) -> (usize, usize) {
    children.fold((1, 1), |(depth, size), (d, s)| {
        (depth.max(d.saturating_add(1)), size.saturating_add(s))
    })
}

fn check_shape(pos: Pos, depth: usize, size: usize) -> Result<(), ParseError> {
    if depth > MAX_QUERY_DEPTH {
        return Err(pos.error(too_deep()));
    }
    if size > MAX_QUERY_OPERATORS {
        return Err(pos.error(format!(
            "the query has more than {MAX_QUERY_OPERATORS} operators, names and constants (with `let` bindings expanded where they are used); this is the limit"
        )));
    }
    Ok(())
}

fn too_deep() -> String {
    format!(
        "the query nests more than {MAX_QUERY_DEPTH} levels deep (the limit); a long chain of `&&` or `||` nests one level per term: group it into balanced halves, as in (a && b) && (c && d)"
    )
}

#[derive(Clone, Debug)]
enum ExprKind {
    Ident(String),
    Literal(Value),
    Call(String, Vec<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Box<Expr>, CmpOp, Box<Expr>),
}

struct Parser {
    tokens: Vec<(Tok, Pos)>,
    i: usize,
    /// How many `(`, calls and `!` enclose the current token: bounds the parser's recursion.
    nesting: usize,
}

impl Parser {
    /// Lexes `text`, refusing a text past the size limit before reading it.
    fn new(text: &str, units_per_second: u64) -> Result<Parser, ParseError> {
        if text.len() > MAX_QUERY_BYTES {
            return Err(Pos { line: 1, column: 1 }.error(format!(
                "the query is {} bytes long; the limit is {MAX_QUERY_BYTES}",
                text.len()
            )));
        }
        Ok(Parser {
            tokens: lex(text, units_per_second)?,
            i: 0,
            nesting: 0,
        })
    }

    /// Enters one more level of nesting (at `pos`), refusing to go past the depth limit.
    fn enter(&mut self, pos: Pos) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_QUERY_DEPTH {
            return Err(pos.error(too_deep()));
        }
        Ok(())
    }

    fn peek(&self) -> &Tok {
        &self.tokens[self.i].0
    }

    fn pos(&self) -> Pos {
        self.tokens[self.i].1
    }

    fn peek_is_ident(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == word)
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        self.pos()
            .error(format!("expected {expected}, found {}", self.peek()))
    }

    fn expect(&mut self, tok: &Tok, expected: &str) -> Result<(), ParseError> {
        if self.peek() == tok {
            self.i += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn ident(&mut self, expected: &str) -> Result<(String, Pos), ParseError> {
        match self.peek().clone() {
            Tok::Ident(s) if !matches!(s.as_str(), "let" | "true" | "false") => {
                let pos = self.pos();
                self.i += 1;
                Ok((s, pos))
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.peek() == &Tok::OrOr {
            self.i += 1;
            let right = self.and()?;
            left = Expr::new(left.pos, ExprKind::Or(Box::new(left), Box::new(right)))
                .within_limits()?;
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.comparison()?;
        while self.peek() == &Tok::AndAnd {
            self.i += 1;
            let right = self.comparison()?;
            left = Expr::new(left.pos, ExprKind::And(Box::new(left), Box::new(right)))
                .within_limits()?;
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let left = self.unary()?;
        let Tok::Cmp(op) = *self.peek() else {
            return Ok(left);
        };
        self.i += 1;
        let right = self.unary()?;
        if let Tok::Cmp(_) = self.peek() {
            return Err(self
                .pos()
                .error("comparisons do not chain; group them with parentheses and && or ||"));
        }
        Expr::new(
            left.pos,
            ExprKind::Compare(Box::new(left), op, Box::new(right)),
        )
        .within_limits()
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == &Tok::Bang {
            let pos = self.pos();
            self.enter(pos)?;
            self.i += 1;
            let inner = self.unary()?;
            self.nesting -= 1;
            return Expr::new(pos, ExprKind::Not(Box::new(inner))).within_limits();
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let pos = self.pos();
        let kind = match self.peek().clone() {
            Tok::LParen => {
                self.enter(pos)?;
                self.i += 1;
                let inner = self.expr()?;
                self.expect(&Tok::RParen, "`)`")?;
                self.nesting -= 1;
                return Ok(inner);
            }
            Tok::Str(s) => ExprKind::Literal(Value::str(&s)),
            Tok::Int(i) => ExprKind::Literal(Value::Int(i)),
            Tok::Float(x) => ExprKind::Literal(Value::Float(x)),
            Tok::Ident(s) if s == "true" || s == "false" => {
                ExprKind::Literal(Value::Bool(s == "true"))
            }
            Tok::Ident(s) if s == "let" => {
                return Err(self.unexpected("an expression (`let` bindings come first)"))
            }
            Tok::Ident(s) => {
                self.i += 1;
                if self.peek() != &Tok::LParen {
                    return Ok(Expr::new(pos, ExprKind::Ident(s)));
                }
                self.enter(pos)?;
                self.i += 1;
                let mut args = Vec::new();
                if self.peek() != &Tok::RParen {
                    loop {
                        args.push(self.expr()?);
                        if self.peek() == &Tok::Comma {
                            self.i += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.expect(&Tok::RParen, "`,` or `)`")?;
                self.nesting -= 1;
                return Expr::new(pos, ExprKind::Call(s, args)).within_limits();
            }
            _ => return Err(self.unexpected("an expression")),
        };
        self.i += 1;
        Ok(Expr::new(pos, kind))
    }
}

/// The operator a function name denotes: case-insensitive, underscores ignored, optional `tl`.
fn normalize(name: &str) -> String {
    let n: String = name
        .chars()
        .filter(|&c| c != '_')
        .flat_map(char::to_lowercase)
        .collect();
    match n.strip_prefix("tl") {
        Some(rest) if is_function(rest) => rest.to_string(),
        _ => n,
    }
}

const FUNCTIONS: &[&str] = &[
    "latesteventtostate",
    "hasexisted",
    "hasexistedwithin",
    "count",
    "countwithin",
    "distinctwithin",
    "durationwhere",
    "durationincurstate",
    "and",
    "or",
    "not",
    "equalto",
    "equal",
    "notequalto",
    "notequal",
    "lessthan",
    "lessthanorequalto",
    "lessthanorequal",
    "greaterthan",
    "greaterthanorequalto",
    "greaterthanorequal",
    "col",
];

fn is_function(n: &str) -> bool {
    FUNCTIONS.contains(&n)
}

fn comparison_function(n: &str) -> Option<CmpOp> {
    Some(match n {
        "equalto" | "equal" => CmpOp::Eq,
        "notequalto" | "notequal" => CmpOp::Ne,
        "lessthan" => CmpOp::Lt,
        "lessthanorequalto" | "lessthanorequal" => CmpOp::Le,
        "greaterthan" => CmpOp::Gt,
        "greaterthanorequalto" | "greaterthanorequal" => CmpOp::Ge,
        _ => return None,
    })
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        o => o,
    }
}

impl Expr {
    /// Replaces identifiers bound by `let` with their expressions, after checking that the
    /// result stays within the depth and size limits (a binding used twice doubles its size, so
    /// a few lines could otherwise expand to billions of operators).
    fn expand(self, env: &HashMap<String, (Pos, Expr)>) -> Result<Expr, ParseError> {
        let (depth, size) = self.expanded_shape(env);
        check_shape(self.pos, depth, size)?;
        Ok(self.inline(env))
    }

    /// The depth and size the expression will have once `env` is inlined, without inlining it.
    fn expanded_shape(&self, env: &HashMap<String, (Pos, Expr)>) -> (usize, usize) {
        let shapes = |xs: &[&Expr]| shape_of(xs.iter().map(|c| c.expanded_shape(env)));
        match &self.kind {
            ExprKind::Ident(name) => env.get(name).map_or((1, 1), |(_, e)| (e.depth, e.size)),
            ExprKind::Literal(_) => (1, 1),
            ExprKind::Call(_, args) => shape_of(args.iter().map(|c| c.expanded_shape(env))),
            ExprKind::Not(a) => shapes(&[a]),
            ExprKind::And(a, b) | ExprKind::Or(a, b) | ExprKind::Compare(a, _, b) => {
                shapes(&[a, b])
            }
        }
    }

    fn inline(self, env: &HashMap<String, (Pos, Expr)>) -> Expr {
        let pos = self.pos;
        let kind = match self.kind {
            ExprKind::Ident(name) => match env.get(&name) {
                Some((_, e)) => return e.clone(),
                None => ExprKind::Ident(name),
            },
            ExprKind::Literal(v) => ExprKind::Literal(v),
            ExprKind::Call(n, args) => {
                ExprKind::Call(n, args.into_iter().map(|a| a.inline(env)).collect())
            }
            ExprKind::Not(a) => ExprKind::Not(Box::new(a.inline(env))),
            ExprKind::And(a, b) => ExprKind::And(Box::new(a.inline(env)), Box::new(b.inline(env))),
            ExprKind::Or(a, b) => ExprKind::Or(Box::new(a.inline(env)), Box::new(b.inline(env))),
            ExprKind::Compare(a, op, b) => {
                ExprKind::Compare(Box::new(a.inline(env)), op, Box::new(b.inline(env)))
            }
        };
        Expr::new(pos, kind)
    }

    fn args<const N: usize>(
        &self,
        name: &str,
        args: &[Expr],
        what: &str,
    ) -> Result<[Expr; N], ParseError> {
        <[Expr; N]>::try_from(args.to_vec()).map_err(|_| {
            self.pos.error(format!(
                "`{name}` takes {N} argument{} ({what}), found {}",
                if N == 1 { "" } else { "s" },
                args.len()
            ))
        })
    }

    /// Reads the expression where a timeline is expected.
    fn to_op(&self) -> Result<TimeLineOp, ParseError> {
        match &self.kind {
            ExprKind::Not(a) => Ok(TimeLineOp::Not(Box::new(a.to_op()?))),
            ExprKind::And(a, b) => Ok(a.to_op()?.and(b.to_op()?)),
            ExprKind::Or(a, b) => Ok(a.to_op()?.or(b.to_op()?)),
            ExprKind::Compare(a, op, b) => match (&a.kind, &b.kind) {
                (ExprKind::Literal(_), ExprKind::Literal(_)) => Err(self.pos.error(
                    "a comparison of two constants is not a timeline",
                )),
                (ExprKind::Literal(v), _) => Ok(b.to_op()?.compare(flip(*op), v.clone())),
                (_, ExprKind::Literal(v)) => Ok(a.to_op()?.compare(*op, v.clone())),
                _ => Err(b.pos.error(
                    "expected a constant: a timeline is compared with a string, number or bool",
                )),
            },
            ExprKind::Literal(v) => Err(self.pos.error(format!(
                "expected a timeline, found the constant {v}"
            ))),
            ExprKind::Ident(name) => Err(self.pos.error(format!(
                "`{name}` is not a timeline: no `let` binds it (to read a column use latest_event_to_state({name}))"
            ))),
            ExprKind::Call(name, args) => self.call_to_op(name, args),
        }
    }

    fn call_to_op(&self, name: &str, args: &[Expr]) -> Result<TimeLineOp, ParseError> {
        let n = normalize(name);
        if let Some(op) = comparison_function(&n) {
            let [x, c] = self.args(name, args, "a timeline and a constant")?;
            return Ok(x.to_op()?.compare(op, c.to_constant()?));
        }
        Ok(match n.as_str() {
            "latesteventtostate" => {
                let [c] = self.args(name, args, "a column")?;
                TimeLineOp::LatestEventToState { column: c.to_column()? }
            }
            "hasexisted" => {
                let [p] = self.args(name, args, "an event predicate")?;
                TimeLineOp::HasExisted { predicate: p.to_predicate()? }
            }
            "hasexistedwithin" => {
                let [p, d] = self.args(name, args, "an event predicate and a window")?;
                TimeLineOp::HasExistedWithin { predicate: p.to_predicate()?, within: d.to_window()? }
            }
            "count" => {
                let [p] = self.args(name, args, "an event predicate")?;
                TimeLineOp::Count { predicate: p.to_predicate()? }
            }
            "countwithin" => {
                let [p, d] = self.args(name, args, "an event predicate and a window")?;
                TimeLineOp::CountWithin { predicate: p.to_predicate()?, within: d.to_window()? }
            }
            "distinctwithin" => {
                let [c, d] = self.args(name, args, "a column and a window")?;
                TimeLineOp::DistinctWithin { column: c.to_column()?, within: d.to_window()? }
            }
            "durationwhere" => {
                let [x] = self.args(name, args, "a bool timeline")?;
                TimeLineOp::DurationWhere(Box::new(x.to_op()?))
            }
            "durationincurstate" => {
                let [x] = self.args(name, args, "a timeline")?;
                TimeLineOp::DurationInCurState(Box::new(x.to_op()?))
            }
            "and" | "or" => {
                let [a, b] = self.args(name, args, "two timelines")?;
                let (a, b) = (a.to_op()?, b.to_op()?);
                if n == "and" { a.and(b) } else { a.or(b) }
            }
            "not" => {
                let [a] = self.args(name, args, "a timeline")?;
                TimeLineOp::Not(Box::new(a.to_op()?))
            }
            "aggregate" => return Err(self.pos.error(
                "`aggregate(…)` ends a query, after `|`: `Q | aggregate(group_by(col), sum)`",
            )),
            "col" => return Err(self.pos.error(
                "col(...) names a column, not a timeline (use latest_event_to_state(col(...)))",
            )),
            _ => return Err(self.pos.error(format!(
                "unknown operator `{name}`; expected one of latest_event_to_state, has_existed, has_existed_within, count, count_within, distinct_within, duration_where, duration_in_cur_state, and, or, not, equal_to, not_equal_to, less_than, less_than_or_equal_to, greater_than, greater_than_or_equal_to"
            ))),
        })
    }

    /// Reads the expression where an event predicate is expected.
    fn to_predicate(&self) -> Result<Predicate, ParseError> {
        match &self.kind {
            ExprKind::Not(a) => Ok(a.to_predicate()?.not()),
            ExprKind::And(a, b) => Ok(a.to_predicate()?.and(b.to_predicate()?)),
            ExprKind::Or(a, b) => Ok(a.to_predicate()?.or(b.to_predicate()?)),
            ExprKind::Compare(a, op, b) => match (&a.kind, &b.kind) {
                (ExprKind::Literal(v), _) => Ok(compare(b.to_column()?, flip(*op), v.clone())),
                _ => Ok(compare(a.to_column()?, *op, b.to_constant()?)),
            },
            ExprKind::Call(name, args) => {
                let n = normalize(name);
                if let Some(op) = comparison_function(&n) {
                    let [c, v] = self.args(name, args, "a column and a constant")?;
                    return Ok(compare(c.to_column()?, op, v.to_constant()?));
                }
                match n.as_str() {
                    "and" | "or" => {
                        let [a, b] = self.args(name, args, "two event predicates")?;
                        let (a, b) = (a.to_predicate()?, b.to_predicate()?);
                        Ok(if n == "and" { a.and(b) } else { a.or(b) })
                    }
                    "not" => {
                        let [a] = self.args(name, args, "an event predicate")?;
                        Ok(a.to_predicate()?.not())
                    }
                    _ => Err(self.pos.error(format!(
                        "expected an event predicate such as `column == \"value\"`, found a call to `{name}`"
                    ))),
                }
            }
            _ => Err(self
                .pos
                .error("expected an event predicate such as `column == \"value\"`")),
        }
    }

    /// `aggregate(group_by(col), f, …)` after `|`.
    fn to_aggregation(&self) -> Result<Aggregation, ParseError> {
        let ExprKind::Call(name, args) = &self.kind else {
            return Err(self.pos.error(
                "expected `aggregate(…)` after `|`, as in `| aggregate(group_by(cdn), sum)`",
            ));
        };
        if normalize(name) != "aggregate" {
            return Err(self.pos.error(format!(
                "expected `aggregate(…)` after `|`, found `{name}(…)`"
            )));
        }
        let mut group_by = None;
        let mut functions: Vec<AggFn> = Vec::new();
        for arg in args {
            match &arg.kind {
                ExprKind::Call(f, inner) if normalize(f) == "groupby" => {
                    if group_by.is_some() {
                        return Err(arg
                            .pos
                            .error("`group_by` is given twice; group by one column"));
                    }
                    if !functions.is_empty() {
                        return Err(arg
                            .pos
                            .error("`group_by(…)` comes first, before the functions"));
                    }
                    let [c] = arg.args(f, inner, "the column to group by")?;
                    group_by = Some(c.to_column()?);
                }
                ExprKind::Ident(f) => {
                    let func = AggFn::from_name(f).ok_or_else(|| {
                        arg.pos.error(format!(
                            "unknown aggregate function `{f}`; expected count, sum, avg, min or max"
                        ))
                    })?;
                    if functions.contains(&func) {
                        return Err(arg.pos.error(format!("`{func}` is asked for twice")));
                    }
                    functions.push(func);
                }
                _ => return Err(arg.pos.error(
                    "expected an aggregate function (count, sum, avg, min or max) or group_by(col)",
                )),
            }
        }
        if functions.is_empty() {
            return Err(self
                .pos
                .error("`aggregate(…)` needs at least one function: count, sum, avg, min or max"));
        }
        Ok(Aggregation {
            group_by,
            functions,
        })
    }

    fn to_column(&self) -> Result<Arc<str>, ParseError> {
        match &self.kind {
            ExprKind::Ident(name) => Ok(Arc::from(name.as_str())),
            ExprKind::Call(name, args) if normalize(name) == "col" => {
                let [c] = self.args(name, args, "the column name as a string")?;
                match c.kind {
                    ExprKind::Literal(Value::Str(s)) => Ok(Arc::from(&*s)),
                    _ => Err(c.pos.error("expected the column name as a string, as in col(\"name\")")),
                }
            }
            ExprKind::Not(_) => Err(self.pos.error(
                "expected a column name; `!` binds tighter than comparisons, so write !(a == 1) to negate one",
            )),
            _ => Err(self.pos.error("expected a column name, or col(\"name\")")),
        }
    }

    fn to_constant(&self) -> Result<Value, ParseError> {
        match &self.kind {
            ExprKind::Literal(v) => Ok(v.clone()),
            _ => Err(self
                .pos
                .error("expected a constant (a string, number or bool)")),
        }
    }

    fn to_window(&self) -> Result<u64, ParseError> {
        match self.kind {
            ExprKind::Literal(Value::Int(i)) if i > 0 => Ok(i as u64),
            _ => Err(self
                .pos
                .error("expected the window: a whole number of time units greater than 0")),
        }
    }
}

fn compare(column: Arc<str>, op: CmpOp, value: Value) -> Predicate {
    Predicate::Compare { column, op, value }
}

impl TimeLineOp {
    /// `self op value`, for any comparison operator.
    pub fn compare(self, op: CmpOp, value: Value) -> TimeLineOp {
        TimeLineOp::Compare {
            input: Box::new(self),
            op,
            value,
        }
    }
}

/// `"count(a == 1) | aggregate(sum)".parse::<Query>()`: [`parse`].
impl std::str::FromStr for Query {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Query, Self::Err> {
        parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::*;

    fn cirr() -> TimeLineOp {
        tl_duration_where(
            tl_has_existed(col("playerStateChange").equal_to("play"))
                .and(tl_has_existed_within(col("userAction").equal_to("seek"), 5).not())
                .and(tl_latest_event_to_state(col("playerStateChange")).equal_to("buffer"))
                .and(tl_latest_event_to_state(col("cdnChange")).equal_to("CDN1")),
        )
    }

    #[test]
    fn the_spec_example_parses() {
        let text = r#"
            duration_where(
              has_existed(playerStateChange == "play")
              && !has_existed_within(userAction == "seek", 5)
              && latest_event_to_state(playerStateChange) == "buffer"
              && latest_event_to_state(cdnChange) == "CDN1"
            )"#;
        assert_eq!(parse_query(text).unwrap(), cirr());
    }

    #[test]
    fn let_bindings_and_blog_style_names() {
        let text = r#"
            let played = TLHasExisted(col("playerStateChange") == 'play');
            let seeking = tl_has_existed_within(EqualTo(col("userAction"), "seek"), 5);
            let buffering = EqualTo(TL_LatestEventToState(playerStateChange), "buffer");
            let cdn1 = latest_event_to_state(col("cdnChange")) == "CDN1";
            let result = TLDurationWhere(And(And(And(played, Not(seeking)), buffering), cdn1));
            result;
        "#;
        assert_eq!(parse_query(text).unwrap(), cirr());
    }

    #[test]
    fn precedence_is_not_then_comparison_then_and_then_or() {
        let a = || tl_has_existed(col("a").equal_to(1));
        let b = || tl_has_existed(col("b").equal_to(1));
        let c = || tl_has_existed(col("c").equal_to(1));
        let parsed =
            parse_query("has_existed(a == 1) || has_existed(b == 1) && has_existed(c == 1)")
                .unwrap();
        assert_eq!(parsed, a().or(b().and(c())));
        let parsed = parse_query("!has_existed(a == 1) == false").unwrap();
        assert_eq!(parsed, a().not().equal_to(false));
        let parsed = parse_query("has_existed(!(a == 1) || b == 1 && c == 1)").unwrap();
        assert_eq!(
            parsed,
            tl_has_existed(
                col("a")
                    .equal_to(1)
                    .not()
                    .or(col("b").equal_to(1).and(col("c").equal_to(1)))
            )
        );
    }

    #[test]
    fn constants_on_the_left_flip_the_comparison() {
        let parsed = parse_query("5 < count(a == 1)").unwrap();
        assert_eq!(parsed, tl_count(col("a").equal_to(1)).greater_than(5));
        let parsed = parse_query("has_existed(2.5 >= a)").unwrap();
        assert_eq!(parsed, tl_has_existed(col("a").less_than_or_equal_to(2.5)));
    }

    #[test]
    fn errors_have_positions_and_say_what_was_expected() {
        let cases: &[(&str, (usize, usize), &str)] = &[
            ("has_existed(a == )", (1, 18), "expected an expression"),
            (
                "has_exited(a == 1)",
                (1, 1),
                "unknown operator `has_exited`",
            ),
            ("has_existed(a == 1", (1, 19), "expected `,` or `)`"),
            (
                "\n  has_existed_within(a == 1, 0)",
                (2, 30),
                "greater than 0",
            ),
            (
                "count(a == 1) == \"x\"",
                (1, 1),
                "cannot compare a int timeline",
            ),
            ("has_existed(a == 1) && x", (1, 24), "`x` is not a timeline"),
            ("let a = 1; let a = 2; a", (1, 16), "already bound"),
            (
                "has_existed(a == 1) == true == true",
                (1, 29),
                "do not chain",
            ),
            ("has_existed(a = 1)", (1, 15), "expected `,` or `)`"),
            ("has_existed(a == 'x)", (1, 18), "unterminated string"),
            ("has_existed(a == 1) & b", (1, 21), "expected `&&`"),
            ("has_existed(a == 1e999)", (1, 18), "not a finite number"),
            ("has_existed(a == 99999999999999999999)", (1, 18), "64-bit"),
            (
                "has_existed(a == 1) has_existed(b == 1)",
                (1, 21),
                "end of the query",
            ),
            (
                "latest_event_to_state(\"a\")",
                (1, 23),
                "expected a column name",
            ),
            (
                "duration_where(count(a == 1))",
                (1, 1),
                "expects a bool timeline",
            ),
            (
                "has_existed(count(a == 1))",
                (1, 13),
                "expected an event predicate",
            ),
            ("has_existed_within(a == 1, 2.5)", (1, 28), "whole number"),
            ("", (1, 1), "expected an expression"),
            ("has_existed(!a == 1)", (1, 13), "write !(a == 1)"),
        ];
        for (text, (line, column), needle) in cases {
            let err = parse_query(text).unwrap_err();
            assert!(err.message.contains(needle), "{text:?}: {err}");
            assert_eq!((err.line, err.column), (*line, *column), "{text:?}: {err}");
        }
    }

    #[test]
    fn strings_escape_and_round_trip() {
        let q = tl_latest_event_to_state(col("a")).equal_to("say \"hi\"\\\n");
        assert_eq!(parse_query(&q.to_string()).unwrap(), q);
        let q = parse_query(r#"latest_event_to_state(a) == 'it\'s'"#).unwrap();
        assert_eq!(q, tl_latest_event_to_state(col("a")).equal_to("it's"));
    }

    #[test]
    fn comments_are_ignored() {
        let q = parse_query("// the result\nhas_existed(a == 1) // trailing\n").unwrap();
        assert_eq!(q, tl_has_existed(col("a").equal_to(1)));
    }
}

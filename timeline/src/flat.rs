//! A flat form of the query tree, for interfaces that cannot carry recursive types (WIT records):
//! a list of nodes, each naming its inputs by index, the result last.

use crate::limits::{MAX_QUERY_DEPTH, MAX_QUERY_OPERATORS};
use crate::op::{Predicate, TimeLineOp};
use crate::parser::{parse_predicate, ParseError};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One operator of a flat query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlatNode {
    /// The operator's name in the DSL (`has_existed`, `and`, `greater_than`, …).
    pub operator: String,
    /// The input timelines, as indices of earlier nodes.
    pub inputs: Vec<u32>,
    /// The column of `latest_event_to_state` and `distinct_within`.
    pub column: Option<String>,
    /// The event predicate of `has_existed`, `count` and their windowed forms, in the DSL.
    pub predicate: Option<String>,
    /// The constant of a comparison.
    pub value: Option<Value>,
    /// The window of the windowed operators.
    pub within: Option<u64>,
}

/// A query as a list of nodes; the last one is the result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlatOp {
    pub nodes: Vec<FlatNode>,
}

impl FlatOp {
    /// Flattens `op`, children before parents (a sub-expression used twice appears twice).
    pub fn from_op(op: &TimeLineOp) -> FlatOp {
        let mut flat = FlatOp { nodes: Vec::new() };
        flat.push(op);
        flat
    }

    fn push(&mut self, op: &TimeLineOp) -> u32 {
        let inputs = op.children().into_iter().map(|c| self.push(c)).collect();
        let mut node = FlatNode {
            operator: op.name().to_string(),
            inputs,
            column: None,
            predicate: None,
            value: None,
            within: None,
        };
        match op {
            TimeLineOp::LatestEventToState { column } => node.column = Some(column.to_string()),
            TimeLineOp::DistinctWithin { column, within } => {
                node.column = Some(column.to_string());
                node.within = Some(*within);
            }
            TimeLineOp::HasExisted { predicate } | TimeLineOp::Count { predicate } => {
                node.predicate = Some(predicate.to_string())
            }
            TimeLineOp::HasExistedWithin { predicate, within }
            | TimeLineOp::CountWithin { predicate, within } => {
                node.predicate = Some(predicate.to_string());
                node.within = Some(*within);
            }
            TimeLineOp::Compare { value, .. } => node.value = Some(value.clone()),
            _ => {}
        }
        self.nodes.push(node);
        (self.nodes.len() - 1) as u32
    }

    /// Rebuilds (and validates) the tree; errors name the node at fault.
    ///
    /// Every node must be read by the result (the last node), directly or not. The tree a
    /// flat query stands for can be exponentially larger than the list (a node may be read
    /// twice by each of several nodes), so its depth and size are checked against
    /// [`crate::limits`] before anything is built.
    pub fn to_op(&self) -> Result<TimeLineOp, String> {
        let count = self.nodes.len();
        if count == 0 {
            return Err("the query has no nodes".into());
        }
        if count > MAX_QUERY_OPERATORS {
            return Err(format!(
                "the query has {count} nodes; the limit is {MAX_QUERY_OPERATORS}"
            ));
        }
        let at = |i: usize, e: String| format!("node {i} ({}): {e}", self.nodes[i].operator);
        let mut predicates = Vec::with_capacity(count);
        let mut shapes: Vec<(usize, usize)> = Vec::with_capacity(count);
        for (i, n) in self.nodes.iter().enumerate() {
            let arity = arity(&n.operator).map_err(|e| at(i, e))?;
            if n.inputs.len() != arity {
                let found = n.inputs.len();
                return Err(at(i, format!("takes {arity} input(s), found {found}")));
            }
            if let Some(&bad) = n.inputs.iter().find(|&&k| k as usize >= i) {
                return Err(at(i, format!("input {bad} is not an earlier node")));
            }
            let predicate = match &n.predicate {
                Some(text) => Some(
                    parse_predicate(text)
                        .map_err(|e: ParseError| at(i, format!("predicate: {e}")))?,
                ),
                None => None,
            };
            let own = predicate.as_ref().map_or((0, 0), Predicate::shape);
            let (depth, size) = n
                .inputs
                .iter()
                .map(|&k| shapes[k as usize])
                .chain([own])
                .fold((1usize, 1usize), |(depth, size), (d, s)| {
                    (depth.max(d.saturating_add(1)), size.saturating_add(s))
                });
            if depth > MAX_QUERY_DEPTH || size > MAX_QUERY_OPERATORS {
                return Err(at(i, format!(
                    "the tree up to here nests {depth} levels deep and has {size} operators and predicate terms; the limits are {MAX_QUERY_DEPTH} levels and {MAX_QUERY_OPERATORS} operators"
                )));
            }
            shapes.push((depth, size));
            predicates.push(predicate);
        }
        let mut read = vec![false; count];
        read[count - 1] = true;
        for i in (0..count).rev() {
            if !read[i] {
                return Err(at(i, "is not read by the result (the last node)".into()));
            }
            for &k in &self.nodes[i].inputs {
                read[k as usize] = true;
            }
        }
        let op = self.build(count - 1, &predicates)?;
        op.validate().map_err(|e| e.to_string())?;
        Ok(op)
    }

    /// Builds node `i`'s tree; the recursion is as deep as the tree, which was checked.
    fn build(&self, i: usize, predicates: &[Option<Predicate>]) -> Result<TimeLineOp, String> {
        let n = &self.nodes[i];
        let inputs = n
            .inputs
            .iter()
            .map(|&k| self.build(k as usize, predicates))
            .collect::<Result<Vec<_>, String>>()?;
        build(n, inputs, predicates[i].clone())
            .map_err(|e| format!("node {i} ({}): {e}", n.operator))
    }
}

/// The number of inputs an operator takes; an error for an unknown operator.
fn arity(operator: &str) -> Result<usize, String> {
    Ok(match operator {
        "and" | "or" => 2,
        "not"
        | "duration_where"
        | "duration_in_cur_state"
        | "equal_to"
        | "not_equal_to"
        | "less_than"
        | "less_than_or_equal_to"
        | "greater_than"
        | "greater_than_or_equal_to" => 1,
        "latest_event_to_state"
        | "distinct_within"
        | "has_existed"
        | "has_existed_within"
        | "count"
        | "count_within" => 0,
        other => return Err(format!("unknown operator `{other}`")),
    })
}

fn build(
    n: &FlatNode,
    inputs: Vec<TimeLineOp>,
    predicate: Option<Predicate>,
) -> Result<TimeLineOp, String> {
    // The inputs in argument order (their number was checked against the operator's arity).
    let mut inputs = inputs.into_iter().map(Box::new);
    let mut input = || inputs.next().ok_or("needs another input".to_string());
    let column = || -> Result<Arc<str>, String> {
        n.column
            .as_deref()
            .map(Arc::from)
            .ok_or("needs a column".into())
    };
    let within = || n.within.ok_or("needs a window (within)".to_string());
    let predicate = || predicate.ok_or("needs a predicate".to_string());
    let value = || {
        n.value
            .clone()
            .ok_or("needs a constant (value)".to_string())
    };
    let cmp = |op, input| {
        Ok(TimeLineOp::Compare {
            input,
            op,
            value: value()?,
        })
    };
    use crate::op::CmpOp::*;
    match n.operator.as_str() {
        "latest_event_to_state" => Ok(TimeLineOp::LatestEventToState { column: column()? }),
        "distinct_within" => Ok(TimeLineOp::DistinctWithin {
            column: column()?,
            within: within()?,
        }),
        "has_existed" => Ok(TimeLineOp::HasExisted {
            predicate: predicate()?,
        }),
        "has_existed_within" => Ok(TimeLineOp::HasExistedWithin {
            predicate: predicate()?,
            within: within()?,
        }),
        "count" => Ok(TimeLineOp::Count {
            predicate: predicate()?,
        }),
        "count_within" => Ok(TimeLineOp::CountWithin {
            predicate: predicate()?,
            within: within()?,
        }),
        "equal_to" => cmp(Eq, input()?),
        "not_equal_to" => cmp(Ne, input()?),
        "less_than" => cmp(Lt, input()?),
        "less_than_or_equal_to" => cmp(Le, input()?),
        "greater_than" => cmp(Gt, input()?),
        "greater_than_or_equal_to" => cmp(Ge, input()?),
        "and" => Ok(TimeLineOp::And(input()?, input()?)),
        "or" => Ok(TimeLineOp::Or(input()?, input()?)),
        "not" => Ok(TimeLineOp::Not(input()?)),
        "duration_where" => Ok(TimeLineOp::DurationWhere(input()?)),
        "duration_in_cur_state" => Ok(TimeLineOp::DurationInCurState(input()?)),
        other => Err(format!("unknown operator `{other}`")),
    }
}

//! A flat form of the query tree, for interfaces that cannot carry recursive types (WIT records):
//! a list of nodes, each naming its inputs by index, the result last.

use crate::op::TimeLineOp;
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
    pub fn to_op(&self) -> Result<TimeLineOp, String> {
        if self.nodes.is_empty() {
            return Err("the query has no nodes".into());
        }
        let mut built: Vec<TimeLineOp> = Vec::with_capacity(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            let op = build(n, &built).map_err(|e| format!("node {i} ({}): {e}", n.operator))?;
            built.push(op);
        }
        let op = built.pop().expect("non-empty");
        op.validate().map_err(|e| e.to_string())?;
        Ok(op)
    }
}

fn build(n: &FlatNode, built: &[TimeLineOp]) -> Result<TimeLineOp, String> {
    let input = |k: usize| -> Result<Box<TimeLineOp>, String> {
        let i = *n.inputs.get(k).ok_or(format!("needs {} input(s)", k + 1))? as usize;
        built
            .get(i)
            .cloned()
            .map(Box::new)
            .ok_or(format!("input {i} is not an earlier node"))
    };
    let column = || -> Result<Arc<str>, String> {
        n.column
            .as_deref()
            .map(Arc::from)
            .ok_or("needs a column".into())
    };
    let within = || n.within.ok_or("needs a window (within)".to_string());
    let predicate = || {
        let text = n.predicate.as_deref().ok_or("needs a predicate")?;
        parse_predicate(text).map_err(|e: ParseError| format!("predicate: {e}"))
    };
    let value = || {
        n.value
            .clone()
            .ok_or("needs a constant (value)".to_string())
    };
    let arity = match n.operator.as_str() {
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
        _ => 0,
    };
    if n.inputs.len() != arity {
        return Err(format!("takes {arity} input(s), found {}", n.inputs.len()));
    }
    let cmp = |op| {
        Ok(TimeLineOp::Compare {
            input: input(0)?,
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
        "equal_to" => cmp(Eq),
        "not_equal_to" => cmp(Ne),
        "less_than" => cmp(Lt),
        "less_than_or_equal_to" => cmp(Le),
        "greater_than" => cmp(Gt),
        "greater_than_or_equal_to" => cmp(Ge),
        "and" => Ok(TimeLineOp::And(input(0)?, input(1)?)),
        "or" => Ok(TimeLineOp::Or(input(0)?, input(1)?)),
        "not" => Ok(TimeLineOp::Not(input(0)?)),
        "duration_where" => Ok(TimeLineOp::DurationWhere(input(0)?)),
        "duration_in_cur_state" => Ok(TimeLineOp::DurationInCurState(input(0)?)),
        other => Err(format!("unknown operator `{other}`")),
    }
}

//! Query plans: one node per distinct sub-expression, with deterministic ids.

use crate::op::TimeLineOp;
use std::collections::HashMap;
use std::fmt;
use uuid::Uuid;

/// The namespace of node ids (a fixed, arbitrary UUID: changing it renames every worker).
const NODE_NAMESPACE: Uuid = Uuid::from_u128(0x7c1e_4d2a_9b3f_4e61_a5d0_2f8b_6c4e_1a93);

/// A node of a plan: one distinct sub-expression of the query.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanNode {
    /// A name-based UUID (v5) of the sub-expression's canonical text: the same sub-expression
    /// gets the same id in every query, which is what lets workers be shared.
    pub id: Uuid,
    /// The sub-expression this node computes.
    pub op: TimeLineOp,
    /// The nodes this node reads, as indices into [`Plan::nodes`], in argument order.
    pub inputs: Vec<usize>,
    /// The nodes that read this node.
    pub parents: Vec<usize>,
}

/// What, besides the sub-expression, makes a computation distinct: two jobs share a node's
/// workers only if all of these agree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scope {
    pub key_column: Option<String>,
    pub retention: Option<u64>,
    /// The number of workers each node is spread over, by key (at least 1).
    pub shards: u32,
}

impl PlanNode {
    /// The deterministic name of the worker computing this node for shard `shard` of `scope`: a
    /// name-based UUID of the canonical sub-expression and the scope, then the shard. A
    /// re-submitted query, or another one sharing the sub-expression, gets the same name.
    pub fn worker_name(&self, scope: &Scope, shard: u32) -> String {
        worker_name(&self.op.to_string(), scope, shard)
    }

    /// `leaf` for a node that reads events, `derived` for one that reads other timelines.
    pub fn kind(&self) -> &'static str {
        if self.op.is_leaf() {
            "leaf"
        } else {
            "derived"
        }
    }
}

/// The node graph of a query. Nodes are in topological order: every node comes after its
/// inputs, and the query's result is the last node.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub nodes: Vec<PlanNode>,
}

/// The shard (of `shards`) that holds `key`: a stable FNV-1a hash of the key, so that every
/// component computes the same shard on every platform.
pub fn shard_of(key: Option<&crate::Value>, shards: u32) -> u32 {
    let shards = shards.max(1);
    let Some(key) = key else { return 0 };
    let text = match crate::value::ValueKey::from(key) {
        crate::value::ValueKey::Str(s) => format!("s:{s}"),
        crate::value::ValueKey::Int(i) => format!("i:{i}"),
        crate::value::ValueKey::Float(b) => format!("f:{b}"),
        crate::value::ValueKey::Bool(b) => format!("b:{b}"),
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(shards)) as u32
}

/// Which of a node's `workers` holds `key`: a node with one worker (an aggregate's merge) holds
/// every key, any other the worker of the key's shard (of `shards`).
///
/// ```
/// use timeline::{shard_of, worker_index, Value};
/// let key = Value::from("s1");
/// assert_eq!(worker_index(Some(&key), 4, 1), 0);
/// assert_eq!(worker_index(Some(&key), 4, 4), shard_of(Some(&key), 4) as usize);
/// ```
pub fn worker_index(key: Option<&crate::Value>, shards: u32, workers: usize) -> usize {
    match workers {
        1 => 0,
        _ => shard_of(key, shards) as usize,
    }
}

/// The deterministic name of the worker computing the node with this canonical text for shard
/// `shard` of `scope` (see [`PlanNode::worker_name`]).
pub fn worker_name(text: &str, scope: &Scope, shard: u32) -> String {
    let text = format!(
        "{text}\nkey={}\nretain={}\nshards={}",
        scope.key_column.as_deref().unwrap_or(""),
        scope.retention.map_or(String::new(), |h| h.to_string()),
        scope.shards.max(1)
    );
    format!(
        "tl-{}-{shard}",
        Uuid::new_v5(&NODE_NAMESPACE, text.as_bytes())
    )
}

/// The id of a node computing the query with this canonical text.
pub fn node_id_of_text(text: &str) -> Uuid {
    Uuid::new_v5(&NODE_NAMESPACE, text.as_bytes())
}

/// The id of the node that computes `op`.
pub fn node_id(op: &TimeLineOp) -> Uuid {
    Uuid::new_v5(&NODE_NAMESPACE, op.to_string().as_bytes())
}

impl Plan {
    /// Plans `query`: one node per distinct sub-expression.
    ///
    /// ```
    /// let q = timeline::parse_query("has_existed(a == 1) && !has_existed(a == 1)").unwrap();
    /// let plan = timeline::Plan::new(&q);
    /// assert_eq!(plan.nodes.len(), 3); // the leaf, the `!`, the `&&`
    /// ```
    pub fn new(query: &TimeLineOp) -> Plan {
        Plan::with_leaves(query, &[])
    }

    /// Plans `query` and the extra `leaves` a node above it reads (an aggregate's group
    /// column); the leaves come first, so the query's result is still the last node.
    pub fn with_leaves(query: &TimeLineOp, leaves: &[TimeLineOp]) -> Plan {
        let mut plan = Plan { nodes: Vec::new() };
        let mut seen = HashMap::new();
        for leaf in leaves {
            plan.add(leaf, &mut seen);
        }
        plan.add(query, &mut seen);
        plan
    }

    /// The index of the node computing `op`, if the plan has one.
    pub fn position(&self, op: &TimeLineOp) -> Option<usize> {
        let id = node_id(op);
        self.find(&id)
    }

    fn add(&mut self, op: &TimeLineOp, seen: &mut HashMap<String, usize>) -> usize {
        let text = op.to_string();
        if let Some(&i) = seen.get(&text) {
            return i;
        }
        let inputs: Vec<usize> = op
            .children()
            .into_iter()
            .map(|c| self.add(c, seen))
            .collect();
        let i = self.nodes.len();
        for &c in &inputs {
            if !self.nodes[c].parents.contains(&i) {
                self.nodes[c].parents.push(i);
            }
        }
        self.nodes.push(PlanNode {
            id: Uuid::new_v5(&NODE_NAMESPACE, text.as_bytes()),
            op: op.clone(),
            inputs,
            parents: Vec::new(),
        });
        seen.insert(text, i);
        i
    }

    /// The index of the node computing the whole query.
    pub fn root(&self) -> usize {
        self.nodes.len() - 1
    }

    /// The index of the node with this id.
    pub fn find(&self, id: &Uuid) -> Option<usize> {
        self.nodes.iter().position(|n| &n.id == id)
    }
}

impl fmt::Display for Plan {
    /// One line per node: its id, kind, inputs (by id) and the sub-expression it computes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.nodes.iter().enumerate() {
            let inputs: Vec<String> = n
                .inputs
                .iter()
                .map(|&c| self.nodes[c].id.to_string())
                .collect();
            let role = if i == self.root() { " (result)" } else { "" };
            writeln!(
                f,
                "{}  {:<7}  {:<21}  inputs=[{}]  {}{role}",
                n.id,
                n.kind(),
                n.op.name(),
                inputs.join(", "),
                n.op
            )?;
        }
        Ok(())
    }
}

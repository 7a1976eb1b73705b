//! Fused pointwise operators: a tree of comparisons, `&&`, `||` and `!` evaluated in one pass.
//!
//! A pointwise operator's value at `t` depends only on its inputs' values at `t`, so a tree of
//! them needs no timelines of its own between its top and the timelines it reads. The engine
//! keeps only the top's output and evaluates the whole tree at every change time of the inputs:
//! on CIRR that is one timeline instead of seven, and one pass instead of seven per change.
//! (The distributed plan still gives every sub-expression its own worker.)

use crate::node::DerivedKind;
use crate::op::{kleene_and, kleene_or, CmpOp};
use crate::plan::Plan;
use crate::timeline::{partition_point_from_end, Reader, Timeline};
use crate::value::{State, Value};

/// A tree of pointwise operators over materialized timelines (its inputs), as a program: each
/// step reads earlier steps, and the last step is the top of the tree.
#[derive(Clone, Debug)]
pub struct Pointwise {
    /// The plan nodes the tree reads, whose timelines are kept elsewhere.
    pub inputs: Vec<usize>,
    steps: Vec<Step>,
}

#[derive(Clone, Debug)]
enum Step {
    /// The value of `inputs[i]`.
    Input(usize),
    Not(usize),
    And(usize, usize),
    Or(usize, usize),
    Compare(CmpOp, Value, usize),
}

/// A step's value at one instant: an input's state in place (with how long it has held), or a
/// three-valued boolean.
#[derive(Clone, Copy)]
enum Res<'a> {
    State(&'a State, u64),
    Bool(Option<bool>),
}

impl Res<'_> {
    fn as_bool(self) -> Option<bool> {
        match self {
            Res::State(s, _) => s.as_bool(),
            Res::Bool(b) => b,
        }
    }
}

impl Pointwise {
    /// Whether plan node `node` is a pointwise operator that can be evaluated inside a tree: a
    /// comparison of a growing duration is not, because it changes between its input's change
    /// points (at the crossing instants) and so needs its own timeline.
    pub fn fusable(plan: &Plan, kinds: &[Option<&DerivedKind>], node: usize) -> bool {
        match kinds[node] {
            Some(DerivedKind::And | DerivedKind::Or | DerivedKind::Not) => true,
            Some(DerivedKind::Compare(..)) => {
                let input = plan.nodes[node].inputs[0];
                !matches!(
                    kinds[input],
                    Some(DerivedKind::DurationWhere | DerivedKind::DurationInCurState)
                )
            }
            _ => false,
        }
    }

    /// The tree with `top` at its top, descending into every node for which `inside` holds
    /// (those are evaluated here and keep no timeline); every other node it reads is an input.
    pub fn new(
        plan: &Plan,
        kinds: &[Option<&DerivedKind>],
        top: usize,
        inside: &dyn Fn(usize) -> bool,
    ) -> Pointwise {
        let mut program = Pointwise {
            inputs: Vec::new(),
            steps: Vec::new(),
        };
        program.add(plan, kinds, top, true, inside);
        program
    }

    /// Adds the steps computing `node`; returns the index of its step.
    fn add(
        &mut self,
        plan: &Plan,
        kinds: &[Option<&DerivedKind>],
        node: usize,
        is_top: bool,
        inside: &dyn Fn(usize) -> bool,
    ) -> usize {
        let step = if is_top || inside(node) {
            let inputs = &plan.nodes[node].inputs;
            let mut arg = |k: usize| self.add(plan, kinds, inputs[k], false, inside);
            match kinds[node] {
                Some(DerivedKind::Not) => Step::Not(arg(0)),
                Some(DerivedKind::And) => Step::And(arg(0), arg(1)),
                Some(DerivedKind::Or) => Step::Or(arg(0), arg(1)),
                Some(DerivedKind::Compare(op, c)) => Step::Compare(*op, c.clone(), arg(0)),
                _ => unreachable!("only pointwise nodes are fused"),
            }
        } else {
            let i = match self.inputs.iter().position(|&n| n == node) {
                Some(i) => i,
                None => {
                    self.inputs.push(node);
                    self.inputs.len() - 1
                }
            };
            Step::Input(i)
        };
        self.steps.push(step);
        self.steps.len() - 1
    }

    /// Rebuilds `out` from `from` on, given the timelines of [`Pointwise::inputs`] in that order.
    /// Type mismatches met by a comparison are added to `mismatches`, once per instant the tree
    /// is evaluated at (every change time of its inputs from `from` on).
    pub fn recompute(
        &self,
        inputs: &[&Timeline],
        out: &mut Timeline,
        from: u64,
        mismatches: &mut u64,
    ) {
        out.truncate_from(from);
        let mut readers: Vec<Reader> = inputs.iter().map(|tl| Reader::new(tl, from)).collect();
        // Each input's change points after `from`, consumed as the pass moves forward.
        let mut pending: Vec<&[(u64, State)]> = inputs
            .iter()
            .map(|tl| {
                let pts = tl.points();
                &pts[partition_point_from_end(pts, |(t, _)| *t <= from)..]
            })
            .collect();
        let mut values: Vec<Res> = Vec::with_capacity(self.steps.len());
        let mut t = from;
        loop {
            values.clear();
            for step in &self.steps {
                let v = match *step {
                    Step::Input(i) => {
                        let (s, dt) = readers[i].state_at(t);
                        Res::State(s, dt)
                    }
                    Step::Not(a) => Res::Bool(values[a].as_bool().map(|b| !b)),
                    Step::And(a, b) => {
                        Res::Bool(kleene_and(values[a].as_bool(), values[b].as_bool()))
                    }
                    Step::Or(a, b) => {
                        Res::Bool(kleene_or(values[a].as_bool(), values[b].as_bool()))
                    }
                    Step::Compare(op, ref c, a) => Res::Bool(compare(op, c, values[a], mismatches)),
                };
                values.push(v);
            }
            let top = values.last().expect("a tree has a top").as_bool();
            out.push(t, top.map_or(State::Unknown, State::bool));
            // The next change time of any input.
            let Some(next) = pending.iter().filter_map(|p| p.first().map(|x| x.0)).min() else {
                break;
            };
            for p in &mut pending {
                if p.first().is_some_and(|x| x.0 == next) {
                    *p = &p[1..];
                }
            }
            t = next;
        }
    }
}

/// `x op c` at one instant: unknown where `x` is unknown or of another type than `c` (a
/// mismatch, counted).
fn compare(op: CmpOp, c: &Value, x: Res, mismatches: &mut u64) -> Option<bool> {
    let held;
    let v = match x {
        Res::Bool(None) | Res::State(State::Unknown, _) => return None,
        Res::Bool(Some(b)) => {
            held = Value::Bool(b);
            &held
        }
        Res::State(State::Value(v), _) => v,
        Res::State(s @ (State::Duration(_) | State::Growing(_)), dt) => {
            // Not fused over a growing duration (see `fusable`); a constant one is its value.
            held = s.advanced(dt).instant_value()?;
            &held
        }
    };
    let holds = op.apply(v, c);
    if holds.is_none() {
        *mismatches += 1;
    }
    holds
}

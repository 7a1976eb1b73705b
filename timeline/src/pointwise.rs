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
use crate::timeline::{partition_point_from_end, Timeline};
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

/// A step's value at one instant: an input's state in place, or a three-valued boolean.
#[derive(Clone, Copy)]
enum Res<'a> {
    State(&'a State),
    Bool(Option<bool>),
}

impl Res<'_> {
    fn as_bool(self) -> Option<bool> {
        match self {
            Res::State(s) => s.as_bool(),
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
    /// Type mismatches met by a comparison are added to `mismatches`, once per change of the
    /// comparison's operand. `scratch` lends the buffers, so that a call allocates nothing.
    pub fn recompute<'a>(
        &self,
        inputs: &[&'a Timeline],
        out: &mut Timeline,
        from: u64,
        mismatches: &mut u64,
        scratch: &mut Scratch,
    ) {
        debug_assert_eq!(
            inputs.len(),
            self.inputs.len(),
            "one timeline per input, in order"
        );
        out.truncate_from(from);
        let n = inputs.len();
        let Scratch {
            next,
            input_changed,
            changed,
            values,
        } = scratch;
        // Per input, how many of its change points lie at or before the time reached: the
        // state in force is the last of them (or the initial value), the rest lie ahead. The
        // pass moves from one change time of any input to the next.
        next.clear();
        next.extend(
            (0..n).map(|i| partition_point_from_end(inputs[i].points(), |(t, _)| *t <= from)),
        );
        let state = |i: usize, next: &[usize]| -> &'a State {
            let tl = inputs[i];
            match next[i] {
                0 => tl.initial(),
                k => &tl.points()[k - 1].1,
            }
        };
        // Only the steps above an input that changed are evaluated again; the others keep
        // their value from the previous change time (at `from`, every step is evaluated).
        input_changed.clear();
        input_changed.resize(n, true);
        changed.clear();
        changed.resize(self.steps.len(), true);
        values.clear();
        values.resize(self.steps.len(), None);
        let mut t = from;
        // The top's value last pushed: a change time that leaves it as it was adds no point
        // (`push` would find it continuing), so it is not pushed at all.
        let mut pushed: Option<Option<bool>> = None;
        loop {
            for (k, step) in self.steps.iter().enumerate() {
                changed[k] = match *step {
                    Step::Input(i) => input_changed[i],
                    Step::Not(a) | Step::Compare(_, _, a) => changed[a],
                    Step::And(a, b) | Step::Or(a, b) => changed[a] || changed[b],
                };
                if !changed[k] {
                    continue;
                }
                // A step reading an input reads its state in place; the others are booleans.
                let operand = |a: usize| match self.steps[a] {
                    Step::Input(i) => Res::State(state(i, next)),
                    _ => Res::Bool(values[a]),
                };
                let value = match *step {
                    Step::Input(_) => continue,
                    Step::Not(a) => operand(a).as_bool().map(|b| !b),
                    Step::And(a, b) => kleene_and(operand(a).as_bool(), operand(b).as_bool()),
                    Step::Or(a, b) => kleene_or(operand(a).as_bool(), operand(b).as_bool()),
                    Step::Compare(op, ref c, a) => compare(op, c, operand(a), mismatches),
                };
                values[k] = value;
            }
            // The top is an operator, never an input (see `add`).
            let top = values.last().copied().flatten();
            if pushed != Some(top) {
                out.push(t, top.map_or(State::Unknown, State::bool));
                pushed = Some(top);
            }
            // The next change time of any input.
            let Some(following) = (0..n)
                .filter_map(|i| inputs[i].points().get(next[i]).map(|p| p.0))
                .min()
            else {
                break;
            };
            for (i, moved) in input_changed.iter_mut().enumerate() {
                *moved = inputs[i]
                    .points()
                    .get(next[i])
                    .is_some_and(|p| p.0 == following);
                next[i] += usize::from(*moved);
            }
            t = following;
        }
    }
}

/// The buffers [`Pointwise::recompute`] works in, kept by its caller between calls.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    /// Per input: how many of its change points lie at or before the time reached.
    next: Vec<usize>,
    /// Per input: whether it changed at the time reached.
    input_changed: Vec<bool>,
    /// Per step: whether its value changed at the time reached.
    changed: Vec<bool>,
    /// Per step: its value, for the steps that are operators.
    values: Vec<Option<bool>>,
}

/// `x op c` at one instant: unknown where `x` is unknown or of another type than `c` (a
/// mismatch, counted).
fn compare(op: CmpOp, c: &Value, x: Res, mismatches: &mut u64) -> Option<bool> {
    let held;
    let v = match x {
        Res::Bool(None) | Res::State(State::Unknown) => return None,
        Res::Bool(Some(b)) => {
            held = Value::Bool(b);
            &held
        }
        Res::State(State::Value(v)) => v,
        Res::State(State::Duration(d)) => {
            held = Value::Int(*d);
            &held
        }
        Res::State(State::Growing(_)) => {
            unreachable!("a comparison of a growing duration is not fused (see `fusable`)")
        }
    };
    let holds = op.apply(v, c);
    if holds.is_none() {
        *mismatches += 1;
    }
    holds
}

//! Converting between `golem:rpc`'s `wit-value` (a flat list of nodes, the root first) and
//! wasmtime's component values. Going to a component value needs the target's type, as Golem
//! does: a `wit-value` names no fields or cases, only positions.

use crate::host_types::{WitNode, WitValue};
use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use wasmtime::component::{Type, Val};

/// Encodes a component value as a `wit-value`.
pub fn val_to_wit(v: &Val) -> Result<WitValue> {
    let mut nodes = Vec::new();
    push(v, &mut nodes)?;
    Ok(WitValue { nodes })
}

fn push(v: &Val, nodes: &mut Vec<WitNode>) -> Result<i32> {
    let at = nodes.len();
    nodes.push(WitNode::PrimBool(false)); // placeholder until the children are in
    let all = |xs: &mut dyn Iterator<Item = &Val>, nodes: &mut Vec<WitNode>| -> Result<Vec<i32>> {
        xs.map(|x| push(x, nodes)).collect()
    };
    let node = match v {
        Val::Bool(x) => WitNode::PrimBool(*x),
        Val::S8(x) => WitNode::PrimS8(*x),
        Val::U8(x) => WitNode::PrimU8(*x),
        Val::S16(x) => WitNode::PrimS16(*x),
        Val::U16(x) => WitNode::PrimU16(*x),
        Val::S32(x) => WitNode::PrimS32(*x),
        Val::U32(x) => WitNode::PrimU32(*x),
        Val::S64(x) => WitNode::PrimS64(*x),
        Val::U64(x) => WitNode::PrimU64(*x),
        Val::Float32(x) => WitNode::PrimFloat32(*x),
        Val::Float64(x) => WitNode::PrimFloat64(*x),
        Val::Char(x) => WitNode::PrimChar(*x),
        Val::String(x) => WitNode::PrimString(x.clone()),
        Val::List(xs) => WitNode::ListValue(all(&mut xs.iter(), nodes)?),
        Val::Tuple(xs) => WitNode::TupleValue(all(&mut xs.iter(), nodes)?),
        Val::Record(fs) => WitNode::RecordValue(all(&mut fs.iter().map(|(_, v)| v), nodes)?),
        Val::Option(x) => WitNode::OptionValue(x.as_ref().map(|x| push(x, nodes)).transpose()?),
        Val::Result(r) => WitNode::ResultValue(match r {
            Ok(x) => Ok(x.as_ref().map(|x| push(x, nodes)).transpose()?),
            Err(x) => Err(x.as_ref().map(|x| push(x, nodes)).transpose()?),
        }),
        // Variants, enums and flags carry names here; the encoding needs case positions, which
        // only the type knows. Our interfaces encode those from the type side (`wit_to_val`),
        // and a value we send back is re-encoded with `val_to_wit_typed`.
        Val::Variant(..) | Val::Enum(_) | Val::Flags(_) => {
            bail!("internal: use val_to_wit_typed for {v:?}")
        }
        other => bail!("cannot encode {other:?} as a wit-value"),
    };
    nodes[at] = node;
    Ok(at as i32)
}

/// Encodes a component value of type `ty` as a `wit-value` (variants, enums and flags by
/// position).
pub fn val_to_wit_typed(v: &Val, ty: &Type) -> Result<WitValue> {
    let mut nodes = Vec::new();
    push_typed(v, ty, &mut nodes)?;
    Ok(WitValue { nodes })
}

fn push_typed(v: &Val, ty: &Type, nodes: &mut Vec<WitNode>) -> Result<i32> {
    let at = nodes.len();
    nodes.push(WitNode::PrimBool(false));
    let node = match (v, ty) {
        (Val::List(xs), Type::List(l)) => {
            let t = l.ty();
            WitNode::ListValue(
                xs.iter()
                    .map(|x| push_typed(x, &t, nodes))
                    .collect::<Result<_>>()?,
            )
        }
        (Val::Tuple(xs), Type::Tuple(t)) => WitNode::TupleValue(
            xs.iter()
                .zip(t.types())
                .map(|(x, t)| push_typed(x, &t, nodes))
                .collect::<Result<_>>()?,
        ),
        (Val::Record(fs), Type::Record(r)) => WitNode::RecordValue(
            fs.iter()
                .zip(r.fields())
                .map(|((_, x), f)| push_typed(x, &f.ty, nodes))
                .collect::<Result<_>>()?,
        ),
        (Val::Variant(name, payload), Type::Variant(var)) => {
            let (i, case) = var
                .cases()
                .enumerate()
                .find(|(_, c)| c.name == name)
                .ok_or_else(|| anyhow!("no case {name}"))?;
            let p = match (payload, case.ty) {
                (Some(p), Some(t)) => Some(push_typed(p, &t, nodes)?),
                _ => None,
            };
            WitNode::VariantValue((i as u32, p))
        }
        (Val::Enum(name), Type::Enum(e)) => WitNode::EnumValue(
            e.names()
                .position(|n| n == name)
                .ok_or_else(|| anyhow!("no case {name}"))? as u32,
        ),
        (Val::Flags(set), Type::Flags(f)) => {
            WitNode::FlagsValue(f.names().map(|n| set.iter().any(|s| s == n)).collect())
        }
        (Val::Option(x), Type::Option(o)) => WitNode::OptionValue(
            x.as_ref()
                .map(|x| push_typed(x, &o.ty(), nodes))
                .transpose()?,
        ),
        (Val::Result(r), Type::Result(rt)) => WitNode::ResultValue(match r {
            Ok(x) => Ok(match (x, rt.ok()) {
                (Some(x), Some(t)) => Some(push_typed(x, &t, nodes)?),
                _ => None,
            }),
            Err(x) => Err(match (x, rt.err()) {
                (Some(x), Some(t)) => Some(push_typed(x, &t, nodes)?),
                _ => None,
            }),
        }),
        (prim, _) => {
            nodes.pop();
            let mut sub = Vec::new();
            push(prim, &mut sub)?;
            let [node] = <[WitNode; 1]>::try_from(sub)
                .map_err(|_| anyhow!("{prim:?} is not a primitive"))?;
            nodes.push(node);
            return Ok(at as i32);
        }
    };
    nodes[at] = node;
    Ok(at as i32)
}

/// Decodes a `wit-value` as a component value of type `ty`.
pub fn wit_to_val(w: &WitValue, ty: &Type) -> Result<Val> {
    read(w, 0, ty, 0)
}

/// Decodes a `wit-value` tuple (a function's results) as values of the given types.
pub fn wit_tuple_to_vals(w: &WitValue, types: &[Type]) -> Result<Vec<Val>> {
    match w.nodes.first() {
        Some(WitNode::TupleValue(xs)) if xs.len() == types.len() => xs
            .iter()
            .zip(types)
            .map(|(&j, t)| read(w, j, t, 1))
            .collect(),
        other => bail!(
            "expected a tuple of {} results, found {other:?}",
            types.len()
        ),
    }
}

fn read(w: &WitValue, i: i32, ty: &Type, depth: usize) -> Result<Val> {
    if depth > 100 {
        bail!("the wit-value nests too deep");
    }
    let node = w
        .nodes
        .get(usize::try_from(i).map_err(|_| anyhow!("negative node index {i}"))?)
        .ok_or_else(|| anyhow!("the wit-value has no node {i}"))?;
    let sub = |j: i32, t: &Type| read(w, j, t, depth + 1);
    let mismatch = || anyhow!("expected a value of type {ty:?}, found {node:?}");
    Ok(match (node, ty) {
        (WitNode::PrimBool(x), Type::Bool) => Val::Bool(*x),
        (WitNode::PrimS8(x), Type::S8) => Val::S8(*x),
        (WitNode::PrimU8(x), Type::U8) => Val::U8(*x),
        (WitNode::PrimS16(x), Type::S16) => Val::S16(*x),
        (WitNode::PrimU16(x), Type::U16) => Val::U16(*x),
        (WitNode::PrimS32(x), Type::S32) => Val::S32(*x),
        (WitNode::PrimU32(x), Type::U32) => Val::U32(*x),
        (WitNode::PrimS64(x), Type::S64) => Val::S64(*x),
        (WitNode::PrimU64(x), Type::U64) => Val::U64(*x),
        (WitNode::PrimFloat32(x), Type::Float32) => Val::Float32(*x),
        (WitNode::PrimFloat64(x), Type::Float64) => Val::Float64(*x),
        (WitNode::PrimChar(x), Type::Char) => Val::Char(*x),
        (WitNode::PrimString(x), Type::String) => Val::String(x.clone()),
        (WitNode::ListValue(xs), Type::List(l)) => {
            let t = l.ty();
            Val::List(xs.iter().map(|&j| sub(j, &t)).collect::<Result<_>>()?)
        }
        (WitNode::TupleValue(xs), Type::Tuple(t)) => {
            if xs.len() != t.types().len() {
                return Err(mismatch());
            }
            Val::Tuple(
                xs.iter()
                    .zip(t.types())
                    .map(|(&j, t)| sub(j, &t))
                    .collect::<Result<_>>()?,
            )
        }
        (WitNode::RecordValue(xs), Type::Record(r)) => {
            if xs.len() != r.fields().len() {
                return Err(mismatch());
            }
            Val::Record(
                xs.iter()
                    .zip(r.fields())
                    .map(|(&j, f)| Ok((f.name.to_string(), sub(j, &f.ty)?)))
                    .collect::<Result<_>>()?,
            )
        }
        (WitNode::VariantValue((case, payload)), Type::Variant(v)) => {
            let c = v.cases().nth(*case as usize).ok_or_else(mismatch)?;
            let p = match (payload, &c.ty) {
                (Some(j), Some(t)) => Some(Box::new(sub(*j, t)?)),
                (None, None) => None,
                _ => return Err(mismatch()),
            };
            Val::Variant(c.name.to_string(), p)
        }
        (WitNode::EnumValue(case), Type::Enum(e)) => Val::Enum(
            e.names()
                .nth(*case as usize)
                .ok_or_else(mismatch)?
                .to_string(),
        ),
        (WitNode::FlagsValue(bits), Type::Flags(f)) => Val::Flags(
            f.names()
                .zip(bits)
                .filter(|(_, b)| **b)
                .map(|(n, _)| n.to_string())
                .collect(),
        ),
        (WitNode::OptionValue(x), Type::Option(o)) => {
            Val::Option(x.map(|j| sub(j, &o.ty()).map(Box::new)).transpose()?)
        }
        (WitNode::ResultValue(r), Type::Result(rt)) => {
            let side = |x: &Option<i32>, t: Option<Type>| -> Result<Option<Box<Val>>> {
                match (x, t) {
                    (Some(j), Some(t)) => Ok(Some(Box::new(sub(*j, &t)?))),
                    (None, None) => Ok(None),
                    _ => Err(mismatch()),
                }
            };
            Val::Result(match r {
                Ok(x) => Ok(side(x, rt.ok())?),
                Err(x) => Err(side(x, rt.err())?),
            })
        }
        _ => return Err(mismatch()),
    })
}

/// A `wit-value` as it is written to a worker's log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LoggedValue(Vec<LoggedNode>);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
enum LoggedNode {
    Record(Vec<i32>),
    Variant(u32, Option<i32>),
    Enum(u32),
    Flags(Vec<bool>),
    Tuple(Vec<i32>),
    List(Vec<i32>),
    Option(Option<i32>),
    Result(Result<Option<i32>, Option<i32>>),
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    S8(i8),
    S16(i16),
    S32(i32),
    S64(i64),
    /// Floats by their bits, so that every value comes back as it went in: JSON has no NaN
    /// or infinity (serde_json writes them as `null`, which then does not read back).
    F32Bits(u32),
    F64Bits(u64),
    /// Floats as numbers, as logs written before the bits were; read, never written.
    F32(f32),
    F64(f64),
    Char(char),
    Bool(bool),
    String(String),
    Handle(String, u64),
}

impl From<&WitValue> for LoggedValue {
    fn from(w: &WitValue) -> LoggedValue {
        LoggedValue(
            w.nodes
                .iter()
                .map(|n| match n {
                    WitNode::RecordValue(x) => LoggedNode::Record(x.clone()),
                    WitNode::VariantValue((c, p)) => LoggedNode::Variant(*c, *p),
                    WitNode::EnumValue(c) => LoggedNode::Enum(*c),
                    WitNode::FlagsValue(x) => LoggedNode::Flags(x.clone()),
                    WitNode::TupleValue(x) => LoggedNode::Tuple(x.clone()),
                    WitNode::ListValue(x) => LoggedNode::List(x.clone()),
                    WitNode::OptionValue(x) => LoggedNode::Option(*x),
                    WitNode::ResultValue(x) => LoggedNode::Result(*x),
                    WitNode::PrimU8(x) => LoggedNode::U8(*x),
                    WitNode::PrimU16(x) => LoggedNode::U16(*x),
                    WitNode::PrimU32(x) => LoggedNode::U32(*x),
                    WitNode::PrimU64(x) => LoggedNode::U64(*x),
                    WitNode::PrimS8(x) => LoggedNode::S8(*x),
                    WitNode::PrimS16(x) => LoggedNode::S16(*x),
                    WitNode::PrimS32(x) => LoggedNode::S32(*x),
                    WitNode::PrimS64(x) => LoggedNode::S64(*x),
                    WitNode::PrimFloat32(x) => LoggedNode::F32Bits(x.to_bits()),
                    WitNode::PrimFloat64(x) => LoggedNode::F64Bits(x.to_bits()),
                    WitNode::PrimChar(x) => LoggedNode::Char(*x),
                    WitNode::PrimBool(x) => LoggedNode::Bool(*x),
                    WitNode::PrimString(x) => LoggedNode::String(x.clone()),
                    WitNode::Handle((uri, r)) => LoggedNode::Handle(uri.value.clone(), *r),
                })
                .collect(),
        )
    }
}

impl From<&LoggedValue> for WitValue {
    fn from(l: &LoggedValue) -> WitValue {
        WitValue {
            nodes: l
                .0
                .iter()
                .map(|n| match n {
                    LoggedNode::Record(x) => WitNode::RecordValue(x.clone()),
                    LoggedNode::Variant(c, p) => WitNode::VariantValue((*c, *p)),
                    LoggedNode::Enum(c) => WitNode::EnumValue(*c),
                    LoggedNode::Flags(x) => WitNode::FlagsValue(x.clone()),
                    LoggedNode::Tuple(x) => WitNode::TupleValue(x.clone()),
                    LoggedNode::List(x) => WitNode::ListValue(x.clone()),
                    LoggedNode::Option(x) => WitNode::OptionValue(*x),
                    LoggedNode::Result(x) => WitNode::ResultValue(*x),
                    LoggedNode::U8(x) => WitNode::PrimU8(*x),
                    LoggedNode::U16(x) => WitNode::PrimU16(*x),
                    LoggedNode::U32(x) => WitNode::PrimU32(*x),
                    LoggedNode::U64(x) => WitNode::PrimU64(*x),
                    LoggedNode::S8(x) => WitNode::PrimS8(*x),
                    LoggedNode::S16(x) => WitNode::PrimS16(*x),
                    LoggedNode::S32(x) => WitNode::PrimS32(*x),
                    LoggedNode::S64(x) => WitNode::PrimS64(*x),
                    LoggedNode::F32Bits(x) => WitNode::PrimFloat32(f32::from_bits(*x)),
                    LoggedNode::F64Bits(x) => WitNode::PrimFloat64(f64::from_bits(*x)),
                    LoggedNode::F32(x) => WitNode::PrimFloat32(*x),
                    LoggedNode::F64(x) => WitNode::PrimFloat64(*x),
                    LoggedNode::Char(x) => WitNode::PrimChar(*x),
                    LoggedNode::Bool(x) => WitNode::PrimBool(*x),
                    LoggedNode::String(x) => WitNode::PrimString(x.clone()),
                    LoggedNode::Handle(uri, r) => WitNode::Handle((
                        crate::host_types::golem::rpc::types::Uri { value: uri.clone() },
                        *r,
                    )),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(w: &WitValue) -> Vec<u64> {
        w.nodes
            .iter()
            .map(|n| match n {
                WitNode::PrimFloat64(x) => x.to_bits(),
                WitNode::PrimFloat32(x) => u64::from(x.to_bits()),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn every_float_comes_back_from_the_log_as_it_went_in() {
        let value = WitValue {
            nodes: vec![
                WitNode::PrimFloat64(f64::NAN),
                WitNode::PrimFloat64(f64::INFINITY),
                WitNode::PrimFloat64(f64::NEG_INFINITY),
                WitNode::PrimFloat64(-0.0),
                WitNode::PrimFloat64(0.1),
                WitNode::PrimFloat32(f32::NAN),
                WitNode::PrimFloat32(-1.5),
            ],
        };
        let json = serde_json::to_string(&LoggedValue::from(&value)).unwrap();
        let back: LoggedValue = serde_json::from_str(&json).unwrap();
        assert_eq!(floats(&WitValue::from(&back)), floats(&value), "{json}");
    }

    #[test]
    fn floats_logged_as_numbers_still_read() {
        let old: LoggedValue = serde_json::from_str(r#"[{"F64":1.5},{"F32":-2.25}]"#).unwrap();
        assert_eq!(
            floats(&WitValue::from(&old)),
            [1.5f64.to_bits(), u64::from((-2.25f32).to_bits())]
        );
    }
}

//! Golem 1.1's typed JSON for values (`{"typ": …, "value": …}`, as its REST API takes
//! parameters and gives results): types in its `AnalysedType` form (`{"type": "Record",
//! "fields": [{"name", "typ"}]}`, …) and values in its JSON mapping (records as objects,
//! variants as `{"case": payload}`, options as the value or `null`).

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value as Json};
use wasmtime::component::{Type, Val};

/// A component type as Golem 1.1 writes it in `typ`.
pub fn typ(ty: &Type) -> Json {
    match ty {
        Type::Bool => json!({"type": "Bool"}),
        Type::U8 => json!({"type": "U8"}),
        Type::U16 => json!({"type": "U16"}),
        Type::U32 => json!({"type": "U32"}),
        Type::U64 => json!({"type": "U64"}),
        Type::S8 => json!({"type": "S8"}),
        Type::S16 => json!({"type": "S16"}),
        Type::S32 => json!({"type": "S32"}),
        Type::S64 => json!({"type": "S64"}),
        Type::Float32 => json!({"type": "F32"}),
        Type::Float64 => json!({"type": "F64"}),
        Type::Char => json!({"type": "Chr"}),
        Type::String => json!({"type": "Str"}),
        Type::List(l) => json!({"type": "List", "inner": typ(&l.ty())}),
        Type::Option(o) => json!({"type": "Option", "inner": typ(&o.ty())}),
        Type::Tuple(t) => {
            json!({"type": "Tuple", "items": t.types().map(|t| typ(&t)).collect::<Vec<_>>()})
        }
        Type::Record(r) => json!({"type": "Record", "fields": r
            .fields()
            .map(|f| json!({"name": f.name, "typ": typ(&f.ty)}))
            .collect::<Vec<_>>()}),
        Type::Variant(v) => json!({"type": "Variant", "cases": v
            .cases()
            .map(|c| json!({"name": c.name, "typ": c.ty.as_ref().map(typ)}))
            .collect::<Vec<_>>()}),
        Type::Enum(e) => json!({"type": "Enum", "cases": e.names().collect::<Vec<_>>()}),
        Type::Flags(f) => json!({"type": "Flags", "names": f.names().collect::<Vec<_>>()}),
        Type::Result(r) => {
            json!({"type": "Result", "ok": r.ok().as_ref().map(typ), "err": r.err().as_ref().map(typ)})
        }
        other => json!({"type": format!("{other:?}")}),
    }
}

/// Reads a JSON value as a component value of type `ty`; the error says where it does not fit
/// (`$.options.shards: expected u32`).
pub fn to_val(v: &Json, ty: &Type) -> Result<Val> {
    at(v, ty, "$")
}

fn at(v: &Json, ty: &Type, path: &str) -> Result<Val> {
    let expected = |what: &str| anyhow!("{path}: expected {what}, found {v}");
    let int = |lo: i128, hi: i128| -> Result<i128> {
        v.as_i64()
            .map(i128::from)
            .or_else(|| v.as_u64().map(i128::from))
            .filter(|i| (lo..=hi).contains(i))
            .ok_or_else(|| expected(&format!("an integer in {lo}..={hi}")))
    };
    Ok(match ty {
        Type::Bool => Val::Bool(v.as_bool().ok_or_else(|| expected("a bool"))?),
        Type::U8 => Val::U8(int(0, u8::MAX.into())? as u8),
        Type::U16 => Val::U16(int(0, u16::MAX.into())? as u16),
        Type::U32 => Val::U32(int(0, u32::MAX.into())? as u32),
        Type::U64 => Val::U64(int(0, u64::MAX.into())? as u64),
        Type::S8 => Val::S8(int(i8::MIN.into(), i8::MAX.into())? as i8),
        Type::S16 => Val::S16(int(i16::MIN.into(), i16::MAX.into())? as i16),
        Type::S32 => Val::S32(int(i32::MIN.into(), i32::MAX.into())? as i32),
        Type::S64 => Val::S64(int(i64::MIN.into(), i64::MAX.into())? as i64),
        Type::Float32 => Val::Float32(v.as_f64().ok_or_else(|| expected("a number"))? as f32),
        Type::Float64 => Val::Float64(v.as_f64().ok_or_else(|| expected("a number"))?),
        Type::String => Val::String(v.as_str().ok_or_else(|| expected("a string"))?.to_string()),
        Type::List(l) => {
            let items = v.as_array().ok_or_else(|| expected("a list"))?;
            let t = l.ty();
            Val::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| at(x, &t, &format!("{path}[{i}]")))
                    .collect::<Result<_>>()?,
            )
        }
        Type::Tuple(t) => {
            let items = v.as_array().ok_or_else(|| expected("a tuple (a list)"))?;
            let types: Vec<Type> = t.types().collect();
            if items.len() != types.len() {
                bail!(
                    "{path}: expected {} items, found {}",
                    types.len(),
                    items.len()
                );
            }
            Val::Tuple(
                items
                    .iter()
                    .zip(&types)
                    .enumerate()
                    .map(|(i, (x, t))| at(x, t, &format!("{path}[{i}]")))
                    .collect::<Result<_>>()?,
            )
        }
        Type::Option(o) => match v {
            Json::Null => Val::Option(None),
            x => Val::Option(Some(Box::new(at(x, &o.ty(), path)?))),
        },
        Type::Record(r) => {
            let fields = v
                .as_object()
                .ok_or_else(|| expected("a record (an object)"))?;
            Val::Record(
                r.fields()
                    .map(|f| {
                        let p = format!("{path}.{}", f.name);
                        let x = fields.get(f.name).unwrap_or(&Json::Null);
                        Ok((f.name.to_string(), at(x, &f.ty, &p)?))
                    })
                    .collect::<Result<_>>()?,
            )
        }
        Type::Variant(var) => {
            let (name, payload) =
                single_entry(v).ok_or_else(|| expected("a variant ({\"case\": value})"))?;
            let case = var
                .cases()
                .find(|c| c.name == name)
                .ok_or_else(|| anyhow!("{path}: no case {name:?}"))?;
            let p = format!("{path}.{name}");
            Val::Variant(
                name.to_string(),
                match case.ty {
                    Some(t) => Some(Box::new(at(payload, &t, &p)?)),
                    None if payload.is_null() => None,
                    None => bail!("{p}: the case has no value, found {payload}"),
                },
            )
        }
        Type::Enum(e) => {
            let name = v
                .as_str()
                .ok_or_else(|| expected("an enum case (a string)"))?;
            if !e.names().any(|n| n == name) {
                bail!("{path}: no case {name:?}");
            }
            Val::Enum(name.to_string())
        }
        Type::Result(r) => {
            let (name, payload) =
                single_entry(v).ok_or_else(|| expected("{\"ok\": …} or {\"err\": …}"))?;
            let side = |t: Option<Type>| -> Result<Option<Box<Val>>> {
                t.map(|t| at(payload, &t, &format!("{path}.{name}")).map(Box::new))
                    .transpose()
            };
            match name {
                "ok" => Val::Result(Ok(side(r.ok())?)),
                "err" => Val::Result(Err(side(r.err())?)),
                _ => bail!("{path}: expected ok or err, found {name:?}"),
            }
        }
        other => bail!("{path}: values of type {other:?} are not supported"),
    })
}

fn single_entry(v: &Json) -> Option<(&str, &Json)> {
    let m: &Map<String, Json> = v.as_object()?;
    if m.len() != 1 {
        return None;
    }
    m.iter().next().map(|(k, v)| (k.as_str(), v))
}

/// A component value in Golem's JSON mapping.
pub fn from_val(v: &Val) -> Json {
    match v {
        Val::Bool(b) => json!(b),
        Val::U8(x) => json!(x),
        Val::U16(x) => json!(x),
        Val::U32(x) => json!(x),
        Val::U64(x) => json!(x),
        Val::S8(x) => json!(x),
        Val::S16(x) => json!(x),
        Val::S32(x) => json!(x),
        Val::S64(x) => json!(x),
        Val::Float32(x) => json!(x),
        Val::Float64(x) => json!(x),
        Val::Char(c) => json!(c.to_string()),
        Val::String(s) => json!(s),
        Val::List(xs) | Val::Tuple(xs) => Json::Array(xs.iter().map(from_val).collect()),
        Val::Record(fs) => Json::Object(fs.iter().map(|(k, v)| (k.clone(), from_val(v))).collect()),
        Val::Variant(name, p) => json!({ name.clone(): p.as_deref().map(from_val) }),
        Val::Enum(name) => json!(name),
        Val::Option(x) => x.as_deref().map_or(Json::Null, from_val),
        Val::Result(Ok(x)) => json!({"ok": x.as_deref().map(from_val)}),
        Val::Result(Err(x)) => json!({"err": x.as_deref().map(from_val)}),
        Val::Flags(names) => json!(names),
        other => json!(format!("{other:?}")),
    }
}

/// Parses Golem's `{"params": [{"typ": …, "value": …}]}` for a function taking `params`: each
/// `typ` must be the parameter's type exactly, and each value must fit it.
pub fn params(body: &Json, params: &[Type]) -> Result<Vec<Val>> {
    let given = body
        .get("params")
        .and_then(Json::as_array)
        .context("expected {\"params\": [{\"typ\": …, \"value\": …}, …]}")?;
    if given.len() != params.len() {
        bail!("expected {}, got {} parameters", params.len(), given.len());
    }
    given
        .iter()
        .zip(params)
        .enumerate()
        .map(|(i, (p, ty))| {
            let value = p.get("value").unwrap_or(&Json::Null);
            let typ = p
                .get("typ")
                .with_context(|| format!("parameter {i} has no typ"))?;
            fits(value, typ, ty, "$")?;
            at(value, ty, &format!("$[{i}]"))
        })
        .collect()
}

/// Whether a value, read by its own `typ`, fits the function's parameter type `want`, as Golem
/// 1.1 checks once the payload has parsed: the kinds must agree wherever the value holds
/// something (a variant case the value does not use, or the items of an empty list, are not
/// compared), records and tuples field by field in order, variant and enum cases by position.
fn fits(v: &Json, given: &Json, want: &Type, path: &str) -> Result<()> {
    let kind = given.get("type").and_then(Json::as_str).unwrap_or("");
    let mismatch = || {
        anyhow!(
            "in {path} expected {}, got {}",
            kind_of(want),
            kind.to_lowercase()
        )
    };
    let list = |key: &str| given.get(key).and_then(Json::as_array);
    match (kind, want) {
        ("Bool", Type::Bool)
        | ("U8", Type::U8)
        | ("U16", Type::U16)
        | ("U32", Type::U32)
        | ("U64", Type::U64)
        | ("S8", Type::S8)
        | ("S16", Type::S16)
        | ("S32", Type::S32)
        | ("S64", Type::S64)
        | ("F32", Type::Float32)
        | ("F64", Type::Float64)
        | ("Chr", Type::Char)
        | ("Str", Type::String) => Ok(()),
        ("List", Type::List(l)) => {
            let inner = given.get("inner").ok_or_else(mismatch)?;
            let t = l.ty();
            v.as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .try_for_each(|(i, x)| fits(x, inner, &t, &format!("{path}[{i}]")))
        }
        ("Option", Type::Option(o)) => match v {
            Json::Null => Ok(()),
            x => fits(x, given.get("inner").ok_or_else(mismatch)?, &o.ty(), path),
        },
        ("Tuple", Type::Tuple(t)) => {
            let items = list("items").ok_or_else(mismatch)?;
            let types: Vec<Type> = t.types().collect();
            if items.len() != types.len() {
                bail!(
                    "in {path} expected {} items, got {}",
                    types.len(),
                    items.len()
                );
            }
            let values = v.as_array().ok_or_else(mismatch)?;
            for (i, ((x, g), w)) in values.iter().zip(items).zip(&types).enumerate() {
                fits(x, g, w, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        ("Record", Type::Record(r)) => {
            let fields = list("fields").ok_or_else(mismatch)?;
            let wanted: Vec<_> = r.fields().collect();
            if fields.len() != wanted.len() {
                bail!(
                    "in {path} expected {} fields, got {}",
                    wanted.len(),
                    fields.len()
                );
            }
            for (f, w) in fields.iter().zip(&wanted) {
                let name = f.get("name").and_then(Json::as_str).unwrap_or("");
                let g = f.get("typ").ok_or_else(mismatch)?;
                let x = v.get(name).unwrap_or(&Json::Null);
                fits(x, g, &w.ty, &format!("{path}.{}", w.name))?;
            }
            Ok(())
        }
        ("Variant", Type::Variant(var)) => {
            let (name, payload) = single_entry(v).ok_or_else(mismatch)?;
            let cases = list("cases").ok_or_else(mismatch)?;
            let index = cases
                .iter()
                .position(|c| c.get("name").and_then(Json::as_str) == Some(name))
                .ok_or_else(mismatch)?;
            let case = var.cases().nth(index).ok_or_else(|| {
                anyhow!(
                    "in {path} expected a variant of {} cases, got case {index}",
                    var.cases().count()
                )
            })?;
            match (cases[index].get("typ").filter(|t| !t.is_null()), case.ty) {
                (Some(g), Some(w)) => fits(payload, g, &w, &format!("{path}.{name}")),
                (None, None) => Ok(()),
                _ => Err(mismatch()),
            }
        }
        ("Enum", Type::Enum(e)) => {
            let cases = list("cases").ok_or_else(mismatch)?;
            let index = cases
                .iter()
                .position(|c| c.as_str() == v.as_str())
                .ok_or_else(mismatch)?;
            if index < e.names().count() {
                Ok(())
            } else {
                Err(mismatch())
            }
        }
        _ => Err(mismatch()),
    }
}

/// A type's name in Golem's messages (`string`, `u32`, `variant`, …).
fn kind_of(ty: &Type) -> String {
    match ty {
        Type::String => "string".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        other => format!("{other:?}")
            .split('(')
            .next()
            .unwrap_or("")
            .to_lowercase(),
    }
}

/// Checks that a JSON value fits a type written in Golem's `typ` form, as Golem 1.1 does before
/// anything runs (a value that does not fit its own `typ` is a bad request, HTTP 400).
pub fn check(v: &Json, typ: &Json) -> Result<()> {
    check_at(v, typ, "$", 0)
}

fn check_at(v: &Json, typ: &Json, path: &str, depth: usize) -> Result<()> {
    if depth > 64 {
        bail!("{path}: nested too deep");
    }
    let kind = typ
        .get("type")
        .and_then(Json::as_str)
        .with_context(|| format!("{path}: a typ without a \"type\""))?;
    let expected =
        |what: &str| anyhow!("Expected function parameter type is {what}. But found {v} at {path}");
    let items = |key: &str| {
        typ.get(key)
            .and_then(Json::as_array)
            .with_context(|| format!("{path}: typ {kind} without {key}"))
    };
    match kind {
        "Bool" => v.as_bool().map(drop).ok_or_else(|| expected("bool")),
        "U8" | "U16" | "U32" | "U64" => v
            .as_u64()
            .map(drop)
            .ok_or_else(|| expected(&kind.to_lowercase())),
        "S8" | "S16" | "S32" | "S64" => v
            .as_i64()
            .map(drop)
            .ok_or_else(|| expected(&kind.to_lowercase())),
        "F32" | "F64" => v
            .as_f64()
            .map(drop)
            .ok_or_else(|| expected(&kind.to_lowercase())),
        "Str" | "Chr" => v.as_str().map(drop).ok_or_else(|| expected("string")),
        "List" => {
            let inner = typ
                .get("inner")
                .filter(|i| i.is_object())
                .with_context(|| format!("{path}: typ List without inner"))?;
            let xs = v.as_array().ok_or_else(|| expected("list"))?;
            xs.iter()
                .enumerate()
                .try_for_each(|(i, x)| check_at(x, inner, &format!("{path}[{i}]"), depth + 1))
        }
        // The inner type is required whatever the value (`"inner": null` is a bad typ).
        "Option" => {
            let inner = typ
                .get("inner")
                .filter(|i| i.is_object())
                .with_context(|| format!("{path}: typ Option without inner"))?;
            match v {
                Json::Null => Ok(()),
                x => check_at(x, inner, path, depth + 1),
            }
        }
        "Tuple" => {
            let types = items("items")?;
            let xs = v.as_array().ok_or_else(|| expected("tuple"))?;
            if xs.len() != types.len() {
                return Err(expected(&format!("a tuple of {}", types.len())));
            }
            xs.iter()
                .zip(types)
                .enumerate()
                .try_for_each(|(i, (x, t))| check_at(x, t, &format!("{path}[{i}]"), depth + 1))
        }
        "Record" => {
            let fields = items("fields")?;
            let obj = v.as_object().ok_or_else(|| expected("record"))?;
            for f in fields {
                let name = f
                    .get("name")
                    .and_then(Json::as_str)
                    .context("a field without a name")?;
                let t = f.get("typ").context("a field without a typ")?;
                check_at(
                    obj.get(name).unwrap_or(&Json::Null),
                    t,
                    &format!("{path}.{name}"),
                    depth + 1,
                )?;
            }
            Ok(())
        }
        "Variant" => {
            let (name, payload) = single_entry(v).ok_or_else(|| expected("variant"))?;
            let case = items("cases")?
                .iter()
                .find(|c| c.get("name").and_then(Json::as_str) == Some(name))
                .ok_or_else(|| anyhow!("{path}: unknown case {name:?}"))?;
            match case.get("typ") {
                Some(t) if !t.is_null() => {
                    check_at(payload, t, &format!("{path}.{name}"), depth + 1)
                }
                _ if payload.is_null() => Ok(()),
                _ => Err(expected("a case without a value")),
            }
        }
        "Enum" => {
            let name = v.as_str().ok_or_else(|| expected("enum"))?;
            if items("cases")?.iter().any(|c| c.as_str() == Some(name)) {
                Ok(())
            } else {
                bail!("{path}: unknown case {name:?}")
            }
        }
        other => bail!("{path}: unsupported typ {other}"),
    }
}

//! Events: a time and a list of `(column, value)` pairs, and their JSON shapes.

use crate::limits::{clip, EXCERPT_CHARS};
use crate::value::Value;
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use std::sync::Arc;

/// One event of a stream: a time (in the user's unit; the engine never reads a clock) and the
/// columns it carries.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub time: u64,
    pub fields: Vec<(Arc<str>, Value)>,
}

impl Event {
    /// An event at `time` carrying `fields`.
    ///
    /// ```
    /// use timeline::Event;
    /// let e = Event::new(5, [("playerStateChange", "play".into())]);
    /// assert_eq!(e.get("playerStateChange"), Some(&"play".into()));
    /// ```
    pub fn new<'a>(time: u64, fields: impl IntoIterator<Item = (&'a str, Value)>) -> Event {
        Event {
            time,
            fields: fields.into_iter().map(|(c, v)| (Arc::from(c), v)).collect(),
        }
    }

    /// The value of `column`, if the event carries it (the last occurrence wins).
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.fields
            .iter()
            .rev()
            .find(|(c, _)| &**c == column)
            .map(|(_, v)| v)
    }

    /// The value of `column`, as [`Event::get`], comparing names by identity first (decoders
    /// share one `Arc` per column name).
    pub fn column(&self, column: &Arc<str>) -> Option<&Value> {
        self.fields
            .iter()
            .rev()
            .find(|(c, _)| Arc::ptr_eq(c, column) || **c == **column)
            .map(|(_, v)| v)
    }

    /// Parses one event from JSON, in either shape:
    /// `{"time": 5, "event": {"col": "value", …}}` or the WIT shape
    /// `{"time": 5, "event": [["col", {"string-value": "x"}], …]}`.
    ///
    /// A `null` column value means the column is absent. NaN cannot be written in JSON, and
    /// values that are objects or arrays are rejected with the reason.
    pub fn from_json(text: &str) -> Result<Event, String> {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        Event::from_json_value(&json)
    }

    /// Like [`Event::from_json`], from an already parsed JSON value.
    pub fn from_json_value(json: &serde_json::Value) -> Result<Event, String> {
        let obj = json
            .as_object()
            .ok_or("an event must be a JSON object with \"time\" and \"event\"")?;
        let time = match obj.get("time") {
            Some(t) => t.as_u64().ok_or_else(|| {
                format!(
                    "\"time\" must be a non-negative integer, found {}",
                    clip(&t.to_string(), EXCERPT_CHARS)
                )
            })?,
            None => return Err("the event has no \"time\" field".into()),
        };
        let mut fields = Vec::new();
        match obj.get("event") {
            Some(serde_json::Value::Object(cols)) => {
                for (col, v) in cols {
                    if let Some(v) = plain_json_value(col, v)? {
                        fields.push((Arc::from(col.as_str()), v));
                    }
                }
            }
            Some(serde_json::Value::Array(pairs)) => {
                for pair in pairs {
                    let (col, v) = wit_pair(pair)?;
                    fields.push((Arc::from(col), v));
                }
            }
            Some(other) => {
                return Err(format!(
                    "\"event\" must be an object of columns or a list of [column, value] pairs, found {}", clip(&other.to_string(), EXCERPT_CHARS)
                ))
            }
            None => return Err("the event has no \"event\" field".into()),
        }
        for extra in obj.keys() {
            if extra != "time" && extra != "event" {
                return Err(format!(
                    "unexpected field \"{}\": an event has only \"time\" and \"event\"",
                    clip(extra, EXCERPT_CHARS)
                ));
            }
        }
        Ok(Event { time, fields })
    }
}

fn plain_json_value(col: &str, v: &serde_json::Value) -> Result<Option<Value>, String> {
    Ok(Some(match v {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::String(s) => Value::str(s),
        serde_json::Value::Number(n) => json_number(n).ok_or_else(|| {
            format!("column \"{col}\": {n} does not fit an int or a finite float")
        })?,
        other => {
            return Err(format!(
                "column \"{}\": a value must be a string, number or bool, found {}",
                clip(col, EXCERPT_CHARS),
                clip(&other.to_string(), EXCERPT_CHARS)
            ))
        }
    }))
}

fn json_number(n: &serde_json::Number) -> Option<Value> {
    if let Some(i) = n.as_i64() {
        Some(Value::Int(i))
    } else if n.is_u64() {
        None // above i64::MAX: not an int, and a float would silently round it
    } else {
        n.as_f64().filter(|f| f.is_finite()).map(Value::Float)
    }
}

fn wit_pair(pair: &serde_json::Value) -> Result<(&str, Value), String> {
    let bad = || {
        format!(
            "expected a [column, {{\"string-value\": …}}] pair, found {}",
            clip(&pair.to_string(), EXCERPT_CHARS)
        )
    };
    let items = pair.as_array().ok_or_else(bad)?;
    let [col, val] = items.as_slice() else {
        return Err(bad());
    };
    let col = col.as_str().ok_or_else(bad)?;
    let obj = val.as_object().filter(|o| o.len() == 1).ok_or_else(bad)?;
    let (tag, inner) = obj.iter().next().ok_or_else(bad)?;
    let value = match (tag.as_str(), inner) {
        ("string-value", serde_json::Value::String(s)) => Value::str(s),
        ("bool-value", serde_json::Value::Bool(b)) => Value::Bool(*b),
        ("int-value", serde_json::Value::Number(n)) => Value::Int(n.as_i64().ok_or_else(|| {
            format!("column \"{col}\": int-value {n} is not a 64-bit integer")
        })?),
        ("float-value", serde_json::Value::Number(n)) => Value::Float(
            n.as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| format!("column \"{col}\": float-value {n} is not finite"))?,
        ),
        (tag, inner) => {
            return Err(format!(
                "column \"{}\": unknown value {}; expected string-value, int-value, float-value or bool-value", clip(col, EXCERPT_CHARS), clip(&format!("{{\"{tag}\": {inner}}}"), EXCERPT_CHARS)
            ))
        }
    };
    Ok((col, value))
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Str(v) => s.serialize_str(v),
            Value::Int(v) => s.serialize_i64(*v),
            Value::Float(v) => s.serialize_f64(*v),
            Value::Bool(v) => s.serialize_bool(*v),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        let json = serde_json::Value::deserialize(d)?;
        plain_json_value("value", &json)
            .and_then(|v| v.ok_or_else(|| "a value cannot be null".to_string()))
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Event {
    /// Serializes in the plain shape `{"time": 5, "event": {"col": value}}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Fields<'a>(&'a [(Arc<str>, Value)]);
        impl Serialize for Fields<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (c, v) in self.0 {
                    m.serialize_entry(&**c, v)?;
                }
                m.end()
            }
        }
        let mut st = s.serialize_struct("Event", 2)?;
        st.serialize_field("time", &self.time)?;
        st.serialize_field("event", &Fields(&self.fields))?;
        st.end()
    }
}

impl<'de> serde::Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        let json = serde_json::Value::deserialize(d)?;
        Event::from_json_value(&json).map_err(serde::de::Error::custom)
    }
}

/// Asks the CPU to start loading the cache line at `p` (a hint: nothing happens on other
/// targets). Ingestion reads events' fields, each in an allocation of its own, in an order the
/// hardware cannot guess; loading them a few events ahead hides most of the wait.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and never faults, whatever the
    // address; SSE is part of every x86-64 CPU.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`prefetch`]es the last item of `items`, where in-order events append and recomputations
/// start (nothing to load when it is empty).
#[inline(always)]
pub(crate) fn prefetch_last<T>(items: &[T]) {
    if let Some(last) = items.last() {
        prefetch(last as *const T);
    }
}

/// An event batch was refused; nothing of it was applied.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestError {
    /// The position of the offending event in the batch.
    pub index: usize,
    pub message: String,
}

impl std::fmt::Display for IngestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "event {}: {}", self.index + 1, self.message)
    }
}

impl std::error::Error for IngestError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_json_shapes_parse_to_the_same_event() {
        let plain =
            Event::from_json(r#"{"time": 5, "event": {"a": "x", "b": 2, "c": 2.5, "d": true}}"#)
                .unwrap();
        let wit = Event::from_json(
            r#"{"time": 5, "event": [["a", {"string-value": "x"}], ["b", {"int-value": 2}], ["c", {"float-value": 2.5}], ["d", {"bool-value": true}]]}"#,
        )
        .unwrap();
        assert_eq!(plain, wit);
        assert_eq!(plain.get("b"), Some(&Value::Int(2)));
        let back: Event = serde_json::from_str(&serde_json::to_string(&plain).unwrap()).unwrap();
        assert_eq!(back, plain);
    }

    #[test]
    fn bad_shapes_are_explained() {
        for (text, needle) in [
            (r#"{"event": {}}"#, "no \"time\""),
            (r#"{"time": -1, "event": {}}"#, "non-negative"),
            (r#"{"time": 1}"#, "no \"event\""),
            (
                r#"{"time": 1, "event": {"a": [1]}}"#,
                "string, number or bool",
            ),
            (
                r#"{"time": 1, "event": [["a", {"nan-value": 1}]]}"#,
                "unknown value",
            ),
            (r#"{"time": 1, "event": {}, "x": 1}"#, "unexpected field"),
            (
                r#"{"time": 1, "event": {"a": 18446744073709551615}}"#,
                "does not fit",
            ),
            ("not json", "invalid JSON"),
        ] {
            let err = Event::from_json(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn null_means_absent() {
        let e = Event::from_json(r#"{"time": 1, "event": {"a": null, "b": 1}}"#).unwrap();
        assert_eq!(e.get("a"), None);
        assert_eq!(e.fields.len(), 1);
    }
}

//! `--format parquet --out PATH`: the answers as a Parquet file, in the columns of the JSON
//! lines, each column typed from its values (so that DuckDB, pandas or Spark load it as is).

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use std::sync::Arc;
use timeline::Value;

/// Writes `records` (each in the columns of `header`) to a Parquet file at `path`. A column
/// whose values are all integers is `Int64`; integers and floats, `Float64`; booleans,
/// `Boolean`; anything else, `Utf8` (numbers and booleans as the JSON lines print them). An
/// unknown value is a null.
pub fn write(path: &str, header: &[String], records: &[Vec<Option<Value>>]) -> Result<(), String> {
    let batch = record_batch(header, records)?;
    let fail = |e: &dyn std::fmt::Display| format!("cannot write {path}: {e}");
    let file = std::fs::File::create(path).map_err(|e| fail(&e))?;
    let mut w =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| fail(&e))?;
    w.write(&batch).map_err(|e| fail(&e))?;
    w.close().map_err(|e| fail(&e))?;
    Ok(())
}

/// `records` (each in the columns of `header`) as one Arrow record batch, each column typed as
/// [`write()`] says (no answer: an empty `key` column).
pub fn record_batch(
    header: &[String],
    records: &[Vec<Option<Value>>],
) -> Result<RecordBatch, String> {
    let columns: Vec<(String, ArrayRef)> = header
        .iter()
        .enumerate()
        .map(|(c, name)| {
            (
                name.clone(),
                column(records.iter().map(|r| r.get(c).and_then(Option::as_ref))),
            )
        })
        .collect();
    if columns.is_empty() {
        // No answer: an empty file with the point columns.
        RecordBatch::try_from_iter([(
            "key",
            Arc::new(StringArray::from(Vec::<Option<String>>::new())) as ArrayRef,
        )])
    } else {
        RecordBatch::try_from_iter(columns)
    }
    .map_err(|e| format!("cannot build the table of answers: {e}"))
}

/// One column from its values, typed as [`write`] says.
fn column<'a>(values: impl Iterator<Item = Option<&'a Value>> + Clone) -> ArrayRef {
    let all = |f: fn(&Value) -> bool| values.clone().flatten().all(f);
    if all(|v| matches!(v, Value::Bool(_))) && values.clone().flatten().next().is_some() {
        return Arc::new(BooleanArray::from_iter(values.map(|v| match v {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        })));
    }
    if all(|v| matches!(v, Value::Int(_))) {
        return Arc::new(Int64Array::from_iter(values.map(|v| match v {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        })));
    }
    if all(|v| matches!(v, Value::Int(_) | Value::Float(_))) {
        return Arc::new(Float64Array::from_iter(values.map(|v| match v {
            Some(Value::Int(i)) => Some(*i as f64),
            Some(Value::Float(f)) => Some(*f),
            _ => None,
        })));
    }
    Arc::new(StringArray::from_iter(values.map(|v| {
        v.map(|v| match v {
            Value::Str(s) => s.to_string(),
            v => v.to_string(),
        })
    })))
}

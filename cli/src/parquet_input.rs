//! Parquet event files: one row an event, read row group by row group and only the columns a
//! query reads (and the key and the time), each cell typed from its column's type.
//!
//! Integers, floats, booleans, strings (plain, large, view or dictionary-encoded) map to the
//! engine's values; a null is an absent column. Timestamps and dates become integers of the
//! time unit (exactly, or refused). A column of another type is refused with its name and type,
//! but only if the query reads it: other columns are never decoded.

use crate::input::{display_path, InputError};
use crate::time::{parse_time, TimeSpec, TimeUnit};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit as ArrowUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use std::io::Read;
use std::sync::Arc;
use timeline::{Event, Value};

/// Whether the file at `path` is Parquet (it starts with `PAR1`).
pub fn is_parquet(path: &str) -> bool {
    let mut magic = [0u8; 4];
    path != "-"
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && &magic == b"PAR1"
}

/// Reads the events of the Parquet file at `path`, handing them to `sink` a batch at a time.
/// `columns` are the columns to read besides the time (the key and what the query reads); a
/// column the file lacks is absent from every event.
pub fn for_each_batch(
    path: &str,
    time: &TimeSpec,
    columns: &[String],
    mut sink: impl FnMut(&mut Vec<Event>) -> Result<(), String>,
) -> Result<(), InputError> {
    let fail = |row: usize, message: String| InputError {
        path: display_path(path),
        line: row,
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(0, format!("cannot read: {e}")))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| fail(0, format!("not a readable Parquet file: {e}")))?;
    let schema = builder.schema().clone();
    let time_index = schema.index_of(&time.column).map_err(|_| {
        fail(
            0,
            format!(
                "the Parquet file has no `{}` column (found: {}); name the time column with --time-column",
                time.column,
                schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let mut roots = vec![time_index];
    roots.extend(
        columns
            .iter()
            .filter_map(|c| schema.index_of(c).ok())
            .filter(|i| *i != time_index),
    );
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(1 << 16)
        .build()
        .map_err(|e| fail(0, format!("not a readable Parquet file: {e}")))?;
    let mut row = 0usize;
    let mut events: Vec<Event> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| fail(row + 1, format!("cannot decode: {e}")))?;
        to_events(&batch, time, row, &mut events).map_err(|(r, m)| fail(r, m))?;
        row += batch.num_rows();
        sink(&mut events).map_err(|m| fail(0, m))?;
        events.clear();
    }
    Ok(())
}

/// The events of one batch (its first row being file row `first + 1`).
fn to_events(
    batch: &RecordBatch,
    time: &TimeSpec,
    first: usize,
    out: &mut Vec<Event>,
) -> Result<(), (usize, String)> {
    let schema = batch.schema();
    let mut time_col = None;
    let mut cols: Vec<(Arc<str>, Column)> = Vec::new();
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let column = Column::new(array, time.unit)
            .map_err(|m| (first + 1, format!("column `{}`: {m}", field.name())))?;
        if field.name() == &time.column {
            time_col = Some(column);
        } else {
            cols.push((Arc::from(field.name().as_str()), column));
        }
    }
    let time_col = time_col.ok_or((first + 1, "the time column is missing".to_string()))?;
    for r in 0..batch.num_rows() {
        let at = |m: String| (first + r + 1, m);
        let t = match time_col
            .value(r)
            .map_err(|m| at(format!("column `{}`: {m}", time.column)))?
        {
            None => return Err(at(format!("the time (`{}`) is null", time.column))),
            Some(Value::Int(t)) if t >= 0 => t as u64,
            Some(Value::Str(s)) => parse_time(&s, time.unit).map_err(at)?,
            Some(other) => {
                return Err(at(format!(
                    "the time (`{}`) must be a non-negative integer or a timestamp, found {other}",
                    time.column
                )))
            }
        };
        let mut fields = Vec::with_capacity(cols.len());
        for (name, c) in &cols {
            if let Some(v) = c
                .value(r)
                .map_err(|m| at(format!("column `{name}`: {m}")))?
            {
                fields.push((name.clone(), v));
            }
        }
        out.push(Event { time: t, fields });
    }
    Ok(())
}

/// A column of a batch, ready to give each row's value.
enum Column {
    /// The array, its kind, and the time unit instants convert to.
    Typed(ArrayRef, Kind, TimeUnit),
    /// Dictionary-encoded strings: each row's key, and the strings.
    Dictionary(ArrayRef, Vec<usize>, Vec<Option<timeline::value::Str>>),
}

#[derive(Clone, Copy)]
enum Kind {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    Utf8,
    LargeUtf8,
    Utf8View,
    /// A timestamp or a date, in nanoseconds per unit of the array (1 for ns, … 86 400 s for a
    /// day): converted to the time unit.
    Instant(ArrowKind, u64),
}

#[derive(Clone, Copy)]
enum ArrowKind {
    TsS,
    TsMs,
    TsUs,
    TsNs,
    Date32,
    Date64,
}

impl Column {
    fn new(array: &ArrayRef, unit: TimeUnit) -> Result<Column, String> {
        let kind = match array.data_type() {
            DataType::Boolean => Kind::Bool,
            DataType::Int8 => Kind::I8,
            DataType::Int16 => Kind::I16,
            DataType::Int32 => Kind::I32,
            DataType::Int64 => Kind::I64,
            DataType::UInt8 => Kind::U8,
            DataType::UInt16 => Kind::U16,
            DataType::UInt32 => Kind::U32,
            DataType::UInt64 => Kind::U64,
            DataType::Float32 => Kind::F32,
            DataType::Float64 => Kind::F64,
            DataType::Utf8 => Kind::Utf8,
            DataType::LargeUtf8 => Kind::LargeUtf8,
            DataType::Utf8View => Kind::Utf8View,
            DataType::Timestamp(ArrowUnit::Second, _) => Kind::Instant(ArrowKind::TsS, 1_000_000_000),
            DataType::Timestamp(ArrowUnit::Millisecond, _) => Kind::Instant(ArrowKind::TsMs, 1_000_000),
            DataType::Timestamp(ArrowUnit::Microsecond, _) => Kind::Instant(ArrowKind::TsUs, 1_000),
            DataType::Timestamp(ArrowUnit::Nanosecond, _) => Kind::Instant(ArrowKind::TsNs, 1),
            DataType::Date32 => Kind::Instant(ArrowKind::Date32, 86_400_000_000_000),
            DataType::Date64 => Kind::Instant(ArrowKind::Date64, 1_000_000),
            DataType::Dictionary(_, value) if matches!(**value, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
                let dict = array.as_any_dictionary();
                let keys = dict.normalized_keys();
                let values = Column::new(dict.values(), unit)?;
                let strings = (0..dict.values().len())
                    .map(|i| match values.value(i) {
                        Ok(Some(Value::Str(s))) => Some(s),
                        _ => None,
                    })
                    .collect();
                return Ok(Column::Dictionary(array.clone(), keys, strings));
            }
            other => {
                return Err(format!(
                    "its type {other} is not one the engine reads (integers, floats, booleans, strings, timestamps, dates)"
                ))
            }
        };
        Ok(Column::Typed(array.clone(), kind, unit))
    }

    /// Row `r`'s value; `None` for a null.
    fn value(&self, r: usize) -> Result<Option<Value>, String> {
        let (array, kind, unit) = match self {
            Column::Dictionary(array, keys, strings) => {
                if array.is_null(r) {
                    return Ok(None);
                }
                return Ok(strings[keys[r]].clone().map(Value::Str));
            }
            Column::Typed(array, kind, unit) => (array, *kind, *unit),
        };
        if array.is_null(r) {
            return Ok(None);
        }
        let int = |i: i64| Ok(Some(Value::Int(i)));
        match kind {
            Kind::Bool => Ok(Some(Value::Bool(array.as_boolean().value(r)))),
            Kind::I8 => int(array.as_primitive::<Int8Type>().value(r).into()),
            Kind::I16 => int(array.as_primitive::<Int16Type>().value(r).into()),
            Kind::I32 => int(array.as_primitive::<Int32Type>().value(r).into()),
            Kind::I64 => int(array.as_primitive::<Int64Type>().value(r)),
            Kind::U8 => int(array.as_primitive::<UInt8Type>().value(r).into()),
            Kind::U16 => int(array.as_primitive::<UInt16Type>().value(r).into()),
            Kind::U32 => int(array.as_primitive::<UInt32Type>().value(r).into()),
            Kind::U64 => {
                let u = array.as_primitive::<UInt64Type>().value(r);
                i64::try_from(u)
                    .map(|i| Some(Value::Int(i)))
                    .map_err(|_| format!("{u} does not fit a 64-bit signed integer"))
            }
            Kind::F32 => {
                Value::float(array.as_primitive::<Float32Type>().value(r).into()).map(Some)
            }
            Kind::F64 => Value::float(array.as_primitive::<Float64Type>().value(r)).map(Some),
            Kind::Utf8 => Ok(Some(Value::str(array.as_string::<i32>().value(r)))),
            Kind::LargeUtf8 => Ok(Some(Value::str(array.as_string::<i64>().value(r)))),
            Kind::Utf8View => Ok(Some(Value::str(array.as_string_view().value(r)))),
            Kind::Instant(k, nanos_per) => {
                let raw: i64 = match k {
                    ArrowKind::TsS => array.as_primitive::<TimestampSecondType>().value(r),
                    ArrowKind::TsMs => array.as_primitive::<TimestampMillisecondType>().value(r),
                    ArrowKind::TsUs => array.as_primitive::<TimestampMicrosecondType>().value(r),
                    ArrowKind::TsNs => array.as_primitive::<TimestampNanosecondType>().value(r),
                    ArrowKind::Date32 => array.as_primitive::<Date32Type>().value(r).into(),
                    ArrowKind::Date64 => array.as_primitive::<Date64Type>().value(r),
                };
                instant(raw, nanos_per, unit).map(|t| Some(Value::Int(t)))
            }
        }
    }
}

/// An instant `raw` units of `nanos_per` nanoseconds after 1970, in `unit`: exact, or refused.
fn instant(raw: i64, nanos_per: u64, unit: TimeUnit) -> Result<i64, String> {
    if raw < 0 {
        return Err(format!("{raw} is before 1970; times are not negative"));
    }
    let target = 1_000_000_000 / unit.per_second();
    let nanos = (raw as u128) * nanos_per as u128;
    if nanos % target as u128 != 0 {
        return Err(format!(
            "a timestamp more precise than the time unit ({unit}) would be rounded: use a finer --time-unit"
        ));
    }
    i64::try_from(nanos / target as u128)
        .map_err(|_| format!("{raw} does not fit a 64-bit time in {unit}"))
}

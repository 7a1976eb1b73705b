//! A leaf row's value in 8 bytes, where an `Option<Value>` takes 16: with its time, a row is 16
//! bytes instead of 24 (rows are most of what a key holds without a retention horizon).
//!
//! Floats in a timeline are finite (NaN and infinities are refused when events arrive), so a
//! float is stored as its own bits, and every bit pattern of an infinity or a NaN (exponent all
//! ones) is free to name something else: no value, a bool, an integer of 48 bits, a string's
//! address (every heap address fits in 48 bits on x86-64, aarch64 and wasm32), or the address of
//! a boxed [`Value`] for what fits none of those (a larger integer). Should an address not fit
//! 48 bits, the value goes to a process-wide table instead, by its index there.

use crate::value::{Str, Value};
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::Mutex;

/// An `Option<Value>` in 8 bytes. It owns what it names (a string's count, a box, a table
/// slot), releasing it when dropped.
pub struct PackedValue(u64);

/// The bits of every non-finite float: where the tags live.
const NON_FINITE: u64 = 0x7FF0 << 48;
const PAYLOAD: u64 = (1 << 48) - 1;
const TAG_SHIFT: u32 = 48;

// Tags (bits 48-51 under `NON_FINITE`); tag 0 is left out, as it spells an infinity.
const NONE: u64 = 1;
const BOOL: u64 = 2;
const INT: u64 = 3;
const STR: u64 = 4;
const BOXED: u64 = 5;
const SPILLED: u64 = 6;

impl PackedValue {
    /// No value (a row's column the event did not carry).
    pub const NONE: PackedValue = PackedValue(NON_FINITE | NONE << TAG_SHIFT);

    /// Packs `value`, sharing a string (its count raised) and copying anything else.
    pub fn new(value: Option<&Value>) -> PackedValue {
        match value {
            None => PackedValue::NONE,
            Some(Value::Float(f)) if f.is_finite() => PackedValue(f.to_bits()),
            Some(Value::Bool(b)) => tagged(BOOL, u64::from(*b)),
            Some(Value::Int(i)) if fits_48_bits(*i) => tagged(INT, *i as u64 & PAYLOAD),
            Some(Value::Str(s)) => {
                let address = s.clone().into_raw() as usize as u64;
                if address <= PAYLOAD {
                    tagged(STR, address)
                } else {
                    // SAFETY: the address was just taken from `into_raw`, and is given back once.
                    drop(unsafe { Str::from_raw(address as usize as *const _) });
                    boxed(Value::Str(s.clone()))
                }
            }
            Some(v) => boxed(v.clone()),
        }
    }

    /// Whether this holds a value (`get().is_some()`, without reading it).
    pub fn is_some(&self) -> bool {
        self.0 != PackedValue::NONE.0
    }

    fn tag(&self) -> Option<u64> {
        (self.0 & NON_FINITE == NON_FINITE).then_some((self.0 >> TAG_SHIFT) & 0xF)
    }

    fn payload(&self) -> u64 {
        self.0 & PAYLOAD
    }

    /// The value, or `None` for no value. What the view shows is the packed value itself, not
    /// a copy (no count is raised).
    pub fn get(&self) -> Option<ValueView<'_>> {
        let shallow = |v: Value| Some(ValueView::shallow(v));
        match self.tag() {
            None => shallow(Value::Float(f64::from_bits(self.0))),
            Some(NONE) => None,
            Some(BOOL) => shallow(Value::Bool(self.payload() != 0)),
            Some(INT) => shallow(Value::Int(((self.payload() << 16) as i64) >> 16)),
            // SAFETY: the address came from `Str::into_raw` in `new` or `clone`, and this
            // value still holds the count taken then; the view never drops its copy, and it
            // borrows `self`, so the string outlives it.
            Some(STR) => shallow(Value::Str(unsafe {
                Str::from_raw(self.payload() as usize as *const _)
            })),
            // SAFETY: the address came from `Box::into_raw` in `boxed`, and the box is freed
            // only when `self` is dropped; the bitwise copy is never dropped (as above).
            Some(BOXED) => {
                shallow(unsafe { std::ptr::read(self.payload() as usize as *const Value) })
            }
            Some(SPILLED) => Some(ValueView {
                value: View::Owned(spill_table().get(self.payload())),
                _packed: PhantomData,
            }),
            Some(_) => unreachable!("only the tags above are ever written"),
        }
    }
}

fn tagged(tag: u64, payload: u64) -> PackedValue {
    debug_assert!(payload <= PAYLOAD);
    PackedValue(NON_FINITE | tag << TAG_SHIFT | payload)
}

fn fits_48_bits(i: i64) -> bool {
    (-(1 << 47)..(1 << 47)).contains(&i)
}

/// A value that fits no other tag: boxed, or in the spill table if the box's address does not
/// fit either.
fn boxed(value: Value) -> PackedValue {
    let address = Box::into_raw(Box::new(value)) as usize as u64;
    if address <= PAYLOAD {
        return tagged(BOXED, address);
    }
    // SAFETY: the address was just taken from `Box::into_raw`, and is given back once.
    let value = *unsafe { Box::from_raw(address as usize as *mut Value) };
    spilled(value)
}

fn spilled(value: Value) -> PackedValue {
    tagged(SPILLED, spill_table().insert(value))
}

impl Clone for PackedValue {
    fn clone(&self) -> PackedValue {
        match self.tag() {
            // What the value owns is taken again, `new` choosing where it goes.
            Some(STR | BOXED | SPILLED) => PackedValue::new(self.get().as_deref()),
            _ => PackedValue(self.0),
        }
    }
}

impl Drop for PackedValue {
    fn drop(&mut self) {
        match self.tag() {
            // SAFETY: this value holds one count of the string (taken in `new` or `clone`),
            // given back here once.
            Some(STR) => drop(unsafe { Str::from_raw(self.payload() as usize as *const _) }),
            // SAFETY: the box was made in `boxed` for this value alone, and is freed once.
            Some(BOXED) => drop(unsafe { Box::from_raw(self.payload() as usize as *mut Value) }),
            Some(SPILLED) => spill_table().remove(self.payload()),
            _ => {}
        }
    }
}

impl fmt::Debug for PackedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get().as_deref(), f)
    }
}

/// A packed value seen as a [`Value`], for as long as the packed value is borrowed.
pub struct ValueView<'a> {
    value: View,
    _packed: PhantomData<&'a PackedValue>,
}

enum View {
    /// A bitwise copy sharing the packed value's string or box: never dropped, so the count
    /// it did not take is not given back either.
    Shallow(ManuallyDrop<Value>),
    /// A clone out of the spill table.
    Owned(Value),
}

impl ValueView<'_> {
    fn shallow(value: Value) -> Self {
        ValueView {
            value: View::Shallow(ManuallyDrop::new(value)),
            _packed: PhantomData,
        }
    }
}

impl Deref for ValueView<'_> {
    type Target = Value;

    fn deref(&self) -> &Value {
        match &self.value {
            View::Shallow(v) => v,
            View::Owned(v) => v,
        }
    }
}

/// Values whose box's address does not fit 48 bits (no platform we know of): slots reused once
/// freed.
#[derive(Default)]
struct SpillTable {
    slots: Vec<Option<Value>>,
    free: Vec<u64>,
}

static SPILL: Mutex<SpillTable> = Mutex::new(SpillTable {
    slots: Vec::new(),
    free: Vec::new(),
});

/// The table, even if a thread panicked holding it (every change to it is one step).
fn spill_table() -> std::sync::MutexGuard<'static, SpillTable> {
    SPILL.lock().unwrap_or_else(|e| e.into_inner())
}

impl SpillTable {
    fn insert(&mut self, value: Value) -> u64 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(value);
                i
            }
            None => {
                self.slots.push(Some(value));
                self.slots.len() as u64 - 1
            }
        }
    }

    fn get(&self, i: u64) -> Value {
        self.slots[i as usize].clone().expect("a live slot")
    }

    fn remove(&mut self, i: u64) {
        self.slots[i as usize] = None;
        self.free.push(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => a.type_name() == b.type_name() && a.same(b),
            _ => false,
        }
    }

    fn values() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            any::<bool>().prop_map(|b| Some(Value::Bool(b))),
            any::<i64>().prop_map(|i| Some(Value::Int(i))),
            (-(1i64 << 47)..(1i64 << 47)).prop_map(|i| Some(Value::Int(i))),
            prop_oneof![
                Just(i64::MIN),
                Just(i64::MAX),
                Just(-(1i64 << 47)),
                Just((1i64 << 47) - 1),
                Just(1i64 << 47),
                Just(-(1i64 << 47) - 1),
            ]
            .prop_map(|i| Some(Value::Int(i))),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| Some(Value::Float(f))),
            Just(Some(Value::Float(-0.0))),
            "[a-z]{0,12}".prop_map(|s| Some(Value::str(&s))),
        ]
    }

    proptest! {
        #[test]
        fn a_packed_value_reads_back_as_it_was(v in values()) {
            let packed = PackedValue::new(v.as_ref());
            prop_assert!(same(packed.get().as_deref(), v.as_ref()));
            let copy = packed.clone();
            drop(packed);
            prop_assert!(same(copy.get().as_deref(), v.as_ref()));
            if let Some(Value::Float(f)) = &v {
                // The bits themselves, -0.0 included.
                let Some(Value::Float(g)) = copy.get().as_deref().cloned() else { panic!() };
                prop_assert_eq!(f.to_bits(), g.to_bits());
            }
        }
    }

    #[test]
    fn a_packed_string_holds_one_count_and_gives_it_back() {
        let s = Str::from("CDN1");
        let value = Value::Str(s.clone());
        let count = |s: &Str| triomphe_count(s);
        assert_eq!(count(&s), 2);
        let packed = PackedValue::new(Some(&value));
        assert_eq!(count(&s), 3);
        {
            let view = packed.get().unwrap();
            assert_eq!(&*view, &value);
            let Value::Str(viewed) = &*view else { panic!() };
            assert!(Str::ptr_eq(viewed, &s));
            assert_eq!(count(&s), 3, "a view takes no count");
        }
        assert_eq!(count(&s), 3, "nor gives one back");
        let copy = packed.clone();
        assert_eq!(count(&s), 4);
        drop(packed);
        drop(copy);
        assert_eq!(count(&s), 2);
    }

    /// The count of a string's allocation, read as a clone and a drop see it.
    fn triomphe_count(s: &Str) -> usize {
        s.strong_count()
    }

    #[test]
    fn a_non_finite_float_is_boxed_rather_than_mistaken_for_a_tag() {
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let packed = PackedValue::new(Some(&Value::Float(f)));
            let Some(Value::Float(g)) = packed.get().as_deref().cloned() else {
                panic!("{f} read back as something else")
            };
            assert_eq!(f.to_bits(), g.to_bits());
        }
    }

    #[test]
    fn spilled_values_read_back_and_free_their_slots() {
        let values = [Value::Int(i64::MAX), Value::str("x"), Value::Float(1.5)];
        let packed: Vec<PackedValue> = values.iter().map(|v| spilled(v.clone())).collect();
        for (p, v) in packed.iter().zip(&values) {
            assert_eq!(p.tag(), Some(SPILLED));
            assert!(same(p.get().as_deref(), Some(v)));
            let copy = p.clone();
            assert!(same(copy.get().as_deref(), Some(v)));
        }
        let slots: Vec<u64> = packed.iter().map(|p| p.payload()).collect();
        drop(packed);
        let table = spill_table();
        assert!(slots.iter().all(|&i| table.slots[i as usize].is_none()));
    }

    #[test]
    fn a_packed_value_is_8_bytes_and_a_row_16() {
        assert_eq!(std::mem::size_of::<PackedValue>(), 8);
        assert_eq!(std::mem::size_of::<(u64, PackedValue)>(), 16);
    }
}

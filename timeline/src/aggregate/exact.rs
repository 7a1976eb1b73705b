//! Exact sums of floats: the sum of any set of finite `f64`s, kept without rounding, so that
//! adding and later removing a value leaves no trace, and the sum rounds the same whatever order
//! the values came in (Shewchuk's non-overlapping expansions, as in Python's `math.fsum`).

/// An exact sum of finite floats (and of integers, added exactly in pieces).
///
/// ```
/// use timeline::aggregate::ExactSum;
/// let mut s = ExactSum::default();
/// for x in [1e16, 1.0, -1e16, 0.1, 0.2] { s.add(x); }
/// s.add(-0.1);
/// assert_eq!(s.value(), Some(1.0 + 0.2));
/// ```
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExactSum {
    /// Non-overlapping parts in increasing magnitude; their exact sum is the value.
    parts: Vec<f64>,
    /// Set once a partial sum left the `f64` range; the value is then unknown for good.
    overflowed: bool,
}

impl ExactSum {
    /// Adds a finite float exactly.
    pub fn add(&mut self, mut x: f64) {
        if self.overflowed {
            return;
        }
        let mut kept = 0;
        for j in 0..self.parts.len() {
            let mut y = self.parts[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            if !hi.is_finite() {
                self.overflowed = true;
                self.parts.clear();
                return;
            }
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.parts[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        self.parts.truncate(kept);
        if x != 0.0 {
            self.parts.push(x);
        }
    }

    /// Adds an integer exactly, in three pieces that floats hold exactly.
    pub fn add_int(&mut self, i: i128) {
        const SHIFT: u32 = 43;
        let low = (i & ((1 << SHIFT) - 1)) as f64;
        let mid = ((i >> SHIFT) & ((1 << SHIFT) - 1)) as f64 * 2f64.powi(SHIFT as i32);
        let high = (i >> (2 * SHIFT)) as f64 * 2f64.powi(2 * SHIFT as i32);
        for part in [low, mid, high] {
            if part != 0.0 {
                self.add(part);
            }
        }
    }

    /// Adds every part of another sum.
    pub fn add_sum(&mut self, other: &ExactSum) {
        if other.overflowed {
            self.overflowed = true;
            self.parts.clear();
        }
        for &p in &other.parts {
            self.add(p);
        }
    }

    /// Subtracts every part of another sum (what [`add_sum`](Self::add_sum) added).
    pub fn sub_sum(&mut self, other: &ExactSum) {
        for &p in &other.parts {
            self.add(-p);
        }
    }

    /// The sum rounded to the nearest float (ties to even), or `None` once a partial sum has
    /// left the `f64` range.
    pub fn value(&self) -> Option<f64> {
        if self.overflowed {
            return None;
        }
        let p = &self.parts;
        let Some(&last) = p.last() else {
            return Some(0.0);
        };
        // Add the parts from the largest down until a rounding error appears; then correct a
        // halfway case by looking at the sign of what is left.
        let mut n = p.len() - 1;
        let mut hi = last;
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            let y = p[n - 1];
            n -= 1;
            hi = x + y;
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        Some(hi)
    }

    /// Whether every part is finite (a sum read from another worker must be).
    pub fn is_finite(&self) -> bool {
        self.parts.iter().all(|p| p.is_finite())
    }

    /// Whether nothing has been added (or everything added was removed again).
    pub fn is_zero(&self) -> bool {
        !self.overflowed && self.parts.is_empty()
    }

    /// The heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.parts.capacity() * std::mem::size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_and_removing_leaves_no_trace() {
        let mut s = ExactSum::default();
        let xs = [0.1, 0.7, 1e300, -3.25, 1e-300, 5.5];
        for x in xs {
            s.add(x);
        }
        for x in xs {
            s.add(-x);
        }
        assert!(s.is_zero());
        assert_eq!(s.value(), Some(0.0));
    }

    #[test]
    fn order_does_not_matter() {
        let xs = [0.1, 0.2, 0.3, 1e16, -1e16, 2.5e-8, 7.0];
        let mut a = ExactSum::default();
        xs.iter().for_each(|&x| a.add(x));
        let mut b = ExactSum::default();
        xs.iter().rev().for_each(|&x| b.add(x));
        assert_eq!(a.value(), b.value());
        // The exact sum 0.6 + 2.5e-8 + 7 rounds to what a naive left-to-right sum of the
        // small values gives here.
        assert_eq!(a.value(), Some(0.1 + 0.2 + 0.3 + 2.5e-8 + 7.0));
    }

    #[test]
    fn integers_are_added_exactly() {
        let mut s = ExactSum::default();
        s.add_int(i64::MAX as i128 * 4 + 3);
        s.add_int(-(i64::MAX as i128 * 4));
        assert_eq!(s.value(), Some(3.0));
        s.add(0.5);
        assert_eq!(s.value(), Some(3.5));
    }

    #[test]
    fn overflow_is_unknown() {
        let mut s = ExactSum::default();
        s.add(f64::MAX);
        s.add(f64::MAX);
        assert_eq!(s.value(), None);
    }
}

//! Where the commas and newlines of a CSV body are, found 64 bytes at a time.
//!
//! Lines of event records hold ten cells or so of a dozen bytes each. Asking `memchr2` for the
//! next comma or newline costs a setup per cell that a short cell does not repay; here one
//! comparison of a 64-byte block gives a bitmask of every mark in it, and each mark then costs a
//! count of trailing zeros (three times faster over the bench's files).
//!
//! The same comparison also finds quotes and carriage returns, so that a reader can tell, as it
//! goes, that a file is not the plain CSV it takes ([`Marks::general`]) without a pass of its own
//! over the file first.

/// The positions of every `,` and `\n` in a byte string, in increasing order.
///
/// ```text
/// body:  a,b\nc
/// marks: 1, 3
/// ```
pub struct Marks<'a> {
    hay: &'a [u8],
    /// The start of the block `mask` describes (a multiple of 64).
    base: usize,
    /// The marks of the block not yet returned: bit `i` is position `base + i`.
    mask: u64,
    /// Whether a block read so far holds a quote, or a `\r` followed by a byte other than `\n`.
    general: bool,
}

const BLOCK: usize = 64;

impl<'a> Marks<'a> {
    /// The marks of `hay` from its start.
    pub fn new(hay: &'a [u8]) -> Marks<'a> {
        let mut marks = Marks {
            hay,
            base: 0,
            mask: 0,
            general: false,
        };
        marks.seek(0);
        marks
    }

    /// Continues from position `at`: the next mark returned is the first at or after it.
    pub fn seek(&mut self, at: usize) {
        self.base = at - at % BLOCK;
        self.mask = self.block(self.base) & (u64::MAX << (at - self.base));
    }

    /// Whether a block read so far (every block up to the last mark returned, and the block
    /// of the last seek) holds a quote, or a carriage return followed by a byte other than a
    /// newline (one at the very end is a line's end): bytes the plain reader would misread.
    /// Each such byte is checked exactly, so a `true` is never wrong.
    pub fn general(&self) -> bool {
        self.general
    }

    /// The marks of the block starting at `base` (a short last block is read as if padded with
    /// zero bytes, which are no marks), noting in `general` a quote or lone `\r` in it.
    fn block(&mut self, base: usize) -> u64 {
        let mut padded = [0u8; BLOCK];
        let block = match self.hay.get(base..base + BLOCK) {
            Some(block) => block.try_into().expect("64 bytes"),
            None => {
                let rest = self.hay.get(base..).unwrap_or_default();
                padded[..rest.len()].copy_from_slice(rest);
                &padded
            }
        };
        let (marks, others) = block_masks(block);
        if others {
            self.general |= self.any_general(base, block);
        }
        marks
    }

    /// Whether any of the quotes and carriage returns of `block` (at `base`) is a quote or a
    /// `\r` that ends no line (rare: files with `\r\n` line ends come here once a line).
    #[cold]
    fn any_general(&self, base: usize, block: &[u8; BLOCK]) -> bool {
        memchr::memchr2_iter(b'"', b'\r', block).any(|i| general_at(self.hay, base + i))
    }
}

/// Whether the `"` or `\r` at `hay[i]` makes `hay` a file for the general reader: a quote
/// always, a carriage return when a byte other than `\n` follows it (one at the very end is a
/// line's end).
pub fn general_at(hay: &[u8], i: usize) -> bool {
    hay[i] == b'"' || hay.get(i + 1).is_some_and(|&b| b != b'\n')
}

impl Iterator for Marks<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            if self.base + BLOCK >= self.hay.len() {
                return None;
            }
            self.base += BLOCK;
            self.mask = self.block(self.base);
        }
        let i = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(self.base + i)
    }
}

/// The marks of `block` (bit `i` set where `block[i]` is `,` or `\n`), and whether it holds a
/// `"` or a `\r` (what the plain reader does not take).
#[inline]
fn block_masks(block: &[u8; BLOCK]) -> (u64, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        block_masks_sse2(block)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (
            block_mask_swar(block, b',', b'\n'),
            block_mask_swar(block, b'"', b'\r') != 0,
        )
    }
}

/// [`block_masks`] with SSE2, which every x86-64 processor has: 16 bytes a comparison; whether
/// a quote or `\r` is there is one test for the whole block.
#[cfg(target_arch = "x86_64")]
#[inline]
fn block_masks_sse2(block: &[u8; BLOCK]) -> (u64, bool) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128,
    };
    let mut marks = 0u64;
    // SAFETY (all three blocks): SSE2 is part of the x86-64 baseline, so these intrinsics are
    // always available; the unaligned load reads bytes 16k..16k+16 of the 64-byte array.
    let (mut others, comma, newline, quote, cr) = unsafe {
        (
            _mm_setzero_si128(),
            _mm_set1_epi8(b',' as i8),
            _mm_set1_epi8(b'\n' as i8),
            _mm_set1_epi8(b'"' as i8),
            _mm_set1_epi8(b'\r' as i8),
        )
    };
    for k in 0..BLOCK / 16 {
        let m = unsafe {
            let v = _mm_loadu_si128(block.as_ptr().add(16 * k).cast::<__m128i>());
            let either = |a, b| _mm_or_si128(_mm_cmpeq_epi8(v, a), _mm_cmpeq_epi8(v, b));
            others = _mm_or_si128(others, either(quote, cr));
            _mm_movemask_epi8(either(comma, newline))
        };
        marks |= u64::from(m as u16) << (16 * k);
    }
    (marks, unsafe { _mm_movemask_epi8(others) } != 0)
}

/// Bit `i` set where `block[i]` is `a` or `b`, eight bytes at a time in plain integer
/// arithmetic (processors other than x86-64).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn block_mask_swar(block: &[u8; BLOCK], a: u8, b: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // The high bit of each zero byte of `v`, and no other bit (exact, unlike the shorter
    // `(v - ONES) & !v` test, which also flags a 0x01 byte above a zero).
    let zero_bytes = |v: u64| !(((v & LOW7) + LOW7) | v | LOW7);
    let mut mask = 0u64;
    for (k, word) in block.chunks_exact(8).enumerate() {
        let v = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let hits = zero_bytes(v ^ (ONES * u64::from(a))) | zero_bytes(v ^ (ONES * u64::from(b)));
        // The eight high bits gathered into the top byte, byte 0's lowest.
        let bits = ((hits >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56;
        mask |= bits << (8 * k);
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition: every position holding a comma or a newline.
    fn naive(hay: &[u8]) -> Vec<usize> {
        (0..hay.len())
            .filter(|&i| hay[i] == b',' || hay[i] == b'\n')
            .collect()
    }

    /// A byte that is mostly a mark or a mark's neighbour: marks, the bytes one off them (`+`, `-`,
    /// `\t`, `\x0b`), high bytes and zeros.
    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            Just(b','),
            Just(b'\n'),
            Just(b'"'),
            Just(b'\r'),
            Just(b'+'),
            Just(b'-'),
            Just(b'\t'),
            Just(0x0b),
            Just(0u8),
            Just(0x01),
            Just(0xac),
            Just(0x8a),
            any::<u8>(),
        ]
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(byte(), 0..300)
    }

    proptest! {
        #[test]
        fn every_mark_is_found_in_order(hay in bytes()) {
            prop_assert_eq!(Marks::new(&hay).collect::<Vec<_>>(), naive(&hay));
        }

        #[test]
        fn a_seek_continues_from_its_position(hay in bytes(), at in 0usize..300) {
            let at = at.min(hay.len());
            let mut marks = Marks::new(&hay);
            marks.seek(at);
            let expected: Vec<usize> = naive(&hay).into_iter().filter(|&i| i >= at).collect();
            prop_assert_eq!(marks.collect::<Vec<_>>(), expected);
        }

        #[test]
        fn both_block_masks_agree(block in proptest::collection::vec(byte(), 64)) {
            let block: [u8; 64] = block.try_into().unwrap();
            let bits = |a: u8, b: u8| {
                (0..64).filter(|&i| block[i] == a || block[i] == b).fold(0u64, |m, i| m | 1 << i)
            };
            let (marks, others) = (bits(b',', b'\n'), bits(b'"', b'\r'));
            prop_assert_eq!(block_masks(&block), (marks, others != 0));
            prop_assert_eq!(block_mask_swar(&block, b',', b'\n'), marks);
            prop_assert_eq!(block_mask_swar(&block, b'"', b'\r'), others);
        }

        /// Read to the end, the marks tell a quote or a lone `\r` anywhere, whichever block
        /// holds it (the last `\r` of one block is judged by the first byte of the next).
        #[test]
        fn general_is_a_quote_or_a_lone_carriage_return(hay in bytes(), at in 0usize..300) {
            let lone = |i: usize| hay[i] == b'"' || (hay[i] == b'\r' && i + 1 < hay.len() && hay[i + 1] != b'\n');
            let mut marks = Marks::new(&hay);
            marks.by_ref().for_each(drop);
            prop_assert_eq!(marks.general(), (0..hay.len()).any(lone));
            // After a seek, the blocks from the seek's on.
            let at = at.min(hay.len());
            let mut marks = Marks::new(&hay);
            marks.general = false;
            marks.seek(at);
            marks.by_ref().for_each(drop);
            let from = at - at % BLOCK;
            prop_assert_eq!(marks.general(), (from..hay.len()).any(lone));
        }
    }

    #[test]
    fn marks_on_block_edges() {
        let mut hay = vec![b'x'; 200];
        for i in [0, 63, 64, 127, 128, 199] {
            hay[i] = if i % 2 == 0 { b',' } else { b'\n' };
        }
        assert_eq!(
            Marks::new(&hay).collect::<Vec<_>>(),
            [0, 63, 64, 127, 128, 199]
        );
        let mut marks = Marks::new(&hay);
        marks.seek(64);
        assert_eq!(marks.next(), Some(64));
        marks.seek(200);
        assert_eq!(marks.next(), None);
        assert_eq!(Marks::new(b"").next(), None);
    }
}

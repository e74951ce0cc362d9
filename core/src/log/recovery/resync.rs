//! Finding the next valid record after a bad one, in time linear in the
//! bytes searched.
//!
//! An offset is a candidate only if what starts there passes the cheap
//! checks every real record passes: a length that fits its kind and the
//! bytes left, reserved bytes zero, fields that parse. Only then is its
//! checksum computed, and a long one costs O(`STRIDE` + log len), not
//! O(len): CRC32C is linear, `crc(AB) = crc(A)·x^(8|B|) ⊕ crc(B)`, so the
//! checksum of any range follows from the checksums of two prefixes, kept
//! every `STRIDE` bytes. Garbage full of plausible headers announcing
//! megabytes cannot make the search quadratic.

use crate::log::record::{stored_crc, Record};

/// Distance between two kept prefix checksums.
const STRIDE: usize = 4096;

/// The CRC32C polynomial, bit-reversed (bit 31 is x^0).
const POLY: u32 = 0x82F6_3B78;

/// `a·b` modulo the CRC32C polynomial (bit-reversed operands).
const fn mul_mod(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0u32;
    while m != 0 {
        if a & m != 0 {
            p ^= b;
        }
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
        m >>= 1;
    }
    p
}

/// `X8[k]` = x^(8·2^k) modulo the polynomial.
const X8: [u32; 64] = {
    let mut t = [0u32; 64];
    let mut p = 1u32 << 23; // x^8
    let mut k = 0;
    while k < 64 {
        t[k] = p;
        p = mul_mod(p, p);
        k += 1;
    }
    t
};

/// x^(8n) modulo the polynomial: what appending `n` bytes does to a CRC.
fn shift(mut n: usize) -> u32 {
    let mut p = 1u32 << 31; // x^0
    let mut k = 0;
    while n != 0 {
        if n & 1 != 0 {
            p = mul_mod(X8[k], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// Checksums of arbitrary ranges of one buffer.
pub(crate) struct RangeCrc<'a> {
    pub(super) data: &'a [u8],
    /// `marks[k]` = CRC32C of `data[..k * STRIDE]`, extended on demand.
    marks: Vec<u32>,
}

impl<'a> RangeCrc<'a> {
    pub(crate) fn new(data: &'a [u8]) -> RangeCrc<'a> {
        RangeCrc {
            data,
            marks: vec![0],
        }
    }

    /// CRC32C of `data[..end]`.
    fn prefix(&mut self, end: usize) -> u32 {
        let k = end / STRIDE;
        while self.marks.len() <= k {
            let i = self.marks.len();
            let chunk = &self.data[(i - 1) * STRIDE..i * STRIDE];
            self.marks
                .push(crc32c::crc32c_append(self.marks[i - 1], chunk));
        }
        crc32c::crc32c_append(self.marks[k], &self.data[k * STRIDE..end])
    }

    /// CRC32C of `data[a..b]`.
    pub(crate) fn range(&mut self, a: usize, b: usize) -> u32 {
        if b - a <= 2 * STRIDE {
            return crc32c::crc32c(&self.data[a..b]);
        }
        let (pa, pb) = (self.prefix(a), self.prefix(b));
        pb ^ mul_mod(shift(b - a), pa)
    }
}

/// The first offset at or after `from` where a whole valid record starts
/// (one [`Record::decode`] accepts).
pub(super) fn next_valid(crc: &mut RangeCrc<'_>, from: usize) -> Option<usize> {
    let data = crc.data;
    (from..data.len()).find(|&at| {
        let buf = &data[at..];
        let Ok(len) = Record::check_header(buf) else {
            return false;
        };
        Record::parse(&buf[..len]).is_ok() && crc.range(at + 8, at + len) == stored_crc(buf)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_checksums_match_direct_ones() {
        let data: Vec<u8> = (0..5 * STRIDE + 123)
            .map(|i| (i * 7 + i / 13) as u8)
            .collect();
        let mut crc = RangeCrc::new(&data);
        for (a, b) in [
            (0, data.len()),
            (1, data.len() - 1),
            (STRIDE, 4 * STRIDE),
            (STRIDE - 1, 3 * STRIDE + 1),
            (17, 2 * STRIDE + 18),
            (5, 40),
        ] {
            assert_eq!(crc.range(a, b), crc32c::crc32c(&data[a..b]), "{a}..{b}");
        }
        let (x, y) = (crc32c::crc32c(&data[..100]), crc32c::crc32c(&data[100..]));
        assert_eq!(
            mul_mod(shift(data.len() - 100), x) ^ y,
            crc32c::crc32c_combine(x, y, data.len() - 100)
        );
    }
}

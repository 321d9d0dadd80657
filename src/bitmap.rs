//! The in-memory allocation bitmap: one bit per page, 1 = in use (data or internal).

/// A growable bitmap over pages `0..len_bits`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bitmap {
    words: Vec<u64>,
    len_bits: u64,
    ones: u64,
}

impl Bitmap {
    /// An all-zero bitmap of `len_bits` bits.
    pub(crate) fn new(len_bits: u64) -> Bitmap {
        Bitmap {
            words: vec![0; len_bits.div_ceil(64) as usize],
            len_bits,
            ones: 0,
        }
    }

    /// Number of set bits.
    pub(crate) fn count_ones(&self) -> u64 {
        self.ones
    }

    pub(crate) fn get(&self, bit: u64) -> bool {
        assert!(
            bit < self.len_bits,
            "bit {bit} past bitmap end {}",
            self.len_bits
        );
        self.words[(bit / 64) as usize] >> (bit % 64) & 1 == 1
    }

    /// Extends to `len_bits` (new bits zero).
    pub(crate) fn grow(&mut self, len_bits: u64) {
        assert!(len_bits >= self.len_bits, "bitmaps only grow");
        self.words.resize(len_bits.div_ceil(64) as usize, 0);
        self.len_bits = len_bits;
    }

    /// Words `first..first + count` (for encoding group slots). Words past the end read as zero.
    pub(crate) fn words(&self, first: usize, count: usize) -> Vec<u64> {
        (first..first + count)
            .map(|i| self.words.get(i).copied().unwrap_or(0))
            .collect()
    }

    /// Overwrites word `index` (recovery loading a group slot); keeps the ones count right.
    pub(crate) fn set_word(&mut self, index: usize, value: u64) {
        let old = self.words[index];
        self.ones = self.ones - u64::from(old.count_ones()) + u64::from(value.count_ones());
        self.words[index] = value;
    }

    fn range_masks(start: u64, end: u64) -> impl Iterator<Item = (usize, u64)> {
        let mut bit = start;
        std::iter::from_fn(move || {
            if bit >= end {
                return None;
            }
            let word = bit / 64;
            let lo = bit % 64;
            let hi = (end - word * 64).min(64);
            let mask = if hi - lo == 64 {
                u64::MAX
            } else {
                ((1u64 << (hi - lo)) - 1) << lo
            };
            bit = word * 64 + hi;
            Some((word as usize, mask))
        })
    }

    /// True when every bit in `start..end` is zero.
    pub(crate) fn all_zero(&self, start: u64, end: u64) -> bool {
        assert!(
            start <= end && end <= self.len_bits,
            "range {start}..{end} out of bitmap"
        );
        Self::range_masks(start, end).all(|(w, m)| self.words[w] & m == 0)
    }

    /// True when every bit in `start..end` is one.
    pub(crate) fn all_one(&self, start: u64, end: u64) -> bool {
        assert!(
            start <= end && end <= self.len_bits,
            "range {start}..{end} out of bitmap"
        );
        Self::range_masks(start, end).all(|(w, m)| self.words[w] & m == m)
    }

    /// Sets `start..end`, which must be all zero.
    pub(crate) fn set_range(&mut self, start: u64, end: u64) {
        assert!(
            self.all_zero(start, end),
            "set_range over in-use bits {start}..{end}"
        );
        for (w, m) in Self::range_masks(start, end) {
            self.words[w] |= m;
        }
        self.ones += end - start;
    }

    /// Clears `start..end`, which must be all one.
    pub(crate) fn clear_range(&mut self, start: u64, end: u64) {
        assert!(
            self.all_one(start, end),
            "clear_range over free bits {start}..{end}"
        );
        for (w, m) in Self::range_masks(start, end) {
            self.words[w] &= !m;
        }
        self.ones -= end - start;
    }

    /// First zero bit at or after `from` and before `len_bits`.
    pub(crate) fn next_zero(&self, from: u64) -> Option<u64> {
        if from >= self.len_bits {
            return None;
        }
        let mut word_index = (from / 64) as usize;
        let mut word = !self.words[word_index] & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                let bit = word_index as u64 * 64 + u64::from(word.trailing_zeros());
                return (bit < self.len_bits).then_some(bit);
            }
            word_index += 1;
            if word_index >= self.words.len() {
                return None;
            }
            word = !self.words[word_index];
        }
    }

    /// First one bit at or after `from` and before `len_bits`.
    pub(crate) fn next_one(&self, from: u64) -> Option<u64> {
        if from >= self.len_bits {
            return None;
        }
        let mut word_index = (from / 64) as usize;
        let mut word = self.words[word_index] & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                let bit = word_index as u64 * 64 + u64::from(word.trailing_zeros());
                return (bit < self.len_bits).then_some(bit);
            }
            word_index += 1;
            if word_index >= self.words.len() {
                return None;
            }
            word = self.words[word_index];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_counts() {
        let mut b = Bitmap::new(200);
        b.set_range(3, 130);
        assert_eq!(b.count_ones(), 127);
        assert!(b.all_one(3, 130));
        assert!(b.all_zero(0, 3));
        assert!(b.all_zero(130, 200));
        assert_eq!(b.next_zero(3), Some(130));
        assert_eq!(b.next_one(0), Some(3));
        b.clear_range(64, 128);
        assert_eq!(b.count_ones(), 63);
        assert_eq!(b.next_zero(5), Some(64));
        assert_eq!(b.next_one(64), Some(128));
        assert_eq!(b.next_zero(199), Some(199));
        assert_eq!(b.next_zero(200), None);
    }

    #[test]
    fn next_zero_respects_length() {
        let mut b = Bitmap::new(70);
        b.set_range(0, 70);
        assert_eq!(b.next_zero(0), None);
        b.grow(130);
        assert_eq!(b.next_zero(0), Some(70));
        b.set_word(1, u64::MAX);
        assert_eq!(b.count_ones(), 128);
        assert_eq!(b.next_zero(0), Some(128));
    }

    #[test]
    #[should_panic(expected = "set_range over in-use bits")]
    fn set_twice_panics() {
        let mut b = Bitmap::new(10);
        b.set_range(1, 2);
        b.set_range(1, 2);
    }
}

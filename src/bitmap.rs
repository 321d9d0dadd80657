//! The in-memory allocation bitmap: one bit per page, 1 = in use (data or internal).

/// The words a bit range covers (see [`Bitmap::span`]).
enum Span {
    /// One word and the mask of the range's bits in it.
    One(usize, u64),
    /// The first word and its mask, the full words between, the last word and its mask.
    Many {
        first: (usize, u64),
        full: std::ops::Range<usize>,
        last: (usize, u64),
    },
}

/// A growable bitmap over pages `0..len_bits`, with a free-space summary.
///
/// The summary makes the search for a free page cost `O(log₆₄ n)` word reads instead of a pass
/// over the bitmap (issue 15): `levels[0]` has one bit per word of `words`, set when the word has
/// a zero bit (a free page, or a bit past `len_bits` in the last word); `levels[k + 1]` has one
/// bit per `u64` of `levels[k]`, set when that `u64` is not zero. The top level has at most
/// [`TOP_LEVEL_WORDS`] `u64`s, read in turn. The summary is a function of `words` alone, kept
/// up to date by every change of `words`, so two bitmaps with the same bits are equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bitmap {
    words: Vec<u64>,
    len_bits: u64,
    ones: u64,
    levels: Vec<Vec<u64>>,
}

/// The summary's top level holds at most this many `u64`s.
const TOP_LEVEL_WORDS: usize = 16;

/// The number of bits of each summary level over `word_count` words (see [`Bitmap`]).
fn level_bit_counts(word_count: usize) -> Vec<usize> {
    let mut counts = vec![word_count];
    let mut bits = word_count;
    while bits.div_ceil(64) > TOP_LEVEL_WORDS {
        bits = bits.div_ceil(64);
        counts.push(bits);
    }
    counts
}

#[inline]
fn put_bit(level: &mut [u64], bit: usize, value: bool) {
    let mask = 1u64 << (bit % 64);
    if value {
        level[bit / 64] |= mask;
    } else {
        level[bit / 64] &= !mask;
    }
}

impl Bitmap {
    /// An all-zero bitmap of `len_bits` bits.
    pub(crate) fn new(len_bits: u64) -> Bitmap {
        let mut bitmap = Bitmap {
            words: vec![0; len_bits.div_ceil(64) as usize],
            len_bits,
            ones: 0,
            levels: Vec::new(),
        };
        // Every word is all zero, so every summary bit is set: no pass over the words.
        bitmap.levels = level_bit_counts(bitmap.words.len())
            .into_iter()
            .map(|bits| {
                let mut level = vec![u64::MAX; bits.div_ceil(64)];
                if let Some(last) = level.last_mut()
                    && bits % 64 != 0
                {
                    *last = u64::MAX >> (64 - bits % 64);
                }
                level
            })
            .collect();
        debug_assert!(bitmap.summary_is_exact(), "a new bitmap's summary");
        bitmap
    }

    /// Computes the summary from `words` alone.
    fn rebuild_summary(&mut self) {
        self.levels = level_bit_counts(self.words.len())
            .into_iter()
            .map(|bits| vec![0u64; bits.div_ceil(64)])
            .collect();
        self.refresh(0, self.words.len());
    }

    /// Brings the summary up to date after a change of words `first..end`: their level-0 bits,
    /// then the bits above them, level by level.
    fn refresh(&mut self, first: usize, end: usize) {
        if first >= end {
            return;
        }
        // Level 0 a summary word at a time: the bits of up to 64 words, then one store.
        let mut index = first;
        while index < end {
            let summary_index = index / 64;
            let block_end = end.min((summary_index + 1) * 64);
            let (mut mask, mut free) = (0u64, 0u64);
            for (offset, &word) in self.words[index..block_end].iter().enumerate() {
                let bit = 1u64 << ((index + offset) % 64);
                mask |= bit;
                free |= if word != u64::MAX { bit } else { 0 };
            }
            let summary = &mut self.levels[0][summary_index];
            *summary = (*summary & !mask) | free;
            index = block_end;
        }
        self.refresh_above(first, end);
    }

    /// Brings the summary levels above level 0 up to date after a change of level-0 bits
    /// `first..end` (`first < end`).
    fn refresh_above(&mut self, first: usize, end: usize) {
        let (mut low, mut high) = (first, end);
        for level in 1..self.levels.len() {
            let (below, above) = self.levels.split_at_mut(level);
            let (below, above) = (&below[level - 1], &mut above[0]);
            (low, high) = (low / 64, (high - 1) / 64 + 1);
            for (index, &word) in below.iter().enumerate().take(high).skip(low) {
                put_bit(above, index, word != 0);
            }
        }
    }

    /// First set bit at or after `from` in summary level `level`.
    fn next_summary_bit(&self, level: usize, from: usize) -> Option<usize> {
        let bits = &self.levels[level];
        let index = from / 64;
        let word = bits.get(index)? & (u64::MAX << (from % 64));
        if word != 0 {
            return Some(index * 64 + word.trailing_zeros() as usize);
        }
        let next = if level + 1 < self.levels.len() {
            self.next_summary_bit(level + 1, index + 1)?
        } else {
            (index + 1..bits.len()).find(|&i| bits[i] != 0)?
        };
        Some(next * 64 + bits[next].trailing_zeros() as usize)
    }

    /// Hides words `first..end` from the search: their summary bits say "no free page" whatever
    /// the words hold, until a change of them (`load_le_words`, `set_range`, `clear_range`)
    /// brings their summary back. For words whose bits are not in memory yet (format 3's lazy
    /// group load, [`crate::state::AllocState`]): the search skips a group known to be full
    /// instead of loading it. The summary is then exact except over hidden words.
    pub(crate) fn hide_words(&mut self, first: usize, end: usize) {
        assert!(
            first < end && end <= self.words.len(),
            "hide words {first}..{end} of {}",
            self.words.len()
        );
        // Whole summary words at a time: hiding a 2^28-page file's groups bit by bit took 4 ms.
        let level = &mut self.levels[0];
        let mut index = first;
        while index < end {
            let word_end = end.min((index / 64 + 1) * 64);
            let span = word_end - index;
            let mask = if span == 64 {
                u64::MAX
            } else {
                ((1u64 << span) - 1) << (index % 64)
            };
            level[index / 64] &= !mask;
            index = word_end;
        }
        self.refresh_above(first, end);
    }

    /// True when the summary is the one `words` give (for tests and debug assertions).
    pub(crate) fn summary_is_exact(&self) -> bool {
        let mut rebuilt = self.clone();
        rebuilt.rebuild_summary();
        rebuilt.levels == self.levels
    }

    /// Number of set bits.
    #[inline]
    pub(crate) fn count_ones(&self) -> u64 {
        self.ones
    }

    #[inline]
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
        let old_word_count = self.words.len();
        self.words.resize(len_bits.div_ceil(64) as usize, 0);
        self.len_bits = len_bits;
        self.resize_summary(old_word_count);
    }

    /// Fits the summary to a new word count after words `old_word_count..` were added or
    /// words past the new count dropped (the last word may have changed too).
    fn resize_summary(&mut self, old_word_count: usize) {
        let counts = level_bit_counts(self.words.len());
        if counts.len() != self.levels.len() {
            // The summary gains or loses a level: rare (at 16 · 64^k words), rebuilt whole.
            self.rebuild_summary();
            return;
        }
        for (level, &bits) in self.levels.iter_mut().zip(&counts) {
            level.resize(bits.div_ceil(64), 0);
            if bits % 64 != 0
                && let Some(last) = level.last_mut()
            {
                *last &= u64::MAX >> (64 - bits % 64);
            }
        }
        let changed = old_word_count.min(self.words.len()).saturating_sub(1);
        self.refresh(changed, self.words.len());
    }

    /// Makes room for `len_bits` bits without changing the bitmap, so that a later
    /// [`grow`](Self::grow) to at most that length cannot fail. `Err` with the bytes asked for
    /// when the memory cannot be had.
    pub(crate) fn try_reserve(&mut self, len_bits: u64) -> Result<(), u64> {
        let words = usize::try_from(len_bits.div_ceil(64)).map_err(|_| len_bits / 8)?;
        self.words
            .try_reserve_exact(words.saturating_sub(self.words.len()))
            .map_err(|_| len_bits / 8)?;
        // The summary's levels (1/64 of the words and less). A level added on top is at most
        // `TOP_LEVEL_WORDS` words: a small allocation, not reserved.
        for (level, bits) in self.levels.iter_mut().zip(level_bit_counts(words)) {
            level
                .try_reserve_exact(bits.div_ceil(64).saturating_sub(level.len()))
                .map_err(|_| len_bits / 8)?;
        }
        Ok(())
    }

    /// Shortens to `len_bits` bits (undoing a [`grow`](Self::grow)); bits past it are dropped.
    pub(crate) fn truncate(&mut self, len_bits: u64) {
        assert!(
            len_bits <= self.len_bits,
            "truncate must not grow the bitmap"
        );
        if len_bits < self.len_bits {
            self.clear_tail_bits(len_bits);
        }
        let old_word_count = self.words.len();
        self.words.truncate(len_bits.div_ceil(64) as usize);
        self.len_bits = len_bits;
        self.resize_summary(old_word_count);
    }

    /// Clears (and uncounts) every set bit at or past `from` inside the bitmap.
    fn clear_tail_bits(&mut self, from: u64) {
        let mut bit = from;
        while let Some(one) = self.next_one(bit) {
            let end = self.next_zero(one).unwrap_or(self.len_bits);
            self.clear_range(one, end);
            bit = end;
        }
    }

    /// Words `first..first + count` (for encoding group slots). Words past the end read as zero.
    pub(crate) fn words(&self, first: usize, count: usize) -> Vec<u64> {
        (first..first + count)
            .map(|i| self.words.get(i).copied().unwrap_or(0))
            .collect()
    }

    /// Word `index` (bits `64 · index..64 · index + 64`; bits past `len_bits` are zero).
    #[inline]
    pub(crate) fn word(&self, index: usize) -> u64 {
        self.words[index]
    }

    /// Number of words (`⌈len_bits / 64⌉`).
    pub(crate) fn word_count(&self) -> usize {
        self.words.len()
    }

    /// Overwrites words `first..` with the little-endian words of `bytes` (recovery loading a
    /// group slot; `bytes.len()` a multiple of 8, the words inside the bitmap) and keeps the ones
    /// count right. Returns false if that sets a bit at or past `len_bits` (the bitmap is then
    /// unusable: the caller rejects it).
    pub(crate) fn load_le_words(&mut self, first: usize, bytes: &[u8]) -> bool {
        let (chunks, rest) = bytes.as_chunks::<8>();
        assert!(rest.is_empty(), "a partial word of {} bytes", rest.len());
        if chunks.is_empty() {
            return true;
        }
        let target = &mut self.words[first..first + chunks.len()];
        // Separate loops over plain slices: both popcounts vectorize.
        let old_ones: u64 = target.iter().map(|w| u64::from(w.count_ones())).sum();
        for (word, chunk) in target.iter_mut().zip(chunks) {
            *word = u64::from_le_bytes(*chunk);
        }
        let new_ones: u64 = target.iter().map(|w| u64::from(w.count_ones())).sum();
        self.ones = self.ones - old_ones + new_ones;
        self.refresh(first, first + chunks.len());
        let tail_bits = self.len_bits % 64;
        let last = self.words.len() - 1;
        !(tail_bits != 0
            && (first..first + chunks.len()).contains(&last)
            && self.words[last] >> tail_bits != 0)
    }

    /// The words of `start..end` (`start < end`): the first word's index and mask, the full
    /// words between, and the last word's index and mask (the same word as the first when the
    /// range lies in one word; then only the first entry is used, with both masks applied).
    fn span(start: u64, end: u64) -> Span {
        debug_assert!(start < end);
        let first = (start / 64) as usize;
        let last = ((end - 1) / 64) as usize;
        let head = u64::MAX << (start % 64);
        let tail = u64::MAX >> (63 - (end - 1) % 64);
        if first == last {
            Span::One(first, head & tail)
        } else {
            Span::Many {
                first: (first, head),
                full: first + 1..last,
                last: (last, tail),
            }
        }
    }

    fn check_range(&self, start: u64, end: u64) {
        assert!(
            start <= end && end <= self.len_bits,
            "range {start}..{end} out of bitmap"
        );
    }

    /// True when every bit in `start..end` is zero.
    pub(crate) fn all_zero(&self, start: u64, end: u64) -> bool {
        self.check_range(start, end);
        if start == end {
            return true;
        }
        match Self::span(start, end) {
            Span::One(index, mask) => self.words[index] & mask == 0,
            Span::Many { first, full, last } => {
                self.words[first.0] & first.1 == 0
                    && self.words[last.0] & last.1 == 0
                    && self.words[full].iter().fold(0, |acc, &word| acc | word) == 0
            }
        }
    }

    /// True when every bit in `start..end` is one.
    pub(crate) fn all_one(&self, start: u64, end: u64) -> bool {
        self.check_range(start, end);
        if start == end {
            return true;
        }
        match Self::span(start, end) {
            Span::One(index, mask) => self.words[index] & mask == mask,
            Span::Many { first, full, last } => {
                self.words[first.0] & first.1 == first.1
                    && self.words[last.0] & last.1 == last.1
                    && self.words[full]
                        .iter()
                        .fold(u64::MAX, |acc, &word| acc & word)
                        == u64::MAX
            }
        }
    }

    /// Sets `start..end`, which must be all zero.
    pub(crate) fn set_range(&mut self, start: u64, end: u64) {
        assert!(
            self.all_zero(start, end),
            "set_range over in-use bits {start}..{end}"
        );
        if start == end {
            return;
        }
        match Self::span(start, end) {
            Span::One(index, mask) => self.words[index] |= mask,
            Span::Many { first, full, last } => {
                self.words[first.0] |= first.1;
                self.words[full].fill(u64::MAX);
                self.words[last.0] |= last.1;
            }
        }
        self.ones += end - start;
        self.refresh((start / 64) as usize, ((end - 1) / 64) as usize + 1);
    }

    /// Clears `start..end`, which must be all one.
    pub(crate) fn clear_range(&mut self, start: u64, end: u64) {
        assert!(
            self.all_one(start, end),
            "clear_range over free bits {start}..{end}"
        );
        if start == end {
            return;
        }
        match Self::span(start, end) {
            Span::One(index, mask) => self.words[index] &= !mask,
            Span::Many { first, full, last } => {
                self.words[first.0] &= !first.1;
                self.words[full].fill(0);
                self.words[last.0] &= !last.1;
            }
        }
        self.ones -= end - start;
        self.refresh((start / 64) as usize, ((end - 1) / 64) as usize + 1);
    }

    /// First zero bit at or after `from` and before `len_bits`: the word of `from`, then the
    /// next word the summary marks as holding a zero bit.
    pub(crate) fn next_zero(&self, from: u64) -> Option<u64> {
        if from >= self.len_bits {
            return None;
        }
        let mut word_index = (from / 64) as usize;
        let mut word = !self.words[word_index] & (u64::MAX << (from % 64));
        if word == 0 {
            word_index = self.next_summary_bit(0, word_index + 1)?;
            word = !self.words[word_index];
            assert!(
                word != 0,
                "the summary marks full word {word_index} as free"
            );
        }
        let bit = word_index as u64 * 64 + u64::from(word.trailing_zeros());
        (bit < self.len_bits).then_some(bit)
    }

    /// First one bit in `from..end` (`end ≤ len_bits`), reading only the words of that range.
    pub(crate) fn next_one_before(&self, from: u64, end: u64) -> Option<u64> {
        assert!(
            end <= self.len_bits,
            "end {end} past bitmap end {}",
            self.len_bits
        );
        if from >= end {
            return None;
        }
        let last_word = ((end - 1) / 64) as usize;
        let mut word_index = (from / 64) as usize;
        let mut word = self.words[word_index] & (u64::MAX << (from % 64));
        while word == 0 && word_index < last_word {
            word_index += 1;
            word = self.words[word_index];
        }
        let bit = word_index as u64 * 64 + u64::from(word.trailing_zeros());
        (word != 0 && bit < end).then_some(bit)
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
        assert!(b.load_le_words(1, &u64::MAX.to_le_bytes()));
        assert_eq!(b.count_ones(), 128);
        assert_eq!(b.next_zero(0), Some(128));
        // Word 2 holds bits 128..130 only: a bit past them is refused.
        assert!(b.load_le_words(1, &[[0xFF; 8], 3u64.to_le_bytes()].concat()));
        assert_eq!(b.count_ones(), 130);
        assert!(!b.load_le_words(2, &4u64.to_le_bytes()));
    }

    #[test]
    fn range_operations_match_a_bit_by_bit_model() {
        let len = 300u64;
        let mut bitmap = Bitmap::new(len);
        let mut model = vec![false; len as usize];
        let mut seed = 3u64;
        let mut next = |bound: u64| {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (seed ^ (seed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (z ^ (z >> 31)) % bound
        };
        for _ in 0..if cfg!(miri) { 300 } else { 20_000 } {
            let start = next(len + 1);
            // Short ranges mostly, some across many words, some empty.
            let end = (start + if next(4) == 0 { next(len) } else { next(70) }).min(len);
            let bits = &model[start as usize..end as usize];
            let zero = bits.iter().all(|&b| !b);
            let one = bits.iter().all(|&b| b);
            assert_eq!(bitmap.all_zero(start, end), zero, "{start}..{end}");
            assert_eq!(bitmap.all_one(start, end), one, "{start}..{end}");
            if zero && next(2) == 0 {
                bitmap.set_range(start, end);
                model[start as usize..end as usize].fill(true);
            } else if one {
                bitmap.clear_range(start, end);
                model[start as usize..end as usize].fill(false);
            }
            assert_eq!(
                bitmap.count_ones(),
                model.iter().filter(|&&b| b).count() as u64
            );
        }
        for (bit, &expected) in model.iter().enumerate() {
            assert_eq!(bitmap.get(bit as u64), expected, "bit {bit}");
        }
        assert!(bitmap.summary_is_exact());
    }

    /// `next_zero` as first written: a pass over the words.
    fn next_zero_by_scan(bitmap: &Bitmap, from: u64) -> Option<u64> {
        (from..bitmap.len_bits).find(|&bit| !bitmap.get(bit))
    }

    /// The summary across levels (1 to 3), growth, truncation and recovery's word loads: the
    /// search finds what a pass over the bits finds, and the summary stays the rebuilt one.
    /// Hidden words are skipped by the search (whatever they hold; the word of `from` itself is
    /// read directly), and loading a hidden word brings its summary back.
    #[test]
    fn hidden_words_are_skipped_until_loaded() {
        // 1,280 words: a summary of two levels.
        let len: u64 = if cfg!(miri) { 64 * 200 } else { 64 * 64 * 20 };
        let words = (len / 64) as usize;
        let mut seed = 5u64;
        let mut next = |bound: u64| {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (seed ^ (seed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (z ^ (z >> 31)) % bound
        };
        for _ in 0..if cfg!(miri) { 4 } else { 40 } {
            let mut bitmap = Bitmap::new(len);
            bitmap.set_range(0, len);
            let first = next(words as u64) as usize;
            let end = first + 1 + next((words - first) as u64) as usize;
            // Free bits everywhere, half of them inside the words to hide.
            for index in 0..60 {
                let bit = if index % 2 == 0 {
                    next(len)
                } else {
                    first as u64 * 64 + next((end - first) as u64 * 64)
                };
                if bitmap.get(bit) {
                    bitmap.clear_range(bit, bit + 1);
                }
            }
            bitmap.hide_words(first, end);
            let hidden = |bit: u64| (first..end).contains(&((bit / 64) as usize));
            let expected = |from: u64| {
                (from..len).find(|&bit| !bitmap.get(bit) && (!hidden(bit) || bit / 64 == from / 64))
            };
            for _ in 0..100 {
                let from = if next(2) == 0 {
                    next(len)
                } else {
                    first as u64 * 64 + next((end - first) as u64 * 64)
                };
                assert_eq!(
                    bitmap.next_zero(from),
                    expected(from),
                    "{first}..{end} from {from}"
                );
            }
            // Loading the hidden words (as they are) brings their free bits back.
            for index in first..end {
                let word = bitmap.word(index);
                assert!(bitmap.load_le_words(index, &word.to_le_bytes()));
            }
            assert!(bitmap.summary_is_exact(), "{first}..{end}");
            let from = first as u64 * 64;
            assert_eq!(
                bitmap.next_zero(from),
                (from..len).find(|&bit| !bitmap.get(bit))
            );
        }
    }

    #[test]
    fn summary_search_matches_a_scan() {
        let sizes: &[u64] = if cfg!(miri) {
            &[1, 64, 130, 64 * 64 * 17 + 3]
        } else {
            &[1, 64, 130, 64 * 64 * 17 + 3, 64 * 64 * 64 * 17 + 100]
        };
        let mut seed = 11u64;
        let mut next = |bound: u64| {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (seed ^ (seed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (z ^ (z >> 31)) % bound
        };
        for &len in sizes {
            let mut bitmap = Bitmap::new(len);
            bitmap.set_range(0, len);
            assert_eq!(bitmap.next_zero(0), None);
            // A few free bits scattered over a full bitmap: the case the summary is for.
            for _ in 0..20 {
                let bit = next(len);
                if bitmap.get(bit) {
                    bitmap.clear_range(bit, bit + 1);
                }
            }
            for _ in 0..if cfg!(miri) { 8 } else { 200 } {
                let from = next(len + 1);
                assert_eq!(bitmap.next_zero(from), next_zero_by_scan(&bitmap, from));
                let end = (from + next(300)).min(len);
                let by_scan = (from..end).find(|&bit| bitmap.get(bit));
                assert_eq!(bitmap.next_one_before(from, end), by_scan);
            }
            assert!(bitmap.summary_is_exact(), "len {len}");
            let before = bitmap.clone();
            // Small ones grow past a level boundary (the summary gains a level), the largest
            // by half.
            let grown = if len < 100_000 {
                len * 70
            } else {
                len + len / 2
            };
            bitmap.try_reserve(grown).unwrap();
            bitmap.grow(grown);
            assert!(bitmap.summary_is_exact(), "grown from {len}");
            assert_eq!(bitmap.next_zero(len), Some(len));
            bitmap.set_range(len + 1, len + 2);
            bitmap.truncate(len);
            assert!(bitmap.summary_is_exact(), "truncated to {len}");
            assert_eq!(
                bitmap, before,
                "a growth undone leaves the bitmap as it was"
            );
            if bitmap.word_count() > 2 {
                assert!(bitmap.load_le_words(1, &0u64.to_le_bytes()));
                assert!(bitmap.summary_is_exact());
                assert_eq!(bitmap.next_zero(64), Some(64));
            }
        }
    }

    #[test]
    #[should_panic(expected = "set_range over in-use bits")]
    fn set_twice_panics() {
        let mut b = Bitmap::new(10);
        b.set_range(1, 2);
        b.set_range(1, 2);
    }
}

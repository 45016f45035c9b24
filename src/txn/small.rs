//! A map of `u64` keys that stays a short array while it is small: most transactions
//! touch a few blocks, and a linear scan of a few words beats hashing them (the cost of a
//! logged write is one lookup and one insert here).

use rustc_hash::FxHashMap;

/// Entries kept in the array before the map switches to hashing.
const INLINE: usize = 16;

/// `u64 -> u64`, an array of [`INLINE`] entries in place, a hash map beyond.
#[derive(Default)]
pub struct SmallMap {
    /// `inline[..n]` are the entries while `map` is empty.
    inline: [(u64, u64); INLINE],
    n: usize,
    map: FxHashMap<u64, u64>,
}

impl SmallMap {
    /// The value of `k`.
    #[inline]
    pub fn get(&self, k: u64) -> Option<u64> {
        if self.map.is_empty() {
            self.inline[..self.n].iter().find(|e| e.0 == k).map(|e| e.1)
        } else {
            self.map.get(&k).copied()
        }
    }

    /// Whether `k` is present.
    #[inline]
    pub fn contains(&self, k: u64) -> bool {
        self.get(k).is_some()
    }

    /// Sets `k` to `v`.
    pub fn insert(&mut self, k: u64, v: u64) {
        if !self.map.is_empty() {
            self.map.insert(k, v);
        } else if let Some(e) = self.inline[..self.n].iter_mut().find(|e| e.0 == k) {
            e.1 = v;
        } else if self.n < INLINE {
            self.inline[self.n] = (k, v);
            self.n += 1;
        } else {
            self.map.extend(self.inline.iter().copied());
            self.map.insert(k, v);
            self.n = 0;
        }
    }

    /// Whether it holds nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.n == 0 && self.map.is_empty()
    }

    /// Empties it, keeping the hash map's allocation.
    pub fn clear(&mut self) {
        self.n = 0;
        if !self.map.is_empty() {
            self.map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_answers_like_a_map_before_and_after_it_spills() {
        let mut m = SmallMap::default();
        let mut reference = std::collections::HashMap::new();
        for i in 0..100u64 {
            let k = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 40;
            m.insert(k, i);
            reference.insert(k, i);
            for probe in 0..45u64 {
                assert_eq!(m.get(probe), reference.get(&probe).copied(), "after {i}");
            }
        }
        assert!(!m.is_empty());
        m.clear();
        assert!(m.is_empty() && m.get(3).is_none());
    }

    /// The point of the type: up to `INLINE` keys no hash map is built (a logged write
    /// costs no hashing in a small transaction), and one more key spills them all.
    #[test]
    fn it_stays_an_array_up_to_inline_keys() {
        let mut m = SmallMap::default();
        for k in 0..INLINE as u64 {
            m.insert(k, k);
            m.insert(k, k + 1);
            assert_eq!(m.n, k as usize + 1);
            assert!(m.map.is_empty(), "spilled at {} keys", k + 1);
        }
        m.insert(INLINE as u64, 0);
        assert_eq!(m.n, 0);
        assert_eq!(m.map.len(), INLINE + 1);
        assert_eq!(m.get(3), Some(4));
    }
}

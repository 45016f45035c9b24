//! A small deterministic generator (splitmix64), and the payload pattern and checksum that
//! make every node and test block self-verifying.

/// splitmix64: fast, deterministic, good enough to drive workloads and fill payloads.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(mix(seed ^ 0x6a09_e667_f3bc_c908))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `[0, n)` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponentially distributed with the given mean (the gaps of a Poisson process).
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// A payload length: mostly small, sometimes up to `max`.
    pub fn payload_len(&mut self, max: u64) -> u64 {
        match self.below(4) {
            0 | 1 => self.below(64.min(max) + 1),
            2 => self.below(512.min(max) + 1),
            _ => self.below(max + 1),
        }
    }
}

/// The splitmix64 finaliser: a bijective 64-bit mix.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf` with the pattern derived from `seed`.
pub fn fill(seed: u64, buf: &mut [u8]) {
    let mut r = Rng::new(seed);
    for chunk in buf.chunks_mut(8) {
        let w = r.next_u64().to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// Whether `buf` holds exactly the pattern derived from `seed`.
pub fn matches(seed: u64, buf: &[u8]) -> bool {
    let mut r = Rng::new(seed);
    buf.chunks(8).all(|chunk| {
        let w = r.next_u64().to_le_bytes();
        chunk == &w[..chunk.len()]
    })
}

/// A 64-bit checksum of `bytes`, keyed by `seed` and the length.
pub fn checksum(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = mix(seed ^ mix(bytes.len() as u64));
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(w)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_and_checksum_catch_a_flipped_bit() {
        let mut buf = vec![0u8; 77];
        fill(42, &mut buf);
        assert!(matches(42, &buf));
        assert!(!matches(43, &buf));
        let sum = checksum(42, &buf);
        buf[76] ^= 1;
        assert!(!matches(42, &buf));
        assert_ne!(checksum(42, &buf), sum);
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = Rng::new(7);
        assert!((0..10_000).all(|_| r.below(13) < 13));
        assert_eq!(r.below(0), 0);
        assert!((0..1000).all(|_| (5..=9).contains(&r.range(5, 9))));
    }
}

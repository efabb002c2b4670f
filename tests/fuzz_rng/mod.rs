//! The seeded generator of the fuzz tests (not a test target itself):
//! xorshift64*, tiny, deterministic, good enough to pick bytes, and no
//! `rand` crate (fixed dependency list). Files add their own generators in
//! an `impl Rng` of their own.
#![allow(dead_code)] // each test file uses a different subset

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

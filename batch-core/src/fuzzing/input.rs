//! A small reader that turns fuzz bytes into decisions.
//!
//! Every read consumes input from the front; once the input is used up,
//! every read returns zero (the first choice of any menu), so a short input
//! is still a complete scenario.

/// Fuzz bytes, read front to back.
#[derive(Debug)]
pub(super) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// Whether every byte was read.
    pub(super) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(super) fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub(super) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    pub(super) fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | (u32::from(self.u16()) << 16)
    }

    /// A number in `0..n` (0 when `n` is 0); one byte for small menus, two
    /// for larger ranges.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        match n {
            0 => 0,
            1..=256 => u64::from(self.byte()) % n,
            _ => u64::from(self.u32()) % n,
        }
    }

    /// An index into a menu of `n` choices.
    pub(super) fn pick(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }

    /// True with probability about `k`/256.
    pub(super) fn chance(&mut self, k: u8) -> bool {
        self.byte() < k
    }

    /// Every byte not read yet.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// Up to `max` raw bytes (fewer when the input runs out).
    pub(super) fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.pick(max + 1).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
}

#[cfg(test)]
mod tests {
    use super::Input;

    #[test]
    fn reads_front_to_back_then_zeros() {
        let mut input = Input::new(&[7, 1, 2, 200]);
        assert_eq!(input.byte(), 7);
        assert_eq!(input.u16(), 0x0201);
        assert_eq!(input.below(3), 200 % 3);
        assert!(input.is_empty());
        assert_eq!((input.byte(), input.u32(), input.below(10)), (0, 0, 0));
        assert!(input.bytes(10).is_empty());
    }

    #[test]
    fn bytes_takes_at_most_what_is_left() {
        let mut input = Input::new(&[3, b'a', b'b']);
        assert_eq!(input.bytes(10), b"ab");
    }
}

//! Numbers as text, without `core::fmt` (whose code can panic) or the heap: for log
//! lines and `/proc` paths.

/// `v` in decimal, written at the end of `digits`; returns the digits.
pub fn decimal(mut v: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    digits.get(i..).unwrap_or(&[])
}

/// The largest binary unit not above `v`: its shift and name.
pub fn unit_of(v: u64) -> Option<(u32, &'static str)> {
    const UNITS: [(u32, &str); 4] = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
    UNITS.into_iter().find(|&(shift, _)| v >= 1u64 << shift)
}

//! Byte-for-byte comparison of two files, in chunks.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The offset of the first byte where `a` and `b` differ (a shorter file differs at its
/// end), or `None` when they are identical.
pub fn first_difference(a: &Path, b: &Path) -> io::Result<Option<u64>> {
    const CHUNK: usize = 4 << 20;
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut at = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if let Some(i) = ba[..na].iter().zip(&bb[..nb]).position(|(x, y)| x != y) {
            return Ok(Some(at + i as u64));
        }
        if na != nb {
            return Ok(Some(at + na.min(nb) as u64));
        }
        if na == 0 {
            return Ok(None);
        }
        at += na as u64;
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

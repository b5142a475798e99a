//! Shell globs as `NOSPARSE_MATCH` and `NOSPARSE_PROGRAMS` use them: `*` (any bytes,
//! `/` included), `?` (one byte), `[abc]`, `[a-z]`, `[!a]` / `[^a]`, and `\` to quote.
//! fnmatch(3) would do, but it may allocate (multibyte locales), which the library must
//! not do on its slow path; this matches bytes, with no allocation and no recursion.

/// Whether `text` matches the glob `pat`.
pub fn matches(pat: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: the pattern after it, and the text it took.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let step = match pat.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class(pat, p, text.get(t).copied().unwrap_or(0)),
            Some(b'\\') if p + 1 < pat.len() => (pat.get(p + 1) == text.get(t)).then_some(p + 2),
            Some(c) => (Some(c) == text.get(t)).then_some(p + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                t += 1;
            }
            (None, Some((after, taken))) => {
                // Let the last `*` take one more byte, and try again from there.
                p = after;
                t = taken + 1;
                star = Some((after, taken + 1));
            }
            (None, None) => return false,
        }
    }
    pat.get(p..).is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Matches `c` against the bracket expression at `pat[at]` (`[`); returns the index
/// after it on a match. An unclosed `[` matches itself.
fn class(pat: &[u8], at: usize, c: u8) -> Option<usize> {
    let mut i = at + 1;
    let negate = matches!(pat.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let lo = *pat.get(i)?;
        if lo == b']' && !first {
            break;
        }
        first = false;
        if pat.get(i + 1) == Some(&b'-') && pat.get(i + 2).is_some_and(|&hi| hi != b']') {
            let hi = *pat.get(i + 2)?;
            hit |= lo <= c && c <= hi;
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
    (hit != negate).then_some(i + 1)
}

/// Whether any of the `:`-separated globs in `list` matches `path`. A glob with a `/`
/// is matched against the whole path, one without against the file name.
pub fn any_matches(list: &[u8], path: &[u8]) -> bool {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    list.split(|&b| b == b':').filter(|p| !p.is_empty()).any(|p| {
        let subject = if p.contains(&b'/') { path } else { name };
        matches(p, subject)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_fnmatch_without_flags() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.vmem", "guest.vmem", true),
            ("*.vmem", "guest.vmem.lck", false),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("/srv/*.img", "/srv/a/b.img", true),
            ("?.img", "a.img", true),
            ("?.img", "ab.img", false),
            ("[abc].x", "b.x", true),
            ("[!abc].x", "b.x", false),
            ("[^abc].x", "d.x", true),
            ("[a-c]z", "bz", true),
            ("[a-c]z", "dz", false),
            ("[]]", "]", true),
            ("[a-]", "-", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("[", "[", false),
            ("**x", "abx", true),
            ("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
        ];
        for &(p, t, want) in cases {
            assert_eq!(matches(p.as_bytes(), t.as_bytes()), want, "{p:?} ~ {t:?}");
            let (cp, ct) = (std::ffi::CString::new(p).unwrap(), std::ffi::CString::new(t).unwrap());
            if p != "[" {
                // SAFETY: NUL-terminated strings.
                let libc = unsafe { libc::fnmatch(cp.as_ptr(), ct.as_ptr(), 0) } == 0;
                assert_eq!(libc, want, "fnmatch disagrees on {p:?} ~ {t:?}");
            }
        }
    }

    #[test]
    fn lists_of_names_and_paths() {
        let list = b"*.vmem:/srv/vm/*.img";
        assert!(any_matches(list, b"/vm/guest/guest.vmem"));
        assert!(any_matches(list, b"/srv/vm/a/b.img"));
        assert!(!any_matches(list, b"/srv/other/b.img"));
        assert!(any_matches(b"vmware-vmx*", b"/usr/lib/vmware/bin/vmware-vmx"));
        assert!(!any_matches(b"", b"/x"));
    }
}

//! Shell globs as `NOSPARSE_MATCH` and `NOSPARSE_PROGRAMS` use them: `*` (any bytes,
//! `/` included), `?` (one byte), `[abc]`, `[a-z]`, `[!a]` / `[^a]`, and `\` to quote.
//! fnmatch(3) would do, but it may allocate (multibyte locales), which the library must
//! not do on its slow path; this matches bytes, with no allocation and no recursion.
//!
//! [`fnmatch`] is fnmatch(3) itself, without flags and in the C locale, as the GNU C
//! library matches (character classes, and its way with malformed brackets, included):
//! the dialect of `nosparse check --pattern`. The library's [`matches`] reads an unclosed
//! `[`, a trailing `\`, and `\`, `[:`, `[=`, `[.` inside brackets more simply; on
//! patterns without them the two agree.

/// Whether `text` matches the glob `pat`.
pub fn matches(pat: &[u8], text: &[u8]) -> bool {
    run(pat, text, |p, c| match pat.get(p) {
        Some(b'?') => Some(p + 1),
        Some(b'[') => class(pat, p, c),
        Some(b'\\') if p + 1 < pat.len() => (pat.get(p + 1) == Some(&c)).then_some(p + 2),
        Some(&x) => (x == c).then_some(p + 1),
        None => None,
    })
}

/// What `[^...]` means to [`fnmatch`]: glibc takes `^` as `!`, unless `POSIXLY_CORRECT`
/// is set in the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caret {
    Negates,
    Literal,
}

/// `fnmatch(pat, text, 0) == 0` as glibc answers it in the C locale, where `caret` says
/// what `[^` means (see [`Caret`]). A NUL byte, which no C string holds, matches nothing.
pub fn fnmatch(pat: &[u8], text: &[u8], caret: Caret) -> bool {
    if pat.contains(&0) || text.contains(&0) {
        return false;
    }
    run(pat, text, |p, c| match pat.get(p) {
        Some(b'?') => Some(p + 1),
        Some(b'[') => match bracket(pat, p + 1, c, caret) {
            Bracket::Match(next) => Some(next),
            Bracket::NoMatch => None,
            // An unterminated `[` is an ordinary character.
            Bracket::Unterminated => (c == b'[').then_some(p + 1),
        },
        // A trailing `\` matches nothing.
        Some(b'\\') => (pat.get(p + 1) == Some(&c)).then_some(p + 2),
        Some(&x) => (x == c).then_some(p + 1),
        None => None,
    })
}

/// Matches `text` against `pat`, where `step(p, c)` matches the byte `c` against the
/// pattern element at `pat[p]` (anything but `*`) and returns the index after it.
fn run(pat: &[u8], text: &[u8], step: impl Fn(usize, u8) -> Option<usize>) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: the pattern after it, and the text it took.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = text.get(t) {
        let next = match pat.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(_) => step(p, c),
            None => None,
        };
        match (next, star) {
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
/// after it on a match. An unclosed `[` matches nothing.
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

/// A bracket expression's answer for one byte, in [`fnmatch`].
enum Bracket {
    /// It matches; the pattern goes on at this index.
    Match(usize),
    NoMatch,
    /// No `]` closes it: the `[` is an ordinary character.
    Unterminated,
}

/// glibc's longest character class name (`CHARCLASS_NAME_MAX`): `[:` and a longer run
/// of letters makes the pattern match nothing.
const CLASS_NAME_MAX: usize = 2048;

/// The byte `c` against the bracket expression whose list starts at `pat[start]` (after
/// the `[`), step by step as glibc's `fnmatch_loop.c` reads one in the C locale
/// (collation order is byte order; `[=c=]` and `[.c.]` are the character itself).
fn bracket(pat: &[u8], start: usize, c: u8, caret: Caret) -> Bracket {
    // The pattern as a C string: 0 past its end.
    let at = |i: usize| pat.get(i).copied().unwrap_or(0);
    let mut p = start;
    let not = at(p) == b'!' || (caret == Caret::Negates && at(p) == b'^');
    if not {
        p += 1;
    }
    let mut ch = at(p);
    p += 1;
    let matched = loop {
        // `Some(low)`: a collating symbol, which starts a range if `ch`, the byte after
        // it, is a `-`; `None`: `ch` is an ordinary byte of the list.
        let low = if ch == b'\\' {
            if at(p) == 0 {
                return Bracket::NoMatch;
            }
            ch = at(p);
            p += 1;
            None
        } else if ch == b'[' && at(p) == b':' {
            let name_start = p + 1;
            let mut len = 0;
            let class = loop {
                if len == CLASS_NAME_MAX {
                    return Bracket::NoMatch;
                }
                p += 1;
                ch = at(p);
                if ch == b':' && at(p + 1) == b']' {
                    p += 2;
                    break pat.get(name_start..name_start + len).map(char_class);
                }
                if !name_letter(ch) {
                    // No class name: the `[` is one of the list.
                    p = name_start - 1;
                    ch = b'[';
                    break None;
                }
                len += 1;
            };
            // `Some(None)`: a name no class of the C locale has.
            match class {
                Some(Some(is)) if is(&c) => break true,
                Some(Some(_)) => {
                    ch = at(p);
                    p += 1;
                    if ch == b']' {
                        break false;
                    }
                    continue;
                }
                Some(None) => return Bracket::NoMatch,
                None => None,
            }
        } else if ch == b'[' && at(p) == b'=' && at(p + 1) != 0 && at(p + 2) == b'=' && at(p + 3) == b']' {
            let equal = at(p + 1);
            p += 4;
            if c == equal {
                break true;
            }
            ch = at(p);
            p += 1;
            if ch == b']' {
                break false;
            }
            continue;
        } else if ch == 0 {
            return Bracket::Unterminated;
        } else if ch == b'[' && at(p) == b'.' {
            let Some((sym, after)) = collating_symbol(pat, p) else { return Bracket::NoMatch };
            p = after;
            if !(at(p) == b'-' && at(p + 1) != 0) && c == sym {
                break true;
            }
            ch = at(p);
            p += 1;
            Some(sym)
        } else {
            None
        };
        let low = match low {
            Some(low) => low,
            None => {
                // An ordinary byte of the list (`ch`), perhaps a range's first.
                let range = at(p) == b'-' && at(p + 1) != 0 && at(p + 1) != b']';
                if !range && ch == c {
                    break true;
                }
                let low = ch;
                ch = at(p);
                p += 1;
                low
            }
        };
        if ch == b'-' && at(p) != b']' {
            let mut high = at(p);
            p += 1;
            if high == b'[' && at(p) == b'.' {
                let Some((sym, after)) = collating_symbol(pat, p) else { return Bracket::NoMatch };
                high = sym;
                p = after;
            } else {
                if high == b'\\' {
                    high = at(p);
                    p += 1;
                }
                if high == 0 {
                    return Bracket::NoMatch;
                }
            }
            if low <= c && c <= high {
                break true;
            }
            ch = at(p);
            p += 1;
        }
        if ch == b']' {
            break false;
        }
    };
    if !matched {
        return if not { Bracket::Match(p) } else { Bracket::NoMatch };
    }
    // Past the rest of the list, which must still be well formed (or have no end).
    loop {
        let ch = at(p);
        p += 1;
        match ch {
            b']' => break,
            0 => return Bracket::Unterminated,
            b'\\' => {
                if at(p) == 0 {
                    return Bracket::NoMatch;
                }
                p += 1;
            }
            b'[' if at(p) == b':' => {
                let colon = p;
                let mut len = 0;
                loop {
                    p += 1;
                    len += 1;
                    if len == CLASS_NAME_MAX {
                        return Bracket::NoMatch;
                    }
                    if at(p) == b':' && at(p + 1) == b']' {
                        p += 2;
                        break;
                    }
                    if !name_letter(at(p)) {
                        p = colon;
                        break;
                    }
                }
            }
            b'[' if at(p) == b'=' => {
                if at(p + 1) == 0 || at(p + 2) != b'=' || at(p + 3) != b']' {
                    return Bracket::NoMatch;
                }
                p += 4;
            }
            b'[' if at(p) == b'.' => match collating_symbol_end(pat, p) {
                Some(after) => p = after,
                None => return Bracket::NoMatch,
            },
            _ => {}
        }
    }
    if not {
        Bracket::NoMatch
    } else {
        Bracket::Match(p)
    }
}

/// Whether glibc reads `c` as a letter of a class name: `a` to `y` (no class has a `z`).
fn name_letter(c: u8) -> bool {
    (b'a'..=b'y').contains(&c)
}

/// The index after the `.]` that closes the collating symbol whose `.` is at `pat[dot]`.
fn collating_symbol_end(pat: &[u8], dot: usize) -> Option<usize> {
    let mut p = dot + 1;
    loop {
        match (pat.get(p), pat.get(p + 1)) {
            (None, _) => return None,
            (Some(b'.'), Some(b']')) => return Some(p + 2),
            _ => p += 1,
        }
    }
}

/// The character of the collating symbol `[.c.]` whose `.` is at `pat[dot]`, and the
/// index after it. In the C locale only one-character symbols exist.
fn collating_symbol(pat: &[u8], dot: usize) -> Option<(u8, usize)> {
    let after = collating_symbol_end(pat, dot)?;
    (after == dot + 4).then(|| (pat.get(dot + 1).copied().unwrap_or(0), after))
}

/// The C locale's character class called `name`.
fn char_class(name: &[u8]) -> Option<fn(&u8) -> bool> {
    Some(match name {
        b"alnum" => u8::is_ascii_alphanumeric,
        b"alpha" => u8::is_ascii_alphabetic,
        b"blank" => |c| matches!(c, b' ' | b'\t'),
        b"cntrl" => u8::is_ascii_control,
        b"digit" => u8::is_ascii_digit,
        b"graph" => u8::is_ascii_graphic,
        b"lower" => u8::is_ascii_lowercase,
        b"print" => |c| c.is_ascii_graphic() || *c == b' ',
        b"punct" => u8::is_ascii_punctuation,
        // isspace(3) has the vertical tab, which is_ascii_whitespace leaves out.
        b"space" => |c| matches!(c, b' ' | b'\t'..=b'\r'),
        b"upper" => u8::is_ascii_uppercase,
        b"xdigit" => u8::is_ascii_hexdigit,
        _ => return None,
    })
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

    /// The C library's answer, in its own environment's dialect.
    fn libc_fnmatch(pat: &[u8], text: &[u8]) -> bool {
        let (p, t) = (std::ffi::CString::new(pat).unwrap(), std::ffi::CString::new(text).unwrap());
        // SAFETY: NUL-terminated strings.
        unsafe { libc::fnmatch(p.as_ptr(), t.as_ptr(), 0) == 0 }
    }

    fn caret() -> Caret {
        if std::env::var_os("POSIXLY_CORRECT").is_some() {
            Caret::Literal
        } else {
            Caret::Negates
        }
    }

    #[test]
    fn fnmatch_where_the_library_reads_a_pattern_otherwise() {
        // (pattern, text, fnmatch(3), the library's matcher)
        let cases: &[(&str, &str, bool, bool)] = &[
            ("[", "[", true, false),
            ("a[b", "a[b", true, false),
            ("[[*", "[[^ ", true, false),
            ("a\\", "a\\", false, true),
            ("[\\]]", "]", true, false),
            ("[[:digit:]]x", "5x", true, false),
            ("[![:alpha:]]", "1", true, false),
            ("[[:foo:]]", "f", false, false),
            ("[[:space:]]", "\x0b", true, false),
            ("[[=a=]]", "a", true, false),
            ("[[.-.]]", "-", true, false),
            ("[[.a.]-c]", "b", true, false),
        ];
        for &(p, t, f, m) in cases {
            assert_eq!(fnmatch(p.as_bytes(), t.as_bytes(), Caret::Negates), f, "fnmatch {p:?} ~ {t:?}");
            assert_eq!(matches(p.as_bytes(), t.as_bytes()), m, "matches {p:?} ~ {t:?}");
            if caret() == Caret::Negates {
                assert_eq!(libc_fnmatch(p.as_bytes(), t.as_bytes()), f, "the C library on {p:?} ~ {t:?}");
            }
        }
        assert!(fnmatch(b"[^a]", b"b", Caret::Negates) && !fnmatch(b"[^a]", b"b", Caret::Literal));
        assert!(fnmatch(b"[^a]", b"^", Caret::Literal));
        assert!(!fnmatch(b"a\0", b"a", Caret::Negates) && !fnmatch(b"*", b"a\0", Caret::Negates));
    }

    #[test]
    fn fnmatch_is_the_c_librarys() {
        // Pieces that turn on fnmatch's readings of brackets, classes and escapes.
        const PIECES: [&str; 23] = [
            "a", "b", "/", "*", "?", "[", "]", "!", "^", "-", "\\", ":", ".", "=", "[:", ":]", "[=", "=]", "[.", ".]",
            "alpha", "digit", "foo",
        ];
        const TEXT: &[u8] = b"ab[]\\-!^:.=z0 /";
        // Pieces of patterns both matchers read alike.
        const PLAIN: [&str; 13] = ["a", "b", "/", "*", "?", "]", "!", "-", "[ab]", "[!a]", "[a-c]", "[]a]", "[a-]"];
        let caret = caret();
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..300_000 {
            let pat: Vec<u8> = (0..next(7)).flat_map(|_| PIECES[next(PIECES.len())].bytes()).collect();
            let text: Vec<u8> = (0..next(5)).map(|_| TEXT[next(TEXT.len())]).collect();
            let want = libc_fnmatch(&pat, &text);
            assert_eq!(fnmatch(&pat, &text, caret), want, "{:?} ~ {:?}", pat.escape_ascii(), text.escape_ascii());
            let plain: Vec<u8> = (0..next(5)).flat_map(|_| PLAIN[next(PLAIN.len())].bytes()).collect();
            let want = libc_fnmatch(&plain, &text);
            assert_eq!(fnmatch(&plain, &text, caret), want, "{:?} ~ {:?}", plain.escape_ascii(), text.escape_ascii());
            assert_eq!(matches(&plain, &text), want, "{:?} ~ {:?}", plain.escape_ascii(), text.escape_ascii());
        }
        // Every byte against every class, and ranges over the high bytes.
        let mut pats: Vec<Vec<u8>> = Vec::new();
        for name in ["alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space"] {
            pats.push(format!("[[:{name}:]]").into_bytes());
        }
        pats.extend(
            ["[[:upper:]]", "[![:xdigit:]]", "[[:combining:]]", "[a-z]", "[z-a]"].map(|p| p.as_bytes().to_vec()),
        );
        pats.extend([&b"[\x80-\xff]"[..], b"[[.\x01.]-[.\x7f.]]", b"[[=\xe9=]]"].map(<[u8]>::to_vec));
        for pat in &pats {
            for byte in 1..=u8::MAX {
                let want = libc_fnmatch(pat, &[byte]);
                assert_eq!(fnmatch(pat, &[byte], caret), want, "{:?} ~ {byte:#x}", pat.escape_ascii());
            }
        }
        // The longest class name glibc reads (CHARCLASS_NAME_MAX).
        for len in [CLASS_NAME_MAX - 1, CLASS_NAME_MAX, CLASS_NAME_MAX + 1] {
            for tail in ["]", ":]]", "-]"] {
                let pat = format!("[[:{}{tail}", "a".repeat(len));
                for text in ["a", "[", ":"] {
                    let want = libc_fnmatch(pat.as_bytes(), text.as_bytes());
                    assert_eq!(fnmatch(pat.as_bytes(), text.as_bytes(), caret), want, "{len} {tail} ~ {text}");
                }
            }
        }
    }
}

//! Small text helpers shared by the stream state machines and the settings.

/// `*` matches any run of characters (including none); every other character matches itself.
/// Greedy with backtracking to the last star: O(pattern × text) at worst, no recursion. Callers
/// decide about case (lower-case both sides for a case-insensitive match).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            // Let the last star swallow one more byte and retry from there.
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Length in bytes of the longest suffix of `text` that is a proper prefix of one of `markers`:
/// the tail a stream parser must hold back because the next chunk may complete a marker. Always
/// ends on a character boundary.
pub fn partial_suffix(text: &str, markers: &[&str]) -> usize {
    let mut best = 0;
    for marker in markers {
        let max = marker.len().saturating_sub(1).min(text.len());
        for len in (best + 1..=max).rev() {
            let start = text.len() - len;
            if text.is_char_boundary(start) && marker.starts_with(&text[start..]) {
                best = len;
                break;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("claude-*sonnet*", "claude-3-5-sonnet-latest", true),
            ("glm-5*", "glm-5.3", true),
            ("glm-5*", "glm-4.7", false),
            ("*", "", true),
            ("a*b*c", "abbbc", true),
            ("a*b*c", "acb", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("", "", true),
            ("", "x", false),
            ("*v", "4.6v", true),
            ("*v*x", "v", false),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn partial_suffixes() {
        assert_eq!(partial_suffix("Hi <det", &["<details", "<glm_block"]), 4);
        assert_eq!(partial_suffix("Hi <", &["<details", "<glm_block"]), 1);
        assert_eq!(partial_suffix("Hi", &["<details"]), 0);
        // A whole marker is not a partial one.
        assert_eq!(partial_suffix("x<a>", &["<a>"]), 0);
        assert_eq!(partial_suffix("你<", &["<b>"]), 1);
    }
}

//! Go's `strings.ToLower` and `strings.ToUpper`: simple (one character to one) case
//! mapping, where Rust's `str::to_lowercase` applies the full Unicode rules. Relabeling's
//! `lowercase`/`uppercase` actions and the templates' `toLower`/`toUpper` use them.

/// Go's `strings.ToLower`: per-character simple case mapping, so no context
/// rules (a final `Σ` becomes `σ`, not `ς`) and no expansion to several chars.
pub fn to_lower(text: &str) -> String {
    text.chars().map(simple_lowercase).collect()
}

/// Go's `strings.ToUpper`: per-character simple case mapping (`ß` stays `ß`).
pub fn to_upper(text: &str) -> String {
    text.chars().map(simple_uppercase).collect()
}

fn simple_lowercase(c: char) -> char {
    let mut lower = c.to_lowercase();
    // Only U+0130 (İ) lower-cases to several chars; its simple mapping is the
    // first of them, 'i'.
    lower.next().unwrap_or(c)
}

fn simple_uppercase(c: char) -> char {
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(single), None) => single,
        // Several chars: the full mapping differs from the simple one. Only
        // the Greek letters with iota subscript have a simple upper case.
        (Some(_), Some(_)) => greek_iota_subscript_upper(c).unwrap_or(c),
        _ => c,
    }
}

/// Simple upper-case mapping of lower-case Greek letters with ypogegrammeni,
/// whose full upper case expands to two chars.
fn greek_iota_subscript_upper(c: char) -> Option<char> {
    let offset = match u32::from(c) {
        0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => 8,
        0x1FB3 | 0x1FC3 | 0x1FF3 => 9,
        _ => return None,
    };
    char::from_u32(u32::from(c) + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_mapping_matches_go_simple_mapping() {
        assert_eq!(to_lower("ΑΣ"), "ασ"); // no final-sigma rule
        assert_eq!(to_lower("İ"), "i"); // single char, not "i̇"
        assert_eq!(to_upper("straße"), "STRAßE"); // ß has no simple upper case
        assert_eq!(to_upper("ᾳ"), "ᾼ");
        assert_eq!(to_upper("ᾀ"), "ᾈ");
        assert_eq!(to_upper("ﬁ"), "ﬁ");
        assert_eq!(to_upper("ǅ"), "Ǆ");
    }
}

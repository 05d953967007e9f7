//! Text from elsewhere (a peer's id, a string a peer sent) as the runtime shows it in messages:
//! which characters are printable, and a quoted form that escapes the others.
//!
//! Quoting is what `Debug` of a `str` does, with one rule for what needs escaping: the one a
//! peer id must meet. `Debug` decides by Unicode's tables of printable characters, and those
//! tables, with the code that reads them, were a fortieth of the browser page's wasm.

use std::fmt;

/// Whether `c` shows as itself and cannot make two texts, or a log line, look alike or reorder
/// them: not a control character, not white space other than the plain space, not one of the
/// invisible characters (zero-width ones and bidirectional controls).
pub(crate) fn printable(c: char) -> bool {
    let invisible = matches!(
        c,
        '\u{200B}'..='\u{200F}' // zero-width space, joiners, left-to-right and right-to-left marks
            | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner and invisible operators
            | '\u{2066}'..='\u{2069}' // bidirectional isolates
            | '\u{FEFF}' // zero-width no-break space
    );
    !c.is_control() && (c == ' ' || !c.is_whitespace()) && !invisible
}

/// Text in double quotes, as `Debug` prints a `str`: a quote and a backslash escaped with a
/// backslash, `\t`, `\r`, `\n` and `\0` as such, and any other character that is not
/// [`printable`] as `\u{…}`.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        let mut plain = 0;
        for (at, c) in self.0.char_indices() {
            let escaped = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\t' => "\\t",
                '\r' => "\\r",
                '\n' => "\\n",
                '\0' => "\\0",
                c if printable(c) => continue,
                _ => "",
            };
            f.write_str(self.0.get(plain..at).unwrap_or_default())?;
            plain = at + c.len_utf8();
            match escaped {
                "" => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                escaped => f.write_str(escaped)?,
            }
        }
        f.write_str(self.0.get(plain..).unwrap_or_default())?;
        f.write_str("\"")
    }
}

impl fmt::Debug for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_text_is_what_debug_prints_where_debug_escapes_by_the_same_rule() {
        for text in [
            "",
            "plain",
            "Zürich 東京",
            "say \"hi\"",
            "back\\slash",
            "tab\there",
            "two\r\nlines",
            "nul\0",
            "bell\u{7} and del\u{7f}",
            "\u{9f}",
            "zero\u{200B}width",
            "rtl\u{202E}override",
            "bom\u{FEFF}",
            "\"",
        ] {
            assert_eq!(Quoted(text).to_string(), format!("{text:?}"), "{text:?}");
        }
    }

    #[test]
    fn what_could_pass_for_other_text_is_escaped_where_debug_shows_it() {
        // White space other than the space: Debug shows it as itself.
        assert_eq!(Quoted("no\u{a0}break").to_string(), "\"no\\u{a0}break\"");
        assert_eq!(
            Quoted("line\u{2028}separator").to_string(),
            "\"line\\u{2028}separator\""
        );
    }
}

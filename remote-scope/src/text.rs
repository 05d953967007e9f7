//! Text from elsewhere (a peer's id, a string or a name a peer sent) as the runtime shows it in
//! messages: which characters are printable, and forms that escape the others.
//!
//! `Debug` of a `str` decides what to escape by Unicode's tables of printable characters; those
//! tables, with the code that reads them, were a fortieth of the browser page's wasm. Here one
//! rule decides, the one a peer id must meet: it refuses control characters and line breaks,
//! which could start a forged log line, and what renders as nothing or reorders the text
//! around it (Unicode's default-ignorable characters, bidirectional controls among them).
//! Everything it escapes, `Debug` escapes too but for four blank Hangul fillers (a test goes
//! through every character); `Debug` also escapes what shows but is unusual (combining marks,
//! unassigned and private-use code points), which this shows as itself.

use std::fmt;

/// Whether `c` shows as itself and cannot make two texts, or a log line, look alike or reorder
/// them: not a control character, not white space other than the plain space, not invisible
/// (Unicode's default-ignorable code points: zero-width characters, bidirectional controls,
/// variation selectors, fillers, tags).
pub(crate) fn printable(c: char) -> bool {
    !c.is_control() && (c == ' ' || !c.is_whitespace()) && !default_ignorable(c)
}

/// Unicode's `Default_Ignorable_Code_Point` (DerivedCoreProperties.txt, Unicode 16): what a
/// renderer shows as nothing when it does not support it.
fn default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{AD}' // soft hyphen
            | '\u{34F}' // combining grapheme joiner
            | '\u{61C}' // Arabic letter mark, a bidirectional control
            | '\u{115F}'..='\u{1160}' // Hangul fillers
            | '\u{17B4}'..='\u{17B5}' // Khmer inherent vowels
            | '\u{180B}'..='\u{180F}' // Mongolian variation selectors and vowel separator
            | '\u{200B}'..='\u{200F}' // zero-width space, joiners, directional marks
            | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
            | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, bidirectional isolates
            | '\u{3164}' // Hangul filler
            | '\u{FE00}'..='\u{FE0F}' // variation selectors
            | '\u{FEFF}' // zero-width no-break space
            | '\u{FFA0}' // halfwidth Hangul filler
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}' // shorthand format controls
            | '\u{1D173}'..='\u{1D17A}' // musical format controls
            | '\u{E0000}'..='\u{E0FFF}' // tags and variation selectors
    )
}

/// Text as it is, but for what is not [`printable`]: `\t`, `\r`, `\n` and `\0` as such, and
/// any other such character as `\u{…}`, as `Debug` escapes them. For text within a message,
/// such as a name in backticks.
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape(self.0, false, f)
    }
}

/// Text in double quotes, escaped as [`Escaped`] and with a quote and a backslash escaped with
/// a backslash too: what `Debug` prints for a `str`, but for the characters the module's
/// documentation names.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        escape(self.0, true, f)?;
        f.write_str("\"")
    }
}

/// `text` into `f`, what is not printable escaped, and quotes and backslashes if `quoted`.
fn escape(text: &str, quoted: bool, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut plain = 0;
    for (at, c) in text.char_indices() {
        let escaped = match c {
            '"' if quoted => "\\\"",
            '\\' if quoted => "\\\\",
            '\t' => "\\t",
            '\r' => "\\r",
            '\n' => "\\n",
            '\0' => "\\0",
            c if printable(c) => continue,
            _ => "",
        };
        f.write_str(text.get(plain..at).unwrap_or_default())?;
        plain = at + c.len_utf8();
        match escaped {
            "" => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            escaped => f.write_str(escaped)?,
        }
    }
    f.write_str(text.get(plain..).unwrap_or_default())
}

/// `text`, or, if anything in it is not [`printable`], a copy with that escaped: for a message
/// made elsewhere that may hold what a peer sent.
pub(crate) fn shown(text: String) -> String {
    match text.chars().all(printable) {
        true => text,
        false => Escaped(&text).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_text_is_what_debug_prints_for_text_of_every_sort() {
        for text in [
            "",
            "plain",
            "Zürich 東京 Αθήνα",
            "say \"hi\"",
            "back\\slash",
            "tab\there",
            "two\r\nlines",
            "nul\0",
            "bell\u{7} and del\u{7f} and \u{9f}",
            "no\u{a0}break, ideographic\u{3000}space, line\u{2028}separator",
            "zero\u{200B}width",
            "rtl\u{202E}override, arabic\u{61C}mark",
            "soft\u{AD}hyphen",
            "bom\u{FEFF}",
            "tag\u{E0041}",
            "\"",
        ] {
            assert_eq!(Quoted(text).to_string(), format!("{text:?}"), "{text:?}");
        }
    }

    #[test]
    fn every_character_quoting_escapes_debug_escapes_too_but_the_hangul_fillers() {
        let mut only_here = vec![];
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let text = format!("a{c}b");
            let quoted = Quoted(&text).to_string();
            if quoted != format!("\"{text}\"") && quoted != format!("{text:?}") {
                only_here.push(c);
            }
        }
        // Blank letters Unicode makes default-ignorable and `Debug` shows.
        assert_eq!(only_here, ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}']);
    }

    #[test]
    fn escaped_text_keeps_quotes_and_backslashes_and_shown_text_is_copied_only_if_it_must_be() {
        assert_eq!(
            Escaped("a \"b\" \\ c\nd\u{202e}").to_string(),
            "a \"b\" \\ c\\nd\\u{202e}"
        );
        assert_eq!(shown("unknown field `a\"b`".into()), "unknown field `a\"b`");
        assert_eq!(
            shown("unknown field `a\nb`".into()),
            "unknown field `a\\nb`"
        );
    }

    #[test]
    fn debug_shows_more_escaped_than_quoting_does() {
        // A combining mark and an unassigned code point show as themselves.
        assert_eq!(Quoted("e\u{301}").to_string(), "\"e\u{301}\"");
        assert_eq!(format!("{:?}", "e\u{301}"), "\"e\\u{301}\"");
        assert_eq!(Quoted("\u{378}").to_string(), "\"\u{378}\"");
    }
}

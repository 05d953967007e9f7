//! Token text as a person writes it, for messages and for the registry's record of a capture
//! list.

/// Token text without the spaces `to_string` puts between every two tokens.
pub fn tidy(tokens: &str) -> String {
    let mut text = tokens.to_owned();
    for (spaced, tight) in [
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ::", "::"),
        (":: ", "::"),
        (" ,", ","),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        text = text.replace(spaced, tight);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::tidy;
    use quote::ToTokens;

    #[test]
    fn capture_lists_read_as_written() {
        let tidied = |ty: &str| {
            let ty: syn::Type = syn::parse_str(ty).expect("a type");
            tidy(&ty.to_token_stream().to_string())
        };
        for ty in [
            "Vec<u64>",
            "std::collections::HashMap<String, Vec<(u8, i32)>>",
            "[u8; 4]",
            "Option<&'static str>",
        ] {
            assert_eq!(tidied(ty), ty);
        }
    }
}

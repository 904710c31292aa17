//! Strict e-mail validation for sponsorship offers (spec §4.4, `StrictEmailAddressAttribute`).

/// Why an address is not accepted. The texts say what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmailError {
    /// Empty input.
    #[error("the e-mail address is empty")]
    Empty,
    /// Longer than 256 characters.
    #[error("the e-mail address is longer than 256 characters")]
    TooLong,
    /// Not exactly one `@` with text on both sides.
    #[error(
        "the e-mail address must contain exactly one @ with a name before it and a domain after it"
    )]
    NotOneAt,
    /// Whitespace, angle brackets or a display name: only the bare address is accepted.
    #[error(
        "the e-mail address must be a bare address such as name@example.com, without spaces, quotes or a display name"
    )]
    NotBareAddress,
    /// Non-ASCII character or a character not allowed before the `@`.
    #[error(
        "the part before @ may only contain ASCII letters, digits and . ! # $ % & ' * + - / = ? ^ _ ` {{ | }} ~"
    )]
    BadLocalPart,
    /// Leading, trailing or doubled dot before the `@`.
    #[error("the part before @ must not start or end with a dot or contain two dots in a row")]
    BadLocalDots,
    /// The domain has no dot, an empty label or a bad character.
    #[error(
        "the domain after @ must have at least one dot and consist of letters, digits and hyphens, such as example.com"
    )]
    BadDomain,
    /// The domain does not end in a letter (for example `name@host.123`).
    #[error("the domain must end in a letter, such as .com or .eu")]
    DomainNotEndingInLetter,
}

/// The text the reference server answers for a rejected recipient address.
pub const INVALID_EMAIL_TEXT: &str =
    "The SponsoredEmail field is not a supported e-mail address format.";

const LOCAL_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";

/// Validates a recipient address the way the reference server's strict check does: a single bare
/// mailbox, ASCII local part, at least one dot after the `@`, ending in a letter, at most 256
/// characters.
pub fn validate_strict_email(address: &str) -> Result<(), EmailError> {
    if address.is_empty() {
        return Err(EmailError::Empty);
    }
    if address.chars().count() > 256 {
        return Err(EmailError::TooLong);
    }
    if address.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '<' | '>' | '"' | '(' | ')' | ',' | ';' | ':' | '[' | ']' | '\\'
            )
    }) {
        return Err(EmailError::NotBareAddress);
    }
    let mut parts = address.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(EmailError::NotOneAt);
    };
    if local.is_empty() || domain.is_empty() {
        return Err(EmailError::NotOneAt);
    }
    if !local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(c))
    {
        return Err(EmailError::BadLocalPart);
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(EmailError::BadLocalDots);
    }
    if !domain.contains('.') {
        return Err(EmailError::BadDomain);
    }
    for label in domain.split('.') {
        if label.is_empty()
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(|c| c.is_alphanumeric() || c == '-')
        {
            return Err(EmailError::BadDomain);
        }
    }
    match domain.chars().last() {
        Some(c) if c.is_alphabetic() => Ok(()),
        _ => Err(EmailError::DomainNotEndingInLetter),
    }
}

/// Case-insensitive e-mail equality, as the reference server compares addresses.
pub fn same_email(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in [
            "me@home.example",
            "first.last+tag@sub.example.co",
            "o'neil@xn--bcher-kva.example",
            "a@b.cd",
            "x@bücher.de",
        ] {
            assert_eq!(validate_strict_email(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_with_the_reason() {
        let cases = [
            ("", EmailError::Empty),
            ("plainaddress", EmailError::NotOneAt),
            ("a@b@c.com", EmailError::NotOneAt),
            ("@example.com", EmailError::NotOneAt),
            ("Me <me@home.example>", EmailError::NotBareAddress),
            (" me@home.example", EmailError::NotBareAddress),
            ("mé@home.example", EmailError::BadLocalPart),
            (".me@home.example", EmailError::BadLocalDots),
            ("me..you@home.example", EmailError::BadLocalDots),
            ("me@localhost", EmailError::BadDomain),
            ("me@home..example", EmailError::BadDomain),
            ("me@-home.example", EmailError::BadDomain),
            ("me@home.123", EmailError::DomainNotEndingInLetter),
        ];
        for (input, want) in cases {
            assert_eq!(validate_strict_email(input), Err(want), "{input:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(validate_strict_email(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn comparison_ignores_case() {
        assert!(same_email("Me@Home.Example", "me@home.example"));
        assert!(!same_email("me@home.example", "me@home.example.org"));
    }
}

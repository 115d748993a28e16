use validator::ValidateEmail;

/// An email address: valid syntax, at most 254 characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EmailError {
    #[error("must be at most {} characters", Email::MAX_CHARS)]
    TooLong,
    #[error("is not a valid email address")]
    Invalid,
}

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let email = raw.trim();
        if email.chars().count() > Self::MAX_CHARS {
            return Err(EmailError::TooLong);
        }
        if email.chars().any(char::is_control) || !email.validate_email() {
            return Err(EmailError::Invalid);
        }
        Ok(Self(normalise(email)))
    }

    /// Rebuilds an address read back from the database, where it was stored valid.
    pub fn from_stored(email: String) -> Self {
        Self(email)
    }

    /// The uniqueness key: the address lower-cased, so `Ada@X.org` and `ada@x.org` clash.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// Lower-cases the domain (case-insensitive by RFC 5321); the local part is kept as
/// written, since only the receiving server may interpret it.
fn normalise(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => email.to_owned(),
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_addresses_parse_trimmed() {
        assert_eq!(
            Email::parse(" ada@example.com ").expect("valid").as_ref(),
            "ada@example.com"
        );
    }

    #[test]
    fn invalid_addresses_are_rejected() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "ada@",
            "a b@example.com",
            "ada@exa mple.com",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn addresses_over_254_characters_are_rejected() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn the_domain_is_lower_cased_and_the_local_part_kept() {
        assert_eq!(
            Email::parse("Ada.L@Example.COM").expect("valid").as_ref(),
            "Ada.L@example.com"
        );
    }

    #[test]
    fn the_key_ignores_letter_case() {
        let a = Email::parse("Ada@Example.COM").expect("valid");
        let b = Email::parse("ada@example.com").expect("valid");
        assert_eq!(a.key(), b.key());
    }
}

/// A display name: 1-100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserNameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {} characters", UserName::MAX_CHARS)]
    TooLong,
    #[error("must not contain control characters")]
    ControlCharacter,
}

impl UserName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, UserNameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(UserNameError::Empty);
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(UserNameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(UserNameError::ControlCharacter);
        }
        Ok(Self(name.to_owned()))
    }

    /// Rebuilds a name read back from the database, where it was stored valid.
    pub fn from_stored(name: String) -> Self {
        Self(name)
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed() {
        assert_eq!(
            UserName::parse("  Grace Hopper ").expect("valid").as_ref(),
            "Grace Hopper"
        );
    }

    #[test]
    fn blank_names_are_rejected() {
        assert_eq!(UserName::parse(""), Err(UserNameError::Empty));
        assert_eq!(UserName::parse(" \t "), Err(UserNameError::Empty));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(UserName::parse(&"é".repeat(100)).is_ok());
        assert_eq!(
            UserName::parse(&"é".repeat(101)),
            Err(UserNameError::TooLong)
        );
    }

    #[test]
    fn control_characters_are_rejected() {
        assert_eq!(
            UserName::parse("a\u{0}b"),
            Err(UserNameError::ControlCharacter)
        );
        assert_eq!(
            UserName::parse("a\nb"),
            Err(UserNameError::ControlCharacter)
        );
    }
}

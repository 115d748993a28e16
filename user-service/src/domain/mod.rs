//! Validated domain types: once built, a value is known to be valid.

mod email;
mod user_name;

use std::collections::BTreeMap;

pub use email::Email;
pub use user_name::UserName;

/// A registration that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub user_name: UserName,
    pub email: Email,
}

/// Messages per invalid field.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

impl NewUser {
    /// Validates both fields and reports every problem at once.
    pub fn parse(user_name: &str, email: &str) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let user_name = UserName::parse(user_name).map_err(|e| {
            errors
                .entry("user_name".into())
                .or_default()
                .push(e.to_string())
        });
        let email = Email::parse(email).map_err(|e| {
            errors
                .entry("email".into())
                .or_default()
                .push(e.to_string())
        });
        match (user_name, email) {
            (Ok(user_name), Ok(email)) => Ok(Self { user_name, email }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_field_is_reported() {
        let errors = NewUser::parse(" ", "nope").expect_err("invalid");
        assert!(errors.contains_key("user_name"));
        assert!(errors.contains_key("email"));
    }

    #[test]
    fn a_valid_registration_parses() {
        let user = NewUser::parse(" Ada ", "Ada@Example.com").expect("valid");
        assert_eq!(user.user_name.as_ref(), "Ada");
        assert_eq!(user.email.key(), "ada@example.com");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any input is either rejected with field errors or yields values that keep the
        /// invariants; parsing never panics.
        #[test]
        fn parsing_keeps_the_invariants_or_reports_errors(name in "\\PC{0,120}|[\\x00-\\x7f]{0,120}", email in "\\PC{0,300}|[a-zA-Z0-9.+-]{1,70}@[a-zA-Z0-9.-]{1,70}") {
            match NewUser::parse(&name, &email) {
                Ok(user) => {
                    let n = user.user_name.as_ref();
                    prop_assert!(!n.is_empty() && n.chars().count() <= 100);
                    prop_assert!(!n.chars().any(char::is_control));
                    prop_assert_eq!(n, n.trim());
                    let e = user.email.as_ref();
                    prop_assert!(e.chars().count() <= 254 && e.contains('@'));
                    prop_assert_eq!(user.email.key(), e.to_lowercase());
                }
                Err(errors) => prop_assert!(!errors.is_empty()),
            }
        }
    }
}

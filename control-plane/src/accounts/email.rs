//! [`Email`]: the address that identifies an account.

/// A syntactically valid email address, trimmed and lower-cased (how the database stores
/// it, so uniqueness is case-insensitive).
///
/// Deliberately simple: `local@domain`, ASCII only, no spaces or quotes, a domain of at
/// least two dot-separated labels of letters, digits and hyphens. Whether the mailbox
/// exists is proven by the invitation email, not by syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let email = raw.trim().to_lowercase();
        if email.len() < 3 || email.len() > 254 {
            return Err("an email has between 3 and 254 characters");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("an email looks like name@example.com");
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(email))
        } else {
            Err("an email looks like name@example.com")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        assert_eq!(
            Email::parse("a.b+tag@sub.example.io").unwrap().as_str(),
            "a.b+tag@sub.example.io"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for (raw, why) in [
            ("", "empty"),
            ("ada", "no @"),
            ("ada@", "no domain"),
            ("@example.com", "no local part"),
            ("ada@example", "single-label domain"),
            ("a da@example.com", "space"),
            ("ada@exa_mple.com", "underscore in domain"),
            ("ada@@example.com", "two @"),
            ("ada@-example.com", "label starts with a hyphen"),
            (".ada@example.com", "local starts with a dot"),
            ("a..da@example.com", "two dots"),
            ("ádá@example.com", "non-ASCII"),
            ("\"ada\"@example.com", "quotes"),
        ] {
            assert!(Email::parse(raw).is_err(), "{why}: {raw:?} was accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err(), "over 254 characters");
    }
}

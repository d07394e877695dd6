//! `--user NAME:PASSWORD[:role,...]`: the demo's user table, given on the command line.

use std::fmt;
use std::str::FromStr;

/// One user the token service accepts for the password grant. Neither name nor password may contain `:`.
#[derive(Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// The login name, also the access token's `sub`.
    pub name: String,
    /// The password (hashed with argon2id by the token service before it is stored).
    pub password: String,
    /// Roles the user's access tokens carry.
    pub roles: Vec<String>,
}

impl UserSpec {
    /// A user named `name` with `password` and `roles`.
    pub fn new<'a>(name: &str, password: &str, roles: impl IntoIterator<Item = &'a str>) -> Self {
        UserSpec {
            name: name.to_owned(),
            password: password.to_owned(),
            roles: roles.into_iter().map(str::to_owned).collect(),
        }
    }

    /// The default demo user, `alice:wonderland:admin`.
    pub fn demo() -> Self {
        UserSpec::new("alice", "wonderland", ["admin"])
    }
}

impl fmt::Debug for UserSpec {
    // The password is a secret, even in a demo.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSpec")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl FromStr for UserSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut parts = spec.splitn(3, ':');
        let name = parts.next().unwrap_or_default();
        let Some(password) = parts.next() else {
            return Err(
                "expected NAME:PASSWORD[:role,...], e.g. bob:secret or carol:pw:admin,ops".into(),
            );
        };
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err("the user name must be non-empty and contain no whitespace".into());
        }
        if password.is_empty() {
            return Err(format!("user {name} needs a non-empty password"));
        }
        let roles: Vec<String> = match parts.next() {
            None => Vec::new(),
            Some(roles) => roles.split(',').map(str::trim).map(str::to_owned).collect(),
        };
        if roles
            .iter()
            .any(|role| role.is_empty() || role.contains(':'))
        {
            return Err(format!(
                "user {name}: list roles as role1,role2 (no empty role, no ':')"
            ));
        }
        Ok(UserSpec {
            name: name.to_owned(),
            password: password.to_owned(),
            roles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_password_and_roles() {
        let alice: UserSpec = "alice:wonderland:admin".parse().unwrap();
        assert_eq!(alice, UserSpec::demo());
        let carol: UserSpec = "carol:pw".parse().unwrap();
        assert!(carol.roles.is_empty());
        let ops: UserSpec = "dave:pw:admin, ops".parse().unwrap();
        assert_eq!(ops.roles, ["admin", "ops"]);
    }

    #[test]
    fn rejects_incomplete_specs() {
        for bad in [
            "alice",
            ":pw",
            "alice:",
            "alice:pw:",
            "alice:pw:admin,,ops",
            "al ice:pw",
            "bob:pw:a:b",
        ] {
            assert!(bad.parse::<UserSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        assert!(!format!("{:?}", UserSpec::demo()).contains("wonderland"));
    }
}

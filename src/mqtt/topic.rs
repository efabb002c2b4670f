//! MQTT topic names, topic filters and shared subscriptions — pure functions.
//!
//! * A *topic name* is what a message is published to: at least one
//!   character, no wildcards, no U+0000.
//! * A *topic filter* is what a subscriber asks for: `+` matches exactly one
//!   level, `#` matches the parent level and any number of children and must
//!   be the last level; both must occupy a whole level (`a/+/c`, `a/#`, not
//!   `a+`, `a/#/c`).
//! * Topics starting with `$` (e.g. `$SYS/...`) are not matched by a filter
//!   whose first level is a wildcard [MQTT-4.7.2-1]; `$SYS/#` matches them.
//! * `$share/<group>/<filter>` is a shared subscription: each matching
//!   message goes to exactly one member of `<group>` (the group name is one
//!   non-empty level without wildcards; `<filter>` is a normal filter).
//!
//! Levels are compared byte for byte (topics are case sensitive, and an
//! empty level is a level: `a//b` has three).

/// Longest topic or filter the wire can carry (a 2-byte length prefix).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// The prefix that makes a filter a shared subscription.
pub const SHARE_PREFIX: &str = "$share/";

/// Check a topic name a client publishes to.
pub fn validate_topic_name(topic: &str) -> Result<(), String> {
    check_common(topic, "topic name")?;
    if topic.contains(['+', '#']) {
        return Err(format!(
            "topic name '{topic}' contains a wildcard ('+' or '#'); wildcards are for filters only"
        ));
    }
    Ok(())
}

/// Check a topic filter, plain or `$share/<group>/<filter>`.
pub fn validate_filter(filter: &str) -> Result<(), String> {
    split_shared(filter).map(|_| ())
}

/// Split a filter into its shared group (if any) and the plain filter that
/// topics are matched against, validating both.
///
/// `a/+` → `(None, "a/+")`; `$share/g/a/#` → `(Some("g"), "a/#")`.
pub fn split_shared(filter: &str) -> Result<(Option<&str>, &str), String> {
    check_common(filter, "topic filter")?;
    let Some(rest) = filter.strip_prefix(SHARE_PREFIX) else {
        validate_plain_filter(filter)?;
        return Ok((None, filter));
    };
    let Some((group, inner)) = rest.split_once('/') else {
        return Err(format!(
            "shared subscription '{filter}' has no filter after the group; use $share/<group>/<filter>"
        ));
    };
    if group.is_empty() || group.contains(['+', '#']) {
        return Err(format!(
            "shared subscription group '{group}' must be non-empty and contain no wildcard"
        ));
    }
    if inner.is_empty() {
        return Err(format!(
            "shared subscription '{filter}' has an empty filter"
        ));
    }
    validate_plain_filter(inner)?;
    Ok((Some(group), inner))
}

/// Check a filter that is not shared (the wildcard rules only).
pub fn validate_plain_filter(filter: &str) -> Result<(), String> {
    check_common(filter, "topic filter")?;
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len() - 1;
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != last) {
            return Err(format!(
                "topic filter '{filter}': '#' must be a whole level and the last one"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!(
                "topic filter '{filter}': '+' must be a whole level"
            ));
        }
    }
    Ok(())
}

fn check_common(s: &str, what: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(format!("{what} longer than {MAX_TOPIC_LEN} bytes"));
    }
    if s.contains('\0') {
        return Err(format!("{what} contains U+0000"));
    }
    Ok(())
}

/// Does the plain `filter` match `topic`? Both are assumed valid (a shared
/// filter must first go through [`split_shared`]; `$share/...` given here is
/// matched literally, which matches nothing a client may publish to usefully).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            // '#' also matches the parent: "a/#" matches "a".
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_matching() {
        let yes = [
            ("a/b/c", "a/b/c"),
            ("a/+/c", "a/b/c"),
            ("a/+/c", "a//c"),
            ("+", "a"),
            ("+/+", "a/b"),
            ("+/+", "/b"),
            ("/+", "/b"),
            ("a/#", "a"),
            ("a/#", "a/b"),
            ("a/#", "a/b/c/d"),
            ("a/#", "a/"),
            ("#", "a/b/c"),
            ("#", "/"),
            ("+/#", "a"),
            ("+/b/#", "a/b"),
            ("vehicle/+/request", "vehicle/v1/request"),
            ("$SYS/#", "$SYS/broker/load"),
            ("$SYS/+", "$SYS/x"),
        ];
        for (f, t) in yes {
            assert!(matches(f, t), "{f} should match {t}");
        }
        let no = [
            ("a/b/c", "a/b"),
            ("a/b", "a/b/c"),
            ("a/+/c", "a/b/d"),
            ("a/+", "a"),
            ("a/+", "a/b/c"),
            ("+", "a/b"),
            ("+", "/a"),
            ("a/#", "b"),
            ("a/#", "ab"),
            ("A/b", "a/b"),
            ("a/b/#", "a"),
            ("#", "$SYS/x"),
            ("+/x", "$SYS/x"),
            ("+/#", "$foo"),
            ("$SYS/#", "SYS/x"),
        ];
        for (f, t) in no {
            assert!(!matches(f, t), "{f} should not match {t}");
        }
    }

    #[test]
    fn dollar_topics_only_by_explicit_first_level() {
        assert!(!matches("#", "$share/g/a"));
        assert!(matches("$foo/+", "$foo/bar"));
        // A '$' later in the topic is an ordinary character.
        assert!(matches("a/+", "a/$b"));
        assert!(matches("#", "a/$b"));
    }

    #[test]
    fn valid_filters() {
        for f in [
            "a", "#", "+", "a/#", "+/+/#", "/", "//", "a//b", "+/a/+", "$SYS/#", "é/ü",
        ] {
            assert_eq!(validate_filter(f), Ok(()), "{f}");
        }
    }

    #[test]
    fn invalid_filters() {
        for f in [
            "", "a/#/b", "a#", "#/a", "a/b#", "a+/b", "a/+b", "++", "##", "a\0b",
        ] {
            assert!(validate_filter(f).is_err(), "{f}");
        }
        let long = "a".repeat(MAX_TOPIC_LEN + 1);
        assert!(validate_filter(&long).is_err());
        assert!(validate_filter(&"a".repeat(MAX_TOPIC_LEN)).is_ok());
    }

    #[test]
    fn topic_names() {
        for t in ["a", "a/b", "/", "a//b", "$SYS/x", "vehicle/v-1/status"] {
            assert_eq!(validate_topic_name(t), Ok(()), "{t}");
        }
        for t in ["", "a/+", "#", "a/#", "a+b", "x\0"] {
            assert!(validate_topic_name(t).is_err(), "{t}");
        }
    }

    #[test]
    fn shared_subscriptions() {
        assert_eq!(split_shared("a/+"), Ok((None, "a/+")));
        assert_eq!(
            split_shared("$share/companies/vehicle/+/request"),
            Ok((Some("companies"), "vehicle/+/request"))
        );
        assert_eq!(split_shared("$share/g/#"), Ok((Some("g"), "#")));
        assert_eq!(split_shared("$share/g//"), Ok((Some("g"), "/")));
        // "$share" alone or "$shared/..." are ordinary filters.
        assert_eq!(split_shared("$share"), Ok((None, "$share")));
        assert_eq!(split_shared("$shared/x"), Ok((None, "$shared/x")));
        for bad in [
            "$share/",
            "$share/g",
            "$share/g/",
            "$share//a",
            "$share/+/a",
            "$share/#/a",
            "$share/g+/a",
            "$share/g/a/#/b",
            "$share/g/a+",
        ] {
            assert!(split_shared(bad).is_err(), "{bad}");
        }
    }
}

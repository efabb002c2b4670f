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

/// Who holds a subscription in a [`Tree`]: an id handed out by the broker
/// (a frota-framed connection or an MQTT session).
pub type SubscriberId = u64;

/// The subscription tree: one node per filter level, so a publish looks at
/// the levels of its topic only, not at every subscription. Each entry
/// carries the QoS granted to that subscription.
#[derive(Default)]
pub struct Tree {
    root: Node,
    count: usize,
}

#[derive(Default)]
struct Node {
    children: std::collections::HashMap<String, Node>,
    plain: Vec<(SubscriberId, u8)>,
    /// `(the whole $share/<group>/<filter>, member, qos)`: a group is one
    /// group name on one filter.
    shared: Vec<(String, SubscriberId, u8)>,
}

/// What a topic matched: every plain subscriber once (with the highest QoS
/// among its matching filters), and the members of each share group.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Matches {
    pub plain: Vec<(SubscriberId, u8)>,
    pub groups: Vec<(String, Vec<(SubscriberId, u8)>)>,
}

impl Tree {
    /// Add (or replace the QoS of) `id`'s subscription to `filter`, plain or
    /// shared. Refuses an invalid filter.
    pub fn insert(&mut self, filter: &str, id: SubscriberId, qos: u8) -> Result<(), String> {
        let (group, plain) = split_shared(filter)?;
        let mut node = &mut self.root;
        for level in plain.split('/') {
            node = node.children.entry(level.to_string()).or_default();
        }
        let added = match group {
            None => match node.plain.iter_mut().find(|(m, _)| *m == id) {
                Some(e) => {
                    e.1 = qos;
                    false
                }
                None => {
                    node.plain.push((id, qos));
                    true
                }
            },
            Some(_) => match node
                .shared
                .iter_mut()
                .find(|(k, m, _)| k == filter && *m == id)
            {
                Some(e) => {
                    e.2 = qos;
                    false
                }
                None => {
                    node.shared.push((filter.to_string(), id, qos));
                    true
                }
            },
        };
        if added {
            self.count += 1;
        }
        Ok(())
    }

    /// Remove `id`'s subscription to exactly `filter`; prunes empty
    /// branches. Returns whether it was there.
    pub fn remove(&mut self, filter: &str, id: SubscriberId) -> bool {
        let Ok((group, plain)) = split_shared(filter) else {
            return false;
        };
        let levels: Vec<&str> = plain.split('/').collect();
        let removed = remove_at(&mut self.root, &levels, group.map(|_| filter), id);
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// Subscriptions held (all subscribers).
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every subscription matching `topic` (see [`Matches`]); sorted, so
    /// the result does not depend on hash order.
    pub fn matches(&self, topic: &str) -> Matches {
        let levels: Vec<&str> = topic.split('/').collect();
        let mut plain = Vec::new();
        let mut shared = Vec::new();
        collect(&self.root, &levels, 0, &mut plain, &mut shared);
        let mut m = Matches::default();
        plain.sort_unstable();
        for (id, qos) in plain {
            match m.plain.last_mut() {
                Some(last) if last.0 == id => last.1 = last.1.max(qos),
                _ => m.plain.push((id, qos)),
            }
        }
        shared.sort();
        for (group, id, qos) in shared {
            match m.groups.last_mut() {
                Some((g, members)) if *g == group => match members.last_mut() {
                    Some(last) if last.0 == id => last.1 = last.1.max(qos),
                    _ => members.push((id, qos)),
                },
                _ => m.groups.push((group, vec![(id, qos)])),
            }
        }
        m
    }
}

fn remove_at(node: &mut Node, levels: &[&str], shared: Option<&str>, id: SubscriberId) -> bool {
    let Some((first, rest)) = levels.split_first() else {
        let before = node.plain.len() + node.shared.len();
        match shared {
            None => node.plain.retain(|(m, _)| *m != id),
            Some(f) => node.shared.retain(|(k, m, _)| !(k == f && *m == id)),
        }
        return before != node.plain.len() + node.shared.len();
    };
    let Some(child) = node.children.get_mut(*first) else {
        return false;
    };
    let removed = remove_at(child, rest, shared, id);
    if child.children.is_empty() && child.plain.is_empty() && child.shared.is_empty() {
        node.children.remove(*first);
    }
    removed
}

fn collect(
    node: &Node,
    levels: &[&str],
    depth: usize,
    plain: &mut Vec<(SubscriberId, u8)>,
    shared: &mut Vec<(String, SubscriberId, u8)>,
) {
    // A wildcard in the first level does not match a `$` topic [MQTT-4.7.2-1].
    let wild_ok = !(depth == 0 && levels.first().is_some_and(|l| l.starts_with('$')));
    let take = |n: &Node, plain: &mut Vec<_>, shared: &mut Vec<_>| {
        plain.extend_from_slice(&n.plain);
        shared.extend(n.shared.iter().cloned());
    };
    if wild_ok {
        // `a/#` matches `a` too: '#' covers zero levels.
        if let Some(hash) = node.children.get("#") {
            take(hash, plain, shared);
        }
    }
    let Some(level) = levels.get(depth) else {
        take(node, plain, shared);
        return;
    };
    if wild_ok {
        if let Some(plus) = node.children.get("+") {
            collect(plus, levels, depth + 1, plain, shared);
        }
    }
    if let Some(exact) = node.children.get(*level) {
        collect(exact, levels, depth + 1, plain, shared);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tree_matches_like_matches() {
        let filters = [
            "vehicle/+/status",
            "vehicle/#",
            "vehicle/v1/status",
            "#",
            "+/+",
            "$SYS/#",
            "a//b",
            "+/#",
        ];
        let mut t = Tree::default();
        for (i, f) in filters.iter().enumerate() {
            t.insert(f, i as u64, (i % 3) as u8).unwrap();
        }
        for topic in [
            "vehicle/v1/status",
            "vehicle",
            "vehicle/v2",
            "$SYS/x",
            "a//b",
            "/",
            "a",
        ] {
            let want: Vec<(u64, u8)> = filters
                .iter()
                .enumerate()
                .filter(|(_, f)| matches(f, topic))
                .map(|(i, _)| (i as u64, (i % 3) as u8))
                .collect();
            assert_eq!(t.matches(topic).plain, want, "{topic}");
        }
        assert!(t.insert("a/#/b", 9, 0).is_err());
    }

    #[test]
    fn tree_overlap_shared_and_remove() {
        let mut t = Tree::default();
        t.insert("a/+", 1, 1).unwrap();
        t.insert("a/#", 1, 2).unwrap();
        t.insert("a/#", 1, 0).unwrap(); // replaces the QoS, not a second entry
        t.insert("$share/g/a/+", 2, 1).unwrap();
        t.insert("$share/g/a/+", 3, 2).unwrap();
        t.insert("$share/h/a/+", 3, 0).unwrap();
        assert_eq!(t.len(), 5);
        let m = t.matches("a/x");
        assert_eq!(
            m.plain,
            vec![(1, 1)],
            "one entry per subscriber, highest QoS"
        );
        assert_eq!(
            m.groups,
            vec![
                ("$share/g/a/+".to_string(), vec![(2, 1), (3, 2)]),
                ("$share/h/a/+".to_string(), vec![(3, 0)])
            ]
        );
        assert!(t.remove("$share/g/a/+", 2));
        assert!(!t.remove("$share/g/a/+", 2));
        assert!(t.remove("a/+", 1));
        assert!(t.remove("a/#", 1));
        assert!(t.remove("$share/g/a/+", 3));
        assert!(t.remove("$share/h/a/+", 3));
        assert!(t.is_empty());
        assert!(t.root.children.is_empty(), "empty branches pruned");
    }

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

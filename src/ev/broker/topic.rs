//! Topic names, topic filters (MQTT rules) and the subscription tree.
//!
//! * A topic is `/`-separated levels without wildcards, e.g. `vehicle/v1/status`.
//! * A filter may use `+` (exactly one level) and `#` (any number of levels,
//!   including none; only as the whole last level): `vehicle/+/status`,
//!   `vehicle/#`.
//! * `$share/<group>/<filter>` is a shared subscription: each matching
//!   message goes to one member of the group, not to all.
//! * As in MQTT, a topic whose first level starts with `$` is not matched by
//!   a wildcard in the first level.

use std::collections::HashMap;

/// Who receives messages: an id handed out by the bus.
pub type SubscriberId = u64;

/// A parsed filter: the group (for shared subscriptions) and the levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub group: Option<String>,
    pub levels: Vec<String>,
    /// The filter as the subscriber wrote it (with `$share/...`).
    pub raw: String,
}

pub fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("topic must not be empty".into());
    }
    if topic.contains(['+', '#', '\0']) {
        return Err(format!(
            "topic '{topic}' must not contain '+', '#' or NUL (wildcards are for filters)"
        ));
    }
    Ok(())
}

pub fn parse_filter(raw: &str) -> Result<Filter, String> {
    let (group, rest) = match raw.strip_prefix("$share/") {
        Some(r) => {
            let Some((g, f)) = r.split_once('/') else {
                return Err(format!("'{raw}': expected $share/<group>/<filter>"));
            };
            if g.is_empty() || g.contains(['+', '#']) {
                return Err(format!("'{raw}': bad share group name '{g}'"));
            }
            (Some(g.to_string()), f)
        }
        None => (None, raw),
    };
    if rest.is_empty() || rest.contains('\0') {
        return Err(format!("'{raw}': filter must be non-empty text"));
    }
    let levels: Vec<String> = rest.split('/').map(str::to_string).collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (l != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "'{raw}': '#' must be a whole level and the last one"
            ));
        }
        if l.contains('+') && l != "+" {
            return Err(format!("'{raw}': '+' must be a whole level"));
        }
    }
    Ok(Filter {
        group,
        levels,
        raw: raw.to_string(),
    })
}

/// One level of the tree. Plain subscribers and shared-group members of the
/// filter that ends here.
#[derive(Default)]
pub struct Node {
    children: HashMap<String, Node>,
    plain: Vec<SubscriberId>,
    /// (group key = raw filter, member)
    shared: Vec<(String, SubscriberId)>,
}

/// What a topic matched: plain subscribers, and per share group its members.
#[derive(Default, Debug)]
pub struct Matches {
    pub plain: Vec<SubscriberId>,
    pub groups: Vec<(String, Vec<SubscriberId>)>,
}

impl Node {
    pub fn insert(&mut self, f: &Filter, id: SubscriberId) {
        let mut node = self;
        for l in &f.levels {
            node = node.children.entry(l.clone()).or_default();
        }
        match &f.group {
            None if !node.plain.contains(&id) => node.plain.push(id),
            Some(_) if !node.shared.iter().any(|(k, m)| *k == f.raw && *m == id) => {
                node.shared.push((f.raw.clone(), id))
            }
            _ => {}
        }
    }

    /// Remove `id`'s subscription to `f`; prunes empty branches.
    /// Returns whether it was there.
    pub fn remove(&mut self, f: &Filter, id: SubscriberId) -> bool {
        self.remove_at(f, 0, id)
    }

    fn remove_at(&mut self, f: &Filter, depth: usize, id: SubscriberId) -> bool {
        if depth == f.levels.len() {
            let before = self.plain.len() + self.shared.len();
            match &f.group {
                None => self.plain.retain(|m| *m != id),
                Some(_) => self.shared.retain(|(k, m)| !(*k == f.raw && *m == id)),
            }
            return before != self.plain.len() + self.shared.len();
        }
        let level = &f.levels[depth];
        let Some(child) = self.children.get_mut(level) else {
            return false;
        };
        let removed = child.remove_at(f, depth + 1, id);
        if child.is_empty() {
            self.children.remove(level);
        }
        removed
    }

    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.plain.is_empty() && self.shared.is_empty()
    }

    /// Every subscription matching `topic`.
    pub fn matches(&self, topic: &str) -> Matches {
        let levels: Vec<&str> = topic.split('/').collect();
        let mut m = Matches::default();
        let mut groups: HashMap<String, Vec<SubscriberId>> = HashMap::new();
        self.collect(&levels, 0, &mut m.plain, &mut groups);
        m.plain.sort_unstable();
        m.plain.dedup();
        let mut g: Vec<(String, Vec<SubscriberId>)> = groups.into_iter().collect();
        for (_, members) in g.iter_mut() {
            members.sort_unstable();
            members.dedup();
        }
        g.sort_by(|a, b| a.0.cmp(&b.0));
        m.groups = g;
        m
    }

    fn take(&self, plain: &mut Vec<SubscriberId>, groups: &mut HashMap<String, Vec<SubscriberId>>) {
        plain.extend_from_slice(&self.plain);
        for (k, id) in &self.shared {
            groups.entry(k.clone()).or_default().push(*id);
        }
    }

    fn collect(
        &self,
        levels: &[&str],
        depth: usize,
        plain: &mut Vec<SubscriberId>,
        groups: &mut HashMap<String, Vec<SubscriberId>>,
    ) {
        let wild_ok = !(depth == 0 && levels.first().is_some_and(|l| l.starts_with('$')));
        if wild_ok {
            // `a/#` matches `a` too: '#' covers zero levels.
            if let Some(hash) = self.children.get("#") {
                hash.take(plain, groups);
            }
        }
        let Some(level) = levels.get(depth) else {
            self.take(plain, groups);
            return;
        };
        if wild_ok {
            if let Some(plus) = self.children.get("+") {
                plus.collect(levels, depth + 1, plain, groups);
            }
        }
        if let Some(exact) = self.children.get(*level) {
            exact.collect(levels, depth + 1, plain, groups);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(filters: &[(&str, SubscriberId)]) -> Node {
        let mut t = Node::default();
        for (f, id) in filters {
            t.insert(&parse_filter(f).unwrap(), *id);
        }
        t
    }

    #[test]
    fn wildcards() {
        let t = tree(&[
            ("vehicle/+/status", 1),
            ("vehicle/#", 2),
            ("vehicle/v1/status", 3),
            ("#", 4),
            ("+/+", 5),
        ]);
        assert_eq!(t.matches("vehicle/v1/status").plain, vec![1, 2, 3, 4]);
        assert_eq!(t.matches("vehicle").plain, vec![2, 4]);
        assert_eq!(t.matches("vehicle/v2").plain, vec![2, 4, 5]);
        assert_eq!(t.matches("$SYS/x").plain, Vec::<u64>::new());
    }

    #[test]
    fn shared_and_remove() {
        let mut t = tree(&[
            ("$share/g/vehicle/+/request", 1),
            ("$share/g/vehicle/+/request", 2),
        ]);
        let m = t.matches("vehicle/v1/request");
        assert_eq!(
            m.groups,
            vec![("$share/g/vehicle/+/request".to_string(), vec![1, 2])]
        );
        assert!(t.remove(&parse_filter("$share/g/vehicle/+/request").unwrap(), 1));
        assert!(!t.remove(&parse_filter("$share/g/vehicle/+/request").unwrap(), 1));
        assert_eq!(t.matches("vehicle/v1/request").groups[0].1, vec![2]);
        assert!(t.remove(&parse_filter("$share/g/vehicle/+/request").unwrap(), 2));
        assert!(t.is_empty());
    }

    #[test]
    fn bad_filters() {
        for bad in [
            "",
            "a/#/b",
            "a/b#",
            "a+/b",
            "$share/g",
            "$share//x",
            "$share/g/",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
        assert!(check_topic("a/+").is_err());
        assert!(check_topic("a/b").is_ok());
    }
}

//! Charging points, cities and route stops. The set is data, not code:
//! `examples/charging-points.json` is embedded as the default and
//! `frota-company --points FILE` replaces it.
//!
//! Time is plain minutes since 00:00 of the simulated day (`start`, `end`),
//! half-open `[start, end)`: two windows of one point conflict when they
//! overlap, so 08:00-09:00 and 09:00-10:00 do not.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The default point set, compiled in so a node needs no file to start.
pub const DEFAULT_POINTS: &str = include_str!("../../examples/charging-points.json");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct City {
    pub code: String,
    pub name: String,
    /// Road distance from the first city of the corridor.
    pub km: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub id: String,
    pub company: String,
    pub city: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PointSet {
    pub cities: Vec<City>,
    pub points: Vec<Point>,
}

/// One stop of a route: a point of one company and a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stop {
    pub company: String,
    pub point: String,
    pub start: u32,
    pub end: u32,
}

impl PointSet {
    /// Parse and check: unique point ids, known cities, cities sorted by km.
    pub fn parse(text: &str) -> Result<PointSet, String> {
        let mut set: PointSet =
            serde_json::from_str(text).map_err(|e| format!("bad point set: {e}"))?;
        set.cities.sort_by_key(|c| c.km);
        let codes: HashSet<&str> = set.cities.iter().map(|c| c.code.as_str()).collect();
        let mut ids = HashSet::new();
        for p in &set.points {
            if !ids.insert(p.id.as_str()) {
                return Err(format!("point '{}' listed twice", p.id));
            }
            if !codes.contains(p.city.as_str()) {
                return Err(format!("point '{}' is in unknown city '{}'", p.id, p.city));
            }
        }
        Ok(set)
    }

    /// The embedded default set.
    pub fn default_set() -> PointSet {
        // The embedded file is part of the build and checked by a unit test.
        PointSet::parse(DEFAULT_POINTS).unwrap_or(PointSet {
            cities: Vec::new(),
            points: Vec::new(),
        })
    }

    /// `None` → the embedded set; `Some(path)` → that file.
    pub fn load(path: Option<&str>) -> Result<PointSet, String> {
        match path {
            None | Some("") => Ok(PointSet::default_set()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
                PointSet::parse(&text)
            }
        }
    }

    pub fn of_company<'a>(&'a self, company: &'a str) -> impl Iterator<Item = &'a Point> + 'a {
        self.points.iter().filter(move |p| p.company == company)
    }

    pub fn point(&self, id: &str) -> Option<&Point> {
        self.points.iter().find(|p| p.id == id)
    }

    pub fn companies(&self) -> Vec<String> {
        let mut c: Vec<String> = self.points.iter().map(|p| p.company.clone()).collect();
        c.sort();
        c.dedup();
        c
    }
}

/// Half-open windows overlap.
pub fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// `480` → `"08:00"` (hours past 24 keep counting: a trip may cross midnight).
pub fn hhmm(min: u32) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

/// `"A-REC-1 08:00-09:00"`.
pub fn describe(stop: &Stop) -> String {
    format!("{} {}-{}", stop.point, hhmm(stop.start), hhmm(stop.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_set_is_valid_and_covers_every_city() {
        let set = PointSet::parse(DEFAULT_POINTS).unwrap();
        assert_eq!(set.companies(), vec!["A", "B", "C"]);
        for c in &set.cities {
            for co in ["A", "B", "C"] {
                assert!(
                    set.of_company(co).any(|p| p.city == c.code),
                    "{co} {}",
                    c.code
                );
            }
        }
    }

    #[test]
    fn windows() {
        assert!(overlaps((480, 540), (500, 560)));
        assert!(!overlaps((480, 540), (540, 600)));
        assert_eq!(hhmm(1500), "25:00");
        // Minutes count on past midnight: a window crossing 24:00 overlaps
        // one just after it (protocol.md, Domain).
        assert!(overlaps((1400, 1500), (1440, 1460)));
    }
}

//! The fleet of the original system: 14 vehicles in 5 classes, and which
//! terminal manages (and initially holds) each class.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A vehicle class. The wire spelling is the English lower-case name;
/// input files may use the original Portuguese names too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")] // as `name()` spells it
pub enum Class {
    Economy,
    Intermediate,
    Suv,
    Executive,
    Minivan,
}

impl Class {
    pub const ALL: [Class; 5] = [
        Class::Economy,
        Class::Intermediate,
        Class::Suv,
        Class::Executive,
        Class::Minivan,
    ];

    /// The canonical (wire) name.
    pub fn name(self) -> &'static str {
        match self {
            Class::Economy => "economy",
            Class::Intermediate => "intermediate",
            Class::Suv => "suv",
            Class::Executive => "executive",
            Class::Minivan => "minivan",
        }
    }

    /// The original's Portuguese name, for reports.
    pub fn portuguese(self) -> &'static str {
        match self {
            Class::Economy => "Econômicos",
            Class::Intermediate => "Intermediários",
            Class::Suv => "SUV",
            Class::Executive => "Executivos",
            Class::Minivan => "Minivan",
        }
    }

    /// Parse an English or Portuguese class name, any case, with or without
    /// accents, singular or plural.
    pub fn parse(text: &str) -> Option<Class> {
        let folded: String = text
            .trim()
            .to_lowercase()
            .chars()
            .map(|c| match c {
                'á' | 'â' | 'ã' | 'à' => 'a',
                'é' | 'ê' => 'e',
                'í' => 'i',
                'ó' | 'ô' | 'õ' => 'o',
                'ú' => 'u',
                'ç' => 'c',
                c => c,
            })
            .collect();
        let c = match folded.as_str() {
            "economy" | "economico" | "economicos" | "eco" => Class::Economy,
            "intermediate" | "intermediario" | "intermediarios" | "int" => Class::Intermediate,
            "suv" | "suvs" => Class::Suv,
            "executive" | "executivo" | "executivos" | "exe" => Class::Executive,
            "minivan" | "minivans" | "min" => Class::Minivan,
            _ => return None,
        };
        Some(c)
    }

    /// The terminal that manages this class (original CLASS_MANAGEMENT_MAP).
    pub fn manager(self) -> u32 {
        match self {
            Class::Economy => 3,
            Class::Intermediate | Class::Suv => 2,
            Class::Executive | Class::Minivan => 1,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One vehicle of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vehicle {
    pub id: &'static str,
    pub model: &'static str,
    pub class: Class,
}

/// The original INITIAL_VEHICLES.
pub const FLEET: [Vehicle; 14] = [
    v("ECO01", "Onix", Class::Economy),
    v("ECO02", "Kwid", Class::Economy),
    v("ECO03", "208", Class::Economy),
    v("INT01", "City", Class::Intermediate),
    v("INT02", "Cronos", Class::Intermediate),
    v("INT03", "Virtus", Class::Intermediate),
    v("SUV01", "Commander", Class::Suv),
    v("SUV02", "Q7", Class::Suv),
    v("SUV03", "RX", Class::Suv),
    v("EXE01", "BMW5", Class::Executive),
    v("EXE02", "Corolla Hybrid", Class::Executive),
    v("MIN01", "Spin", Class::Minivan),
    v("MIN02", "Doblo", Class::Minivan),
    v("MIN03", "Livina", Class::Minivan),
];

const fn v(id: &'static str, model: &'static str, class: Class) -> Vehicle {
    Vehicle { id, model, class }
}

pub fn vehicle(id: &str) -> Option<&'static Vehicle> {
    FLEET.iter().find(|v| v.id == id)
}

/// The node name of terminal `n`.
pub fn terminal_name(n: u32) -> String {
    format!("terminal-{n}")
}

/// Number of terminals in a deployment (the class map names 1..=3).
pub const TERMINALS: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_both_languages() {
        assert_eq!(Class::parse("Econômicos"), Some(Class::Economy));
        assert_eq!(Class::parse("Economicos"), Some(Class::Economy));
        assert_eq!(Class::parse(" Intermediários "), Some(Class::Intermediate));
        assert_eq!(Class::parse("SUV"), Some(Class::Suv));
        assert_eq!(Class::parse("executive"), Some(Class::Executive));
        assert_eq!(Class::parse("Minivan"), Some(Class::Minivan));
        assert_eq!(Class::parse("truck"), None);
        for c in Class::ALL {
            assert_eq!(Class::parse(c.name()), Some(c));
            assert_eq!(Class::parse(c.portuguese()), Some(c));
        }
    }

    #[test]
    fn fleet_is_fourteen_unique_cars() {
        let mut ids: Vec<_> = FLEET.iter().map(|v| v.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 14);
    }
}

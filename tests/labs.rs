//! The labs (`make lab`, src/tools/ctl/lab.rs): each breaks one safety rule of the
//! two-phase commit in the simulator, and each must find its
//! counterexample — a checker blind to a rule would pass every schedule.
//! The counterexamples are deterministic, and the course shows them from
//! docs/traces/lab-<name>.{txt,md}: those must be what the labs print now.

use frota::tools::ctl::lab::{self, LABS};
use frota::tools::ev::sim;
use std::path::PathBuf;

const FIX: &str = "run `make traces` to regenerate docs/traces (the labs' diagrams too)";

#[test]
fn every_lab_finds_its_counterexample_and_the_docs_show_it() {
    assert_eq!(LABS.len(), 5, "one lab per safety rule the course teaches");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/traces");
    let mut stale = Vec::new();
    for l in &LABS {
        let f = l.run().unwrap_or_else(|| {
            panic!("lab {}: no counterexample in {} schedules", l.name, l.seeds)
        });
        let v = f
            .report
            .violation
            .clone()
            .expect("a counterexample breaks an invariant");
        assert!(
            l.breaks.contains(&v.invariant),
            "lab {}: breaks {} instead:\n{}",
            l.name,
            v.invariant.name(),
            f.report.steps_text()
        );
        if l.needs_crash {
            assert!(
                f.report.lost > 0 && !v.once_quiet,
                "lab {}: a durability rule's counterexample must lose a record in a crash",
                l.name
            );
        }
        assert!(
            f.report.steps <= f.first_steps,
            "lab {}: shrinking made it longer",
            l.name
        );
        // The same seed with the rule on holds: the rule is what matters.
        assert!(
            f.safe.violation.is_none(),
            "lab {}: {:?}",
            l.name,
            f.safe.violation
        );
        // Replaying the shrunk choices gives the same counterexample.
        let again = sim::replay(
            f.seed,
            &frota::tools::ev::sim::Config {
                trace: true,
                ..l.config()
            },
            &f.report.choices,
        );
        assert_eq!(again.violation, f.report.violation, "lab {}", l.name);
        let text = lab::ladder(l, &f);
        assert!(
            text.contains(&format!("VIOLATED: {}", v.invariant.name())) && text.contains('@'),
            "lab {}: the ladder names the invariant and shows notes:\n{text}",
            l.name
        );
        for (ext, now) in [("txt", text), ("md", lab::mermaid(&f))] {
            let p = dir.join(format!("lab-{}.{ext}", l.name));
            let committed = std::fs::read_to_string(&p).unwrap_or_default();
            if committed != now {
                stale.push(format!(
                    "{}:\n--- committed\n{committed}--- now\n{now}",
                    p.display()
                ));
            }
        }
    }
    assert!(stale.is_empty(), "{}\n{FIX}", stale.join("\n"));
}

//! The results table the demo prints: per arm, visitors, conversions, observed rate,
//! chance to be best (from the control plane's results) and the propensity the edge
//! currently uses (from the latest published snapshot).

use std::collections::HashMap;
use std::fmt::Write as _;

use uuid::Uuid;

use crate::api::ArmResult;

/// Renders the table; `propensities` by arm id, `true_rates` by arm id (shown so the
/// reader can see whether the bandit found the best arm).
pub fn render(
    arms: &[ArmResult],
    propensities: &HashMap<Uuid, f64>,
    true_rates: &HashMap<Uuid, f64>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>9} {:>11} {:>7} {:>7} {:>13} {:>11}",
        "arm", "visitors", "conversions", "rate", "true", "P(best)", "propensity"
    );
    let best = arms
        .iter()
        .map(|a| a.chance_to_be_best)
        .fold(f64::NEG_INFINITY, f64::max);
    for a in arms {
        let propensity = propensities
            .get(&a.arm_id)
            .map(|p| format!("{:.1}%", p * 100.0))
            .unwrap_or_else(|| "-".to_owned());
        let truth = true_rates
            .get(&a.arm_id)
            .map(|r| format!("{:.1}%", r * 100.0))
            .unwrap_or_else(|| "-".to_owned());
        let marker = if a.chance_to_be_best == best && a.visitors > 0 {
            " *"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:<12} {:>9} {:>11} {:>6.2}% {:>7} {:>12.1}% {:>11}{marker}",
            a.name,
            a.visitors,
            a.conversions,
            a.rate * 100.0,
            truth,
            a.chance_to_be_best * 100.0,
            propensity,
        );
    }
    let visitors: u64 = arms.iter().map(|a| a.visitors).sum();
    let conversions: u64 = arms.iter().map(|a| a.conversions).sum();
    let _ = writeln!(out, "{:<12} {visitors:>9} {conversions:>11}", "total");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_arm_with_its_figures_and_marks_the_likely_best() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let arms = vec![
            ArmResult {
                arm_id: a,
                name: "A × X".into(),
                visitors: 1000,
                conversions: 25,
                rate: 0.025,
                chance_to_be_best: 0.1,
            },
            ArmResult {
                arm_id: b,
                name: "B × Y".into(),
                visitors: 2000,
                conversions: 110,
                rate: 0.055,
                chance_to_be_best: 0.9,
            },
        ];
        let props = HashMap::from([(a, 0.2), (b, 0.8)]);
        let truth = HashMap::from([(a, 0.025), (b, 0.055)]);
        let table = render(&arms, &props, &truth);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(
            lines[1].starts_with("A × X")
                && lines[1].contains("1000")
                && lines[1].contains("2.50%")
                && lines[1].contains("20.0%"),
            "{table}"
        );
        assert!(!lines[1].ends_with('*'), "{table}");
        assert!(
            lines[2].contains("90.0%") && lines[2].ends_with(" *"),
            "{table}"
        );
        assert!(
            lines[3].contains("3000") && lines[3].contains("135"),
            "{table}"
        );
    }
}

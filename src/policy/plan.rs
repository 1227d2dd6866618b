//! Choosing a renewal plan among those `op=renewal-plans` offers, by a rule's
//! [`PlanChoice`]: an explicit id, `cheapest`, `best-value` or `longest`. Pure.

use crate::api::RenewalPlan;
use crate::rule::PlanChoice;
use crate::values::Cents;

/// The plan the rule picks among `plans`, with its price and added time for `repeat`;
/// `None` when no plan is eligible. Plans with a non-positive duration or negative price,
/// or whose totals overflow, are not eligible. Final ties go to the smaller plan id.
#[must_use]
pub fn choose_plan<'p>(
    choice: &PlanChoice,
    plans: &'p [RenewalPlan],
    repeat: u32,
) -> Option<(&'p RenewalPlan, Cents, i64)> {
    let eligible = plans.iter().filter_map(|p| {
        if p.duration_ms <= 0 || p.price_amount_cents.0 < 0 {
            return None;
        }
        let price = p.price_amount_cents.0.checked_mul(i64::from(repeat))?;
        let added = p.duration_ms.checked_mul(i64::from(repeat))?;
        Some((p, Cents(price), added))
    });
    match choice {
        PlanChoice::Plan(id) => eligible.into_iter().find(|(p, ..)| &p.id == id),
        PlanChoice::Cheapest => {
            eligible.min_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)).then_with(|| a.0.id.cmp(&b.0.id)))
        }
        PlanChoice::Longest => {
            eligible.min_by(|a, b| b.2.cmp(&a.2).then(a.1.cmp(&b.1)).then_with(|| a.0.id.cmp(&b.0.id)))
        }
        PlanChoice::BestValue => eligible.min_by(|a, b| {
            // price_a / dur_a vs price_b / dur_b, exactly: cross-multiply in i128.
            let per_day_a = i128::from(a.1.0) * i128::from(b.2);
            let per_day_b = i128::from(b.1.0) * i128::from(a.2);
            per_day_a.cmp(&per_day_b).then(b.2.cmp(&a.2)).then(a.1.cmp(&b.1)).then_with(|| a.0.id.cmp(&b.0.id))
        }),
    }
}

//! A visitor's assignments for a site, from a snapshot: what the edge runs per request.
//!
//! [`assign_site`] evaluates, in order:
//! 1. an empty visitor id → no assignments (like GrowthBook, nothing to hash);
//! 2. the site's exclusion rules — the first match excludes the visitor from every
//!    experiment and is reported in [`SiteAssignment::excluded`];
//! 3. per experiment, in snapshot order: URL rules, then experiment-level exclusions;
//! 4. per allocation unit: a sticky assignment (`VisitorContext::sticky`, keyed by the
//!    unit id, or by the experiment id for single/factorial experiments) whose arm still
//!    exists wins, bypassing namespace and coverage, so a visitor keeps their arm;
//! 5. otherwise the namespace, then the GrowthBook hash (`seed`, or
//!    `seed + ":" + element_id` for an independent element) against the coverage, then
//!    the unit's [`Allocator`](crate::allocator::Allocator): fixed split by bucket;
//!    Thompson by a ChaCha8 draw seeded from the visitor, the experiment id (with
//!    `:element_id` for an independent element) and the snapshot version — see
//!    [`crate::allocator::visitor_rng`].
//!
//! The whole function is deterministic in its inputs: the same snapshot and context give
//! the same assignments, so any assignment can be replayed from the logged inputs.
//! The propensity reported is the arm's propensity in the snapshot (for a sticky
//! assignment too: it is the probability a *new* visitor had; `sticky` flags the case).

use alloc::vec::Vec;

use serde::Serialize;

use crate::allocator::visitor_rng;
use crate::bucket;
use crate::changes::Change;
use crate::multi::{self, Mode};
use crate::snapshot::{AllocationUnit, Element, ExperimentSnapshot, Snapshot, Variant};
use crate::targeting::{self, ExclusionReason};

/// What the edge knows about the request (defined with the rules that read it).
pub use crate::targeting::VisitorContext;

/// The result for a site. It borrows from the snapshot it was computed from: ids and
/// changes are not copied (the per-request hot path allocates only the list).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SiteAssignment<'a> {
    /// `Some` when a site-wide exclusion rule matched (then there are no assignments).
    pub excluded: Option<ExclusionReason>,
    /// One per allocation unit the visitor entered.
    pub assignments: Assignments<'a>,
}

/// A site's assignments, in order; derefs to a slice. One assignment (a page in one
/// experiment, the usual case) is stored inline, so the per-request path allocates
/// nothing; more go to the heap.
#[derive(Debug, Clone, Default)]
pub struct Assignments<'a>(Repr<'a>);

#[derive(Debug, Clone, Default)]
enum Repr<'a> {
    #[default]
    Empty,
    One(Assignment<'a>),
    Many(Vec<Assignment<'a>>),
}

impl<'a> Assignments<'a> {
    /// Appends one.
    pub fn push(&mut self, a: Assignment<'a>) {
        self.0 = match core::mem::take(&mut self.0) {
            Repr::Empty => Repr::One(a),
            Repr::One(first) => Repr::Many(alloc::vec![first, a]),
            Repr::Many(mut all) => {
                all.push(a);
                Repr::Many(all)
            }
        };
    }

    /// The assignments as a vector.
    #[must_use]
    pub fn into_vec(self) -> Vec<Assignment<'a>> {
        self.into_iter().collect()
    }
}

impl<'a> core::ops::Deref for Assignments<'a> {
    type Target = [Assignment<'a>];
    fn deref(&self) -> &Self::Target {
        match &self.0 {
            Repr::Empty => &[],
            Repr::One(a) => core::slice::from_ref(a),
            Repr::Many(all) => all,
        }
    }
}

impl PartialEq for Assignments<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Serialize for Assignments<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'a> FromIterator<Assignment<'a>> for Assignments<'a> {
    fn from_iter<I: IntoIterator<Item = Assignment<'a>>>(iter: I) -> Self {
        let mut out = Self::default();
        for a in iter {
            out.push(a);
        }
        out
    }
}

impl<'a> IntoIterator for Assignments<'a> {
    type Item = Assignment<'a>;
    type IntoIter = IntoIter<'a>;
    fn into_iter(self) -> IntoIter<'a> {
        IntoIter(match self.0 {
            Repr::Empty => IterRepr::One(None.into_iter()),
            Repr::One(a) => IterRepr::One(Some(a).into_iter()),
            Repr::Many(all) => IterRepr::Many(all.into_iter()),
        })
    }
}

impl<'b, 'a> IntoIterator for &'b Assignments<'a> {
    type Item = &'b Assignment<'a>;
    type IntoIter = core::slice::Iter<'b, Assignment<'a>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The owning iterator of [`Assignments`].
#[derive(Debug)]
pub struct IntoIter<'a>(IterRepr<'a>);

#[derive(Debug)]
enum IterRepr<'a> {
    One(core::option::IntoIter<Assignment<'a>>),
    Many(alloc::vec::IntoIter<Assignment<'a>>),
}

impl<'a> Iterator for IntoIter<'a> {
    type Item = Assignment<'a>;
    fn next(&mut self) -> Option<Assignment<'a>> {
        match &mut self.0 {
            IterRepr::One(it) => it.next(),
            IterRepr::Many(it) => it.next(),
        }
    }
}

/// One assignment (one per allocation unit), borrowed from the snapshot.
///
/// Serialised as `{experiment_id, element_id, arm_id, variant_ids, changes, propensity,
/// snapshot_version, sticky, sticky_key}` (the `/v1/assign` response's shape).
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment<'a> {
    /// The experiment.
    pub experiment_id: &'a str,
    /// `Some` for an independent multi-element experiment's element.
    pub element_id: Option<&'a str>,
    /// The arm.
    pub arm_id: &'a str,
    /// The variant per element this arm stands for (one for an independent element),
    /// with their changes.
    pub variants: ArmVariants<'a>,
    /// The arm's propensity under this snapshot.
    pub propensity: f64,
    /// The snapshot version that decided it.
    pub snapshot_version: u64,
    /// Whether it came from a sticky assignment.
    pub sticky: bool,
    /// The key stickiness is read by (see [`sticky_key`]): what a caller sends back in
    /// `sticky` and what the sticky cookie stores.
    pub sticky_key: &'a str,
}

impl<'a> Assignment<'a> {
    /// The variant ids, in element order.
    pub fn variant_ids(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.variants.iter().map(|v| v.id.as_str())
    }

    /// The changes to apply, in element order.
    pub fn changes(&self) -> impl Iterator<Item = &'a Change> + 'a {
        self.variants.iter().flat_map(|v| v.changes.iter())
    }
}

impl Serialize for Assignment<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        /// A sequence serialised from a fresh iterator.
        struct Seq<F>(F);
        impl<F: Fn() -> I, I: Iterator<Item = T>, T: Serialize> Serialize for Seq<F> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq((self.0)())
            }
        }
        let mut st = s.serialize_struct("Assignment", 9)?;
        st.serialize_field("experiment_id", self.experiment_id)?;
        st.serialize_field("element_id", &self.element_id)?;
        st.serialize_field("arm_id", self.arm_id)?;
        st.serialize_field("variant_ids", &Seq(|| self.variant_ids()))?;
        st.serialize_field("changes", &Seq(|| self.changes()))?;
        st.serialize_field("propensity", &self.propensity)?;
        st.serialize_field("snapshot_version", &self.snapshot_version)?;
        st.serialize_field("sticky", &self.sticky)?;
        st.serialize_field("sticky_key", self.sticky_key)?;
        st.end()
    }
}

/// The variants an arm stands for: one per element of the experiment (`single`,
/// `factorial`), or one of a single element (an `independent` element's unit).
/// Built only from indexes that exist ([`ArmVariants::new`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmVariants<'a> {
    elements: &'a [Element],
    indexes: &'a [usize],
    /// The independent element's position: every index is into its variants.
    element: Option<usize>,
}

impl<'a> ArmVariants<'a> {
    /// Variant `indexes[i]` of element `element` (when `Some`) or of element `i`;
    /// `None` if an element or variant does not exist.
    #[must_use]
    pub fn new(
        elements: &'a [Element],
        indexes: &'a [usize],
        element: Option<usize>,
    ) -> Option<Self> {
        for (pos, &v) in indexes.iter().enumerate() {
            elements.get(element.unwrap_or(pos))?.variants.get(v)?;
        }
        Some(Self {
            elements,
            indexes,
            element,
        })
    }

    /// How many variants.
    #[must_use]
    pub fn len(&self) -> usize {
        self.indexes.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.indexes.is_empty()
    }

    /// The variants, in element order.
    pub fn iter(&self) -> impl Iterator<Item = &'a Variant> + 'a {
        let Self {
            elements,
            indexes,
            element,
        } = *self;
        // `new` checked every index, so nothing is skipped.
        indexes
            .iter()
            .enumerate()
            .filter_map(move |(pos, &v)| elements.get(element.unwrap_or(pos))?.variants.get(v))
    }
}

/// All assignments of a visitor on a site (see the module docs for the order of checks).
#[must_use]
pub fn assign_site<'a>(snapshot: &'a Snapshot, ctx: &VisitorContext<'_>) -> SiteAssignment<'a> {
    let mut out = SiteAssignment::default();
    if ctx.visitor_id.is_empty() {
        return out;
    }
    if let Some(reason) = targeting::first_exclusion(&snapshot.exclusions, ctx) {
        out.excluded = Some(reason);
        return out;
    }
    for exp in &snapshot.experiments {
        if !targeting::url_allowed(&exp.url_rules, ctx.url)
            || targeting::first_exclusion(&exp.exclusions, ctx).is_some()
        {
            continue;
        }
        for unit in &exp.units {
            if let Some(a) = assign_unit(snapshot.version, exp, unit, ctx) {
                out.assignments.push(a);
            }
        }
    }
    out
}

/// The key a unit's sticky assignment is kept under: the unit id for an independent
/// element (each element sticks on its own), the experiment id otherwise.
#[must_use]
pub fn sticky_key<'a>(exp: &'a ExperimentSnapshot, unit: &'a AllocationUnit) -> &'a str {
    match exp.mode {
        Mode::Independent => unit.id.as_str(),
        Mode::Single | Mode::Factorial => exp.id.as_str(),
    }
}

/// The arm index chosen for one unit, and whether it was sticky.
fn choose_arm(
    snapshot_version: u64,
    exp: &ExperimentSnapshot,
    unit: &AllocationUnit,
    ctx: &VisitorContext<'_>,
) -> Option<(usize, bool)> {
    let sticky_key = sticky_key(exp, unit);
    let sticky_arm = ctx
        .sticky
        .iter()
        .find(|(k, _)| *k == sticky_key)
        .and_then(|(_, arm)| unit.arms.iter().position(|a| a.id == *arm));
    if let Some(i) = sticky_arm {
        return Some((i, true));
    }
    if let Some(ns) = &exp.namespace
        && !bucket::in_namespace(ctx.visitor_id, (&ns.id, ns.start, ns.end))
    {
        return None;
    }
    // Independent elements hash with `seed:element_id`; the others with `seed`. The same
    // parts key the Thompson RNG (with the experiment id in place of the seed).
    let element = unit
        .element_id
        .as_deref()
        .filter(|_| exp.mode == Mode::Independent);
    // The salt's first part is the seed itself, whose hash state `Seed` holds.
    let salt = match element {
        Some(el) => multi::element_salt(&exp.seed, el),
        None => [exp.seed.as_str(), "", ""],
    };
    let n = exp
        .seed
        .hash_parts(&salt[1..], ctx.visitor_id, exp.hash_version)?;
    let rng_unit = match element {
        Some(el) => [exp.id.as_str(), ":", el],
        None => [exp.id.as_str(), "", ""],
    };
    let arms = &unit.arms;
    let i = unit
        .allocator
        .choose_lazy(
            arms.len(),
            |i| arms[i].stats(),
            n,
            exp.coverage,
            || visitor_rng(ctx.visitor_id, &rng_unit, snapshot_version),
        )
        .ok()??;
    Some((i, false))
}

fn assign_unit<'a>(
    snapshot_version: u64,
    exp: &'a ExperimentSnapshot,
    unit: &'a AllocationUnit,
    ctx: &VisitorContext<'_>,
) -> Option<Assignment<'a>> {
    let (i, sticky) = choose_arm(snapshot_version, exp, unit, ctx)?;
    let arm = unit.arms.get(i)?;
    let independent_element = match exp.mode {
        Mode::Independent => unit
            .element_id
            .as_deref()
            .and_then(|id| exp.elements.iter().position(|e| e.id == id)),
        Mode::Single | Mode::Factorial => None,
    };
    Some(Assignment {
        experiment_id: &exp.id,
        element_id: match exp.mode {
            Mode::Independent => unit.element_id.as_deref(),
            Mode::Single | Mode::Factorial => None,
        },
        arm_id: &arm.id,
        variants: ArmVariants::new(&exp.elements, &arm.variants, independent_element)?,
        propensity: arm.propensity,
        snapshot_version,
        sticky,
        sticky_key: sticky_key(exp, unit),
    })
}

/// The goals a page view concerns, over every experiment of the snapshot (a goal page
/// such as `/thanks` is usually outside the experiment's own URL rules, and the control
/// plane attributes a conversion only to visitors it already assigned).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PageGoals<'a> {
    /// Names of URL goals whose rule matches this page: the edge records them as
    /// conversions at once.
    pub url_goals: Vec<&'a str>,
    /// `(name, selector)` of click goals: the snippet watches these selectors.
    pub click_goals: Vec<(&'a str, &'a str)>,
}

/// The URL goals `url` fires and the click goals to watch on it, each name once, in
/// snapshot order.
#[must_use]
pub fn page_goals<'a>(snapshot: &'a Snapshot, url: &str) -> PageGoals<'a> {
    use crate::snapshot::GoalTrigger;
    let mut out = PageGoals::default();
    for goal in snapshot.experiments.iter().flat_map(|e| &e.goals) {
        match &goal.trigger {
            GoalTrigger::Url { rule } => {
                let fires = rule.include() && rule.matches(url);
                if fires && !out.url_goals.contains(&goal.name.as_str()) {
                    out.url_goals.push(&goal.name);
                }
            }
            GoalTrigger::Click { selector } => {
                if !out.click_goals.iter().any(|(n, _)| *n == goal.name) {
                    out.click_goals.push((&goal.name, selector));
                }
            }
        }
    }
    out
}

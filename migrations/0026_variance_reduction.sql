-- Variance reduction: CUPED within post-strata (issue 16; docs/statistics.md, "Variance
-- reduction (CUPED and post-stratification)"; shared-engine/src/stats/cuped.rs).
--
-- The moments live in the segment tables under the internal dimension `cuped_stratum`,
-- whose value is the visitor's stratum `<visitor type>/<device>` (e.g. `returning/mobile`,
-- `unknown/unknown`), fixed at the first exposure like every segment. Ingestion writes
-- those rows in the same statements as the other dimensions' (one more row per delta, no
-- extra round trip), so per arm (and goal) they add up to the arm's totals like any
-- dimension. The segments API does not expose the dimension.
--
-- Covariates: x1 = prior_conversions, x2 = prior_visits of the assignment, NULL -> 0,
-- capped at 50 (samplit_engine::stats::cuped::COVARIATE_CAP). On every other dimension's
-- rows the new columns stay 0. Adding columns with a constant default rewrites nothing.

-- Per (arm, stratum, day): sums of x1, x2, x1^2, x2^2 and x1*x2 over new visitors.
ALTER TABLE segment_daily
    ADD COLUMN x1_sum   double precision NOT NULL DEFAULT 0,
    ADD COLUMN x2_sum   double precision NOT NULL DEFAULT 0,
    ADD COLUMN x1_sumsq double precision NOT NULL DEFAULT 0,
    ADD COLUMN x2_sumsq double precision NOT NULL DEFAULT 0,
    ADD COLUMN x1x2_sum double precision NOT NULL DEFAULT 0;

-- Per (arm, goal, stratum, day): sums of x * y with y = converted (0/1: a first conversion
-- adds x) and with y = the visitor's revenue total (a change t0 -> t1 adds x * (t1 - t0));
-- sum y and sum y^2 are the existing converters / revenue_sum / revenue_sumsq.
ALTER TABLE segment_goal_daily
    ADD COLUMN converters_x1 double precision NOT NULL DEFAULT 0,
    ADD COLUMN converters_x2 double precision NOT NULL DEFAULT 0,
    ADD COLUMN revenue_x1    double precision NOT NULL DEFAULT 0,
    ADD COLUMN revenue_x2    double precision NOT NULL DEFAULT 0;

-- Guardrail goals (issue 16): a secondary goal the winner must not harm by more than a
-- relative non-inferiority margin (samplit_engine::stats::guardrail, docs/statistics.md).
--   guardrail_margin    relative: 0.05 = the arm may be at most 5 % worse than control.
--   guardrail_direction higher_is_better (purchases, revenue) or lower_is_better (a
--                       bounce or error event counted as a conversion).
-- Both are NULL unless `guardrail`; the primary goal is never a guardrail.
ALTER TABLE goals
    ADD COLUMN guardrail           boolean NOT NULL DEFAULT false,
    ADD COLUMN guardrail_margin    double precision
        CHECK (guardrail_margin > 0 AND guardrail_margin <= 1),
    ADD COLUMN guardrail_direction text
        CHECK (guardrail_direction IN ('higher_is_better', 'lower_is_better')),
    ADD CONSTRAINT goals_guardrail_fields CHECK (
        CASE WHEN guardrail
             THEN guardrail_margin IS NOT NULL AND guardrail_direction IS NOT NULL
                  AND NOT is_primary
             ELSE guardrail_margin IS NULL AND guardrail_direction IS NULL
        END
    );

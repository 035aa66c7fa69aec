-- Funnels computed in the background (issue 16; docs/funnels.md, "Large funnels"). A
-- funnel whose computation runs past SAMPLIT_ANALYSIS_TIMEOUT_MS in a request is queued
-- here; a worker of `samplit serve` computes it with SAMPLIT_ANALYSIS_BACKGROUND_TIMEOUT_MS
-- and keeps the answer, which later requests are served with its age.
CREATE TABLE funnel_runs (
    funnel_id    uuid PRIMARY KEY REFERENCES funnels (id) ON DELETE CASCADE,
    -- A computation is wanted since then (NULL: none is).
    requested_at timestamptz,
    -- A worker took it then (NULL: none has; one older than the background budget is
    -- taken again: its worker stopped).
    started_at   timestamptz,
    -- The last answer computed in the background, as the API returns it.
    result       jsonb,
    result_at    timestamptz,
    -- The last background computation failed (ran past its budget too, or an error).
    failed_at    timestamptz,
    failure      text
);
CREATE INDEX funnel_runs_requested_idx ON funnel_runs (requested_at) WHERE requested_at IS NOT NULL;

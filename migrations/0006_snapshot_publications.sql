-- Snapshot publications: one row per attempt to push a site's snapshot to the edge.
--
-- `version` is monotonic per site (the next version is max(version) + 1, taken while the
-- publisher holds its advisory lock); a failed push consumes its version, so the edge
-- never sees a version number reused with different content. `content_hash` is the
-- SHA-256 of the snapshot with its version and timestamp zeroed: the publisher skips a
-- site whose content hash equals that of its last successful publication.
CREATE TABLE snapshot_publications (
    site_id       uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    version       bigint NOT NULL CHECK (version >= 1),
    -- SHA-256 (hex) of the signed payload bytes.
    hash          text NOT NULL,
    content_hash  text NOT NULL,
    -- Per experiment and unit: arm ids, counts and propensities (what was published).
    weights       jsonb NOT NULL,
    status        text NOT NULL CHECK (status IN ('published', 'failed')),
    attempts      integer NOT NULL CHECK (attempts >= 1),
    error         text,
    published_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, version)
);
CREATE INDEX snapshot_publications_latest_ok_idx
    ON snapshot_publications (site_id, version DESC) WHERE status = 'published';

-- A deleted site's raw events (issue 16). raw_exposures / raw_conversions have no foreign
-- key to sites (a per-row check would cost on the ingestion hot path), so deleting a site
-- cannot cascade to them. Every deletion of a site — DELETE /sites/{id}, Shopify's
-- shop/redact, an organisation's deletion cascading to its sites — queues the site here
-- through a trigger, in the deleting transaction; ingestion's housekeeping task then
-- deletes the site's rows partition by partition (each partition one bounded statement)
-- and forgets the entry once a pass finds nothing left and the deletion is more than an
-- hour old (a batch that resolved the site key just before the deletion may still commit
-- a few rows after it: the next pass removes them).
CREATE TABLE raw_event_purges (
    site_id      uuid PRIMARY KEY,
    requested_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION queue_raw_event_purge() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO raw_event_purges (site_id) VALUES (OLD.id)
    ON CONFLICT (site_id) DO NOTHING;
    RETURN OLD;
END;
$$;

CREATE TRIGGER sites_queue_raw_event_purge
    AFTER DELETE ON sites
    FOR EACH ROW EXECUTE FUNCTION queue_raw_event_purge();

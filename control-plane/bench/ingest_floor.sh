#!/usr/bin/env bash
# The floor of what PostgreSQL alone spends per ingested event, for four shapes of
# write, against a plain COPY measured in the same run (issue 16's "1/8 of the
# plain-COPY ceiling"). No control plane, no JSON, no signature: PostgreSQL generates
# the rows itself, so each figure is an upper bound on what any ingestion that writes
# those rows can reach here. docs/benchmarks.md, "The floor of the rows an event writes".
#
#   control-plane/bench/ingest_floor.sh          # PGHOST/PGUSER default to 127.0.0.1/postgres
#   ROUNDS=3 SECS=15 CLIENTS=8 KEYS=random control-plane/bench/ingest_floor.sh
#
# KEYS=random (default): item and visitor ids are random UUIDs, as the edge made them.
# KEYS=v7: time-ordered UUIDs (version 7), as the edge makes them since the fourth session.
# KEYS=sequential: ids from a sequence ('k-1', 'k-2', ...), close to bench_ingest's
# "<batch>-<i>" and "visitor-<n>", whose btree inserts land on few, hot pages.
#
# Each transaction is one batch of 500 events, 300 first exposures of new visitors and
# 200 first purchases (the 60/40 mix of bench_ingest), CLIENTS batches in flight:
#   f0  500 rows into an unindexed table (what a multi-row INSERT costs against COPY);
#   f1  the per-visitor state only: 300 assignments, 200 conversion upserts, each
#       row one primary-key entry (the least any design that keeps the visitor's arm
#       and first conversion in PostgreSQL writes);
#   f2  f1 + the idempotency table (one row and key per item);
#   f3  f2 + one raw row per event with its erasure index (today's rows, without the
#       aggregates, the assignment reads, the quota and the partitions).
# It creates and drops a database `ingest_floor_<pid>`; the machine's busy CPU per event
# is read from /proc/stat (run it on an otherwise idle machine).
set -euo pipefail
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-15}
CLIENTS=${CLIENTS:-8}
KEYS=${KEYS:-random}
PGBENCH=${PGBENCH:-$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -n 1)}
[ -x "$PGBENCH" ] || PGBENCH=$(command -v pgbench)
DB=ingest_floor_$$
WORK=$(mktemp -d)
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }
cleanup() {
  psql -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

E=00000000-0000-0000-0000-00000000000e # experiment
G=00000000-0000-0000-0000-00000000000f # goal
A=00000000-0000-0000-0000-00000000000a # arm
S=00000000-0000-0000-0000-000000000005 # site

cat > "$WORK/setup.sql" <<EOF
SET client_min_messages = warning;
DROP TABLE IF EXISTS f_assign, f_conv, f_seen, f_raw_exp, f_raw_conv, f_plain, f_copy;
CREATE SEQUENCE IF NOT EXISTS f_keys;
CREATE TABLE f_assign (experiment_id uuid NOT NULL, visitor_id text COLLATE "C" NOT NULL,
  unit smallint NOT NULL, arm_id uuid NOT NULL, first_seen_at timestamptz NOT NULL,
  country text, device text, PRIMARY KEY (experiment_id, visitor_id, unit));
CREATE TABLE f_conv (goal_id uuid NOT NULL, visitor_id text COLLATE "C" NOT NULL,
  unit smallint NOT NULL, arm_id uuid NOT NULL, count integer NOT NULL,
  value double precision NOT NULL, PRIMARY KEY (goal_id, visitor_id, unit));
CREATE TABLE f_seen (item_id text COLLATE "C" PRIMARY KEY, seen_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON f_seen USING brin (seen_at);
CREATE TABLE f_raw_exp (day date, ts timestamptz, site_id uuid, item_id text,
  visitor_id text COLLATE "C", experiment_id uuid, arm_id uuid, propensity float8,
  snapshot_version bigint, country text, device text);
CREATE INDEX ON f_raw_exp (site_id, visitor_id);
CREATE TABLE f_raw_conv (day date, ts timestamptz, site_id uuid, item_id text,
  visitor_id text COLLATE "C", kind text, goal text, value float8, signed boolean);
CREATE INDEX ON f_raw_conv (site_id, visitor_id);
CREATE TABLE f_plain (id text, type text, site_key text, experiment_id text, arm_id text,
  visitor_id text, goal text, value float8, ts_ms int8);
CREATE TABLE f_copy (LIKE f_plain);
EOF

case "$KEYS" in
  random) v="gen_random_uuid()::text" ;;
  sequential) v="'k-' || nextval('f_keys')" ;;
  # Shaped like a UUID version 7 (36 characters, increasing in its first 12 hex digits,
  # random after them) but cheap to make: a sequence in the time's place. Building the
  # real layout from clock_timestamp() costs PostgreSQL ~2.5 us per key here, more than
  # the index inserts this compares.
  v7) v="lpad(to_hex(nextval('f_keys')), 12, '0') || substr(gen_random_uuid()::text, 13)" ;;
  *) echo "KEYS is random, v7 or sequential" >&2; exit 2 ;;
esac
plain="INSERT INTO f_plain SELECT $v, 'exposure', 'pk_live_abcdefghijklmnop', '$E', '$A', $v, NULL, NULL, 1764300000000 FROM generate_series(1, 500);"
state="INSERT INTO f_assign SELECT '$E', $v, 0, '$A', now(), 'ES', 'mobile' FROM generate_series(1, 300) ON CONFLICT DO NOTHING;
INSERT INTO f_conv SELECT '$G', $v, 0, '$A', 1, 19.99 FROM generate_series(1, 200)
  ON CONFLICT (goal_id, visitor_id, unit) DO UPDATE SET count = f_conv.count + 1, value = f_conv.value + excluded.value;"
seen="INSERT INTO f_seen (item_id) SELECT $v FROM generate_series(1, 500) ON CONFLICT DO NOTHING;"
raw="INSERT INTO f_raw_exp SELECT current_date, now(), '$S', $v, $v, '$E', '$A', 0.5, 1, 'ES', 'mobile' FROM generate_series(1, 300);
INSERT INTO f_raw_conv SELECT current_date, now(), '$S', $v, $v, 'conversion', 'purchase', 19.99, false FROM generate_series(1, 200);"
printf 'BEGIN;\n%s\nCOMMIT;\n' "$plain" > "$WORK/f0.sql"
printf 'BEGIN;\n%s\nCOMMIT;\n' "$state" > "$WORK/f1.sql"
printf 'BEGIN;\n%s\n%s\nCOMMIT;\n' "$seen" "$state" > "$WORK/f2.sql"
printf 'BEGIN;\n%s\n%s\n%s\nCOMMIT;\n' "$seen" "$state" "$raw" > "$WORK/f3.sql"

psql -d postgres -c "CREATE DATABASE $DB"
psql -d "$DB" -f "$WORK/setup.sql"
# 1 000 000 lines shaped like bench_ingest's COPY (9 columns, 60 % exposures).
psql -d "$DB" -c "\\copy (SELECT $v, CASE WHEN i % 5 < 3 THEN 'exposure' ELSE 'conversion' END,
  'pk_live_abcdefghijklmnop', CASE WHEN i % 5 < 3 THEN $v END, CASE WHEN i % 5 < 3 THEN $v END,
  $v, CASE WHEN i % 5 >= 3 THEN 'purchase' END, CASE WHEN i % 5 >= 3 THEN 19.99 END,
  1764300000000 FROM generate_series(1, 1000000) i) TO '$WORK/copy.tsv'"

busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
hz=$(getconf CLK_TCK)
echo "keys $KEYS, clients $CLIENTS, ${SECS} s per shape, $(nproc) cores; PostgreSQL $(psql -d "$DB" -Atc 'SHOW server_version')"
for r in $(seq 1 "$ROUNDS"); do
  psql -d "$DB" -c "TRUNCATE f_copy" -c "CHECKPOINT"
  start=$(date +%s.%N)
  psql -d "$DB" -c "\\copy f_copy FROM '$WORK/copy.tsv'"
  end=$(date +%s.%N)
  copy=$(echo "1000000 / ($end - $start)" | bc -l)
  printf 'round %d  COPY  %8.0f rows/s\n' "$r" "$copy"
  for f in f0 f1 f2 f3; do
    psql -d "$DB" -c "TRUNCATE f_assign, f_conv, f_seen, f_raw_exp, f_raw_conv, f_plain" -c "CHECKPOINT"
    b0=$(busy)
    tps=$("$PGBENCH" -n -c "$CLIENTS" -j 2 -T "$SECS" -f "$WORK/$f.sql" "$DB" 2>/dev/null | awk '/^tps/ {print $3}')
    b1=$(busy)
    events=$(echo "$tps * 500" | bc -l)
    printf 'round %d  %s    %8.0f events/s  1/%.1f of COPY  %5.1f us of CPU per event (whole machine)\n' \
      "$r" "$f" "$events" "$(echo "$copy / $events" | bc -l)" \
      "$(echo "($b1 - $b0) * 1000000 / $hz / ($events * $SECS)" | bc -l)"
  done
done

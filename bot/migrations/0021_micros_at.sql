-- The intake's JSON rows (queries/intake_new.py) carry instants as whole microseconds since the epoch: cheaper at
-- both ends than ISO 8601 text (no isoformat() and encoder hook per time in Python, no timestamptz_in here), and
-- read back exactly. `micros * interval '1 microsecond'` would not be: an interval is multiplied as a float8, exact
-- only within 2^53 µs (1685–2255). Whole days and the microseconds left each stay far inside it, and timestamp (not
-- timestamptz) arithmetic adds days without a time zone. Simple and immutable, so the planner inlines it.
CREATE FUNCTION micros_at(micros bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (timestamp 'epoch' + (micros / 86400000000) * interval '1 day'
                  + (micros % 86400000000) * interval '1 microsecond') AT TIME ZONE 'UTC' $$;

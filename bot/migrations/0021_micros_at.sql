-- The intake's JSON rows (queries/intake_new.py) carry instants as whole microseconds since the epoch: exact, and
-- cheaper at both ends than ISO 8601 text (no isoformat() and encoder hook per time in Python, no timestamptz_in
-- here). STABLE, not IMMUTABLE, because timestamptz + interval is: so the planner inlines it into each statement.
CREATE FUNCTION micros_at(micros bigint) RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT timestamptz 'epoch' + micros * interval '1 microsecond' $$;

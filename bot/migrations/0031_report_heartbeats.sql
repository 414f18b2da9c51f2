-- When the report job ran: one row per minute in which any replica ran it (however many replicas), kept three days.
-- A report whose catch-up deadline passed unrecorded was "missed" (the "salespulse was not running" notice) only
-- if no heartbeat fell between its time and that deadline; otherwise the bot was running and a settings change (a
-- report time moved earlier, another time zone) put the report there after the fact, so it is sent instead. One
-- row with the last run would not do: it cannot tell whether the job ran in a 6-hour window that ended hours ago.
CREATE TABLE report_heartbeats (
    beat_at timestamptz PRIMARY KEY  -- the minute, truncated
);

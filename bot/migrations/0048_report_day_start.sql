-- Which real day a report's record stands for. `local_date` is a day in the time zone in force when the report was
-- due; after a zone change the same date is another stretch of time (Tokyo's Wednesday is over before Los Angeles'
-- begins), so a record stands for the new zone's report of that date only if the two days began less than half a
-- day apart (bot/reports/claims.py); otherwise that report takes the row over (queries/reports.py RECORD). NULL:
-- recorded before this migration (the zone it was due in is not known), read as standing for the report of the date
-- if it was due less than half a day from that report's time.
ALTER TABLE reports ADD COLUMN day_start timestamptz;  -- the instant local_date began, in the zone in force then

-- Where an attempt's message was sent, and whether it can be in Slack at all.
-- `slack_channel_id`: the Slack channel the post was addressed to, written with the attempt before the call. A post
-- whose answer never came is looked up there: not in the channel the last success went to (channel_pace, which is
-- the old one after the channel moved in Settings), nor in the one configured now (not the one a post sent before
-- the move went to). NULL when the id was not known before the call (posted by name) and for older attempts.
-- `refused`: the last call on a burst's attempt was answered with an error (or a 429), so nothing of it reached the
-- channel: the next try needs no look-up, and the attempt's failures carry on towards giving up on an error the bot
-- does not know. Cleared (committed) before every call.
ALTER TABLE delivery_attempts ADD COLUMN slack_channel_id text;
ALTER TABLE delivery_attempts ADD COLUMN refused boolean NOT NULL DEFAULT false;

-- Alerts go out before the channel's other waiting messages: in a card-testing attack hundreds of failed-payment
-- pings queue in the alerts channel at one message a second, and the "Payment failures spiking" alert waited behind
-- all of them. This small index finds a channel's waiting alerts without reading the rest (queries/outbox.py).
CREATE INDEX outbox_pending_alerts_idx ON outbox (channel, id) WHERE status = 'pending' AND kind = 'alert';

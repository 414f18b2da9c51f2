"""The store's rhythm: how many sales and how much revenue to expect per local weekday and hour (model.py),
read from the rollups (load.py), judged against what happened (judge.py: "sales stopped", "unusually low
today") and projected over today (pace.py: "on pace for $4,210 — a usual Saturday is $3,900")."""

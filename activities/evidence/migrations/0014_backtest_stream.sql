-- Backtests as evidence (`govflow backtest`): an eighth kind of chain, one per backtest (stream 'backtest'):
-- the candidate tried (task version, policy digest, model), the runs it was tried on, and the figures.
ALTER TABLE evidence_events DROP CONSTRAINT evidence_events_stream_check;
ALTER TABLE evidence_events ADD CONSTRAINT evidence_events_stream_check
    CHECK (stream IN ('run', 'rollout', 'notification', 'grant', 'refused_start', 'reviewer', 'policy', 'backtest'));

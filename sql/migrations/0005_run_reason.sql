-- Why a run exists is a closed set (common/states.py RunReason), declared where it is stored.
-- depends: 0004_request_hash

ALTER TABLE skiplock_runs ADD CONSTRAINT skiplock_runs_reason
    CHECK (reason IN ('schedule', 'retry', 'trigger', 'catch_up', 'queued'));

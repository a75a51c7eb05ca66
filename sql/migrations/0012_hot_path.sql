-- Every live run is written to each of its table's indexes when it is made and again when it
-- is claimed (the claim changes columns the partial indexes are defined on, so it is never a
-- HOT update). (task_id, created_at, id) says nothing the slot key (task_id, scheduled_for,
-- attempt) does not: a task has a run or two live, and a read by task sorts those. One index
-- write less per run made and per run claimed.
-- depends: 0011_enqueue_callbacks

DROP INDEX skiplock_runs_task;

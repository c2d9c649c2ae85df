-- The log a checkpoint's offsets belong to (ARCHITECTURE §4 rule 5): offsets of another log (a new
-- memory log, another Kafka cluster, a recreated topic) must never be used to skip input.
ALTER TABLE service_checkpoints ADD COLUMN log_identity TEXT;

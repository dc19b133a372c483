"""What every job shares: CLI, config loading, the Spark session, storage, rollback and restore points,
MLflow tracking, the stage gate runner, observer hooks and warehouse checksums."""

"""What every stage stands on: params, paths, errors, files written atomically, logging and seeds, checkpoints, DVCLive curves."""

"""Engine pieces: distributed set-up, checkpoint compatibility, loops."""

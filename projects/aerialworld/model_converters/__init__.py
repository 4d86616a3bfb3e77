"""Checkpoint converters between AerialWorld and other releases (``tools/model_converters``).

* :mod:`.occworld`: the public OccWorld nuScenes checkpoint -> AerialWorld (entry point and
  re-exports); its parts: :mod:`.occworld_config` (destination config, release constants,
  class map), :mod:`.occworld_conversion` (bookkeeping), :mod:`.occworld_vae` and
  :mod:`.occworld_transformer` (conversion rules), :mod:`.occworld_report` (the report).
"""

"""Checkpoint converters between AerialWorld and other releases (``tools/model_converters``).

* :mod:`.occworld`: the public OccWorld nuScenes checkpoint -> AerialWorld.
"""

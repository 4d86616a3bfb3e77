"""projects.aerialworld.hooks: hooks of the AerialWorld system (registered in HOOKS)."""
from .invalid_sample_report import InvalidSampleReportHook, find_datasets_with_invalid_counter

__all__ = ['InvalidSampleReportHook', 'find_datasets_with_invalid_counter']

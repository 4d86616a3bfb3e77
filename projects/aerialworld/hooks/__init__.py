"""projects.aerialworld.hooks: hooks of the AerialWorld system (registered in HOOKS)."""
from .invalid_sample_report import InvalidSampleReportHook, find_datasets_with_invalid_counter
from .reveal_chooser_fit import RevealChooserFitHook

__all__ = ['InvalidSampleReportHook', 'RevealChooserFitHook', 'find_datasets_with_invalid_counter']

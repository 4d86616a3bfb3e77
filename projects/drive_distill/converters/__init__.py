"""projects.drive_distill.converters: data-source converters used by tools/data_converter/."""

"""Model families, one file each; every model returns a :class:`ModelOutput`."""

from kdcore.models.base import ModelOutput, build_model, count_parameters

__all__ = ["ModelOutput", "build_model", "count_parameters"]

"""Distillation methods, one file each, all with the interface of :mod:`kdcore.methods.base`."""

from kdcore.methods.base import Batch, Method, StepOutput, TeacherSource, build_method

__all__ = ["Batch", "Method", "StepOutput", "TeacherSource", "build_method"]

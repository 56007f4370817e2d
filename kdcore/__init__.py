"""KD Explorer's distillation core: configs, registries, data, models, methods, engine and tracking."""

__version__ = "0.1.0"

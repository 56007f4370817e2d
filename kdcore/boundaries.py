"""The survey's NOT-FOR boundaries: situations where distillation is the wrong tool.

Their names and one-line descriptions live here, apart from the advisor and the config, so the command line
can offer one switch per boundary without importing either.
"""

from __future__ import annotations

# A boundary the advisor reads from a switch of its own, with what the switch means.
BOUNDARY_SWITCHES: dict[str, str] = {
    "rule_based": "The teacher is a simple rule-based system.",
    "real_time": "The student must run faster than the teacher could ever be made to run: a speed problem, "
                 "not a knowledge one.",
    "needs_new_capabilities": "The student must do what the teacher cannot.",
    "safety_critical": "Safety-critical use without a validation framework.",
    "interpretability_first": "Interpretability matters more than accuracy.",
}
BOUNDARY_FLAGS = tuple(BOUNDARY_SWITCHES)
# Every boundary by the name kdx advise --accept-boundary and the config use; different_tasks comes from the
# two sides' tasks, not from a switch.
BOUNDARY_NAMES = ("rule_based", "different_tasks", "real_time", "needs_new_capabilities", "safety_critical",
                  "interpretability_first")

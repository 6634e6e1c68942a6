"""Label-efficiency studies: the plan (``plan.py``), running it (``run.py``), its statistics (``summary.py``),
the workers of a parallel one (``executors.py``, ``backends.py``, ``worker.py``) and the report (``report.py``,
``protocol.py``, ``render.py``, ``plots.py``)."""
from warmstart.study.plan import Cell, StudyPlan, open_study_dir, plan_study
from warmstart.study.files import TIMING_COLUMNS, columns, results_csv
from warmstart.study.run import StudyRunner, run_study

__all__ = ["TIMING_COLUMNS", "Cell", "StudyPlan", "StudyRunner", "columns", "open_study_dir", "plan_study",
           "results_csv", "run_study"]

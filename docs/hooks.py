"""MkDocs hooks: the pages generated at build time from the package itself.

- the CLI reference, from ``tf_genai.cli.build_parser()`` (never copied by hand);
- the zoo table, from ``tf_genai.zoo.PRESETS``, where a page says ``<!-- zoo-table -->``;
- the API reference pages, one per package, from each package's ``__all__`` and the module
  that defines each name (a ``from ... import`` or a lazy ``_EXPORTS`` table, tf_genai/lazy.py);
- the notebooks (``notebooks/*.ipynb``, rendered with their committed outputs by mkdocs-jupyter)
  and ``benchmarks/`` (its README, result tables and plots), which live outside ``docs/``.

Links between pages are written as paths in the repository (``../../benchmarks/results/x.md``
from ``docs/families/``), so they work on a code host too; :func:`site_links` turns those that
leave ``docs/`` into the site's paths.

Nothing here imports TensorFlow: the CLI and the zoo table are TensorFlow-free by design, and
the API pages are found by reading the packages' ``__init__.py`` files.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the checkout's tf_genai, not whichever one is installed
    sys.path.insert(0, str(ROOT))

# Files outside docs/ that the site publishes at the same relative path.
EXTERNAL = ("notebooks/*.ipynb", "benchmarks/README.md", "benchmarks/results/*.md",
            "benchmarks/results/*.png", "benchmarks/results/*.json")

# API reference: page -> (title, intro module, more objects). A page shows the intro module's
# docstring, every name in its ``__all__`` (where it has one), then the objects listed here.
API_PAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "tf_genai": ("tf_genai", "tf_genai", ("tf_genai.registry.create",
                                          "tf_genai.registry.available",
                                          "tf_genai.registry.register")),
    "training": ("Training", "tf_genai.training", ("tf_genai.training.train",
                                                   "tf_genai.train_config.TrainConfig",
                                                   "tf_genai.training.TrainResult",
                                                   "tf_genai.training.compile_model")),
    "models": ("Models", "tf_genai.models", ("tf_genai.models.base.GenerativeModel",
                                             "tf_genai.models.base.LatentModel",
                                             "tf_genai.models.vae.model.VAE",
                                             "tf_genai.models.gan.model.GAN",
                                             "tf_genai.models.diffusion.model.Diffusion",
                                             "tf_genai.models.flow.model.Flow",
                                             "tf_genai.capabilities.Capabilities")),
    "data": ("Data", "tf_genai.data", ()),
    "plotting": ("Plotting", "tf_genai.plotting", ()),
    "evaluation": ("Evaluation", "tf_genai.evaluation",
                   ("tf_genai.evaluation.report.evaluate_model",
                    "tf_genai.evaluation.inception.InceptionFeatures")),
    "export": ("Export", "tf_genai.export", ()),
    "presets": ("Presets", "tf_genai.presets", ("tf_genai.presets.from_preset",
                                                "tf_genai.presets.save_to_preset",
                                                "tf_genai.presets.available",
                                                "tf_genai.presets.check",
                                                "tf_genai.presets.PresetFolder",
                                                "tf_genai.evaluation.report.quick_figure")),
    "callbacks": ("Callbacks and checkpointing", "tf_genai.callbacks",
                  ("tf_genai.checkpointing.BackupAndResume",
                   "tf_genai.checkpointing.TerminateOnNaN")),
    "losses": ("Losses", "tf_genai.losses", ()),
    "devices": ("Devices and distribution", "tf_genai.devices",
                ("tf_genai.devices.training_options", "tf_genai.devices.mixed_precision",
                 "tf_genai.devices.compiled_sampler", "tf_genai.distribute.get_strategy",
                 "tf_genai.distribute.split_cpu")),
    "ranges": ("Ranges and errors", "tf_genai.ranges",
               ("tf_genai.ranges.for_model", "tf_genai.ranges.to_unit",
                "tf_genai.ranges.to_uint8", "tf_genai.errors.TFGenAIError",
                "tf_genai.errors.DataError", "tf_genai.errors.ConfigError",
                "tf_genai.errors.ModelFileError", "tf_genai.errors.OutputExistsError",
                "tf_genai.errors.OutputError", "tf_genai.errors.TrainingError",
                "tf_genai.errors.TrainingInterrupted")),
}


def module_file(module: str) -> Path:
    """The source file of ``module`` in this checkout (a package's ``__init__.py``)."""
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def public_names(module: str) -> dict[str, str]:
    """``module.__all__``, each name mapped to the module that defines it: read from the
    source (``from X import name``, or a lazy ``_EXPORTS = {"sub": ("name", ...)}`` table), so
    nothing is imported. A name with no such home is defined in ``module`` itself."""
    tree = ast.parse(module_file(module).read_text(encoding="utf-8"))
    exported: list[str] = []
    home: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                home[alias.asname or alias.name] = node.module
        targets = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        if "__all__" in targets:
            exported += ast.literal_eval(node.value)
        if "_EXPORTS" in targets:
            for sub, names in ast.literal_eval(node.value).items():
                home.update({name: f"{module}.{sub}" for name in names})
    return {name: home.get(name, module) for name in exported}


def api_page(title: str, intro: str, more: tuple[str, ...]) -> str:
    """The Markdown of one API page: the intro module's docstring, then each object."""
    lines = [f"# {title}", "", f"::: {intro}",
             "    options:", "      members: false", "      show_root_heading: false", ""]
    exported = tuple(f"{home}.{name}" for name, home in public_names(intro).items())
    for path in dict.fromkeys(exported + more):
        lines += [f"::: {path}", "    options:", "      heading_level: 2", ""]
    return "\n".join(lines)


def _options_table(parser: argparse.ArgumentParser) -> list[str]:
    """One row per argument: how to write it, and its help with the default the CLI prints."""
    formatter = parser._get_formatter()
    rows = ["| argument | meaning |", "| --- | --- |"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            metavar = "" if action.nargs == 0 else " " + formatter._format_args(
                action, formatter._get_default_metavar_for_optional(action))
            usage = ", ".join(f"{flag}{metavar}" for flag in action.option_strings)
        else:
            usage = formatter._format_args(action, formatter._get_default_metavar_for_positional(
                action))
        text = formatter._expand_help(action) if action.help else ""
        if action.choices and not isinstance(action, argparse._SubParsersAction):
            text += f" (one of: {', '.join(map(str, action.choices))})"
        cell = text.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{usage}` | {cell} |")
    return rows


def cli_reference() -> str:
    """The CLI reference page, generated from the argument parser the command line uses."""
    from tf_genai.cli import build_parser

    parser = build_parser()
    lines = ["# Command-line reference", "",
             "Generated from `tf_genai.cli.build_parser()` when the site is built, so it is the "
             "parser `tf-genai` runs. The [command-line guide](../cli.md) says what each command "
             "prints and leaves behind.", "", "```text", parser.format_usage().strip(), "```", "",
             parser.description or "", ""] + _options_table(parser) + [""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                lines += [f"## `tf-genai {name}`", "", sub.description or "", "", "```text",
                          sub.format_usage().strip(), "```", ""]
                lines += _options_table(sub) + [""]
    return "\n".join(lines)


def zoo_table() -> str:
    """The zoo as a Markdown table, from the table ``tf-genai models`` prints."""
    from tf_genai.zoo import PRESETS

    rows = ["| name | family | what | defaults |", "| --- | --- | --- | --- |"]
    for name in sorted(PRESETS):
        preset = PRESETS[name]
        defaults = ", ".join(f"`{k}={v!r}`" for k, v in preset.defaults.items()) or "—"
        rows.append(f"| `{name}` | {preset.family} | {preset.description} | {defaults} |")
    return "\n".join(rows)


@event_priority(100)  # before mkdocs-jupyter turns the .ipynb files into pages
def on_files(files: Files, config) -> Files:
    for pattern in EXTERNAL:
        for path in sorted(ROOT.glob(pattern)):
            files.append(File(path.relative_to(ROOT).as_posix(), str(ROOT), config["site_dir"],
                              config["use_directory_urls"]))
    files.append(File.generated(config, "reference/cli.md", content=cli_reference()))
    for page, spec in API_PAGES.items():
        files.append(File.generated(config, f"reference/api/{page}.md", content=api_page(*spec)))
    return files


LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\s+\"[^\"]*\")?\)")


def site_path(repo_path: Path) -> str | None:
    """Where a file of the repository is in the site: under docs/, or an EXTERNAL file."""
    try:
        return repo_path.relative_to(ROOT / "docs").as_posix()
    except ValueError:
        relative = repo_path.relative_to(ROOT).as_posix()
        return relative if any(Path(relative).match(p) for p in EXTERNAL) else None


def site_links(markdown: str, source: Path, page_uri: str) -> str:
    """Each relative link of the page at ``source`` that names a repository file (``../x.md``
    from ``docs/``), rewritten to that file's place in the site, relative to ``page_uri``."""

    def rewrite(match: re.Match) -> str:
        opening, target, anchor, title = match.groups()
        if "://" in target or target.startswith(("/", "mailto:")):
            return match.group(0)
        repo_path = Path(os.path.normpath(source.parent / target))
        uri = site_path(repo_path) if repo_path.is_relative_to(ROOT) and repo_path.exists() \
            else None
        if uri is None:
            return match.group(0)
        new = os.path.relpath(uri, Path(page_uri).parent.as_posix() or ".")
        return f"{opening}{Path(new).as_posix()}{anchor or ''}{title or ''})"

    return LINK.sub(rewrite, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.abs_src_path:
        markdown = site_links(markdown, Path(page.file.abs_src_path), page.file.src_uri)
    return markdown.replace("<!-- zoo-table -->", zoo_table())

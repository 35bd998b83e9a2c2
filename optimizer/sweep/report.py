"""``sweep-report``: a sweep folder's results as one figure, one markdown table per setting, the room each
setting leaves, and the paper's claims beside what was measured.

Headline: ``charged_cost`` (failures charged, README "Metrics"), lower is better. Learners: the mean over
seeds with its 95 % interval (Student's t over seeds) and the seeds as points; heuristics and the room
reference: their mean over the evaluation episodes with its 95 % interval over episodes. **The room** of a
setting is how far the hindsight reference lies below the best heuristic, in per cent of that heuristic; a
setting with less room than its learners' own spread cannot rank them, and the report says so instead.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from common.errors import UserInputError
from common.files import atomic_open
from optimizer.env.metrics import METRICS, USER_QUANTILE_NAMES
from optimizer.sweep.claims import FOCUS, HEADLINE, judge
from optimizer.sweep.folder import CSV_NAME, SWEEP_FILE
from optimizer.sweep.room import ROOM
from optimizer.sweep.spec import parse_spec
from optimizer.sweep.stats import probability_of_improvement, relative_difference
from optimizer.algos.config import build_configs

PANELS = ("charged_cost", "delay_s", "delay_p95_s", "energy_j", "privacy_cost", "success_rate")
TABLE = ("charged_cost", "user_cost", "delay_s", "delay_p95_s", "success_rate")
#: Below this much room (per cent of the best heuristic's headline cost) a setting cannot rank learners.
MIN_ROOM = 0.02


@dataclass
class Cell:
    """One policy in one setting: per-seed values (learners) or one value with its CI over episodes."""
    kind: str
    values: dict[str, np.ndarray] = field(default_factory=dict)
    ci95: dict[str, float] = field(default_factory=dict)

    def mean(self, metric: str) -> float:
        return float(np.mean(self.values[metric])) if metric in self.values else math.nan

    def half_width(self, metric: str) -> float:
        v = self.values.get(metric)
        if v is None:
            return math.nan
        if len(v) > 1:
            return float(scipy_stats.t.ppf(0.975, len(v) - 1) * np.std(v, ddof=1) / math.sqrt(len(v)))
        return self.ci95.get(metric, math.nan)


@dataclass
class SweepResults:
    spec: object
    settings: list[str]
    labels: dict[str, str]             # setting → axis values as text
    limits: dict[str, float]           # setting → τ̄
    cells: dict[str, dict[str, Cell]]  # setting → policy → cell


def load_results(folder: str | Path) -> SweepResults:
    root = Path(folder)
    if not (root / SWEEP_FILE).is_file() or not (root / CSV_NAME).is_file():
        raise UserInputError(f"{root}: not a sweep folder with results (run `cli.py sweep` first)")
    spec = parse_spec(json.loads((root / SWEEP_FILE).read_text())["spec"], str(root / SWEEP_FILE))
    by_slug = {s.slug: s for s in spec.settings()}
    cells: dict[str, dict[str, Cell]] = {}
    with open(root / CSV_NAME, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["value"] == "":
                continue
            cell = cells.setdefault(row["setting"], {}).setdefault(row["policy"], Cell(row["kind"]))
            metric = row["metric"]
            cell.values[metric] = np.append(cell.values.get(metric, np.array([])), float(row["value"]))
            if row["ci95"]:
                cell.ci95[metric] = float(row["ci95"])
    settings = [slug for slug in by_slug if slug in cells]
    labels = {slug: ", ".join(f"{k} {_text(v)}" for k, v in by_slug[slug].values.items()) or "default"
              for slug in settings}
    limits = {slug: build_configs(by_slug[slug].overrides, spec.preset)[1].cost.delay_limit_s for slug in settings}
    return SweepResults(spec, settings, labels, limits, cells)


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return "–".join(_text(v) for v in value)
    if isinstance(value, float) and abs(value) >= 1e6:
        return f"{value / 1e9:g}G"
    return f"{value:g}" if isinstance(value, float) else str(value)


def room_of(cells: dict[str, Cell]) -> float:
    """(best heuristic − reference) / best heuristic on the headline; NaN without both."""
    heuristics = [c.mean(HEADLINE) for c in cells.values() if c.kind == "heuristic"]
    if ROOM not in cells or not heuristics:
        return math.nan
    best = min(heuristics)
    return (best - cells[ROOM].mean(HEADLINE)) / best


def markdown(results: SweepResults) -> str:
    spec = results.spec
    lines = [f"# {spec.title or spec.name}", "",
             f"Budget: {spec.iterations} iterations per run, seeds {', '.join(map(str, spec.seeds))}, "
             f"{spec.eval_episodes} evaluation episodes per setting (seed {spec.eval_seed}). Headline: "
             f"`{HEADLINE}` ({METRICS[HEADLINE].definition}); mean ± 95 % CI (over seeds for learners, over "
             "episodes for heuristics and the reference). " + (spec.note or ""), ""]
    for slug in results.settings:
        cells, limit = results.cells[slug], results.limits[slug]
        room = room_of(cells)
        lines += [f"## {results.labels[slug]} (τ̄ = {limit:g} s)", "",
                  "| policy | kind | " + " | ".join(METRICS[m].title for m in TABLE) + " | meets τ̄ |",
                  "|---" * (len(TABLE) + 3) + "|"]
        order = sorted(cells, key=lambda p: cells[p].mean(HEADLINE))
        for policy in order:
            cell = cells[policy]
            n = len(cell.values.get(HEADLINE, []))
            kind = f"{cell.kind} ({n} seeds)" if cell.kind == "learner" else cell.kind
            meets = "yes" if cell.mean("delay_s") <= limit else "NO"
            lines.append(f"| {policy} | {kind} | " + " | ".join(_cell(cell, m) for m in TABLE) + f" | {meets} |")
        if math.isfinite(room):
            spread = max([c.half_width(HEADLINE) / c.mean(HEADLINE) for c in cells.values()
                          if c.kind == "learner" and math.isfinite(c.half_width(HEADLINE))], default=0.0)
            verdict = (f"less than {100 * max(MIN_ROOM, spread):.0f} % (the learners' own 95 % spread, at least "
                       f"{100 * MIN_ROOM:.0f} %): this setting cannot rank learners" if room < max(MIN_ROOM, spread)
                       else "room to rank learners")
            if room < 0:     # the reference is built on the Lagrangian heuristic; another heuristic can beat it
                lines += ["", f"Room: none measured: the hindsight reference lies {-100 * room:.1f} % *above* the "
                              "best heuristic, so it bounds nothing in this setting and cannot rank learners."]
            else:
                lines += ["", f"Room: the hindsight reference lies {100 * room:.1f} % below the best heuristic; "
                              f"{verdict}."]
        lines.append("")
    lines += claims_table(results)
    return "\n".join(lines) + "\n"


def _cell(cell: Cell, metric: str) -> str:
    mean, half = cell.mean(metric), cell.half_width(metric)
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.4g} ± {half:.2g}" if math.isfinite(half) else f"{mean:.4g}"


def claims_table(results: SweepResults) -> list[str]:
    """The spec's claims, each checked where it says how (:mod:`.claims`): our number and a verdict; then
    HC-MAPPO-L against each other policy over every setting: relative headline difference and P(improvement)."""
    lines = ["## Paper claims / we measure", "", "| paper | checked on | we measure | verdict |", "|---|---|---|---|"]
    grid_index = {setting.slug: setting.index for setting in results.spec.settings()}
    for claim in results.spec.claims:
        for index, finding in enumerate(judge(claim, results.cells, results.settings, results.limits,
                                              results.labels, grid_index)):
            text = finding.text if index == 0 else "″"
            lines.append(f"| {text} | {finding.subject} | {finding.measured} | {finding.verdict} |")
    lines.append("")
    present = [s for s in results.settings if FOCUS in results.cells[s]]
    if not present:
        return lines + [f"(no {FOCUS} results yet)", ""]
    others = sorted({p for s in present for p in results.cells[s]} - {FOCUS})
    lines += [f"| {FOCUS} against | settings | {HEADLINE}: relative difference, 95 % bootstrap CI | "
              "P(improvement) | its settings meeting τ̄ |", "|---|---|---|---|---|"]
    for other in others:
        both = [s for s in present if other in results.cells[s]]
        a = [results.cells[s][FOCUS].values[HEADLINE] for s in both]
        b = [results.cells[s][other].values[HEADLINE] for s in both]
        meets = sum(results.cells[s][other].mean("delay_s") <= results.limits[s] for s in both)
        label = f"{other} (reference)" if other == ROOM else other
        lines.append(f"| {label} | {len(both)} | {relative_difference(a, b).text(percent=True)} | "
                     f"{probability_of_improvement(a, b).text()} | {meets} of {len(both)} |")
    meets = sum(results.cells[s][FOCUS].mean("delay_s") <= results.limits[s] for s in present)
    lines += ["", f"{FOCUS} meets τ̄ in {meets} of {len(present)} settings."]
    seeds = min(len(results.cells[s][FOCUS].values[HEADLINE]) for s in present)
    if seeds < 3:
        lines.append(f"With {seeds} seed{'s' if seeds > 1 else ''} per setting a bootstrap can only reshuffle those "
                     "seeds: its intervals show how far they disagree, not how far another seed could land.")
    lines.append("")
    return lines


def figure(results: SweepResults, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(results.settings))
    policies = sorted({p for s in results.settings for p in results.cells[s]})
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    for ax, metric in zip(axes.flat, PANELS):
        for index, policy in enumerate(policies):
            have = [i for i, s in enumerate(results.settings) if policy in results.cells[s]]
            cells = [results.cells[results.settings[i]][policy] for i in have]
            means = np.array([c.mean(metric) for c in cells])
            half = np.array([c.half_width(metric) for c in cells])
            kind = cells[0].kind if cells else "heuristic"
            if kind == "reference":
                ax.fill_between(np.array(have, float), means - np.nan_to_num(half), means + np.nan_to_num(half),
                                color="0.7", alpha=0.5, label="room (hindsight reference)")
                ax.plot(have, means, color="0.4", lw=1)
                continue
            style = dict(marker="o", lw=2) if kind == "learner" else dict(marker=".", lw=1, ls="--")
            shift = (index - len(policies) / 2) * 0.02
            ax.errorbar(np.array(have) + shift, means, yerr=np.nan_to_num(half), capsize=2, label=policy, **style)
            if kind == "learner":
                for i, c in zip(have, cells):
                    ax.scatter(np.full(len(c.values[metric]), i + shift), c.values[metric], s=8, alpha=0.5,
                               color=ax.lines[-1].get_color())
        if metric.startswith("delay"):
            ax.plot(x, [results.limits[s] for s in results.settings], color="red", ls=":", label="τ̄")
        ax.set_title(METRICS[metric].title + (" (headline)" if metric == HEADLINE else ""), fontsize=9)
        ax.set_xticks(x, [results.labels[s] for s in results.settings], fontsize=7, rotation=20)
    axes.flat[0].legend(fontsize=7, ncol=2)
    spec = results.spec
    fig.suptitle(f"{spec.title or spec.name} — {spec.iterations} iterations, seeds {spec.seeds}", fontsize=10)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=90)
    plt.close(fig)


def _with_users(cells: dict[str, Cell]) -> list[str]:
    """The policies, cheapest headline first, if every one has per-user quantiles (a setting is shown whole
    or not at all: trials recorded before 2026-12-03 have none); else none."""
    ordered = sorted(cells, key=lambda p: cells[p].mean(HEADLINE))
    return ordered if all(USER_QUANTILE_NAMES[0] in cells[p].values for p in ordered) else []


def user_table(results: SweepResults) -> list[str]:
    """Per setting, each policy's per-user distribution (Fig. 6): quantiles over users × episodes (learners:
    the mean of their seeds' quantiles)."""
    lines = ["## Per-user charged cost (Fig. 6)", "",
             "One sample is one user's mean `charged_cost` over one evaluation episode; learners show the mean "
             "of their seeds' quantiles.", ""]
    for slug in results.settings:
        cells = results.cells[slug]
        have = _with_users(cells)
        if not have:
            continue
        header = " | ".join(name.rsplit("_", 1)[1] for name in USER_QUANTILE_NAMES)
        lines += [f"{results.labels[slug]}:", "", f"| policy | {header} |",
                  "|---" * (len(USER_QUANTILE_NAMES) + 1) + "|"]
        lines += [f"| {p} | " + " | ".join(f"{cells[p].mean(n):.4g}" for n in USER_QUANTILE_NAMES) + " |" for p in have]
        lines.append("")
    return lines if len(lines) > 4 else []


def user_figure(results: SweepResults, path: Path) -> bool:
    """Box plots of the per-user distribution, one panel per setting (whiskers p5–p95); False without data."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [s for s in results.settings if _with_users(results.cells[s])]
    if not shown:
        return False
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown) + 1.5, 4.2), squeeze=False, sharey=True)
    for ax, slug in zip(axes.flat, shown):
        cells = results.cells[slug]
        have = _with_users(cells)
        q = [[cells[p].mean(n) for n in USER_QUANTILE_NAMES] for p in have]
        ax.bxp([{"whislo": a, "q1": b, "med": c, "q3": d, "whishi": e, "label": p}
                for (a, b, c, d, e), p in zip(q, have)], showfliers=False, orientation="horizontal")
        ax.set_title(results.labels[slug], fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("per-user charged cost", fontsize=8)
    fig.suptitle(f"{results.spec.title or results.spec.name}: per-user distribution (p5, p25, median, p75, p95)",
                 fontsize=10)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=90)
    plt.close(fig)
    return True


def write_report(folder: str | Path) -> tuple[Path, Path]:
    results = load_results(folder)
    root = Path(folder)
    md, png, users_png = root / "report.md", root / "report.png", root / "report_users.png"
    text = markdown(results)
    if user_figure(results, users_png):
        text += "\n" + "\n".join(user_table(results)) + f"\n![per-user distribution](report_users.png)\n"
    with atomic_open(md) as fh:
        fh.write(text.replace("\n\n\n", "\n\n") + f"\n![{results.spec.name}](report.png)\n")
    figure(results, png)
    return md, png

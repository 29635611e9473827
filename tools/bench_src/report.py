#!/usr/bin/env python3
"""Report of a benchmark suite run: headline figures as ratios to same-run baselines.

    report.py RUN_DIR --spec SPEC.json [--out OUT_DIR] [--only SCENARIO ...]

Every benchmark binary measures a figure and its baseline in the same run on the same
machine (docs/benchmarks.md); this script picks the numbers named by SPEC out of the
binaries' Google Benchmark JSON, computes ratio = value / baseline, checks the targets
and writes the report. Python 3.11, standard library only.

Inputs (RUN_DIR)
  <source>.json  Google Benchmark output (--benchmark_out_format=json) of one binary;
                 a file counts as a source only if it has a "benchmarks" key, and its
                 file stem is the source name ("contacts_bench", "contacts_scale_10000").
  run.json       optional: {"date", "commit", "build", "host", "smoke": bool,
                 "scenarios": [names run]}; missing keys read as "unknown" / false.

Spec (SPEC.json, tools/bench_src/figures.json)
  {"scenarios": [Scenario, ...], "curves": [Curve, ...]}            ("curves" optional)

  Scenario  {"name": "rpc", "title": "RPC overhead", "figures": [Figure, ...]}
  Figure    {"label": str, "unit": str,
             "value": Ref,
             "baseline": Ref + {"label": str, "unit": str (optional, default: the
                         figure's unit)}                              (optional),
             "better": "higher" | "lower",
             "target": {"ratio_min": x, "ratio_max": x, "value_min": x, "value_max": x}
                       (optional; any of the four keys, all of them must hold),
             "target_text": str                                       (optional),
             "extra": [Ref + {"label": str, "unit": str}, ...]       (optional)}
  Ref       {"source": file stem, "benchmark": run name, "field": str, "scale": x}
  Curve     {"name": file name without .svg, "title": str, "scenario": name (optional),
             "x_label": str, "y_label": str, "log_x": bool, "log_y": bool (optional),
             "series": [{"label": str, "points": [Ref + {"x": number}, ...]}, ...]}

  benchmark: the run name exactly as Google Benchmark writes it ("BM_X/8/real_time",
             "BM_X/iterations:1/manual_time", "BM_X/real_time/threads:8"). A "*" matches
             any text, for names that change with a binary's flags (smoke runs):
             "BM_X/iterations:*/real_time"; it must match the name of one run only.
  field:     "items_per_second", "bytes_per_second", any counter of the run, or
             "real_time_s" / "cpu_time_s" (the per-iteration time converted to seconds
             through the run's time_unit). "scale" multiplies the number (1000: seconds
             to ms); ratios are taken of the scaled numbers.
  The run used for a benchmark: its "median" aggregate when it was repeated, else its
  first iteration entry; entries with error_occurred are skipped.
  Targets: *_min means >= (at least), *_max means < (under). ratio_* targets need a
  baseline. "better" is informational (arrows in the table); "met" comes from the
  target alone: true / false, or null without a target or when the figure failed.

Which scenarios are evaluated
  --only names them; else run.json "scenarios"; else every scenario of which at least
  one source (figures' or curves') is in RUN_DIR. In an evaluated scenario a missing
  source file, benchmark or field, a failed benchmark (its error_message is quoted), a
  non-finite number or a zero baseline is an ERROR, printed to stderr as
  "ERROR: [scenario] figure: source / benchmark / field: problem". Curves are drawn when
  their scenario is evaluated (always, without one); curve points whose source file is
  missing are skipped silently (scale runs are optional), other point problems are
  errors; a curve without points is not drawn.

Outputs (OUT_DIR, default RUN_DIR)
  results.json  run info, each evaluated scenario's figures (value, baseline, ratio,
                target, met, unit, extras, error), the curves drawn, all errors.
  results.md    a section per scenario with the table
                | figure | measured | baseline (same run) | ratio | target | met | details |
                (also printed to stdout).
  ratios.svg    one bar per figure with a ratio, grouped by scenario, on a log scale
                centred on 1.0 (= the baseline); green met, red not met, grey no target;
                a tick at a ratio target.
  <curve>.svg   one line chart per curve drawn.

Exit status: 0 all well; 1 errors (everything that could be written was); 2 bad usage,
bad spec or no RUN_DIR.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from xml.sax.saxutils import escape as _xml_escape

TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
TARGET_KEYS = ("ratio_min", "ratio_max", "value_min", "value_max")
RUN_INFO_KEYS = ("date", "commit", "build", "host")

COLOR_MET = "#2e9d4f"
COLOR_UNMET = "#d64541"
COLOR_NO_TARGET = "#9aa0a6"
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"


class SpecError(Exception):
    """The spec is unreadable or malformed."""


# ---- Spec ---------------------------------------------------------------------------


def _check_ref(ref, where: str, need_label: bool = False) -> None:
    """Raises SpecError unless `ref` names a source, a benchmark and a field."""
    if not isinstance(ref, dict):
        raise SpecError(f"{where}: expected an object with source, benchmark, field")
    for key in ("source", "benchmark", "field") + (("label",) if need_label else ()):
        if not isinstance(ref.get(key), str) or not ref[key]:
            raise SpecError(f"{where}: '{key}' must be a non-empty string")
    if "scale" in ref and not _is_number(ref["scale"]):
        raise SpecError(f"{where}: 'scale' must be a number")


def validate_spec(spec) -> dict:
    """Checks the structure described at the top of this file; returns the spec."""
    if not isinstance(spec, dict) or not isinstance(spec.get("scenarios"), list):
        raise SpecError("the spec must be an object with a 'scenarios' list")
    names = set()
    for i, sc in enumerate(spec["scenarios"]):
        if not isinstance(sc, dict) or not isinstance(sc.get("name"), str) or not sc["name"]:
            raise SpecError(f"scenarios[{i}]: needs a 'name'")
        if sc["name"] in names:
            raise SpecError(f"scenario '{sc['name']}' is defined twice")
        names.add(sc["name"])
        if not isinstance(sc.get("figures", []), list):
            raise SpecError(f"scenario '{sc['name']}': 'figures' must be a list")
        for j, fig in enumerate(sc.get("figures", [])):
            where = f"scenario '{sc['name']}', figures[{j}]"
            if not isinstance(fig, dict) or not isinstance(fig.get("label"), str) \
                    or not fig["label"]:
                raise SpecError(f"{where}: needs a 'label'")
            where = f"scenario '{sc['name']}', figure '{fig['label']}'"
            _check_ref(fig.get("value"), f"{where}: value")
            if fig.get("baseline") is not None:
                _check_ref(fig["baseline"], f"{where}: baseline", need_label=True)
            if fig.get("better") not in ("higher", "lower"):
                raise SpecError(f"{where}: 'better' must be 'higher' or 'lower'")
            target = fig.get("target")
            if target is not None:
                if not isinstance(target, dict) or not target or any(
                        k not in TARGET_KEYS or not _is_number(v) for k, v in target.items()):
                    raise SpecError(f"{where}: 'target' takes numbers under "
                                    f"{', '.join(TARGET_KEYS)}")
                if any(k.startswith("ratio") for k in target) and not fig.get("baseline"):
                    raise SpecError(f"{where}: a ratio target needs a baseline")
            if not isinstance(fig.get("extra", []), list):
                raise SpecError(f"{where}: 'extra' must be a list")
            for k, extra in enumerate(fig.get("extra", [])):
                _check_ref(extra, f"{where}: extra[{k}]", need_label=True)
    curves = spec.get("curves", [])
    if not isinstance(curves, list):
        raise SpecError("'curves' must be a list")
    curve_names = set()
    for i, curve in enumerate(curves):
        if not isinstance(curve, dict) or not isinstance(curve.get("name"), str) \
                or not re.fullmatch(r"[A-Za-z0-9_.-]+", curve.get("name", "")):
            raise SpecError(f"curves[{i}]: needs a 'name' usable as a file name")
        if curve["name"] in curve_names or curve["name"] == "ratios":
            raise SpecError(f"curve name '{curve['name']}' is taken")
        curve_names.add(curve["name"])
        if not isinstance(curve.get("series"), list):
            raise SpecError(f"curve '{curve['name']}': needs a 'series' list")
        for j, series in enumerate(curve["series"]):
            if not isinstance(series, dict) or not isinstance(series.get("points"), list):
                raise SpecError(f"curve '{curve['name']}', series[{j}]: needs 'points'")
            for k, point in enumerate(series["points"]):
                _check_ref(point, f"curve '{curve['name']}', series[{j}], points[{k}]")
                if not _is_number(point.get("x")):
                    raise SpecError(f"curve '{curve['name']}', series[{j}], points[{k}]: "
                                    "'x' must be a number")
    return spec


def load_spec(path) -> dict:
    """Reads and validates a spec file (SpecError if it is unusable)."""
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SpecError(f"{path}: {e}") from e
    return validate_spec(spec)


def spec_references(spec: dict):
    """Yields (scenario, where, ref) for every number the spec reads."""
    for sc in spec["scenarios"]:
        for fig in sc.get("figures", []):
            yield sc["name"], fig["label"], fig["value"]
            if fig.get("baseline"):
                yield sc["name"], f"{fig['label']} (baseline)", fig["baseline"]
            for extra in fig.get("extra", []):
                yield sc["name"], f"{fig['label']} ({extra['label']})", extra
    for curve in spec.get("curves", []):
        for series in curve["series"]:
            for point in series["points"]:
                yield curve.get("scenario"), f"{curve['name']}: {series.get('label', '')}", point


# ---- Run data -----------------------------------------------------------------------


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v) -> bool:
    return _is_number(v) and math.isfinite(v)


class RunData:
    """The Google Benchmark outputs and run.json of one run directory."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.sources: dict[str, list] = {}  # file stem -> its "benchmarks" entries
        self.broken: dict[str, str] = {}  # file stem -> why it could not be read
        self.warnings: list[str] = []
        contexts = []
        for path in sorted(run_dir.glob("*.json")):
            if path.name == "run.json":
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                self.broken[path.stem] = f"{path.name} is not valid JSON ({e})"
                continue
            if not isinstance(data, dict) or "benchmarks" not in data:
                continue
            if not isinstance(data["benchmarks"], list):
                self.broken[path.stem] = f"{path.name}: 'benchmarks' is not a list"
                continue
            self.sources[path.stem] = [b for b in data["benchmarks"] if isinstance(b, dict)]
            if isinstance(data.get("context"), dict):
                contexts.append(data["context"])
        self.info = self._read_run_info(contexts)

    def _read_run_info(self, contexts: list) -> dict:
        info = {key: "unknown" for key in RUN_INFO_KEYS}
        info.update(smoke=False, scenarios=None)
        # Without run.json, date and host from the first benchmark context.
        if contexts:
            info["date"] = str(contexts[0].get("date", "unknown"))
            info["host"] = str(contexts[0].get("host_name", "unknown"))
        path = self.run_dir / "run.json"
        if not path.exists():
            return info
        try:
            run = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(run, dict):
                raise ValueError("not an object")
        except (OSError, ValueError) as e:
            self.warnings.append(f"run.json ignored: {e}")
            return info
        for key in RUN_INFO_KEYS:
            if run.get(key) is not None:
                info[key] = str(run[key])
        info["smoke"] = bool(run.get("smoke", False))
        scenarios = run.get("scenarios")
        if isinstance(scenarios, list) and all(isinstance(s, str) for s in scenarios):
            info["scenarios"] = scenarios
        elif scenarios is not None:
            self.warnings.append("run.json: 'scenarios' is not a list of names; ignored")
        return info

    def has_source(self, source: str) -> bool:
        return source in self.sources or source in self.broken

    def lookup(self, ref: dict) -> tuple[float | None, str | None]:
        """The (scaled) number `ref` names, or None and why not."""
        source, benchmark, field = ref["source"], ref["benchmark"], ref["field"]

        def fail(problem):
            return None, f"{source} / {benchmark} / {field}: {problem}"

        if source in self.broken:
            return fail(self.broken[source])
        if source not in self.sources:
            return fail(f"no {source}.json in the run directory")
        entry, problem = pick_entry(self.sources[source], benchmark)
        if entry is None:
            return fail(problem)
        value, problem = field_value(entry, field)
        if value is None:
            return fail(problem)
        value *= ref.get("scale", 1)
        if not math.isfinite(value):
            return fail(f"not a finite number ({value})")
        return value, None


def _run_name(entry: dict) -> str:
    return entry.get("run_name", entry.get("name"))


def pick_entry(entries: list, benchmark: str) -> tuple[dict | None, str | None]:
    """The entry of run `benchmark` (a "*" in it matches any text, and must match one
    run name only) to read: the median aggregate, else the first iteration; failed
    entries skipped. None and why if there is none."""
    if "*" in benchmark:
        pattern = re.compile(".*".join(re.escape(part) for part in benchmark.split("*")))
        names = sorted({_run_name(e) for e in entries
                        if isinstance(_run_name(e), str) and pattern.fullmatch(_run_name(e))})
        if len(names) > 1:
            return None, f"the pattern matches several runs: {', '.join(names)}"
        benchmark = names[0] if names else benchmark
    matching = [e for e in entries if _run_name(e) == benchmark]
    if not matching:
        return None, "benchmark not in the output (renamed, filtered out or not run?)"
    usable = [e for e in matching if not e.get("error_occurred")]
    if not usable:
        message = matching[0].get("error_message") or "no message"
        return None, f"benchmark failed: {message}"
    for e in usable:
        if e.get("run_type") == "aggregate" and e.get("aggregate_name") == "median":
            return e, None
    for e in usable:
        if e.get("run_type", "iteration") == "iteration":
            return e, None
    return None, "no median aggregate nor iteration entry"


def field_value(entry: dict, field: str) -> tuple[float | None, str | None]:
    """The unscaled number `field` of one entry (maybe not finite), or None and why not."""
    if field in ("real_time_s", "cpu_time_s"):
        raw = entry.get(field[:-2])
        unit = entry.get("time_unit", "ns")
        if not _is_number(raw):
            return None, f"no '{field[:-2]}' in the entry"
        if unit not in TIME_UNITS:
            return None, f"unknown time_unit '{unit}'"
        value = raw * TIME_UNITS[unit]
    else:
        value = entry.get(field)
        if not _is_number(value):
            return None, "no such field (counter) in the entry"
    return float(value), None


# ---- Evaluation ---------------------------------------------------------------------


def select_scenarios(spec: dict, run: RunData, only: list | None) -> tuple[list, list]:
    """(names of the scenarios to evaluate in spec order, warnings)."""
    known = [sc["name"] for sc in spec["scenarios"]]
    curve_only = {c["scenario"] for c in spec.get("curves", []) if c.get("scenario")}
    known += sorted(curve_only - set(known))
    warnings = []
    if only:
        wanted = set(only)
    elif run.info["scenarios"] is not None:
        wanted = set(run.info["scenarios"])
        for name in run.info["scenarios"]:
            if name not in known:
                warnings.append(f"run.json names scenario '{name}', which the spec lacks")
    else:
        wanted = set()
        for scenario, _, ref in spec_references(spec):
            if scenario is not None and run.has_source(ref["source"]):
                wanted.add(scenario)
    return [name for name in known if name in wanted], warnings


def check_target(target: dict | None, value, ratio) -> bool | None:
    """Whether `target` holds: None without a target or the numbers it needs."""
    if not target:
        return None
    met = True
    for key, bound in target.items():
        x = ratio if key.startswith("ratio") else value
        if x is None:
            return None
        met &= x >= bound if key.endswith("_min") else x < bound
    return met


def target_description(fig: dict) -> str:
    """The target as the table shows it."""
    if fig.get("target_text"):
        return fig["target_text"]
    parts = []
    for key, bound in (fig.get("target") or {}).items():
        op = ">=" if key.endswith("_min") else "<"
        if key.startswith("ratio"):
            parts.append(f"ratio {op} {fmt_num(bound)}")
        else:
            parts.append(f"{op} {fmt_num(bound)} {fig.get('unit', '')}".rstrip())
    return ", ".join(parts)


def evaluate_figure(fig: dict, run: RunData) -> dict:
    """One figure's numbers, ratio and verdict; problems in "errors"."""
    errors = []
    value, err = run.lookup(fig["value"])
    if err:
        errors.append(err)
    baseline = None
    base_ref = fig.get("baseline")
    if base_ref:
        baseline, err = run.lookup(base_ref)
        if err:
            errors.append(f"baseline: {err}")
    ratio = None
    if value is not None and baseline is not None:
        if baseline == 0:
            errors.append(f"baseline: {base_ref['source']} / {base_ref['benchmark']} / "
                          f"{base_ref['field']}: is 0, no ratio")
        else:
            ratio = value / baseline
            if not math.isfinite(ratio):
                errors.append(f"ratio is not finite ({ratio})")
                ratio = None
    extras = []
    for ref in fig.get("extra", []):
        x, err = run.lookup(ref)
        if err:
            errors.append(f"{ref['label']}: {err}")
        extras.append({"label": ref["label"], "unit": ref.get("unit", ""), "value": x,
                       "error": err})
    met = None if errors else check_target(fig.get("target"), value, ratio)
    return {
        "label": fig["label"],
        "unit": fig.get("unit", ""),
        "better": fig["better"],
        "value": value,
        "baseline": baseline,
        "baseline_label": base_ref["label"] if base_ref else None,
        "baseline_unit": base_ref.get("unit", fig.get("unit", "")) if base_ref else None,
        "ratio": ratio,
        "target": fig.get("target"),
        "target_text": target_description(fig) or None,
        "met": met,
        "extras": extras,
        "error": "; ".join(errors) if errors else None,
    }


def evaluate_curve(curve: dict, run: RunData) -> tuple[dict, list]:
    """The curve's points that could be read (missing sources skipped) and errors."""
    errors = []
    series_out = []
    for series in curve["series"]:
        points = []
        for point in series["points"]:
            if not run.has_source(point["source"]):
                continue
            y, err = run.lookup(point)
            if err:
                errors.append(f"{series.get('label', '')}, x={point['x']}: {err}")
            else:
                points.append({"x": float(point["x"]), "y": y})
        points.sort(key=lambda p: p["x"])
        series_out.append({"label": series.get("label", ""), "points": points})
    return {
        "name": curve["name"],
        "title": curve.get("title", curve["name"]),
        "scenario": curve.get("scenario"),
        "x_label": curve.get("x_label", ""),
        "y_label": curve.get("y_label", ""),
        "log_x": bool(curve.get("log_x", False)),
        "log_y": bool(curve.get("log_y", False)),
        "series": series_out,
    }, errors


def evaluate(spec: dict, run: RunData, selected: list) -> dict:
    """Every evaluated scenario's figures and every curve drawn, with all errors."""
    errors = []
    scenarios = []
    for sc in spec["scenarios"]:
        if sc["name"] not in selected:
            continue
        figures = []
        for fig in sc.get("figures", []):
            result = evaluate_figure(fig, run)
            if result["error"]:
                errors.append(f"[{sc['name']}] {fig['label']}: {result['error']}")
            figures.append(result)
        scenarios.append({"name": sc["name"], "title": sc.get("title", sc["name"]),
                          "figures": figures})
    curves = []
    for curve in spec.get("curves", []):
        if curve.get("scenario") and curve["scenario"] not in selected:
            continue
        result, curve_errors = evaluate_curve(curve, run)
        errors += [f"[{curve.get('scenario') or '-'}] curve {curve['name']}: {e}"
                   for e in curve_errors]
        if any(s["points"] for s in result["series"]):
            result["file"] = f"{curve['name']}.svg"
            curves.append(result)
    skipped = [sc["name"] for sc in spec["scenarios"] if sc["name"] not in selected]
    return {"run": run.info, "scenarios": scenarios, "skipped_scenarios": skipped,
            "curves": curves, "errors": errors}


# ---- Numbers ------------------------------------------------------------------------


def fmt_num(v) -> str:
    """3 significant digits with thousands separators: 20,800; 1.42; 0.00510."""
    if v is None:
        return "-"
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    rounded = float(f"{v:.3g}")
    decimals = max(0, 2 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:,.{decimals}f}"


def fmt_tick(v: float) -> str:
    """Short axis label: 0.5, 1.25, 32, 10k, 1.5M."""
    if v == 0:
        return "0"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def with_unit(v, unit: str) -> str:
    return f"{fmt_num(v)} {unit}".rstrip() if v is not None else "-"


# ---- Markdown -----------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(results: dict) -> str:
    info = results["run"]
    lines = ["# Benchmark report", ""]
    header = (f"Run {info['date']} · commit {info['commit']} · build {info['build']} · "
              f"host {info['host']}")
    if info.get("smoke"):
        header += " · **smoke run: figures meaningless**"
    lines += [header, ""]
    figures = [f for sc in results["scenarios"] for f in sc["figures"]]
    met = [f["met"] for f in figures if not f["error"]]
    lines.append(
        f"{len(figures)} figures: {met.count(True)} met, {met.count(False)} not met, "
        f"{met.count(None)} without a target, {len(figures) - len(met)} errors. "
        "Ratio = measured / baseline, both from "
        "this run on this machine; ↑ higher is better, ↓ lower is better. "
        "Chart: [ratios.svg](ratios.svg).")
    if results["skipped_scenarios"]:
        lines.append(f"Not evaluated in this run: {', '.join(results['skipped_scenarios'])}.")
    for sc in results["scenarios"]:
        lines += ["", f"## {_md_cell(sc['title'])} (`{sc['name']}`)", ""]
        lines.append("| figure | measured | baseline (same run) | ratio | target | met | details |")
        lines.append("|---|---|---|---|---|---|---|")
        for f in sc["figures"]:
            baseline = ""
            if f["baseline_label"] is not None:
                baseline = f"{f['baseline_label']}: {with_unit(f['baseline'], f['baseline_unit'])}"
            ratio = ""
            if f["ratio"] is not None:
                ratio = f"{fmt_num(f['ratio'])}x {'↑' if f['better'] == 'higher' else '↓'}"
            met = {True: "yes", False: "**no**", None: ""}[f["met"]]
            details = [f"{x['label']} {with_unit(x['value'], x['unit'])}"
                       for x in f["extras"] if x["value"] is not None]
            if f["error"]:
                met = "**error**"
                details.append(f"ERROR: {f['error']}")
            cells = [f["label"], with_unit(f["value"], f["unit"]), baseline, ratio,
                     f["target_text"] or "", met, "; ".join(details)]
            lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
        for curve in results["curves"]:
            if curve["scenario"] == sc["name"]:
                lines += ["", f"![{_md_cell(curve['title'])}]({curve['file']})"]
    # Curves of scenarios without figures (or of none), a section per scenario.
    with_figures = {sc["name"] for sc in results["scenarios"]}
    sections: dict = {}
    for c in results["curves"]:
        if c["scenario"] not in with_figures:
            sections.setdefault(c["scenario"], []).append(c)
    for scenario, curves in sections.items():
        lines.append("")
        lines.append(f"## Curves (`{scenario}`)" if scenario else "## Curves")
        for c in curves:
            lines += ["", f"![{_md_cell(c['title'])}]({c['file']})"]
    if results["errors"]:
        lines += ["", "## Errors", ""]
        lines += [f"- {_md_cell(e)}" for e in results["errors"]]
    return "\n".join(lines) + "\n"


# ---- SVG ----------------------------------------------------------------------------

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(s) -> str:
    """Text content safe for XML (escaped, characters XML forbids dropped)."""
    return _xml_escape(_XML_INVALID.sub("", str(s)))


def _title(text) -> str:
    """A tooltip child element."""
    return f"<title>{_text(text)}</title>"


def _el(tag: str, attrs: dict, content: str | None = None) -> str:
    """One element; `content` is markup already escaped (use _text for text)."""
    rendered = " ".join(f'{k}="{_attr_value(v)}"' for k, v in attrs.items())
    if content is None:
        return f"<{tag} {rendered}/>"
    return f"<{tag} {rendered}>{content}</{tag}>"


def _attr_value(v) -> str:
    """An attribute value: floats to 2 decimals at most, text escaped with quotes."""
    if isinstance(v, float):
        v = f"{v:.2f}".rstrip("0").rstrip(".")
    return _text(v).replace('"', "&quot;")


def _truncate(s: str, max_chars: int) -> str:
    return s if len(s) <= max_chars else s[: max_chars - 1].rstrip() + "…"


def _svg(width: int, height: int, body: list) -> str:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="12">')
    background = _el("rect", {"x": 0, "y": 0, "width": width, "height": height,
                              "fill": "#ffffff"})
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', head, background, *body,
                      "</svg>"]) + "\n"


class Axis:
    """Maps data values to pixels between p0 and p1, linear or log10."""

    def __init__(self, lo: float, hi: float, p0: float, p1: float, log: bool = False):
        self.log = log
        if log:
            lo, hi = max(lo, 1e-300), max(hi, 1e-300)
        if hi <= lo:
            lo, hi = (lo / 2, lo * 2) if log else (lo - 1, lo + 1)
        if not log:
            step = _nice_step((hi - lo) / 5)
            lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
        self.lo, self.hi, self.p0, self.p1 = lo, hi, p0, p1

    def __call__(self, v: float) -> float:
        if self.log:
            v = max(v, self.lo)
            t = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            t = (v - self.lo) / (self.hi - self.lo)
        return self.p0 + t * (self.p1 - self.p0)

    def ticks(self, max_ticks: int = 9) -> list:
        if self.log:
            return _log_ticks(self.lo, self.hi, max_ticks)
        step = _nice_step((self.hi - self.lo) / 5)
        n = int(round((self.hi - self.lo) / step))
        return [self.lo + i * step for i in range(n + 1)]


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least `raw`."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * power >= raw * 0.999:
            return m * power
    return 10 * power


def _log_ticks(lo: float, hi: float, max_ticks: int) -> list:
    """Round values in [lo, hi]: the densest of 1 / 1-2-5 / finer per decade that fits."""
    mantissa_sets = ((1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9), (1, 1.5, 2, 3, 5, 7),
                     (1, 2, 5), (1,))
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for mantissas in mantissa_sets:
        ticks = [m * 10.0 ** e for e in range(first, last + 1) for m in mantissas]
        ticks = [float(f"{t:.6g}") for t in ticks if lo <= t <= hi]
        if len(ticks) <= max_ticks:
            return ticks
    every = math.ceil(len(ticks) / max_ticks)
    return ticks[::every]


def _bar_color(met) -> str:
    return {True: COLOR_MET, False: COLOR_UNMET}.get(met, COLOR_NO_TARGET)


def render_ratios_svg(results: dict) -> str:
    """Horizontal bars of every ratio, grouped by scenario, log scale around 1.0."""
    width = 900
    label_x, plot_x0, plot_x1, value_x = 12, 400, 790, 800
    groups = [(sc, [f for f in sc["figures"] if f["ratio"] is not None])
              for sc in results["scenarios"]]
    groups = [(sc, figs) for sc, figs in groups if figs]
    body = [
        _el("text", {"x": label_x, "y": 24, "font-size": 16, "font-weight": "bold",
                     "fill": "#222"}, _text("Figures as ratios to their same-run baselines")),
        _el("text", {"x": label_x, "y": 42, "font-size": 11, "fill": "#666"},
            _text("ratio = measured / baseline (log scale; 1.0 = the baseline). "
                  + ("SMOKE RUN: figures meaningless. " if results["run"].get("smoke") else "")
                  + f"{results['run']['date']}, {results['run']['commit']}")),
    ]
    if not groups:
        body.append(_el("text", {"x": label_x, "y": 80, "fill": "#666"},
                        _text("No figure with a ratio in this run.")))
        return _svg(width, 110, body)

    domain = [1.0]
    for _, figs in groups:
        for f in figs:
            if f["ratio"] > 0:
                domain.append(f["ratio"])
            for key, bound in (f["target"] or {}).items():
                if key.startswith("ratio") and bound > 0:
                    domain.append(bound)
    axis = Axis(min(domain) / 1.3, max(domain) * 1.3, plot_x0, plot_x1, log=True)

    rows = []  # the bars and labels; the grid goes under them
    y = 60
    plot_top = y
    row_h, header_h = 34, 26
    for sc, figs in groups:
        rows.append(_el("text", {"x": label_x, "y": y + 18, "font-size": 13,
                                 "font-weight": "bold", "fill": "#222"},
                        _text(f"{sc['title']} ({sc['name']})")))
        y += header_h
        for f in figs:
            mid = y + row_h / 2
            rows.append(_el("text", {"x": label_x + 8, "y": y + 14, "fill": "#222"},
                            _text(_truncate(f["label"], 56))
                            + _title(f["label"])))
            rows.append(_el("text", {"x": label_x + 8, "y": y + 28, "font-size": 10.5,
                                     "fill": "#666"},
                            _text(_truncate(f"vs {f['baseline_label']}", 64))))
            one = axis(1.0)
            end = axis(f["ratio"]) if f["ratio"] > 0 else plot_x0  # log scale: <= 0 at the edge
            x0, bar_w = min(one, end), max(abs(end - one), 1.5)
            verdict = {True: "met", False: "not met"}.get(f["met"], "no target")
            rows.append(_el("rect", {"class": "bar", "x": x0, "y": mid - 7, "width": bar_w,
                                     "height": 14, "rx": 2, "fill": _bar_color(f["met"])},
                            _title(f"{f['label']}: {fmt_num(f['ratio'])}x ({verdict})")))
            for key, bound in (f["target"] or {}).items():
                if key.startswith("ratio") and bound > 0:
                    tx = axis(bound)
                    op = ">=" if key.endswith("_min") else "<"
                    rows.append(_el("line", {"class": "target", "x1": tx, "x2": tx,
                                             "y1": mid - 11, "y2": mid + 11, "stroke": "#222",
                                             "stroke-width": 2.5},
                                    _title(f"target: ratio {op} {fmt_num(bound)}")))
            rows.append(_el("text", {"x": value_x, "y": mid + 4, "fill": "#222"},
                            _text(f"{fmt_num(f['ratio'])}x")))
            y += row_h
    plot_bottom = y + 4

    grid = []
    for t in axis.ticks():
        x = axis(t)
        grid.append(_el("line", {"x1": x, "x2": x, "y1": plot_top, "y2": plot_bottom,
                                 "stroke": "#e6e6e6", "stroke-width": 1}))
        grid.append(_el("text", {"x": x, "y": plot_bottom + 14, "font-size": 10.5,
                                 "fill": "#555", "text-anchor": "middle"}, _text(fmt_tick(t))))
    one = axis(1.0)
    grid.append(_el("line", {"class": "baseline", "x1": one, "x2": one, "y1": plot_top,
                             "y2": plot_bottom, "stroke": "#444", "stroke-width": 1.2,
                             "stroke-dasharray": "4 3"}))
    body += grid + rows

    legend_y = plot_bottom + 36
    x = label_x
    for color, text in ((COLOR_MET, "target met"), (COLOR_UNMET, "target not met"),
                        (COLOR_NO_TARGET, "no target")):
        body.append(_el("rect", {"x": x, "y": legend_y - 10, "width": 14, "height": 10,
                                 "rx": 2, "fill": color}))
        body.append(_el("text", {"x": x + 20, "y": legend_y, "font-size": 11, "fill": "#333"},
                        _text(text)))
        x += 130
    body.append(_el("line", {"x1": x + 5, "x2": x + 5, "y1": legend_y - 12, "y2": legend_y + 2,
                             "stroke": "#222", "stroke-width": 2.5}))
    body.append(_el("text", {"x": x + 14, "y": legend_y, "font-size": 11, "fill": "#333"},
                    _text("ratio target")))
    x += 110
    body.append(_el("line", {"x1": x + 5, "x2": x + 5, "y1": legend_y - 12, "y2": legend_y + 2,
                             "stroke": "#444", "stroke-width": 1.2, "stroke-dasharray": "4 3"}))
    body.append(_el("text", {"x": x + 14, "y": legend_y, "font-size": 11, "fill": "#333"},
                    _text("1.0 = baseline")))
    return _svg(width, int(legend_y + 18), body)


def render_curve_svg(curve: dict) -> str:
    """A line chart of the curve's series (points marked, a legend on the right)."""
    width, height = 900, 480
    x0, x1, y0, y1 = 80, 680, 60, height - 64
    series = [s for s in curve["series"] if s["points"]]
    xs = [p["x"] for s in series for p in s["points"]]
    ys = [p["y"] for s in series for p in s["points"]]
    log_x = curve["log_x"] and min(xs) > 0
    log_y = curve["log_y"] and min(ys) > 0
    if log_x:
        x_axis = Axis(min(xs) / 1.2, max(xs) * 1.2, x0, x1, log=True)
    else:
        pad = (max(xs) - min(xs)) * 0.05 or 1
        x_axis = Axis(min(xs) - pad, max(xs) + pad, x0, x1)
    if log_y:
        y_axis = Axis(min(ys) / 1.2, max(ys) * 1.2, y1, y0, log=True)
    else:
        y_axis = Axis(min(0.0, min(ys)), max(ys) * 1.05 if max(ys) > 0 else 1, y1, y0)
    distinct_x = sorted(set(xs))
    x_ticks = distinct_x if len(distinct_x) <= 8 else x_axis.ticks()

    body = [_el("text", {"x": x0, "y": 28, "font-size": 16, "font-weight": "bold",
                         "fill": "#222"}, _text(curve["title"]))]
    for t in y_axis.ticks():
        y = y_axis(t)
        body.append(_el("line", {"x1": x0, "x2": x1, "y1": y, "y2": y, "stroke": "#e6e6e6"}))
        body.append(_el("text", {"x": x0 - 6, "y": y + 4, "font-size": 10.5, "fill": "#555",
                                 "text-anchor": "end"}, _text(fmt_tick(t))))
    for t in x_ticks:
        x = x_axis(t)
        body.append(_el("line", {"x1": x, "x2": x, "y1": y0, "y2": y1, "stroke": "#e6e6e6"}))
        body.append(_el("text", {"x": x, "y": y1 + 16, "font-size": 10.5, "fill": "#555",
                                 "text-anchor": "middle"}, _text(fmt_tick(t))))
    body.append(_el("rect", {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0,
                             "fill": "none", "stroke": "#999"}))
    x_label = curve["x_label"] + (" (log scale)" if log_x else "")
    body.append(_el("text", {"x": (x0 + x1) / 2, "y": y1 + 40, "text-anchor": "middle",
                             "fill": "#333"}, _text(x_label)))
    y_label = curve["y_label"] + (" (log scale)" if log_y else "")
    body.append(_el("text", {"x": 20, "y": (y0 + y1) / 2, "text-anchor": "middle",
                             "fill": "#333", "transform": f"rotate(-90 20 {(y0 + y1) / 2:.1f})"},
                    _text(y_label)))

    for i, s in enumerate(series):
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        coords = [(x_axis(p["x"]), y_axis(p["y"])) for p in s["points"]]
        if len(coords) > 1:
            body.append(_el("polyline", {
                "class": "series", "fill": "none", "stroke": color, "stroke-width": 2,
                "points": " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)}))
        for (x, y), p in zip(coords, s["points"]):
            body.append(_el("circle", {"class": "point", "cx": x, "cy": y, "r": 3.5,
                                       "fill": color},
                            _title(f"{s['label']}: x={fmt_num(p['x'])}, y={fmt_num(p['y'])}")))
        ly = y0 + 10 + i * 22
        body.append(_el("line", {"x1": x1 + 20, "x2": x1 + 44, "y1": ly, "y2": ly,
                                 "stroke": color, "stroke-width": 2}))
        body.append(_el("circle", {"cx": x1 + 32, "cy": ly, "r": 3.5, "fill": color}))
        body.append(_el("text", {"class": "legend", "x": x1 + 52, "y": ly + 4, "fill": "#222"},
                        _text(_truncate(s["label"], 26))))
    return _svg(width, height, body)


# ---- Main ---------------------------------------------------------------------------


def _json_safe(v):
    """`v` with non-finite numbers as null (results.json stays strict JSON)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    return v


def write_outputs(results: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(
        json.dumps(_json_safe(results), indent=2, ensure_ascii=False, allow_nan=False) + "\n",
        encoding="utf-8")
    (out_dir / "results.md").write_text(render_markdown(results), encoding="utf-8")
    (out_dir / "ratios.svg").write_text(render_ratios_svg(results), encoding="utf-8")
    for curve in results["curves"]:
        (out_dir / curve["file"]).write_text(render_curve_svg(curve), encoding="utf-8")


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark report: figures as ratios to same-run baselines "
                    "(spec format: see the top of this file).")
    parser.add_argument("run_dir", type=Path, help="directory of <binary>.json and run.json")
    parser.add_argument("--spec", type=Path, required=True, help="figures spec (JSON)")
    parser.add_argument("--out", type=Path, help="output directory (default: RUN_DIR)")
    parser.add_argument("--only", nargs="+", metavar="SCENARIO",
                        help="evaluate these scenarios (default: run.json's, else those "
                             "with a source in RUN_DIR)")
    args = parser.parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # labels are unicode; never die printing them
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")

    try:
        spec = load_spec(args.spec)
    except SpecError as e:
        print(f"report.py: bad spec: {e}", file=sys.stderr)
        return 2
    if not args.run_dir.is_dir():
        print(f"report.py: no run directory {args.run_dir}", file=sys.stderr)
        return 2
    if args.only:
        known = {sc["name"] for sc in spec["scenarios"]} | {
            c["scenario"] for c in spec.get("curves", []) if c.get("scenario")}
        unknown = [name for name in args.only if name not in known]
        if unknown:
            print(f"report.py: unknown scenario(s) {', '.join(unknown)}; the spec has "
                  f"{', '.join(sorted(known))}", file=sys.stderr)
            return 2

    run = RunData(args.run_dir)
    selected, warnings = select_scenarios(spec, run, args.only)
    referenced = {ref["source"] for _, _, ref in spec_references(spec)}
    for stem, why in sorted(run.broken.items()):
        if stem not in referenced:
            warnings.append(f"ignored: {why}")
    for warning in run.warnings + warnings:
        print(f"warning: {warning}", file=sys.stderr)

    results = evaluate(spec, run, selected)
    write_outputs(results, args.out or args.run_dir)
    sys.stdout.write(render_markdown(results))
    for error in results["errors"]:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Tests of report.py on fixture runs written into a temp dir, and of figures.json.

    python3 tools/bench_src/report_test.py
"""

import copy
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPORT = HERE / "report.py"
REPO_SPEC = HERE / "figures.json"
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import report  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"

# ---- Fixtures -----------------------------------------------------------------------


def iteration(name, real_time=1.0, unit="ns", **fields):
    """One Google Benchmark iteration entry; fields are items_per_second and counters."""
    entry = {"name": name, "run_name": name, "run_type": "iteration", "repetitions": 1,
             "repetition_index": 0, "threads": 1, "iterations": 10, "real_time": real_time,
             "cpu_time": real_time, "time_unit": unit}
    entry.update(fields)
    return entry


def aggregate(name, kind, real_time=1.0, unit="ns", **fields):
    entry = iteration(name, real_time, unit, **fields)
    entry.update(name=f"{name}_{kind}", run_type="aggregate", aggregate_name=kind,
                 repetitions=3)
    del entry["repetition_index"]
    return entry


def failed(name, message):
    return {"name": name, "run_name": name, "run_type": "iteration", "iterations": 0,
            "real_time": 0, "cpu_time": 0, "time_unit": "ns", "error_occurred": True,
            "error_message": message}


CHECK = "BM_Check/real_time/threads:8"
ECHO = "BM_Echo/real_time/threads:8"
PAIRED = "BM_Paired/durable:0/real_time/threads:1"

# Figures of scenario "alpha" (source s1) and "beta" (source s2), with what each tests.
SPEC = {
    "scenarios": [
        {"name": "alpha", "title": "Alpha & <Omega>", "figures": [
            # Median aggregate preferred; ratio exactly at a ratio_min (met: >=); unicode.
            {"label": "Check ≥ 80% — Größe", "unit": "calls/s",
             "value": {"source": "s1", "benchmark": CHECK, "field": "items_per_second"},
             "baseline": {"label": "echo", "source": "s1", "benchmark": ECHO,
                          "field": "items_per_second"},
             "better": "higher", "target": {"ratio_min": 0.8},
             "target_text": "Check >= 80% of echo",
             "extra": [{"label": "p99", "unit": "ms", "source": "s1", "benchmark": CHECK,
                        "field": "p99_us", "scale": 0.001}]},
            # An unmet ratio target.
            {"label": "slow path", "unit": "calls/s",
             "value": {"source": "s1", "benchmark": "BM_Slow/real_time",
                       "field": "items_per_second"},
             "baseline": {"label": "echo", "source": "s1", "benchmark": ECHO,
                          "field": "items_per_second"},
             "better": "higher", "target": {"ratio_min": 0.8}},
            # Lower is better; time units ms and us converted through real_time_s.
            {"label": "one erasure", "unit": "ms",
             "value": {"source": "s1", "benchmark": "BM_Erase/iterations:1/manual_time",
                       "field": "real_time_s", "scale": 1000},
             "baseline": {"label": "fan-out", "source": "s1",
                          "benchmark": "BM_FanOut/iterations:1/manual_time",
                          "field": "real_time_s", "scale": 1000},
             "better": "lower", "target": {"value_max": 50}},
            # No baseline: ratio null, value target unmet; "*" in the name.
            {"label": "ingest", "unit": "events/s",
             "value": {"source": "s1", "benchmark": "BM_Ingest/iterations:*/real_time",
                       "field": "items_per_second"},
             "better": "higher", "target": {"value_min": 20000}},
            # No target (grey bar); cpu_time_s; the default time unit (ns).
            {"label": "verify", "unit": "us",
             "value": {"source": "s1", "benchmark": "BM_Verify", "field": "cpu_time_s",
                       "scale": 1e6},
             "baseline": {"label": "sha", "source": "s1", "benchmark": "BM_Sha",
                          "field": "real_time_s", "scale": 1e6},
             "better": "lower"},
            # Lower is better with an unmet ratio_max; two counters of one benchmark.
            {"label": "login", "unit": "ms",
             "value": {"source": "s1", "benchmark": PAIRED, "field": "login_ms"},
             "baseline": {"label": "hash", "source": "s1", "benchmark": PAIRED,
                          "field": "hash_ms"},
             "better": "lower", "target": {"ratio_max": 1.10}},
        ]},
        {"name": "beta", "title": "Beta", "figures": [
            {"label": "beta figure", "unit": "/s",
             "value": {"source": "s2", "benchmark": "BM_B", "field": "items_per_second"},
             "baseline": {"label": "b0", "source": "s2", "benchmark": "BM_B0",
                          "field": "items_per_second"},
             "better": "higher"},
        ]},
    ],
    "curves": [
        # Point at x=100000 comes from an optional run that did not happen: skipped.
        {"name": "scale_curve", "title": "p99 by size", "scenario": "alpha",
         "x_label": "subjects", "y_label": "p99 (ms)", "log_x": True,
         "series": [
             {"label": "Check p99", "points": [
                 {"x": 10000, "source": "s1", "benchmark": CHECK, "field": "p99_us",
                  "scale": 0.001},
                 {"x": 100000, "source": "s1_100000", "benchmark": CHECK,
                  "field": "p99_us", "scale": 0.001},
                 {"x": 1000000, "source": "s3", "benchmark": CHECK, "field": "p99_us",
                  "scale": 0.001}]},
             {"label": "never run", "points": [
                 {"x": 1, "source": "nope", "benchmark": CHECK, "field": "p99_us"}]}]},
        # No point has a source: not drawn.
        {"name": "absent_curve", "title": "absent", "scenario": "alpha", "x_label": "x",
         "y_label": "y", "series": [{"label": "s", "points": [
             {"x": 1, "source": "nope", "benchmark": "BM_X", "field": "f"}]}]},
        {"name": "beta_curve", "title": "beta", "scenario": "beta", "x_label": "x",
         "y_label": "y", "series": [{"label": "s", "points": [
             {"x": 1, "source": "s2", "benchmark": "BM_B", "field": "items_per_second"},
             {"x": 2, "source": "s2", "benchmark": "BM_B0", "field": "items_per_second"}]}]},
    ],
}


def s1_benchmarks():
    return [
        # Mean first, then median, so that "the first aggregate" would be wrong.
        iteration(CHECK, items_per_second=700.0, p99_us=4000.0),
        iteration(CHECK, items_per_second=1000.0, p99_us=6000.0),
        iteration(CHECK, items_per_second=800.0, p99_us=5000.0),
        aggregate(CHECK, "mean", items_per_second=833.3, p99_us=5000.0),
        aggregate(CHECK, "median", items_per_second=800.0, p99_us=5000.0),
        aggregate(CHECK, "stddev", items_per_second=150.0, p99_us=1000.0),
        iteration(ECHO, items_per_second=1000.0),
        iteration("BM_Slow/real_time", items_per_second=400.0),
        iteration("BM_Erase/iterations:1/manual_time", real_time=12.5, unit="ms"),
        iteration("BM_FanOut/iterations:1/manual_time", real_time=2500.0, unit="us"),
        iteration("BM_Ingest/iterations:200/real_time", items_per_second=19000.0),
        dict(iteration("BM_Verify", real_time=9.0, unit="us"), cpu_time=3.0),
        {k: v for k, v in iteration("BM_Sha", real_time=1500.0).items() if k != "time_unit"},
        iteration(PAIRED, login_ms=42.7, hash_ms=37.3),
    ]


def write_json(path, data):
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def write_run(run_dir, s1=None, s2=True, run_info=True, scenarios=("alpha", "beta")):
    """A complete fixture run (everything the test SPEC reads) in run_dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = {"date": "2026-11-30T10:00:00", "host_name": "ctx-host"}
    write_json(run_dir / "s1.json", {"context": ctx,
                                     "benchmarks": s1 if s1 is not None else s1_benchmarks()})
    write_json(run_dir / "s3.json", {"context": ctx, "benchmarks": [
        aggregate(CHECK, "median", p99_us=9000.0)]})
    if s2:
        write_json(run_dir / "s2.json", {"context": ctx, "benchmarks": [
            iteration("BM_B", items_per_second=5.0),
            iteration("BM_B0", items_per_second=10.0)]})
    write_json(run_dir / "unrelated.json", {"not": "a benchmark output"})
    if run_info:
        info = {"date": "2026-11-30", "commit": "0123abc", "build": "Release",
                "host": "dev-vm", "smoke": True}
        if scenarios is not None:
            info["scenarios"] = list(scenarios)
        write_json(run_dir / "run.json", info)


class ReportCase(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="report_test."))
        self.spec = self.tmp / "spec.json"
        write_json(self.spec, SPEC)
        self.run_dir = self.tmp / "run"

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def run_report(self, *extra, run_dir=None, spec=None):
        env = dict(os.environ, PYTHONIOENCODING="utf-8")
        return subprocess.run(
            [sys.executable, str(REPORT), str(run_dir or self.run_dir), "--spec",
             str(spec or self.spec), *extra],
            capture_output=True, text=True, encoding="utf-8", env=env, timeout=60)

    def results(self, out_dir=None):
        return json.loads(((out_dir or self.run_dir) / "results.json").read_text("utf-8"))

    def figures(self, results):
        return {f["label"]: f for sc in results["scenarios"] for f in sc["figures"]}


# ---- (a) a complete run -----------------------------------------------------------


class CompleteRunTest(ReportCase):
    def setUp(self):
        super().setUp()
        write_run(self.run_dir)
        self.proc = self.run_report()

    def test_exit_status_and_no_errors(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        self.assertNotIn("ERROR", self.proc.stderr)
        self.assertEqual(self.results()["errors"], [])

    def test_run_info(self):
        info = self.results()["run"]
        self.assertEqual((info["date"], info["commit"], info["build"], info["host"]),
                         ("2026-11-30", "0123abc", "Release", "dev-vm"))
        self.assertIs(info["smoke"], True)

    def test_median_aggregate_preferred_and_met_ratio_target(self):
        f = self.figures(self.results())["Check ≥ 80% — Größe"]
        self.assertEqual(f["value"], 800.0)  # the median, not the mean or 1st iteration
        self.assertEqual(f["baseline"], 1000.0)
        self.assertAlmostEqual(f["ratio"], 0.8)
        self.assertIs(f["met"], True)  # ratio_min is inclusive
        self.assertIsNone(f["error"])
        self.assertEqual(f["extras"], [{"label": "p99", "unit": "ms", "value": 5.0,
                                        "error": None}])

    def test_unmet_ratio_target(self):
        f = self.figures(self.results())["slow path"]
        self.assertAlmostEqual(f["ratio"], 0.4)
        self.assertIs(f["met"], False)

    def test_lower_is_better_and_time_units(self):
        figures = self.figures(self.results())
        erase = figures["one erasure"]
        self.assertAlmostEqual(erase["value"], 12.5)  # 12.5 ms
        self.assertAlmostEqual(erase["baseline"], 2.5)  # 2500 us
        self.assertAlmostEqual(erase["ratio"], 5.0)
        self.assertEqual(erase["better"], "lower")
        self.assertIs(erase["met"], True)
        login = figures["login"]
        self.assertAlmostEqual(login["ratio"], 42.7 / 37.3)
        self.assertIs(login["met"], False)  # 1.14x against ratio_max 1.10
        verify = figures["verify"]
        self.assertAlmostEqual(verify["value"], 3.0)  # cpu_time 3 us
        self.assertAlmostEqual(verify["baseline"], 1.5)  # 1500 ns, no time_unit given
        self.assertAlmostEqual(verify["ratio"], 2.0)
        self.assertIsNone(verify["met"])  # no target

    def test_value_target_without_baseline(self):
        f = self.figures(self.results())["ingest"]
        self.assertEqual(f["value"], 19000.0)
        self.assertIsNone(f["baseline"])
        self.assertIsNone(f["ratio"])
        self.assertIs(f["met"], False)

    def test_markdown(self):
        md = (self.run_dir / "results.md").read_text("utf-8")
        self.assertEqual(self.proc.stdout, md)
        self.assertIn("smoke run: figures meaningless", md)
        self.assertIn("Run 2026-11-30 · commit 0123abc · build Release · host dev-vm", md)
        self.assertIn("| figure | measured | baseline (same run) | ratio | target | met |", md)
        self.assertIn("| Check ≥ 80% — Größe | 800 calls/s | echo: 1,000 calls/s | 0.800x ↑ "
                      "| Check >= 80% of echo | yes | p99 5.00 ms |", md)
        self.assertIn("| slow path | 400 calls/s | echo: 1,000 calls/s | 0.400x ↑ "
                      "| ratio >= 0.800 | **no** |", md)
        self.assertIn("| one erasure | 12.5 ms | fan-out: 2.50 ms | 5.00x ↓ | < 50.0 ms | yes |",
                      md)
        self.assertIn("| ingest | 19,000 events/s |  |  | >= 20,000 events/s | **no** |", md)
        self.assertIn("## Alpha & <Omega> (`alpha`)", md)
        self.assertIn("![p99 by size](scale_curve.svg)", md)

    def test_ratio_chart(self):
        root = ET.parse(self.run_dir / "ratios.svg").getroot()
        self.assertEqual(root.tag, f"{SVG}svg")
        bars = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
        # One bar per figure with a ratio, in spec order (not "ingest": no baseline).
        titles = [b.find(f"{SVG}title").text.split(":")[0] for b in bars]
        self.assertEqual(titles, ["Check ≥ 80% — Größe", "slow path", "one erasure",
                                  "verify", "login", "beta figure"])
        self.assertEqual([b.get("fill") for b in bars],
                         [report.COLOR_MET, report.COLOR_UNMET, report.COLOR_MET,
                          report.COLOR_NO_TARGET, report.COLOR_UNMET,
                          report.COLOR_NO_TARGET])
        targets = [e for e in root.iter(f"{SVG}line") if e.get("class") == "target"]
        self.assertEqual(len(targets), 3)  # the ratio targets of Check, slow path, login
        baselines = [e for e in root.iter(f"{SVG}line") if e.get("class") == "baseline"]
        self.assertEqual(len(baselines), 1)
        texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
        self.assertIn("Alpha & <Omega> (alpha)", texts)
        self.assertIn("0.800x", texts)

    def test_curves(self):
        root = ET.parse(self.run_dir / "scale_curve.svg").getroot()
        points = [c for c in root.iter(f"{SVG}circle") if c.get("class") == "point"]
        self.assertEqual(len(points), 2)  # x=100000's source is missing: skipped
        lines = [p for p in root.iter(f"{SVG}polyline") if p.get("class") == "series"]
        self.assertEqual(len(lines), 1)  # "never run" has no points: no line
        legend = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "legend"]
        self.assertEqual(legend, ["Check p99"])
        self.assertFalse((self.run_dir / "absent_curve.svg").exists())
        ET.parse(self.run_dir / "beta_curve.svg")
        curves = {c["name"]: c for c in self.results()["curves"]}
        self.assertEqual(sorted(curves), ["beta_curve", "scale_curve"])
        self.assertEqual(curves["scale_curve"]["series"][0]["points"],
                         [{"x": 10000.0, "y": 5.0}, {"x": 1000000.0, "y": 9.0}])

    def test_out_dir(self):
        out = self.tmp / "out"
        proc = self.run_report("--out", str(out))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for name in ("results.json", "results.md", "ratios.svg", "scale_curve.svg"):
            self.assertTrue((out / name).is_file(), name)
        self.assertEqual(self.figures(self.results(out))["slow path"]["ratio"], 0.4)


# ---- (b) broken benchmarks ----------------------------------------------------------


class BrokenRunTest(ReportCase):
    def broken_run(self, mutate):
        """Runs the report on the complete run with s1's entries changed by `mutate`."""
        benchmarks = s1_benchmarks()
        benchmarks = mutate(benchmarks) or benchmarks
        write_run(self.run_dir, s1=benchmarks)
        return self.run_report()

    def assert_failed(self, proc, *needles):
        self.assertEqual(proc.returncode, 1, proc.stderr)
        for needle in needles:
            self.assertIn(needle, proc.stderr)

    def test_missing_benchmark(self):
        proc = self.broken_run(lambda b: [e for e in b if e["run_name"] != ECHO])
        self.assert_failed(proc, f"s1 / {ECHO} / items_per_second", "not in the output")
        # What could be written was: the other figures, with this one's error.
        figures = self.figures(self.results())
        self.assertIn(ECHO, figures["slow path"]["error"])
        self.assertIsNone(figures["slow path"]["met"])
        self.assertAlmostEqual(figures["one erasure"]["ratio"], 5.0)
        self.assertIn("**error**", (self.run_dir / "results.md").read_text("utf-8"))
        ET.parse(self.run_dir / "ratios.svg")

    def test_errored_benchmark(self):
        def fail_slow(benchmarks):
            return [failed(e["run_name"], "pgbench failed: connection refused")
                    if e["run_name"] == "BM_Slow/real_time" else e for e in benchmarks]
        proc = self.broken_run(fail_slow)
        self.assert_failed(proc, "BM_Slow/real_time", "pgbench failed: connection refused")

    def test_errored_repetition_skipped(self):
        # One failed repetition beside a usable median is not an error.
        proc = self.broken_run(lambda b: b + [failed(CHECK, "one repetition failed")])
        self.assertEqual(proc.returncode, 0, proc.stderr)

    def test_missing_field(self):
        def drop_p99(benchmarks):
            for e in benchmarks:
                e.pop("p99_us", None)
        proc = self.broken_run(drop_p99)
        self.assert_failed(proc, f"[alpha] Check ≥ 80% — Größe: p99: s1 / {CHECK} / p99_us",
                           f"curve scale_curve: Check p99, x=10000: s1 / {CHECK} / p99_us")
        check = self.figures(self.results())["Check ≥ 80% — Größe"]
        self.assertIn("p99_us", check["error"])
        self.assertIn("p99_us", check["extras"][0]["error"])
        self.assertIsNone(check["extras"][0]["value"])
        self.assertIsNone(check["met"])

    def test_missing_source(self):
        write_run(self.run_dir, s2=False)
        self.assert_failed(self.run_report(), "s2 / BM_B / items_per_second", "no s2.json")

    def test_ambiguous_pattern(self):
        proc = self.broken_run(lambda b: b + [
            iteration("BM_Ingest/iterations:5/real_time", items_per_second=1.0)])
        self.assert_failed(proc, "BM_Ingest/iterations:*/real_time", "matches several runs")

    def test_pattern_without_match(self):
        proc = self.broken_run(lambda b: [e for e in b if not e["name"].startswith("BM_Ingest")])
        self.assert_failed(proc, "BM_Ingest/iterations:*/real_time", "not in the output")

    def test_zero_baseline(self):
        def zero_echo(benchmarks):
            for e in benchmarks:
                if e["run_name"] == ECHO:
                    e["items_per_second"] = 0.0
        proc = self.broken_run(zero_echo)
        self.assert_failed(proc, f"s1 / {ECHO} / items_per_second: is 0")
        self.assertIsNone(self.figures(self.results())["slow path"]["ratio"])

    def test_non_finite_value(self):
        def nan_slow(benchmarks):
            for e in benchmarks:
                if e["run_name"] == "BM_Slow/real_time":
                    e["items_per_second"] = math.nan
        proc = self.broken_run(nan_slow)
        self.assert_failed(proc, "BM_Slow/real_time", "not a finite number")
        json.loads((self.run_dir / "results.json").read_text("utf-8"),
                   parse_constant=lambda c: self.fail(f"results.json holds {c}"))

    def test_truncated_source_file(self):
        write_run(self.run_dir)
        (self.run_dir / "s2.json").write_text('{"benchmarks": [', encoding="utf-8")
        self.assert_failed(self.run_report(), "s2 / BM_B", "not valid JSON")


# ---- (c) scenario selection ---------------------------------------------------------


class SelectionTest(ReportCase):
    def scenario_names(self):
        return [sc["name"] for sc in self.results()["scenarios"]]

    def test_scenario_not_run_is_ignored(self):
        write_run(self.run_dir, s2=False, scenarios=["alpha"])
        proc = self.run_report()
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.scenario_names(), ["alpha"])
        self.assertEqual(self.results()["skipped_scenarios"], ["beta"])
        self.assertFalse((self.run_dir / "beta_curve.svg").exists())
        self.assertNotIn("beta figure", proc.stdout)

    def test_same_run_fails_when_the_scenario_was_run(self):
        write_run(self.run_dir, s2=False, scenarios=["alpha", "beta"])
        self.assertEqual(self.run_report().returncode, 1)

    def test_only_overrides_run_json(self):
        write_run(self.run_dir, s2=False, scenarios=["alpha", "beta"])
        proc = self.run_report("--only", "alpha")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.scenario_names(), ["alpha"])

    def test_only_unknown_scenario(self):
        write_run(self.run_dir)
        proc = self.run_report("--only", "gamma")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("gamma", proc.stderr)

    def test_without_run_json_scenarios_with_a_source_are_evaluated(self):
        write_run(self.run_dir, s2=False, run_info=False)
        proc = self.run_report()
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.scenario_names(), ["alpha"])
        info = self.results()["run"]
        self.assertEqual((info["commit"], info["host"], info["smoke"]),
                         ("unknown", "ctx-host", False))
        self.assertNotIn("smoke run", proc.stdout)

    def test_without_run_json_source_of_other_scenario(self):
        write_run(self.run_dir, run_info=False)
        (self.run_dir / "s1.json").unlink()
        (self.run_dir / "s3.json").unlink()
        proc = self.run_report()
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.scenario_names(), ["beta"])


# ---- (d) the repository's figures.json ---------------------------------------------

def driver_sources():
    """tools/bench list: the sources (result files) the driver runs for each scenario."""
    listing = subprocess.run([str(Path(REPO_SPEC).parents[2] / "tools" / "bench"), "list"],
                             check=True, capture_output=True, text=True).stdout
    return {line.split()[0]: set(line.split()[1:]) for line in listing.splitlines() if line}


class RepoSpecTest(ReportCase):
    def setUp(self):
        super().setUp()
        self.repo_spec = report.load_spec(REPO_SPEC)

    def test_structure(self):
        names = {sc["name"] for sc in self.repo_spec["scenarios"]}
        self.assertLessEqual({"rpc", "writes", "reads", "import", "login", "audit", "erasure",
                              "mailing"}, names)
        driver = driver_sources()
        curve_only = {c["scenario"] for c in self.repo_spec.get("curves", []) if c.get("scenario")}
        self.assertEqual(names | curve_only, set(driver))  # tools/bench runs each of the spec
        count = 0
        for scenario, where, ref in report.spec_references(self.repo_spec):
            for key in ("source", "benchmark", "field"):
                self.assertIsInstance(ref.get(key), str, f"{scenario}: {where}: {key}")
                self.assertTrue(ref[key].strip(), f"{scenario}: {where}: {key}")
            # The scenario's run makes the file the figure is read from.
            self.assertIn(ref["source"], driver.get(scenario, set()), f"{scenario}: {where}")
            self.assertTrue(ref["benchmark"].startswith("BM_"), f"{scenario}: {where}")
            self.assertNotIn(" ", ref["benchmark"], f"{scenario}: {where}")
            count += 1
        self.assertGreater(count, 0)
        for sc in self.repo_spec["scenarios"]:
            self.assertTrue(sc["figures"], sc["name"])
            for fig in sc["figures"]:
                self.assertIn(fig["better"], ("higher", "lower"), fig["label"])
                self.assertTrue(fig.get("unit"), fig["label"])

    def test_issue_targets_present(self):
        targets = {(sc["name"], key, bound) for sc in self.repo_spec["scenarios"]
                   for fig in sc["figures"] for key, bound in (fig.get("target") or {}).items()}
        for wanted in [("rpc", "ratio_min", 0.8), ("writes", "ratio_min", 0.7),
                       ("reads", "value_max", 3), ("import", "value_min", 10000),
                       ("login", "ratio_max", 1.1), ("audit", "value_min", 20000),
                       ("erasure", "value_max", 50), ("erasure", "value_max", 200),
                       ("erasure", "value_max", 60), ("mailing", "value_min", 2000),
                       ("mailing", "value_max", 150)]:
            self.assertIn(wanted, targets)

    def test_reports_a_run_of_every_referenced_benchmark(self):
        # A run holding exactly what the spec reads: it must report without an error.
        runs = {}
        for _, _, ref in report.spec_references(self.repo_spec):
            entries = runs.setdefault(ref["source"], {})
            name = ref["benchmark"].replace("*", "4")  # as a run with --ingest_batches=4
            entry = entries.setdefault(name, iteration(name, real_time=2.0, unit="ms"))
            if ref["field"] not in ("real_time_s", "cpu_time_s"):
                entry[ref["field"]] = 3.0
        self.run_dir.mkdir()
        for source, entries in runs.items():
            write_json(self.run_dir / f"{source}.json", {"benchmarks": list(entries.values())})
        proc = self.run_report(spec=REPO_SPEC)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        results = self.results()
        self.assertEqual(len(self.figures(results)),
                         sum(len(sc["figures"]) for sc in self.repo_spec["scenarios"]))
        self.assertEqual(sorted(c["name"] for c in results["curves"]),
                         sorted(c["name"] for c in self.repo_spec["curves"]))
        for path in self.run_dir.glob("*.svg"):
            ET.parse(path)

    def test_bad_spec_rejected(self):
        spec = copy.deepcopy(SPEC)
        del spec["scenarios"][0]["figures"][0]["value"]["field"]
        with self.assertRaises(report.SpecError):
            report.validate_spec(spec)
        write_json(self.spec, spec)
        write_run(self.run_dir)
        self.assertEqual(self.run_report().returncode, 2)


# ---- Number formatting --------------------------------------------------------------


class FormatTest(unittest.TestCase):
    def test_three_significant_digits_with_separators(self):
        cases = {20750: "20,800", 2164: "2,160", 1000: "1,000", 12345678: "12,300,000",
                 37.3: "37.3", 1.4156: "1.42", 0.997: "0.997", 0.0051: "0.00510",
                 9.996: "10.0", 0: "0", -1234: "-1,230", None: "-"}
        for value, text in cases.items():
            self.assertEqual(report.fmt_num(value), text, value)


if __name__ == "__main__":
    unittest.main()

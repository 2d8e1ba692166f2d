"""Population scale: the columnar backend against hand-written baselines, side by side.

Run: .venv/bin/python benchmarks/population_speed.py [--sizes 100000,1000000,10000000] [--work DIR]

Data: a base population of ``--base`` patients (20,000 by default) comes from
engine.generate and is written as Parquet tables; larger populations are
made from it deterministically by DuckDB: copy k of every row gets
``-k<k>`` appended to its patient id and practice (so practices keep their
sizes) and its day-precise encounter dates moved k mod 7 days back. The
Python generator would take hours for 10M; this takes seconds and keeps the
mix of conditions, imprecise dates and hospital use of the base.

Runs (each in a fresh subprocess; wall time and the child's peak RSS):
* ``duckdb hand SQL``: a hand-written DuckDB query of the Castlefields criteria,
  one column per criterion plus eligible and criteria met, written to Parquet
  (it reads dates as day-precise and so ignores imprecise dates: a baseline
  for speed, not for meaning). Its counts are ``COUNT(CASE WHEN .. THEN 1 END)``,
  which DuckDB evaluates at about four fifths of the CPU of the same counts written
  ``COUNT(*) FILTER (WHERE ..)`` (2.39-2.55 against 2.93-2.97 s at 1M): the
  baseline is the best of the two;
* ``polars hand query``: the same criteria and columns as a polars lazy query
  (``polars_baseline``), written to Parquet;
* ``compiled pyramid``: library/ltc_pyramid.pw (Castlefields + Evercare + levels)
  compiled by engine.columnar, every audit column, written to Parquet;
* ``compiled pyramid + JSON``: the same, written as one JSON object per patient
  (outcomes and audit columns) by engine.columnar.duckdb_backend.write (DuckDB
  writes Parquet, streamed to JSON lines by polars);
* ``compiled pyramid, outcomes only`` (``lean``): the same without the audit columns, as
  ``pathways run`` without ``--explain`` computes it (compile_plan(..., audit_columns=False));
* ``castlefields 1 thread`` and ``castlefields 1 thread + JSON``: the compiled
  Castlefields protocol alone with DuckDB held to one thread (issue 3's
  one-core figure; reading the Parquet tables is counted, so the figure is
  conservative).
Figures: patients/s over wall time, including reading the Parquet tables (and, for
the compiled runs, importing the engine and compiling the protocol), and the
child's CPU seconds (all its threads). After each size, every compiled run's wall
time over the best hand-written baseline's of the same run (the ratio the issue's
target is about; the machine is shared, so ratios move less than absolute
figures), the same for CPU time (which moves least with the machine's load), and
for JSON lines their average size.
``--runs hand,polars,...`` picks runs (default: all). ``BENCH_MEMORY_LIMIT=2.5GB`` in
the environment holds the compiled runs' DuckDB to that much memory (it spills to disk).
``--profile hand|castlefields|ltc_pyramid`` instead prints where one query's CPU goes, at the
first size, on one DuckDB thread: its costliest operators by DuckDB's own profile.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
AS_OF = "2024-04-01"
TABLES = ("patients", "conditions", "medications", "encounters", "observations", "procedures", "life_events",
          "pathway_events")


def make_base(folder: Path, n: int) -> None:
    from engine.generate import generate
    from engine.tables import write_tables
    if not (folder / "patients.parquet").is_file():
        write_tables(generate(n, seed=1, as_of=AS_OF), folder, "parquet")


def replicate(base: Path, out: Path, size: int, base_n: int) -> None:
    """``size`` patients from the base by copying, deterministic (see the module's doc)."""
    import duckdb
    if (out / "patients.parquet").is_file():
        return
    out.mkdir(parents=True, exist_ok=True)
    copies = -(-size // base_n)
    con = duckdb.connect()
    for table in TABLES:
        src = f"read_parquet('{base / (table + '.parquet')}')"
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
        exprs = []
        for c in cols:
            q = f'"{c}"'
            if c == "patient_id" or (table == "patients" and c == "practice"):
                exprs.append(f"CASE WHEN {q} IS NULL THEN NULL ELSE {q} || '-k' || k END AS {q}")
            elif table == "encounters" and c in ("start", "end"):
                exprs.append(f"CASE WHEN LENGTH({q}) = 10 THEN CAST(CAST({q} AS DATE) - CAST(k % 7 AS INTEGER) "
                             f"AS VARCHAR) ELSE {q} END AS {q}")
            else:
                exprs.append(q)
        where = f"WHERE k * {base_n} + rn < {size}" if table == "patients" else ""
        body = (f"SELECT {', '.join(exprs)} FROM (SELECT *, ROW_NUMBER() OVER () - 1 AS rn FROM {src}) b "
                f"CROSS JOIN range({copies}) r(k) {where}")
        if table != "patients":  # keep only the items of patients kept
            body = (f"SELECT i.* FROM ({body}) i SEMI JOIN (SELECT patient_id FROM ({' '.join([''])}"
                    f"SELECT b.patient_id || '-k' || k AS patient_id FROM (SELECT *, ROW_NUMBER() OVER () - 1 AS rn "
                    f"FROM read_parquet('{base / 'patients.parquet'}')) b CROSS JOIN range({copies}) r(k) "
                    f"WHERE k * {base_n} + rn < {size})) p ON p.patient_id = i.patient_id")
        con.execute(f"COPY ({body}) TO '{out / (table + '.parquet')}' (FORMAT PARQUET)").fetchall()
    con.close()


HAND_SQL = """
WITH p AS (SELECT patient_id, practice, TRY_CAST(birth_date AS DATE) AS birth FROM read_parquet('{d}/patients.parquet')),
e AS (SELECT patient_id, kind, method, TRY_CAST("start" AS DATE) AS s, TRY_CAST("end" AS DATE) AS en
      FROM read_parquet('{d}/encounters.parquet') WHERE TRY_CAST("start" AS DATE) <= DATE '{a}'),
enc AS (SELECT patient_id,
   COUNT(CASE WHEN kind = 'admission' AND s >= DATE '{a}' - INTERVAL 12 MONTH THEN 1 END) AS adm,
   COUNT(CASE WHEN kind = 'ae' AND s >= DATE '{a}' - INTERVAL 12 MONTH THEN 1 END) AS ae,
   COUNT(CASE WHEN kind = 'gp' AND s >= DATE '{a}' - INTERVAL 12 MONTH THEN 1 END) AS gp,
   COUNT(CASE WHEN kind = 'outpatient' AND s >= DATE '{a}' - INTERVAL 12 MONTH THEN 1 END) AS op,
   SUM(CASE WHEN kind = 'admission' THEN GREATEST(DATE_DIFF('day', GREATEST(s, DATE '{a}' - INTERVAL 12 MONTH),
       LEAST(COALESCE(en, DATE '{a}'), DATE '{a}')), 0) END) AS stay,
   LEAST(COUNT(CASE WHEN kind = 'social_work' AND s > DATE '{a}' - INTERVAL 3 MONTH THEN 1 END),
         COUNT(CASE WHEN kind = 'social_work' AND s > DATE '{a}' - INTERVAL 6 MONTH AND s <= DATE '{a}' - INTERVAL 3 MONTH THEN 1 END),
         COUNT(CASE WHEN kind = 'social_work' AND s > DATE '{a}' - INTERVAL 9 MONTH AND s <= DATE '{a}' - INTERVAL 6 MONTH THEN 1 END),
         COUNT(CASE WHEN kind = 'social_work' AND s >= DATE '{a}' - INTERVAL 12 MONTH AND s <= DATE '{a}' - INTERVAL 9 MONTH THEN 1 END)) AS sw
   FROM e GROUP BY patient_id),
cond AS (SELECT patient_id, COUNT(*) AS ltc FROM read_parquet('{d}/conditions.parquet')
   WHERE COALESCE(status, 'active') = 'active' AND code IN ({codes}) GROUP BY patient_id),
med AS (SELECT patient_id, COUNT(CASE WHEN TRY_CAST("start" AS DATE) <= DATE '{a}' - INTERVAL 6 MONTH THEN 1 END) AS longmed,
   SUM(monthly_cost) AS cost FROM read_parquet('{d}/medications.parquet') WHERE COALESCE(status, 'active') = 'active'
   GROUP BY patient_id),
obs AS (SELECT patient_id, BOOL_OR(kind = 'adl' AND impaired) AS adl, BOOL_OR(kind = 'iadl' AND impaired) AS iadl
   FROM read_parquet('{d}/observations.parquet') WHERE TRY_CAST("date" AS DATE) >= DATE '{a}' - INTERVAL 12 MONTH GROUP BY patient_id),
j AS (SELECT p.patient_id, p.practice, p.birth, COALESCE(ltc, 0) >= 4 AS c1, COALESCE(longmed, 0) >= 4 AS c2,
   COALESCE(adm, 0) >= 2 AS c3, COALESCE(ae, 0) >= 2 AS c4, adl AS c5, iadl AS c6, COALESCE(gp, 0) AS gp,
   COALESCE(op, 0) >= 2 AS c8, COALESCE(stay, 0) > 28 AS c9, COALESCE(sw, 0) > 4 AS c10, COALESCE(cost, 0) > 100 AS c11
   FROM p LEFT JOIN enc USING (patient_id) LEFT JOIN cond USING (patient_id) LEFT JOIN med USING (patient_id)
   LEFT JOIN obs USING (patient_id)),
r AS (SELECT *, COUNT(*) OVER w AS n, MIN(gp) OVER w AS mn,
   COUNT(*) OVER (PARTITION BY practice ORDER BY gp DESC RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS ge
   FROM j WINDOW w AS (PARTITION BY practice)),
c AS (SELECT *, practice IS NOT NULL AND gp > mn AND ge <= GREATEST(CEIL(0.03::DOUBLE * n), 1) AS c7 FROM r)
SELECT patient_id, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11,
  c1::INT + c2::INT + c3::INT + c4::INT + COALESCE(c5, FALSE)::INT + COALESCE(c6, FALSE)::INT + c7::INT + c8::INT
  + c9::INT + c10::INT + c11::INT AS criteria_met,
  DATE_DIFF('year', birth, DATE '{a}') >= 65 AND (c1::INT + c2::INT + c3::INT + c4::INT + COALESCE(c5, FALSE)::INT
  + COALESCE(c6, FALSE)::INT + c7::INT + c8::INT + c9::INT + c10::INT + c11::INT) >= 3 AS eligible
FROM c
"""


def polars_baseline(data: str, out: str) -> None:
    """The Castlefields criteria of HAND_SQL as a polars lazy query (same columns, same shortcuts)."""
    import csv
    import datetime as dt

    import polars as pl
    from engine.calendar import shift
    a = dt.date.fromisoformat(AS_OF)
    m3, m6, m9, m12 = (shift(a, -k, "months") for k in (3, 6, 9, 12))
    with open(ROOT / "library" / "codes" / "long_term_conditions.csv", encoding="utf-8") as f:
        codes = [row["code"] for row in csv.DictReader(f)]

    def day(col: str):
        return pl.col(col).str.to_date("%Y-%m-%d", strict=False)

    def scan(table: str):
        return pl.scan_parquet(f"{data}/{table}.parquet")

    p = scan("patients").select("patient_id", "practice", day("birth_date").alias("birth"))
    e = scan("encounters").select("patient_id", "kind", day("start").alias("s"), day("end").alias("en")) \
        .filter(pl.col("s") <= a)
    kind, s_ = pl.col("kind"), pl.col("s")
    sw = kind == "social_work"
    enc = e.group_by("patient_id").agg(
        adm=((kind == "admission") & (s_ >= m12)).sum(),
        ae=((kind == "ae") & (s_ >= m12)).sum(),
        gp=((kind == "gp") & (s_ >= m12)).sum(),
        op=((kind == "outpatient") & (s_ >= m12)).sum(),
        stay=pl.when(kind == "admission").then(
            (pl.min_horizontal(pl.col("en").fill_null(a), pl.lit(a)) - pl.max_horizontal(s_, pl.lit(m12)))
            .dt.total_days().clip(lower_bound=0)).sum(),
        sw=pl.min_horizontal((sw & (s_ > m3)).sum(), (sw & (s_ > m6) & (s_ <= m3)).sum(),
                             (sw & (s_ > m9) & (s_ <= m6)).sum(), (sw & (s_ >= m12) & (s_ <= m9)).sum()))
    active = pl.col("status").fill_null("active") == "active"
    cond = scan("conditions").filter(active & pl.col("code").is_in(codes)).group_by("patient_id") \
        .agg(ltc=pl.len())
    med = scan("medications").filter(active).group_by("patient_id").agg(
        longmed=(day("start") <= m6).sum(), cost=pl.col("monthly_cost").sum())
    obs = scan("observations").filter(day("date") >= m12).group_by("patient_id").agg(
        adl=((pl.col("kind") == "adl") & pl.col("impaired")).any(),
        iadl=((pl.col("kind") == "iadl") & pl.col("impaired")).any())
    j = p.join(enc, on="patient_id", how="left").join(cond, on="patient_id", how="left") \
        .join(med, on="patient_id", how="left").join(obs, on="patient_id", how="left")
    z = lambda c: pl.col(c).fill_null(0)  # noqa: E731
    j = j.select("patient_id", "practice", "birth", c1=z("ltc") >= 4, c2=z("longmed") >= 4, c3=z("adm") >= 2,
                 c4=z("ae") >= 2, c5=pl.col("adl"), c6=pl.col("iadl"), gp=z("gp"), c8=z("op") >= 2,
                 c9=z("stay") > 28, c10=z("sw") > 4, c11=z("cost") > 100)
    gp = pl.col("gp")
    j = j.with_columns(
        c7=pl.col("practice").is_not_null() & (gp > gp.min().over("practice"))
        & (gp.rank("max", descending=True).over("practice")
           <= pl.max_horizontal((0.03 * pl.len().over("practice")).ceil(), pl.lit(1))))
    met = pl.sum_horizontal(*(pl.col(f"c{i}").fill_null(False).cast(pl.Int32) for i in range(1, 12)))
    j = j.select("patient_id", *(f"c{i}" for i in range(1, 12)), criteria_met=met,
                 eligible=((a.year - pl.col("birth").dt.year()) >= 65) & (met >= 3))
    j.sink_parquet(out)


def child(kind: str, data: str, out: str) -> None:
    """One measured run (in its own process)."""
    import duckdb
    start, cpu_start = time.perf_counter(), os.times()
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false").fetchall()
    if kind == "hand":
        import csv
        with open(ROOT / "library" / "codes" / "long_term_conditions.csv", encoding="utf-8") as f:
            codes = ", ".join(f"'{row['code']}'" for row in csv.DictReader(f))
        sql = HAND_SQL.format(d=data, a=AS_OF, codes=codes)
        con.execute(f"COPY ({sql}) TO '{out}' (FORMAT PARQUET)").fetchall()
    elif kind == "polars":
        polars_baseline(data, out)
    else:
        import engine
        from engine.columnar import compile_plan
        from engine.columnar.duckdb_backend import register_tables, write
        protocol = "castlefields.pw" if kind.startswith("cf1") else "ltc_pyramid.pw"
        if kind.startswith("cf1"):
            con.execute("SET threads = 1").fetchall()
        if os.environ.get("BENCH_MEMORY_LIMIT"):  # e.g. 2.5GB: DuckDB then spills to disk
            con.execute(f"SET memory_limit = '{os.environ['BENCH_MEMORY_LIMIT']}'").fetchall()
        plan = compile_plan(engine.load(ROOT / "library" / protocol), AS_OF, audit_columns=kind != "lean")
        register_tables(con, data)
        write(con, plan, out, "json" if kind.endswith("json") else "parquet")
    wall = time.perf_counter() - start
    ended = os.times()  # every thread of this process (DuckDB's, polars')
    cpu = ended.user - cpu_start.user + ended.system - cpu_start.system
    n = con.execute(f"SELECT COUNT(*) FROM read_parquet('{data}/patients.parquet')").fetchall()[0][0]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": n, "wall": wall, "cpu": cpu, "rss_mb": rss_mb}))


def profile(which: str, data: Path, top: int = 25) -> None:
    """The costliest operators of one query (the hand SQL or a library protocol's compiled plan)
    written to Parquet, by DuckDB's JSON profile, on one thread."""
    import csv
    import tempfile

    import engine
    from engine.columnar import compile_plan
    from engine.columnar.duckdb_backend import connect, register_tables
    con = connect(threads=1)
    register_tables(con, data)
    if which == "hand":
        with open(ROOT / "library" / "codes" / "long_term_conditions.csv", encoding="utf-8") as f:
            codes = ", ".join(f"'{row['code']}'" for row in csv.DictReader(f))
        sql = HAND_SQL.format(d=data, a=AS_OF, codes=codes)
    else:
        sql = compile_plan(engine.load(ROOT / "library" / f"{which}.pw"), AS_OF).sql
    with tempfile.TemporaryDirectory() as tmp:
        con.execute("PRAGMA enable_profiling = 'json'").fetchall()
        con.execute(f"PRAGMA profiling_output = '{tmp}/profile.json'").fetchall()
        con.execute(f"COPY ({sql}) TO '{tmp}/out.parquet' (FORMAT PARQUET)").fetchall()
        con.execute("PRAGMA disable_profiling").fetchall()
        with open(f"{tmp}/profile.json", encoding="utf-8") as f:
            tree = json.load(f)
    rows = []

    def walk(node: dict) -> None:
        info = {k: v for k, v in node.get("extra_info", {}).items() if k != "Estimated Cardinality"}
        rows.append((node.get("timing") or 0.0, node.get("type"), node.get("intermediate_rows") or 0,
                     json.dumps(info)[:110]))
        for child in node.get("children", []):
            walk(child)
    for op in tree["operator"]:
        walk(op)
    print(f"{which}: query CPU {tree['query']['cpu_time']:.2f} s; costliest operators (CPU s, rows out):")
    for timing, kind, n, info in sorted(rows, key=lambda r: -r[0])[:top]:
        print(f"{timing:7.3f}  {kind:<18} {n:>11,}  {info}")


RUNS = {"hand": "duckdb hand SQL", "polars": "polars hand query", "compiled": "compiled pyramid",
        "json": "compiled pyramid + JSON", "lean": "compiled pyramid, outcomes only", "cf1": "castlefields 1 thread",
        "cf1json": "castlefields 1 thread + JSON"}


def measure(kind: str, data: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", kind, str(data), str(out)], capture_output=True,
                          text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{kind} on {data} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--base", type=int, default=20_000)
    ap.add_argument("--work", default="/tmp/ltc-population-bench")
    ap.add_argument("--runs", default=",".join(RUNS), help="comma-separated: " + ", ".join(RUNS))
    ap.add_argument("--profile", metavar="QUERY", help="hand, castlefields or ltc_pyramid: where its CPU goes")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    work = Path(args.work)
    base = work / f"base-{args.base}"
    t = time.perf_counter()
    make_base(base, args.base)
    print(f"base population: {args.base:,} patients ({time.perf_counter() - t:.1f} s)", flush=True)
    if args.profile:
        size = int(args.sizes.split(",")[0])
        replicate(base, work / f"pop-{size}", size, args.base)
        profile(args.profile, work / f"pop-{size}")
        return
    print(f"{'patients':>11} {'run':<32} {'wall s':>8} {'patients/s':>12} {'peak RSS MB':>12} {'CPU s':>7}")
    for size in (int(s) for s in args.sizes.split(",")):
        data = work / f"pop-{size}"
        replicate(base, data, size, args.base)
        walls: dict[str, float] = {}
        cpus: dict[str, float] = {}
        for kind in args.runs.split(","):
            label = RUNS[kind]
            out = work / f"out-{size}-{kind}.{'jsonl' if kind.endswith('json') else 'parquet'}"
            r = measure(kind, data, out)
            walls[kind], cpus[kind] = r["wall"], r["cpu"]
            extra = ""
            if kind.endswith("json"):
                extra = f"  ({out.stat().st_size / r['n']:,.0f} bytes a line)"
            print(f"{r['n']:>11,} {label:<32} {r['wall']:>8.2f} {r['n'] / r['wall']:>12,.0f} {r['rss_mb']:>12,.0f}"
                  f" {r['cpu']:>7.2f}{extra}", flush=True)
            os.remove(out)
        print_ratios(walls, cpus)


def print_ratios(walls: dict[str, float], cpus: dict[str, float]) -> None:
    """Each compiled run's wall time over the best hand-written baseline's of the same size, measured
    in the same run (the machine is shared: absolute figures move with its load, ratios less), and
    its CPU time over that baseline's (CPU seconds move least with the load: a run that waits for a
    core is slower but not busier)."""
    best = min((walls[k], k) for k in ("hand", "polars") if k in walls) if {"hand", "polars"} & set(walls) else None
    if best is None:
        return
    for kind in ("compiled", "json", "lean", "cf1", "cf1json"):
        if kind in walls:
            print(f"{'':>11} {RUNS[kind] + ' / ' + RUNS[best[1]]:<52} {walls[kind] / best[0]:>6.2f} x"
                  f"   (CPU {cpus[kind] / cpus[best[1]]:.2f} x)", flush=True)


if __name__ == "__main__":
    main()

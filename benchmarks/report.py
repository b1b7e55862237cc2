"""Markdown report (tables + RD plots) from the JSON results of `rd`, `macs`, `latency` and `demo`.

`python -m benchmarks report [--results DIR] [-o REPORT.md]`

Every *.json under DIR (default benchmarks/results) is read and recognised by its content: RD documents
(`families`), bare CompressAI eval_model files (`results`), MACs (`kmac_per_px`), latency (`end_to_end` /
`graphs` with a `backend`), BaSIC levels (`rows` with `decode_s`), demo summaries (`demo`: nested documents of the other kinds). Unknown files are
listed as skipped. Plots are written next to the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from benchmarks.common import RESULTS_DIR, BenchmarkError, command_main
from runtime.cli import VerboseOpt
from runtime.files import write_atomic


class ReportError(BenchmarkError):
    """No results to report, or an unreadable results file."""


def classify(doc) -> str | None:
    if not isinstance(doc, dict):
        return None
    if doc.get("demo"):
        return "demo"
    if doc.get("benchmark") == "basic-levels" or (doc.get("rows") and "decode_s" in doc["rows"][0]):
        return "levels"
    if "families" in doc:
        return "rd"
    if "results" in doc and "bpp" in doc.get("results", {}):
        return "eval_model"
    if "kmac_per_px" in doc:
        return "macs"
    if "backend" in doc and ("end_to_end" in doc or "graphs" in doc):
        return "latency"
    return None


def _fmt(v, spec=".4f"):
    return "–" if v is None else format(v, spec)


def rd_section(doc: dict, title: str, plot_path: Path | None) -> list[str]:
    out = [f"### {title}", "", f"Data: `{doc.get('data', '?')}` ({len(doc.get('images', []))} images)", ""]
    out += ["| family | bpp (file) | bpp (payload) | PSNR-RGB dB | MS-SSIM |", "|---|---|---|---|---|"]
    for f in doc["families"]:
        r = f["results"]
        n = len(r["bpp"])
        for i in range(n):
            out.append(
                f"| {f['name'] if i == 0 else ''} | {_fmt(r['bpp'][i])} | "
                f"{_fmt((r.get('bpp-payload') or [None] * n)[i])} | {_fmt(r['psnr-rgb'][i], '.3f')} | "
                f"{_fmt((r.get('ms-ssim-rgb') or [None] * n)[i])} |"
            )
    if doc.get("bd_rate"):
        out += [
            "",
            "| test vs anchor | BD-rate payload akima | pchip | BD-rate file akima | pchip | identical payloads |",
            "|---|---|---|---|---|---|",
        ]
        for e in doc["bd_rate"]:
            cell = lambda k: f"{e[k]:+.4f}%" if k in e else "n/a"  # noqa: E731
            ident = f"{e['identical_payloads']}/{e['images']}" if "images" in e else "–"
            out.append(
                f"| {e['test']} vs {e['anchor']} | {cell('bd_rate_payload_akima')} | "
                f"{cell('bd_rate_payload_pchip')} | {cell('bd_rate_file_akima')} | {cell('bd_rate_file_pchip')}"
                f" | {ident} |"
            )
    for n in doc.get("notes", []):
        out.append(f"\n> {n}")
    if plot_path is not None:
        out += ["", f"![RD plot]({plot_path.name})"]
    return out + [""]


def macs_section(doc: dict, title: str) -> list[str]:
    k = doc["kmac_per_px"]
    h, w = doc["size"]
    out = [
        f"### {title}",
        "",
        f"{doc.get('arch', '?')} at {h}×{w}: whole forward {doc['total_macs'] / 1e9:.3f} GMAC "
        f"({doc['kmac_per_px_whole']:.2f} kMAC/px); without the scan term "
        f"{doc['total_macs_without_scan'] / 1e9:.3f} GMAC",
        "",
        "| graph | calls/image | GMAC | kMAC/px | conv | deconv | GDN | matmul | scan |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, g in doc["graphs"].items():
        m = g["macs"]
        out.append(
            f"| {name} | {g['calls_per_image']} | {g['total_macs'] / 1e9:.3f} | {g['kmac_per_px']:.2f} | "
            + " | ".join(f"{m[c] / 1e9:.3f}" for c in ("conv", "deconv", "gdn", "matmul", "scan"))
            + " |"
        )
    out += [
        "",
        f"kMAC/px — encoder {k['encoder']:.2f}, decoder {k['decoder']:.2f}, parse-critical {k['parse_critical']:.2f}",
        "",
    ]
    return out


def latency_section(doc: dict, title: str) -> list[str]:
    h, w = doc["size"]
    out = [
        f"### {title}",
        "",
        f"{doc.get('arch', '?')} at {h}×{w}, backend {doc['backend']} {doc.get('precision', '')}"
        f" on {doc.get('device', '?')}",
        "",
        "| stage | median ms | p90 ms |",
        "|---|---|---|",
    ]
    for name, s in doc.get("graphs", {}).items():
        out.append(f"| graph {name} | {_fmt(s['median_ms'], '.2f')} | {_fmt(s['p90_ms'], '.2f')} |")
    e2e = doc.get("end_to_end")
    if e2e:
        for side in ("encode", "decode"):
            out.append(
                f"| end-to-end {side} | {_fmt(e2e[side]['median_ms'], '.2f')} | {_fmt(e2e[side]['p90_ms'], '.2f')} |"
            )
    out += [f"\n> {n}" for n in doc.get("notes", [])]
    return out + [""]


def levels_section(doc: dict, title: str) -> list[str]:
    """A scalable bundle's levels: what each costs to decode and what it gives."""
    out = [
        f"### {title}",
        "",
        f"{doc.get('arch', '?')}: {len(doc.get('images', []))} image(s), decode median of {doc.get('repeats', '?')}"
        f" run(s), {doc.get('threads') or 'default'} thread(s)",
        "",
        "| level | widths and coder | bpp | PSNR dB | decode ms | network ms | context loop ms | steps |"
        " decoder kMAC/px |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        out.append(
            f"| {r.get('name', r['level'])} | {r['level']} | {r['bpp']:.4f} | {r['psnr']:.2f} | "
            f"{1e3 * r['decode_s']:.1f} | {1e3 * r['network_s']:.1f} | {1e3 * r['loop_s']:.1f} | {r['steps']:.0f} | "
            f"{r['decoder_kmac_per_px']:.2f} |"
        )
    return out + [""]


def build(results: Path, out: Path) -> tuple[str, list[str]]:
    """The report text and the list of skipped files."""
    from benchmarks.rd import plot as rd_plot

    files = sorted(p for p in results.rglob("*.json")) if results.is_dir() else []
    if not files:
        raise ReportError(f"no results JSON under {results}")
    sections, skipped = [], []

    def add(doc, title, stem):
        kind = classify(doc)
        if kind == "eval_model":
            doc = {"data": "?", "images": [], "notes": [], "bd_rate": [], "families": [doc]}
            kind = "rd"
        if kind == "rd":
            png = out.parent / f"{stem}-rd.png"
            try:
                rd_plot(doc, png)
            except Exception:  # a plot failure must not lose the tables
                png = None
            sections.extend(rd_section(doc, title, png))
        elif kind == "macs":
            sections.extend(macs_section(doc, title))
        elif kind == "latency":
            sections.extend(latency_section(doc, title))
        elif kind == "levels":
            sections.extend(levels_section(doc, title))
        elif kind == "demo":
            if doc.get("measures"):
                sections.extend([f"### {title}: what it measures", "", doc["measures"], ""])
            for key, sub in doc.items():
                if isinstance(sub, dict) and classify(sub):
                    add(sub, f"{title}: {key}", f"{stem}-{key}")
                elif isinstance(sub, list):
                    for i, s in enumerate(sub):
                        if isinstance(s, dict) and classify(s):
                            add(s, f"{title}: {key} {i + 1}", f"{stem}-{key}{i + 1}")
        else:
            return False
        return True

    for p in files:
        try:
            doc = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            skipped.append(f"{p.name} (unreadable: {exc})")
            continue
        if not add(doc, p.stem, p.stem):
            skipped.append(f"{p.name} (not a benchmark result)")
    head = ["# lictrt benchmark report", "", f"Results from `{results}`.", ""]
    if skipped:
        head += ["Skipped: " + ", ".join(skipped), ""]
    return "\n".join(head + sections), skipped


def cli(
    results: Annotated[
        Optional[Path], typer.Option(metavar="DIR", help="folder of results JSON (default benchmarks/results)")
    ] = None,
    output: Annotated[
        Optional[Path], typer.Option("-o", "--output", help="report path (default DIR/report.md)")
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Markdown tables and plots from the results JSON (benchmarks/results/*.json)."""
    results = results or RESULTS_DIR
    out = output or results / "report.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    text, _ = build(results, out)
    write_atomic(out, text)
    print(f"report: {out}")


def main(argv: list[str] | None = None) -> int:
    return command_main("report", argv)

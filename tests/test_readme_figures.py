"""The README's figures are rendered from committed records; a hand edit or a new record that
was not rendered makes the README differ from what the records give."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import readme_figures  # noqa: E402


def test_readme_figures_match_their_records():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_figures.py"), "--check"])
    assert done.returncode == 0, "README.md differs from its records: run python scripts/readme_figures.py"


def test_a_figure_typed_into_a_block_is_caught():
    readme = (ROOT / "README.md").read_text()
    edited = readme.replace(readme_figures.BENCH_START + "\n", readme_figures.BENCH_START + "\n- 9.99x faster\n", 1)
    rendered = readme_figures.render(edited, readme_figures.benchmarks_text(),
                                     readme_figures.BENCH_START, readme_figures.BENCH_END)
    assert "9.99x" not in rendered
    assert rendered == readme_figures.render(readme, readme_figures.benchmarks_text(),
                                             readme_figures.BENCH_START, readme_figures.BENCH_END)


def test_md_table_reads_the_rows_under_a_header(tmp_path):
    table = tmp_path / "t.md"
    table.write_text("intro\n\n| model | s / step |\n|---|---|\n| a | **1.5** |\n| b | 2 |\n\nafter\n")
    assert readme_figures.md_table(table, "model") == [{"model": "a", "s / step": "1.5"},
                                                       {"model": "b", "s / step": "2"}]


def test_the_main_job_line_says_whether_its_model_load_included_the_conversion():
    assert readme_figures._conversion({}) == ""  # older records do not say
    assert "including the one-time conversion" in readme_figures._conversion({"model_converted": True})
    assert "already cached" in readme_figures._conversion({"model_converted": False})

"""Figures: lines never cross unmeasured splits; weights named "random-init"; smoke runs carry a warning."""

import numpy as np

from inversion import report


def test_lines_join_consecutive_measured_splits_only():
    assert report._runs([1, 2, 4, 5, 6, 9]) == [[1, 2], [4, 5, 6], [9]]


def test_titles_name_random_init_and_the_data():
    settings = {"weights": "none", "data": "embedded", "image_size": 64, "budget": "quick", "seed": 0}
    title = report.title_of("resnet18", settings, {"name": "embedded"})
    assert "random-init" in title and "none" not in title and "64 px" in title
    trained = report.title_of("lenet7", settings | {"weights": "data/weights/lenet7-fashion-mnist.pt"},
                              {"name": "fashion-mnist"})
    assert "lenet7-fashion-mnist.pt" in trained and "fashion-mnist 64 px" in trained


def test_figures_are_written_with_gaps_gray_rows_and_a_smoke_banner(tmp_path):
    entries = {z: {"ssim": 0.5, "ssim_ci95": [0.4, 0.6]} for z in (1, 3)}
    floor = {"ssim": {"mean": 0.3, "ci95": [0.25, 0.35]}}
    plot = report.ssim_plot(tmp_path / "p.png", 5, entries, floor, "t", smoke=True)
    grid = report.reconstruction_grid(tmp_path / "g.png", np.zeros((2, 8, 8, 1)), {1: np.ones((2, 8, 8, 1))},
                                      {1: [0.5, 0.6]}, {1: "z=1 conv\n4x4x4"}, "t", smoke=True)
    assert plot.stat().st_size > 0 and grid.stat().st_size > 0

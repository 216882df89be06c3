"""Reproductions of the OptNet paper's experiments (Amos & Kolter, ICML 2017) with the in-house
differentiable QP layer: learning 4x4 Sudoku rules, and learning a total-variation-like denoiser.

Modules: :mod:`.qp_layer` (which differentiable QP solver a model calls), :mod:`.sudoku`,
:mod:`.denoising` (data, models, metrics), :mod:`.training` (the training loop and learning
curves), :mod:`.report` (results table and plots).
"""

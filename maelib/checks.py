"""The former name of :mod:`maelib.exercises` (the notebooks' exercise checkers); import that instead."""

from __future__ import annotations

from .exercises import (
    NOT_ATTEMPTED,
    check,
    check_block_mask,
    check_combined_counts,
    check_farthest_from_visible,
    check_forward_encoder,
    check_loss_on_masked_only,
    check_masked_psnr,
    check_norm_pix_target,
    check_patchify,
    check_prediction,
    check_random_masking,
    check_scaffold_spec,
    check_sincos_table,
    check_train_step,
    check_trainable_params,
)

__all__ = ["NOT_ATTEMPTED", "check", "check_block_mask", "check_combined_counts",
           "check_farthest_from_visible", "check_forward_encoder", "check_loss_on_masked_only",
           "check_masked_psnr", "check_norm_pix_target", "check_patchify", "check_prediction",
           "check_random_masking", "check_scaffold_spec", "check_sincos_table", "check_train_step",
           "check_trainable_params"]
